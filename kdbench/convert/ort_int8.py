"""int8 with ONNX Runtime static quantisation: pre-processing, then QDQ quantize_static calibrated
on training frames of the store."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdbench.data.store import FrameStore
from kdbench.errors import DataError
from kdbench.convert.onnx_export import INPUT_NAME
from kdbench.convert.runtimes import frames_as_input


def calibration_frames(store: FrameStore, n: int = 256, seed: int = 0) -> np.ndarray:
    """``n`` training frames of the store (a seeded random subset, all if fewer) as float32 input."""
    rows = store.indices("train")
    if not len(rows):
        raise DataError(f"store {store.path} has no training frames to calibrate quantisation on")
    if len(rows) > n:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=n, replace=False))
    return frames_as_input(store, rows)


def _reader(frames: np.ndarray, batch_size: int):
    """An onnxruntime CalibrationDataReader over the frames, in batches."""
    from onnxruntime.quantization import CalibrationDataReader

    class FrameReader(CalibrationDataReader):
        """Feeds calibration frames to ONNX Runtime's calibrator."""

        def __init__(self) -> None:
            self._batches = iter([frames[i : i + batch_size] for i in range(0, len(frames), batch_size)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    return FrameReader()


def preprocess(fp32_path: str | Path, out_path: str | Path) -> Path:
    """ONNX Runtime's quantisation pre-processing (shape inference, graph optimisation) of a model."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(fp32_path), str(out_path))
    return Path(out_path)


def quantize_ort(
    model_path: str | Path, out_path: str | Path, frames: np.ndarray, per_channel: bool, batch_size: int = 32
) -> Path:
    """Static QDQ int8 quantisation (int8 weights and activations, MinMax calibration on ``frames``)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    quantize_static(
        str(model_path), str(out_path), _reader(frames, batch_size), quant_format=QuantFormat.QDQ,
        per_channel=per_channel, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
    )
    return Path(out_path)
