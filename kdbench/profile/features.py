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
- ``n_ops``: nodes that do work (shape bookkeeping such as Reshape, Shape, Constant excluded);
- ``param_bytes``: bytes of every initializer as stored (what the runtime keeps resident);
- ``peak_act_bytes``: the largest sum of activations alive at once, walking the nodes in order (a
  lower bound on the runtime's activation arena);
- ``precision``: ``int8`` for quantised graphs (QDQ or QLinear/Integer ops), ``fp16`` when the
  weights are half, else ``fp32``.

Quantised graphs: QuantizeLinear / DequantizeLinear pairs are fused into the integer kernels by the
runtimes (ORT's QDQ transformer, OpenVINO's low-precision pass), so they are neither ops nor memory
traffic here; activation bytes are counted in elements x 4 for every precision (``act_bytes`` is
"fp32-equivalent"), and the estimator applies the precision's own rates. Weights are counted at
their stored width (int8 weights behind a DequantizeLinear: 1 byte).

OpenVINO IR (``.xml``) is read with OpenVINO itself (``ir_features``): Convolution /
GroupConvolution / MatMul / FakeQuantize give the same classes as the ONNX ops.
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
QUANT_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})
INT_OPS = frozenset({"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"})
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
    param_bytes: float = 0.0
    peak_act_bytes: float = 0.0
    precision: str = "fp32"

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
    if input_size is None and all(d.HasField("dim_value") and d.dim_value > 0 for i in real
                                  for d in i.type.tensor_type.shape.dim):
        return dims[2].dim_value if len(dims) == 4 else None  # fully static (a micro-benchmark's graph): as stated
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


def _add_conv(f: GraphFeatures, wdims: list[int], wtype: int, group: int, out_numel: float,
              transposed_in: float | None) -> None:
    """Add one convolution's MACs (dense or depthwise) and weight bytes to ``f``."""
    cout, cin_g = wdims[0], wdims[1]
    kernel = math.prod(wdims[2:]) if len(wdims) > 2 else 1
    macs = transposed_in * cout * kernel if transposed_in is not None else out_numel * cin_g * kernel
    if group > 1 and cin_g == 1:
        f.macs_dw += macs
    else:
        f.macs_dense += macs
    f.weight_bytes += math.prod(wdims) * _DTYPE_BYTES.get(wtype, 4)


def _peak_live_bytes(model: Any, shapes: dict[str, tuple[list[int | None], int]], weights: set[str]) -> float:
    """Largest sum of activation bytes alive at once (fp32-equivalent), nodes taken in graph order.

    Outputs of free ops (Reshape, Flatten, ...) and of Q/DQ nodes share their input's buffer."""
    nodes = list(model.graph.node)
    root: dict[str, str] = {}
    for node in nodes:
        if (node.op_type in FREE_OPS or node.op_type in QUANT_OPS) and node.input and node.output:
            src = node.input[0]
            root[node.output[0]] = root.get(src, src)
    last_use: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            r = root.get(name, name)
            last_use[r] = max(last_use.get(r, -1), i)
    for out in model.graph.output:
        last_use[root.get(out.name, out.name)] = len(nodes)

    def size(name: str) -> float:
        if name in weights or name not in shapes:
            return 0.0
        n = _numel(shapes[name][0])
        return 0.0 if n is None else 4.0 * n

    live = {i.name: size(i.name) for i in model.graph.input if i.name not in weights}
    peak = sum(live.values())
    for i, node in enumerate(nodes):
        for o in node.output:
            if o and o not in root and o in last_use:
                live[o] = size(o)
        peak = max(peak, sum(live.values()))
        for name in [n for n in live if last_use.get(n, -1) <= i]:
            del live[name]
    return peak


def load_graph(model_or_path: Any) -> tuple[Any, str]:
    """(a copy of the ONNX model without its external weights, its label for messages)."""
    import onnx

    label = str(model_or_path) if isinstance(model_or_path, (str, Path)) else "<onnx model>"
    if isinstance(model_or_path, (str, Path)):
        try:
            return onnx.load(str(model_or_path), load_external_data=False), label
        except Exception as err:  # noqa: BLE001 - onnx raises several types for bad files
            raise DataError(f"{label}: not a readable ONNX file: {err}") from None
    model = onnx.ModelProto()
    model.CopyFrom(model_or_path)
    return model, label


def _sized(model: Any, shapes: dict[str, tuple[list[int | None], int]]) -> bool:
    """True when every Conv / Gemm / MatMul output has a known shape."""
    return all(_numel(shapes.get(n.output[0], (None, 1))[0]) is not None for n in model.graph.node
               if n.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and n.output)


def _shapes(model: Any) -> dict[str, tuple[list[int | None], int]]:
    """Every value's (dims, elem_type) the model states."""
    return {vi.name: _shape_of(vi) for vi in list(model.graph.input) + list(model.graph.value_info)
            + list(model.graph.output)}


def inferred_graph(model: Any, input_size: int | None, label: str) -> tuple[Any, dict, int | None]:
    """Shape-infer ``model`` at batch 1 and ``input_size``: (model with shapes, value -> (dims, elem type), size).

    ONNX's own inference first; where it leaves a layer unsized (the TorchScript exporter's channel shuffle
    computes its split points from ``Shape``), ONNX Runtime's symbolic inference, which follows shape
    arithmetic."""
    import onnx

    size = _fix_inputs(model, input_size, label)
    del model.graph.value_info[:]
    for out in model.graph.output:
        for d in out.type.tensor_type.shape.dim:
            d.Clear()
    if any(n.op_type in ("Loop", "If", "Scan") for n in model.graph.node):
        raise DataError(f"{label}: control-flow ops (Loop/If/Scan) are not supported by the estimator")
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as err:  # noqa: BLE001
        raise DataError(f"{label}: ONNX shape inference failed at input size {size}: {err}") from None
    shapes = _shapes(inferred)
    if not _sized(inferred, shapes):
        try:
            from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

            symbolic = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
            inferred, shapes = symbolic, _shapes(symbolic)
        except Exception:  # noqa: BLE001 - keep ONNX's shapes; the unsized layer is named below
            pass
    return inferred, shapes, size


def graph_features(model_or_path: Any, input_size: int | None = None) -> GraphFeatures:
    """Shape-infer an ONNX model at batch 1 (and ``input_size`` if given) and sum work per class."""
    model, label = load_graph(model_or_path)
    model, shapes, size = inferred_graph(model, input_size, label)
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

    def act_elems(name: str) -> float:
        if name in inits or name in produced_from_init or name not in shapes:
            return 0.0
        n = _numel(shapes[name][0])
        return 0.0 if n is None else float(n)

    f = GraphFeatures(input_size=size)
    ops = {n.op_type for n in model.graph.node}
    f.precision = "int8" if ops & (QUANT_OPS | INT_OPS) else (
        "fp16" if any(t.data_type == 10 for t in model.graph.initializer) else "fp32")
    f.param_bytes = float(sum(math.prod(d) * _DTYPE_BYTES.get(et, 4) for d, et in inits.values()))
    f.peak_act_bytes = _peak_live_bytes(model, shapes, set(inits) | set(produced_from_init))
    for node in model.graph.node:
        op = node.op_type
        if op in FREE_OPS or op in QUANT_OPS:
            continue
        out_name = node.output[0] if node.output else ""
        if out_name in shapes and shapes[out_name][1] == 7 and op not in ("ArgMax", "ArgMin", "TopK"):
            continue  # int64 shape arithmetic
        f.n_ops += 1
        f.act_bytes += sum(act_elems(i) for i in node.input if i) * 4.0 + sum(act_elems(o) for o in node.output if o) * 4.0
        if op in ("Conv", "ConvTranspose", "QLinearConv", "ConvInteger"):
            w = weight(node.input[3] if op == "QLinearConv" else node.input[1])
            out = shapes.get(out_name, (None, 1))[0]
            if w is None or _numel(out) is None:
                raise DataError(f"{label}: cannot size {op} node {node.name!r} (weight or output shape unknown)")
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            inp = shapes.get(node.input[0], (None, 1))[0] if op == "ConvTranspose" else None
            _add_conv(f, w[0], w[1], group, float(_numel(out)), float(_numel(inp) or 0) if inp else None)
        elif op in ("Gemm", "MatMul", "QLinearMatMul", "MatMulInteger"):
            a_name, b_name = (node.input[0], node.input[3]) if op == "QLinearMatMul" else (node.input[0], node.input[1])
            w = weight(b_name)
            a = shapes.get(a_name, (None, 1))[0]
            if w is not None and a is not None and _numel(a) is not None:
                wdims, wtype = w
                trans_b = next((x.i for x in node.attribute if x.name == "transB"), 0)
                k, n = (wdims[1], wdims[0]) if trans_b else (wdims[0], wdims[-1])
                f.macs_fc += float(_numel(a) // max(k, 1)) * k * n
                f.weight_bytes += math.prod(wdims) * _DTYPE_BYTES.get(wtype, 4)
            else:
                out = shapes.get(out_name, (None, 1))[0]
                if a is None or out is None or _numel(out) is None or not a or a[-1] is None:
                    raise DataError(f"{label}: cannot size {op} node {node.name!r}")
                f.macs_dense += float(_numel(out)) * a[-1]
    return f


# OpenVINO ops that move no data (shape bookkeeping, weight decompression, graph ends).
_IR_FREE = frozenset({"Constant", "Parameter", "Result", "ShapeOf", "Reshape", "Squeeze", "Unsqueeze", "Convert",
                      "FakeQuantize", "Broadcast", "Gather", "Concat", "Range", "StridedSlice", "Transpose"})
_IR_BYTES = {"f32": 4, "f16": 2, "bf16": 2, "i8": 1, "u8": 1, "i4": 0.5, "u4": 0.5, "i32": 4, "i64": 8}


def _ir_constant(port: Any) -> Any:
    """The Constant a weight input comes from, through decompression (Convert/Subtract/Multiply/FakeQuantize/Reshape)."""
    node = port.get_node()
    for _ in range(6):
        if node.get_type_name() == "Constant":
            return node
        if node.get_type_name() not in ("Convert", "Subtract", "Multiply", "FakeQuantize", "Reshape", "Transpose"):
            return None
        node = node.input_value(0).get_node()
    return None


def _ir_numel(shape: Any) -> float | None:
    """Elements of a static partial shape, else None."""
    return float(math.prod(d.get_length() for d in shape)) if shape.is_static else None


def ir_features(xml: str | Path, input_size: int | None = None) -> GraphFeatures:
    """Work per class of an OpenVINO IR (or any model OpenVINO reads) at batch 1, read with OpenVINO."""
    import openvino as ov

    try:
        model = ov.Core().read_model(str(xml))
        pshape = model.inputs[0].get_partial_shape()
        if len(pshape) != 4:
            raise DataError(f"{xml}: input has rank {len(pshape)}; expected [B, C, H, W]")
        size = input_size or (pshape[2].get_length() if pshape[2].is_static else None)
        if not size:
            raise DataError(f"{xml}: input has a dynamic spatial size; give input_size")
        model.reshape({model.inputs[0]: [1, pshape[1].get_length() if pshape[1].is_static else 1, size, size]})
    except DataError:
        raise
    except Exception as err:  # noqa: BLE001 - OpenVINO raises its own types
        raise DataError(f"{xml}: OpenVINO could not read it at input size {input_size}: {err}") from None
    f = GraphFeatures(input_size=size)
    types = {op.get_type_name() for op in model.get_ordered_ops()}
    f.precision = "int8" if "FakeQuantize" in types else "fp32"
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind == "Constant":
            f.param_bytes += (_ir_numel(op.get_output_partial_shape(0)) or 0) * _IR_BYTES.get(
                op.get_output_element_type(0).get_type_name(), 4)
            continue
        if kind in _IR_FREE or op.get_output_element_type(0).get_type_name() in ("i64", "i32", "boolean"):
            continue
        out = _ir_numel(op.get_output_partial_shape(0)) or 0.0
        ins = [op.input_value(i) for i in range(op.get_input_size())]
        f.n_ops += 1
        moved = 4.0 * (out + sum(_ir_numel(p.get_partial_shape()) or 0.0 for p in ins if _ir_constant(p) is None))
        f.act_bytes += moved
        f.peak_act_bytes = max(f.peak_act_bytes, moved)  # largest single op's inputs + output (no liveness walk)
        const = _ir_constant(ins[1]) if len(ins) > 1 else None
        if kind in ("Convolution", "GroupConvolution") and const is not None:
            w = [d.get_length() for d in ins[1].get_partial_shape()]
            group = w[0] if kind == "GroupConvolution" else 1
            wd = [w[0] * w[1]] + w[2:] if kind == "GroupConvolution" else w
            _add_conv(f, wd, 1, group, out, None)
            f.weight_bytes += math.prod(wd) * (_IR_BYTES.get(const.get_output_element_type(0).get_type_name(), 4) - 4)
        elif kind == "MatMul" and const is not None:
            a = _ir_numel(ins[0].get_partial_shape()) or 0.0
            w = [d.get_length() for d in ins[1].get_partial_shape()]
            k = w[-1] if op.get_attributes().get("transpose_b") else w[0]
            f.macs_fc += a / max(k, 1) * math.prod(w)
            f.weight_bytes += math.prod(w) * _IR_BYTES.get(const.get_output_element_type(0).get_type_name(), 4)
        elif kind == "MatMul":
            f.macs_dense += out * (ins[0].get_partial_shape()[-1].get_length())
    return f
