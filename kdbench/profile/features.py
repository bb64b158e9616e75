"""Per-kernel-class work of an ONNX graph at a given input size, read with ``onnx`` shape inference.

The latency estimator (``estimate.py``) prices each class separately, because the classes run at
very different shares of a CPU's peak: dense convolutions (im2col/Winograd GEMMs) get close to it,
depthwise convolutions (one multiply-add per loaded value) and elementwise ops are bound by memory
and per-layer overhead. Classes:

- ``macs_dense``: Conv with groups < input channels (incl. 1x1 pointwise and grouped), MatMul of two
  activations; ``macs_dw``: depthwise Conv (groups == input channels > 1);
- ``macs_fc``: Gemm / MatMul with a weight initializer (at batch 1 these read each weight once);
- ``act_bytes``: activation bytes read and written by every non-trivial node;
- ``weight_bytes``: bytes of the weights of Conv / Gemm / MatMul (read once per query);
- ``n_ops``: nodes that do work (shape bookkeeping such as Reshape, Shape, Constant excluded).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from kdbench.errors import DataError

# Ops that move no data in an optimised runtime (folded, aliased or computed on shapes only).
FREE_OPS = frozenset(
    {"Constant", "ConstantOfShape", "Shape", "Reshape", "Flatten", "Identity", "Squeeze", "Unsqueeze",
     "Size", "Range", "Dropout", "Cast", "CastLike"}
)
_DTYPE_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 16: 2}


@dataclass
class GraphFeatures:
    """Work per query at batch 1, split by kernel class."""

    macs_dense: float = 0.0
    macs_dw: float = 0.0
    macs_fc: float = 0.0
    act_bytes: float = 0.0
    weight_bytes: float = 0.0
    n_ops: int = 0
    input_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GraphFeatures":
        """Inverse of ``to_dict`` (unknown keys rejected)."""
        return cls(**d)

    @property
    def gmacs(self) -> float:
        """All multiply-adds in G."""
        return (self.macs_dense + self.macs_dw + self.macs_fc) / 1e9


def _shape_of(value_info: Any) -> tuple[list[int | None], int]:
    """(dims, elem_type) of a ValueInfoProto; unknown dims are None."""
    tt = value_info.type.tensor_type
    dims: list[int | None] = []
    for d in tt.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None)
    return dims, tt.elem_type


def _numel(dims: list[int | None] | None) -> int | None:
    """Number of elements, or None when a dim is unknown."""
    if dims is None or any(d is None for d in dims):
        return None
    return math.prod(dims) if dims else 1


def _fix_inputs(model: Any, input_size: int | None, path: str) -> int | None:
    """Set batch 1 and the spatial size on the graph's real inputs; returns the size used."""
    inits = {i.name for i in model.graph.initializer}
    real = [i for i in model.graph.input if i.name not in inits]
    if not real:
        raise DataError(f"{path}: ONNX graph has no input")
    dims = real[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise DataError(f"{path}: input {real[0].name!r} has rank {len(dims)}; expected [B, C, H, W]")
    size = input_size
    if size is None:
        h = dims[2].dim_value if dims[2].HasField("dim_value") else 0
        if h <= 0:
            raise DataError(f"{path}: input {real[0].name!r} has a dynamic spatial size; give input_size")
        size = h
    for inp in real:
        d = inp.type.tensor_type.shape.dim
        if len(d) == 4:
            d[0].dim_value = 1
            d[2].dim_value = size
            d[3].dim_value = size
    return size


def graph_features(model_or_path: Any, input_size: int | None = None) -> GraphFeatures:
    """Shape-infer an ONNX model at batch 1 (and ``input_size`` if given) and sum work per class."""
    import onnx

    label = str(model_or_path) if isinstance(model_or_path, (str, Path)) else "<onnx model>"
    if isinstance(model_or_path, (str, Path)):
        try:
            model = onnx.load(str(model_or_path), load_external_data=False)
        except Exception as err:  # noqa: BLE001 - onnx raises several types for bad files
            raise DataError(f"{label}: not a readable ONNX file: {err}") from None
    else:
        model = onnx.ModelProto()
        model.CopyFrom(model_or_path)
    size = _fix_inputs(model, input_size, label)
    del model.graph.value_info[:]
    for out in model.graph.output:
        for d in out.type.tensor_type.shape.dim:
            d.Clear()
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as err:  # noqa: BLE001
        raise DataError(f"{label}: ONNX shape inference failed at input size {size}: {err}") from None
    if any(n.op_type in ("Loop", "If", "Scan") for n in model.graph.node):
        raise DataError(f"{label}: control-flow ops (Loop/If/Scan) are not supported by the estimator")

    shapes: dict[str, tuple[list[int | None], int]] = {}
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        shapes[vi.name] = _shape_of(vi)
    inits = {i.name: (list(i.dims), i.data_type) for i in model.graph.initializer}
    # Weights reached through DequantizeLinear (QDQ int8 models) still count as weights.
    produced_from_init: dict[str, str] = {}
    for n in model.graph.node:
        if n.op_type in ("DequantizeLinear", "Cast", "Identity", "Transpose") and n.input and n.input[0] in inits:
            produced_from_init[n.output[0]] = n.input[0]

    def weight(name: str) -> tuple[list[int], int] | None:
        if name in inits:
            return inits[name]
        if name in produced_from_init:
            return inits[produced_from_init[name]]
        return None

    def nbytes(name: str) -> float:
        if name in inits or name in produced_from_init or name not in shapes:
            return 0.0
        dims, et = shapes[name]
        n = _numel(dims)
        return 0.0 if n is None else float(n * _DTYPE_BYTES.get(et, 4))

    f = GraphFeatures(input_size=size)
    for node in model.graph.node:
        op = node.op_type
        if op in FREE_OPS or op in ("DequantizeLinear", "QuantizeLinear") and node.input and weight(node.input[0]):
            continue
        out_name = node.output[0] if node.output else ""
        if out_name in shapes and shapes[out_name][1] == 7 and op not in ("ArgMax", "ArgMin", "TopK"):
            continue  # int64 shape arithmetic
        f.n_ops += 1
        f.act_bytes += sum(nbytes(i) for i in node.input if i) + sum(nbytes(o) for o in node.output if o)
        if op in ("Conv", "ConvTranspose", "QLinearConv", "ConvInteger"):
            w_name = node.input[3] if op == "QLinearConv" else node.input[1]
            w = weight(w_name)
            out = shapes.get(out_name, (None, 1))[0]
            if w is None or _numel(out) is None:
                raise DataError(f"{label}: cannot size {op} node {node.name!r} (weight or output shape unknown)")
            wdims, wtype = w
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            cout, cin_g = wdims[0], wdims[1]
            kernel = math.prod(wdims[2:]) if len(wdims) > 2 else 1
            macs = float(_numel(out)) * cin_g * kernel
            if op == "ConvTranspose":
                inp = shapes.get(node.input[0], (None, 1))[0]
                macs = float(_numel(inp) or 0) * cout * kernel
            if group > 1 and cin_g == 1:
                f.macs_dw += macs
            else:
                f.macs_dense += macs
            f.weight_bytes += math.prod(wdims) * _DTYPE_BYTES.get(wtype, 4)
        elif op in ("Gemm", "MatMul", "QLinearMatMul", "MatMulInteger"):
            a_name, b_name = (node.input[0], node.input[3]) if op == "QLinearMatMul" else (node.input[0], node.input[1])
            w = weight(b_name)
            a = shapes.get(a_name, (None, 1))[0]
            if w is not None and a is not None and _numel(a) is not None:
                wdims, wtype = w
                trans_b = next((x.i for x in node.attribute if x.name == "transB"), 0)
                k, n = (wdims[1], wdims[0]) if trans_b else (wdims[0], wdims[-1])
                rows = _numel(a) // max(k, 1)
                f.macs_fc += float(rows) * k * n
                f.weight_bytes += math.prod(wdims) * _DTYPE_BYTES.get(wtype, 4)
            else:
                out = shapes.get(out_name, (None, 1))[0]
                if a is None or out is None or _numel(out) is None or not a or a[-1] is None:
                    raise DataError(f"{label}: cannot size {op} node {node.name!r}")
                f.macs_dense += float(_numel(out)) * a[-1]
    return f
