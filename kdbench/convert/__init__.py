"""Conversion tools below every stage: a torch model to ONNX fp32, int8 (ONNX Runtime, OpenVINO) and fp16 files,
and the runtimes that run them. The hardware-aware search prices exports with them and the export stage builds
its variants with them, so neither stage imports the other for conversion."""
