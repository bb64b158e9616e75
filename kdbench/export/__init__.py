"""Deployable variants: ONNX fp32, int8 (ONNX Runtime, OpenVINO), fp16 and pruned models, each re-evaluated in its runtime."""
