"""fp16 ONNX for GPU targets, converted from the fp32 file with fp32 input and output kept."""

from __future__ import annotations

from pathlib import Path


def convert_fp16(fp32_onnx: str | Path, out_path: str | Path) -> Path:
    """Convert weights and compute to float16 (inputs/outputs stay float32); raises ImportError if no converter."""
    import onnx

    try:
        from onnxruntime.transformers.float16 import convert_float_to_float16
    except ImportError as err:  # onnxruntime builds without the transformers tools
        raise ImportError(f"no fp16 converter available (onnxruntime.transformers.float16: {err})") from err
    model = convert_float_to_float16(onnx.load(str(fp32_onnx)), keep_io_types=True)
    onnx.save(model, str(out_path))
    return Path(out_path)
