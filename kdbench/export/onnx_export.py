"""Moved to kdbench.convert.onnx_export (conversion sits below the search, which prices exports, and the export
stage); this name stays so older imports keep working."""

from kdbench.convert.onnx_export import (DEFAULT_OPSET, INPUT_NAME, OUTPUT_NAME, export_onnx, files_size_mb,
                                         graph_export, model_files, parity_stats)

__all__ = ["DEFAULT_OPSET", "INPUT_NAME", "OUTPUT_NAME", "export_onnx", "files_size_mb", "graph_export",
           "model_files", "parity_stats"]
