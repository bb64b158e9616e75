"""The runtimes kdbench knows (``RUNTIMES``, one registry) and the in-process logits functions of those that score an
exported file here (ONNX Runtime, OpenVINO).

Only numpy and the runtime are needed here, so the same code scores a variant on any machine that can run it.
Frames become model input exactly as in training: uint8 / 255 as float32 ``[B, 1, S, S]``.
"""

from __future__ import annotations

from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from kdbench.errors import ConfigError

if TYPE_CHECKING:
    from kdbench.data.store import FrameStore

Runner = Callable[[np.ndarray], np.ndarray]


def frames_as_input(store: FrameStore, rows: np.ndarray) -> np.ndarray:
    """Store rows as model input: float32 ``[B, 1, S, S]`` in ``[0, 1]``."""
    return (np.asarray(store.frames[rows], dtype=np.float32) / 255.0)[:, None]


def ort_runner(path: str | Path, threads: int | None = None) -> Runner:
    """A logits function backed by an ONNX Runtime CPU session on ``path``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    out_type = session.get_outputs()[0].type

    def run(x: np.ndarray) -> np.ndarray:
        feed = x.astype(np.float16) if session.get_inputs()[0].type == "tensor(float16)" else x
        out = session.run(None, {name: feed})[0]
        return out.astype(np.float32) if out_type != "tensor(float)" else out

    return run


def openvino_runner(path: str | Path, device: str = "CPU") -> Runner:
    """A logits function backed by an OpenVINO compiled model (IR .xml or .onnx) on ``device``."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(path), device)
    request = compiled.create_infer_request()

    def run(x: np.ndarray) -> np.ndarray:
        return np.asarray(request.infer([x])[compiled.output(0)], dtype=np.float32)

    return run


@dataclass(frozen=True)
class Runtime:
    """A runtime kdbench measures with (the profile agent) and, with a ``runner``, evaluates exported files with."""

    name: str
    module: str  # the Python package it imports
    formats: tuple[str, ...]  # model formats it runs: onnx | openvino (IR) | pt2
    device: str  # as the runtime spells it
    inference_precision: str | None = None  # OpenVINO's INFERENCE_PRECISION_HINT, set explicitly
    runner: Callable[[str | Path], Runner] | None = None  # an in-process logits function (export's evaluation)

    def agent_entry(self) -> dict[str, Any]:
        """This runtime's entry in the profile agent's own copy of the table (``agent.RUNTIME_TABLE``)."""
        entry: dict[str, Any] = {"formats": self.formats, "device": self.device}
        return entry if self.inference_precision is None else {**entry, "inference_precision": self.inference_precision}


_OV = ("onnx", "openvino")
# The one runtime table: the profile agent (one file that travels to the target) keeps a copy, tied by a test.
RUNTIMES: dict[str, Runtime] = {r.name: r for r in (
    Runtime("onnxruntime", "onnxruntime", ("onnx",), "cpu", runner=ort_runner),
    Runtime("onnxruntime-cuda", "onnxruntime", ("onnx",), "cuda"),
    Runtime("openvino", "openvino", _OV, "CPU", "f32", runner=openvino_runner),
    Runtime("openvino-bf16", "openvino", _OV, "CPU", "bf16"),
    Runtime("openvino-fp16", "openvino", _OV, "CPU", "f16"),
    Runtime("openvino-gpu", "openvino", _OV, "GPU", "f32"),
    Runtime("pytorch", "torch", ("pt2",), "cpu"),
    Runtime("pytorch-cuda", "torch", ("pt2",), "cuda"),
)}
EVALUATED = tuple(name for name, r in RUNTIMES.items() if r.runner is not None)  # what export scores variants in


def load_runner(path: str | Path, runtime: str) -> Runner:
    """The logits function for a variant file in its runtime (one of ``EVALUATED``)."""
    found = RUNTIMES.get(runtime)
    if found is None or found.runner is None:
        raise ConfigError(f"runtime {runtime!r} is not supported; expected one of {', '.join(EVALUATED)}")
    return found.runner(path)
