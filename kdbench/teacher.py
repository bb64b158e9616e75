"""The teacher: train one on a store, or load an existing one (kdbench checkpoint or ONNX file).

A loaded teacher is a function from a float32 batch ``[B, 1, S, S]`` in ``[0, 1]`` to logits
``[B, 4]``, whatever file it came from, so the logit cache does not care which.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from kdbench.data.views import VIEWS
from kdbench.errors import ConfigError

TeacherFn = Callable[[np.ndarray], np.ndarray]


def load_teacher(path: str | Path, device: str = "cpu") -> TeacherFn:
    """A logits function for a teacher stored as a kdbench checkpoint (.pt) or an ONNX file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"teacher file {path} does not exist (expected a kdbench .pt checkpoint or an .onnx file)")
    if path.suffix == ".onnx":
        return _onnx_teacher(path)
    return _torch_teacher(path, device)


def _torch_teacher(path: Path, device: str) -> TeacherFn:
    """Wrap a kdbench checkpoint as a logits function."""
    import torch

    from kdbench.models.checkpoint import load_checkpoint

    from kdbench.fastpath import inference

    model, meta = load_checkpoint(path)
    model.to(device).eval()
    forward = inference(model, torch.device(device), str(meta.get("arch", "teacher")))  # fastest measured layout

    def run(x: np.ndarray) -> np.ndarray:
        return forward(torch.from_numpy(x)).float().cpu().numpy()

    return run


def _onnx_teacher(path: Path) -> TeacherFn:
    """Wrap an ONNX teacher (one input [B, 1, S, S] float32, output [B, 4]) as a logits function."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise ConfigError(f"teacher {path} is not a loadable ONNX model: {err}") from err
    inp = session.get_inputs()[0]
    if len(inp.shape) != 4 or inp.shape[1] != 1:
        raise ConfigError(f"ONNX teacher {path}: input {inp.name!r} has shape {inp.shape}; expected [batch, 1, H, W] grey frames in [0, 1]")

    def run(x: np.ndarray) -> np.ndarray:
        out = session.run(None, {inp.name: x.astype(np.float32)})[0]
        if out.ndim != 2 or out.shape[1] != len(VIEWS):
            raise ConfigError(f"ONNX teacher {path} returned shape {out.shape}; expected [batch, {len(VIEWS)}] logits")
        return out

    return run


def live_teacher(path: str | Path, device: str = "cpu"):
    """The teacher as a tensor -> tensor function, for runs that call it on every batch (no cache)."""
    import torch

    fn = load_teacher(path, device)
    return lambda x: torch.from_numpy(fn(x.detach().cpu().numpy())).to(x.device)
