"""ONNX fp32 export of a student: one self-contained file, input "input" float32 [batch, 1, S, S]
with a dynamic batch, output "logits"; checked against PyTorch on real frames."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_OPSET = 18
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def export_onnx(model: Any, path: str | Path, input_size: int, opset: int = DEFAULT_OPSET) -> dict[str, Any]:
    """Export ``model`` to ``path``: the dynamo exporter first, the TorchScript one if that fails.

    Returns ``{"exporter": "dynamo"|"torchscript", "opset", "dynamo_error"}``; raises when both fail.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    example = torch.rand(2, 1, input_size, input_size)
    info: dict[str, Any] = {"opset": opset, "dynamo_error": None}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model, (example,), str(path), dynamo=True, external_data=False, verbose=False,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=opset,
                dynamic_shapes=({0: torch.export.Dim("batch")},),
            )
        _check_graph(path)
        info["exporter"] = "dynamo"
        return info
    except Exception as err:  # the dynamo exporter raises many error types; fall back and say why
        first = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()[:1]
        info["dynamo_error"] = f"{type(err).__name__}: {first[0] if first else ''}"[:500]
        _remove_with_data(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), str(path), dynamo=False, verbose=False, opset_version=opset,
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    _check_graph(path)
    info["exporter"] = "torchscript"
    return info


def graph_export(arch: str, path: str | Path, size: int) -> Path:
    """ONNX graph of an untrained ``arch`` at batch 1 and ``size`` px (TorchScript exporter: ~10x faster than dynamo;
    the hardware-aware search prices the graph, not the weights)."""
    import torch

    from kdbench.models import create_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.onnx")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(create_model(arch).eval(), (torch.rand(1, 1, size, size),), str(tmp), dynamo=False,
                          opset_version=DEFAULT_OPSET, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
    tmp.replace(path)
    return path


def _check_graph(path: Path) -> None:
    """Raise unless the file is self-contained with a dynamic-batch [batch, 1, S, S] input and [batch, C] output."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    external = [t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise ValueError(f"{path} stores {len(external)} initializers as external data; expected one file")
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        raise ValueError(f"{path}: graph inputs {[i.name for i in inputs]}; expected [{INPUT_NAME!r}]")
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4 or dims[0].dim_value or dims[1].dim_value != 1:
        raise ValueError(f"{path}: input shape {[d.dim_param or d.dim_value for d in dims]}; expected [batch, 1, S, S]")
    if [o.name for o in model.graph.output] != [OUTPUT_NAME]:
        raise ValueError(f"{path}: graph outputs {[o.name for o in model.graph.output]}; expected [{OUTPUT_NAME!r}]")


def _remove_with_data(path: Path) -> None:
    """Delete a partly written export and any external-data file beside it."""
    for p in (path, Path(str(path) + ".data")):
        if p.exists():
            p.unlink()


def parity_stats(model: Any, onnx_path: str | Path, x: np.ndarray) -> tuple[float, float]:
    """(largest absolute PyTorch/ONNX Runtime logit difference, largest absolute PyTorch logit) on ``x``."""
    import torch

    from kdbench.convert.runtimes import ort_runner

    with torch.no_grad():
        ref = model.eval().cpu()(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).float().numpy()
    got = ort_runner(onnx_path)(np.ascontiguousarray(x, dtype=np.float32))
    if got.shape != ref.shape:
        raise ValueError(f"ONNX logits have shape {got.shape}, PyTorch {ref.shape}")
    return float(np.abs(got - ref).max()), float(np.abs(ref).max())


def files_size_mb(paths: list[str | Path]) -> float:
    """Total size on disk of a variant's files (model, weights, external data) in MB (10^6 bytes)."""
    return sum(os.path.getsize(p) for p in paths) / 1e6


def model_files(path: str | Path) -> list[Path]:
    """Every file a variant consists of: the model file plus its external-data or weights files."""
    path = Path(path)
    files = [path]
    if path.suffix == ".xml":
        files.append(path.with_suffix(".bin"))
    elif path.suffix == ".onnx":
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        for t in model.graph.initializer:
            if t.data_location == onnx.TensorProto.EXTERNAL:
                loc = {e.key: e.value for e in t.external_data}.get("location")
                if loc and (path.parent / loc) not in files:
                    files.append(path.parent / loc)
    return [f for f in files if f.exists()]
