"""int8 with OpenVINO + NNCF post-training quantisation, saved as OpenVINO IR (.xml + .bin)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np


def quantize_openvino(fp32_onnx: str | Path, out_xml: str | Path, frames: np.ndarray) -> Path:
    """Read the fp32 ONNX model into OpenVINO, quantise it with ``nncf.quantize`` on ``frames``, save IR."""
    import nncf
    import openvino as ov

    nncf.set_log_level(logging.ERROR)
    model = ov.Core().read_model(str(fp32_onnx))
    dataset = nncf.Dataset([frames[i : i + 1] for i in range(len(frames))])
    quantized = nncf.quantize(model, dataset, subset_size=len(frames))
    out_xml = Path(out_xml)
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out_xml))
    return out_xml
