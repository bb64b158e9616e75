"""Kernel-level latency model (the idea of nn-Meter): a graph is a sequence of kernels, each priced alone.

A *kernel* is what a runtime executes as one unit after its fusions: a convolution with the
activation that follows it (ONNX Runtime fuses Conv + Relu/Clip/Sigmoid/HardSigmoid/LeakyRelu/Tanh
into one FusedConv on CPU), a fully connected layer, a pooling, an elementwise op with its
broadcast, a data movement (Concat, Slice, Split, Transpose, Pad). ``graph_kernels`` reads them from
a shape-inferred ONNX graph; ``micro_models`` writes one-kernel ONNX graphs at sampled shapes (the
micro-benchmark suite ``kdbench profile calibrate --kernels`` times on the device); ``KernelModel``
fits, per kernel kind, a cost in microseconds that is linear in the kernel's work::

    t_kind = c0 + c_mac * MACs + c_in * input + c_out * output + c_w * weight elements

with non-negative coefficients fitted to minimise the relative error, and predicts a whole graph as
the sum of its kernels plus the session's own per-run cost (a one-op model's time, measured) and the
executor's dispatch of each further kernel (a chain of tiny Relus, measured: ``dispatch_model``), plus
what its weights cost when the graph does not fit in the cache (``kernel_memory.MemoryModel``). The
convolution kinds are split by kernel size and depthwise-ness, where their efficiency differs most.
A dense convolution is priced as the GEMM the CPU runs (``dense_conv_features``): its output pixels
padded to the 16-column panels of the GEMM kernels, and a single output pixel as a matrix-vector
product (on a 2-core EPYC a 160->160 1x1 convolution took as long at a 2x2 output as at 4x4, and a 512->512 one
15.6 us at a 1x1 output against 76 us at 2x2); a depthwise
one pays per channel (groups), MACs, input and output, not per weight (which confounds 5x5 with 7x7).
Unary kernels are priced per operator and elementwise ones apart when an activation is broadcast (SE's channel
scale): cut out of whole models and timed alone, HardSwish took about 3x and Sigmoid 2.5x what one "unary" fit
gave them, and a broadcast Mul 1.2-3x the "eltwise" fit (``Kernel.variant``; an operator the suite does not time
pays its kind's costs, fitted on every sample of the kind). Depthwise 5x5 and 7x7 kernels are variants too: with one
fit for both, the suite's own 5x5 kernels came out mostly 5-20% high and its 7x7 ones 5-40% low.

Whole models timed in the same run (``CALIBRATION_ARCHS`` at ``CALIBRATION_SIZES``) are never fitted on:
their errors give the calibration's band. (Whole-graph correction terms fitted on them -- kernels
dispatched, weight and activation bytes -- halved their own leave-one-out error but doubled the error
on other architectures in ``bench_estimator_structure.py``, so there are none. A single in-graph factor timed on
synthetic inverted-residual blocks -- they ran 1.11-1.13x their kernels' sum -- removed the bias on unseen
architectures but not their scatter, and did not raise the share within +-10%; it is not used either.)
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kdbench.errors import DataError
from kdbench.profile.kernel_memory import MemoryModel, fit_relative
from kdbench.profile.features import FREE_OPS, QUANT_OPS, _numel, inferred_graph, load_graph

KERNEL_FORMAT_VERSION = 3  # 1: every kind on [1, MACs, in, out, weights], no memory model; 2: no variants, no
#                            dispatch term, depthwise kernels without their taps x rows
FUSED_ACTS = frozenset({"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "Tanh"})
UNARY_OPS = frozenset({"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "Tanh", "HardSwish", "Gelu", "Erf",
                       "Exp", "Sqrt", "Neg", "Softmax", "Elu", "Selu", "Softplus", "Mish", "BatchNormalization"})
ELTWISE_OPS = frozenset({"Add", "Mul", "Sub", "Div", "Max", "Min", "Pow", "Where"})
PRICED_UNARY = frozenset({"Relu", "HardSwish", "HardSigmoid", "Sigmoid"})  # the unary ops the suite times one by one
BROADCAST = "broadcast"  # an elementwise kernel one of whose inputs is smaller than its output (SE's channel scale)
POOL_OPS = frozenset({"MaxPool", "AveragePool"})
GPOOL_OPS = frozenset({"GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceMax"})
COPY_OPS = frozenset({"Concat", "Split", "Slice", "Transpose", "Pad", "Resize", "Gather", "Expand", "Tile"})
KINDS = ("conv1x1", "conv3x3", "convkxk", "dwconv3x3", "dwconvkxk", "fc", "pool", "gpool", "eltwise", "unary",
         "copy", "transpose")


@dataclass
class Kernel:
    """One unit of execution: its kind, its work and (for convolutions) its shape."""

    kind: str
    macs: float = 0.0
    in_elems: float = 0.0
    out_elems: float = 0.0
    weight_elems: float = 0.0
    shape: dict[str, int] = field(default_factory=dict)
    name: str = ""
    variant: str = ""  # a unary kernel's operator, BROADCAST, a 5x5 or 7x7 depthwise kernel's size: priced on its
    #                    own where the calibration timed it

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Kernel":
        """Inverse of ``to_dict``."""
        return cls(**d)

    @property
    def key(self) -> str:
        """The kind, and the variant where there is one: the calibration's name for the kernel's coefficients."""
        return f"{self.kind}:{self.variant}" if self.variant else self.kind

    def features(self, version: int = KERNEL_FORMAT_VERSION) -> list[float]:
        """The regressors of the kind's cost: intercept, MACs, input, output and weight elements; from version 2
        a dense convolution's are its GEMM's (``dense_conv_features``), a depthwise one's per channel
        (``depthwise_features``)."""
        if version >= 2 and self.kind in DENSE_CONV_KINDS and self.shape:
            return dense_conv_features(self)
        if version >= 2 and self.kind in DEPTHWISE_KINDS and self.shape:  # a fixed cost per channel, not per weight
            return depthwise_features(self, version)
        return [1.0, self.macs, self.in_elems, self.out_elems, self.weight_elems]


DENSE_CONV_KINDS = frozenset({"conv1x1", "conv3x3", "convkxk"})
DEPTHWISE_KINDS = frozenset({"dwconv3x3", "dwconvkxk"})  # ONNX Runtime runs a 5x5 or 7x7 one channel by channel
GEMM_PANEL = 16  # output columns per GEMM panel (MLAS on x86 AVX2/AVX-512 and ARM64 NEON)
GEMM_STRIDE_N = 128  # columns per pass over the weights


def dense_conv_features(k: Kernel) -> list[float]:
    """A dense (or grouped) convolution as its GEMM, per group ``m`` filters x ``K`` = inputs x k x k over ``n``
    output pixels: intercept, groups, MACs over panel-padded columns, packed input elements, weight passes,
    output elements, and the weights of a matrix-vector product (``n`` = 1)."""
    groups, cout = k.shape["groups"], k.shape["cout"]
    m, depth = cout // groups, k.shape["cin"] // groups * k.shape["k"] ** 2
    n = k.out_elems / max(cout, 1)
    if n <= 1:
        return [1.0, groups, 0.0, groups * depth, 0.0, k.out_elems, groups * m * depth]
    padded = math.ceil(n / GEMM_PANEL) * GEMM_PANEL
    return [1.0, groups, groups * m * depth * padded, groups * depth * padded,
            groups * m * depth * math.ceil(n / GEMM_STRIDE_N), k.out_elems, 0.0]


def depthwise_features(k: Kernel, version: int = KERNEL_FORMAT_VERSION) -> list[float]:
    """A depthwise convolution per channel: intercept, groups, MACs, input, output; from version 3 also its taps x
    output rows (MACs over the output's width: per output row and tap it pays a fixed cost, so a MAC costs 1.1 ns at
    a 4x4 output and 0.17 ns at 112x112, alike for 5x5 and 7x7, on the 2-core EPYC)."""
    base = [1.0, k.shape["groups"], k.macs, k.in_elems, k.out_elems]
    if version < 3:
        return base
    width = math.sqrt(k.out_elems / max(k.shape["cout"], 1))
    return base + [k.macs / max(width, 1.0)]


def conv_kind(k: int, depthwise: bool) -> str:
    """The kind of a convolution with a ``k`` x ``k`` kernel."""
    if depthwise:
        return "dwconv3x3" if k == 3 else "dwconvkxk"
    return "conv1x1" if k == 1 else "conv3x3" if k == 3 else "convkxk"


def _consumers(model: Any) -> dict[str, list[Any]]:
    """value name -> the nodes that read it."""
    out: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            out.setdefault(name, []).append(node)
    return out


def _attr(node: Any, name: str, default: Any) -> Any:
    """An integer or integer-list attribute of a node."""
    for a in node.attribute:
        if a.name == name:
            return list(a.ints) if a.ints else a.i
    return default


def _conv_kernel(node: Any, shapes: dict, inits: dict, label: str) -> Kernel:
    """A Conv node as a kernel (weights from an initializer)."""
    w = inits.get(node.input[1])
    out = shapes.get(node.output[0], (None, 1))[0]
    inp = shapes.get(node.input[0], (None, 1))[0]
    if w is None or _numel(out) is None or _numel(inp) is None:
        raise DataError(f"{label}: cannot size Conv node {node.name!r} (weight or shape unknown)")
    cout, cin_g = w[0], w[1]
    k = w[2] if len(w) > 2 else 1
    group = _attr(node, "group", 1)
    strides = _attr(node, "strides", [1])
    depthwise = group > 1 and cin_g == 1
    macs = float(_numel(out)) * cin_g * math.prod(w[2:])
    shape = {"cin": inp[1], "cout": cout, "hw": inp[2], "k": k, "stride": strides[0], "groups": group}
    kind = conv_kind(k, depthwise)
    return Kernel(kind, macs, float(_numel(inp)), float(_numel(out)), float(math.prod(w)), shape, node.name,
                  f"{k}x{k}" if kind == "dwconvkxk" else "")


def _elems(names: list[str], shapes: dict, inits: dict) -> float:
    """Elements of the activations among ``names`` (initializers and unknown shapes count 0)."""
    total = 0.0
    for n in names:
        if n and n not in inits and n in shapes:
            total += float(_numel(shapes[n][0]) or 0)
    return total


def _kind_of(op: str) -> str | None:
    """The kernel kind of a non-convolution op; None for ops that move no data."""
    if op in FREE_OPS or op in QUANT_OPS:
        return None
    for kind, ops in (("pool", POOL_OPS), ("gpool", GPOOL_OPS), ("eltwise", ELTWISE_OPS), ("unary", UNARY_OPS)):
        if op in ops:
            return kind
    return "transpose" if op == "Transpose" else "copy"


def _variant(kind: str, op: str, inputs: list[float], out: float) -> str:
    """A unary kernel's operator (if the suite times it alone); BROADCAST for an elementwise kernel with an input
    smaller than its output (``inputs``: the activations' sizes; a scale by a constant is not one)."""
    if kind == "unary":
        return op if op in PRICED_UNARY else ""
    if kind == "eltwise" and min(inputs, default=out) < out:
        return BROADCAST
    return ""


def graph_kernels(model_or_path: Any, input_size: int | None = None) -> list[Kernel]:
    """The kernels of an fp32 ONNX graph at batch 1, after the runtime's Conv + activation fusion."""
    model, label = load_graph(model_or_path)
    model, shapes, _ = inferred_graph(model, input_size, label)
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    consumers = _consumers(model)
    fused: set[str] = set()
    kernels: list[Kernel] = []
    for node in model.graph.node:
        op = node.op_type
        if node.name in fused or (node.output and shapes.get(node.output[0], (None, 1))[1] == 7):
            continue  # fused into the conv before it, or int64 shape arithmetic
        if op == "Conv":
            kernels.append(_conv_kernel(node, shapes, inits, label))
            after = consumers.get(node.output[0], [])
            if len(after) == 1 and after[0].op_type in FUSED_ACTS:
                fused.add(after[0].name)
        elif op in ("Gemm", "MatMul") and len(node.input) > 1 and node.input[1] in inits:
            w = inits[node.input[1]]
            out = _elems(node.output[:1], shapes, inits)
            depth = w[1] if op == "Gemm" and _attr(node, "transB", 0) else w[0]
            kernels.append(Kernel("fc", out * depth, _elems(node.input[:1], shapes, inits), out, float(math.prod(w)),
                                  {"cin": depth, "cout": int(math.prod(w) // max(depth, 1))}, node.name))
        else:
            kind = _kind_of(op)
            if kind is not None:
                out = _elems(list(node.output), shapes, inits)
                activations = [_elems([n], shapes, inits) for n in node.input if n not in inits]
                kernels.append(Kernel(kind, 0.0, sum(activations), out, 0.0, {}, node.name,
                                      _variant(kind, op, activations, out)))
    return kernels


# ---------------------------------------------------------------- the micro-benchmark suite

MICRO_OPSET = 18
CHANNELS = (8, 12, 16, 24, 32, 40, 48, 64, 72, 96, 112, 120, 144, 160, 192, 240, 256, 288, 320, 384, 480, 512, 576,
            672, 768, 960, 1024, 1280)
SIZES = (1, 2, 4, 7, 8, 14, 16, 28, 32, 56, 64, 112)  # input heights of the layers of 32-224 px students
MAX_MACS = 2e8
GROUPED_SHARE = 0.35  # of the conv3x3 samples: grouped convolutions (RegNet's, ResNeXt's) of these group widths
GROUP_WIDTHS = (8, 16, 24, 32, 48, 64)
SUITE_PER_KIND = {"conv1x1": 90, "conv3x3": 60, "convkxk": 20, "dwconv3x3": 60, "dwconvkxk": 40, "fc": 20,
                  "pool": 15, "gpool": 20, "eltwise": 40, "unary": 40, "copy": 40, "transpose": 20}


def _value(name: str, dims: list[int]) -> Any:
    """A float tensor's ValueInfo."""
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)


def _weight(name: str, dims: list[int], rng: random.Random) -> Any:
    """A float initializer of small random values."""
    import numpy as np
    from onnx import numpy_helper

    values = np.random.default_rng(rng.randrange(2**32)).uniform(-0.1, 0.1, size=dims).astype(np.float32)
    return numpy_helper.from_array(values, name)


def _graph(name: str, nodes: list, inputs: list, output: Any, inits: list) -> Any:
    """A one-kernel model at the suite's opset."""
    from onnx import helper

    graph = helper.make_graph(nodes, name, inputs, [output], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", MICRO_OPSET)], ir_version=9)


def _conv_model(kind: str, rng: random.Random) -> Any:
    """A convolution (with a fused activation half of the time) at a sampled shape."""
    from onnx import helper

    depthwise = kind.startswith("dw")
    k = 1 if kind == "conv1x1" else 3 if kind.endswith("3x3") else rng.choice((5, 7) if depthwise else (5, 7, 2))
    grouped = kind == "conv3x3" and rng.random() < GROUPED_SHARE
    while True:  # a shape a 32-224 px student has: at most MAX_MACS, first layers excepted
        hw = rng.choice(SIZES)  # padded: a 5x5 or 3x3 kernel runs on the 1x1 and 2x2 maps of a 32 px student too
        stride = rng.choice((1, 1, 2)) if hw > 1 else 1
        cin = rng.choice(CHANNELS)
        cout = cin if depthwise or grouped else rng.choice(CHANNELS)
        group = cin if depthwise else cin // math.gcd(cin, rng.choice(GROUP_WIDTHS)) if grouped else 1
        if (hw // stride) ** 2 * cout * cin // group * k * k <= MAX_MACS:
            break
    pad = k // 2
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[k, k], strides=[stride, stride],
                              pads=[pad] * 4, group=group, name="conv")]
    act = rng.choice((None, "Relu", "Clip", "HardSigmoid"))
    out_hw = (hw + 2 * pad - k) // stride + 1
    if act is None:
        nodes[0].output[0] = "y"
    else:
        nodes.append(helper.make_node(act, ["c"], ["y"], name="act"))
    inits = [_weight("w", [cout, cin // group, k, k], rng), _weight("b", [cout], rng)]
    return _graph(kind, nodes, [_value("x", [1, cin, hw, hw])], _value("y", [1, cout, out_hw, out_hw]), inits)


def _simple_model(kind: str, rng: random.Random) -> Any:
    """A pooling, fully connected, elementwise, unary or data-movement kernel at a sampled shape."""
    from onnx import helper

    c, hw = rng.choice(CHANNELS), rng.choice([s for s in SIZES if s >= 2])
    x = _value("x", [1, c, hw, hw])
    if kind == "fc":
        cout = rng.choice((4, 10) + CHANNELS)
        return _graph(kind, [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1, name="fc")], [_value("x", [1, c])],
                      _value("y", [1, cout]), [_weight("w", [cout, c], rng), _weight("b", [cout], rng)])
    if kind == "pool":
        out = (hw + 2 - 3) // 2 + 1
        return _graph(kind, [helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)],
                      [x], _value("y", [1, c, out, out]), [])
    if kind == "gpool":
        return _graph(kind, [helper.make_node("GlobalAveragePool", ["x"], ["y"])], [x], _value("y", [1, c, 1, 1]), [])
    if kind == "eltwise":
        op = rng.choice(("Add", "Mul"))
        other = [1, c, 1, 1] if op == "Mul" and rng.random() < 0.5 else [1, c, hw, hw]
        return _graph(kind, [helper.make_node(op, ["x", "z"], ["y"])], [x, _value("z", other)], _value("y", [1, c, hw, hw]), [])
    if kind == "unary":
        op = rng.choice(("Relu", "HardSwish", "HardSigmoid", "Sigmoid"))
        return _graph(kind, [helper.make_node(op, ["x"], ["y"])], [x], _value("y", [1, c, hw, hw]), [])
    if kind == "copy":
        c2 = c - c % 2 or 2
        x = _value("x", [1, c2, hw, hw])
        if rng.random() < 0.5:
            return _graph(kind, [helper.make_node("Concat", ["x", "z"], ["y"], axis=1)], [x, _value("z", [1, c2, hw, hw])],
                          _value("y", [1, 2 * c2, hw, hw]), [])
        return _graph(kind, [helper.make_node("Slice", ["x", "s", "e", "a"], ["y"])], [x], _value("y", [1, c2 // 2, hw, hw]),
                      [_int64("s", [0]), _int64("e", [c2 // 2]), _int64("a", [1])])
    return _shuffle_model(c - c % 2 or 2, hw)


def _int64(name: str, values: list[int]) -> Any:
    """An int64 initializer."""
    from onnx import TensorProto, helper

    return helper.make_tensor(name, TensorProto.INT64, [len(values)], values)


def _shuffle_model(c: int, hw: int) -> Any:
    """ShuffleNet's channel shuffle: Reshape to 2 groups, Transpose, Reshape back."""
    from onnx import helper

    nodes = [helper.make_node("Reshape", ["x", "s1"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t", "s2"], ["y"])]
    return _graph("transpose", nodes, [_value("x", [1, c, hw, hw])], _value("y", [1, c, hw, hw]),
                  [_int64("s1", [1, 2, c // 2, hw, hw]), _int64("s2", [1, c, hw, hw])])


DISPATCH_STEM, DISPATCH_NODES = "dispatch__relu_064", 64  # a chain of tiny Relus: the executor's cost per node


def dispatch_model() -> Any:
    """``DISPATCH_NODES`` Relus on a 4x4 map in a chain (the trivial baseline is one of them): what each further
    node of a graph costs the executor, which every kernel's time less the baseline leaves out."""
    from onnx import helper

    nodes = [helper.make_node("Relu", ["x" if i == 0 else f"y{i - 1}"], [f"y{i}"], name=f"relu{i}")
             for i in range(DISPATCH_NODES)]
    return _graph("dispatch", nodes, [_value("x", [1, 1, 4, 4])], _value(f"y{DISPATCH_NODES - 1}", [1, 1, 4, 4]), [])


def micro_models(seed: int = 0, per_kind: dict[str, int] | None = None) -> list[tuple[str, Any]]:
    """The suite: (file stem, one-kernel ONNX model) for every sampled shape of every kind."""
    rng = random.Random(seed)
    out = []
    for kind, n in (per_kind or SUITE_PER_KIND).items():
        for i in range(n):
            model = _conv_model(kind, rng) if kind.startswith(("conv", "dwconv")) else _simple_model(kind, rng)
            out.append((f"{kind}_{i:03d}", model))
    return out


def write_suite(folder: str | Path, seed: int = 0, per_kind: dict[str, int] | None = None) -> list[Path]:
    """Write the suite's models to ``folder``; their paths, in order."""
    import onnx

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, model in micro_models(seed, per_kind):
        path = folder / f"{stem}.onnx"
        onnx.save(model, str(path))
        paths.append(path)
    return paths


# ---------------------------------------------------------------- the per-kind cost model

@dataclass
class KernelModel:
    """Per-kind costs (microseconds) fitted on micro-benchmarks, the per-run cost of a session, and (version 2)
    what weights read from memory add."""

    coefficients: dict[str, list[float]]
    run_us: float
    threads: int
    runtime: str = "onnxruntime"
    precision: str = "fp32"
    format_version: int = KERNEL_FORMAT_VERSION
    memory: MemoryModel | None = None
    node_us: float = 0.0  # (version 3) what each kernel after the first adds: the executor's dispatch

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "KernelModel":
        """Inverse of ``to_dict`` (a version 1 model has no memory model and prices every kind alike)."""
        memory = d.get("memory")
        return cls(**{**d, "format_version": d.get("format_version", 1),
                      "memory": MemoryModel.from_dict(memory) if memory else None})

    @classmethod
    def fit(cls, samples: list[tuple[list[Kernel], float]], run_us: float, threads: int, **kw: Any) -> "KernelModel":
        """Fit from (kernels of a micro model, its measured time in us); the session's run cost is subtracted."""
        by_key: dict[str, list[tuple[list[float], float]]] = {}
        for kernels, us in samples:
            if len(kernels) == 1:
                row = (kernels[0].features(), max(us - run_us, 0.05))
                for key in {kernels[0].kind, kernels[0].key}:  # a variant's rows price its kind too
                    by_key.setdefault(key, []).append(row)
        coefficients = {key: fit_relative(rows) for key, rows in by_key.items()}
        return cls(coefficients, run_us, threads, **kw)

    def kernel_us(self, k: Kernel) -> float:
        """One kernel's predicted time: its variant's costs where the suite timed it, else its kind's; a kind the
        suite did not time costs what a copy of its bytes costs."""
        coef = (self.coefficients.get(k.key) or self.coefficients.get(k.kind) or self.coefficients.get("copy")
                or [0.0] * 5)
        return sum(c * x for c, x in zip(coef, k.features(self.format_version)))

    def predict_ms(self, kernels: list[Kernel]) -> float:
        """A graph's latency: one session run, its kernels and their dispatch, and its weights' reads from memory."""
        memory = self.memory.penalty_us(kernels) if self.memory else 0.0
        dispatch = self.node_us * max(len(kernels) - 1, 0)
        return (self.run_us + sum(self.kernel_us(k) for k in kernels) + dispatch + memory) / 1000.0


# ---------------------------------------------------------------- calibration on a device

CALIBRATION_ARCHS = ("mobilenet_v3_large", "mobilenet_v2", "resnet18", "regnet_x_400mf")
CALIBRATION_SIZES = (32, 64, 112, 224)
WHOLE_PREFIX = "whole__"  # suite files that are whole calibration models, not kernels


@dataclass
class KernelCalibration:
    """A device's kernel costs, and how they predict whole models measured on it but never fitted on."""

    model: KernelModel
    band_pct: float
    validation: list[dict[str, Any]] = field(default_factory=list)
    whole_ms: dict[str, float] = field(default_factory=dict)
    suite: dict[str, Any] = field(default_factory=dict)
    format_version: int = KERNEL_FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON)."""
        return {**asdict(self), "model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "KernelCalibration":
        """Inverse of ``to_dict``."""
        return cls(**{**d, "model": KernelModel.from_dict(d["model"])})

    def predict_ms(self, kernels: list[Kernel]) -> float:
        """A whole graph's latency at batch 1: the sum of its kernels and one session run."""
        return self.model.predict_ms(kernels)


def band_from_errors(errors_pct: list[float]) -> float:
    """+-% (one standard deviation, log scale) from relative errors; 50% when there are none."""
    if not errors_pct:
        return 50.0
    logs = [math.log1p(e / 100.0) ** 2 for e in errors_pct]
    return 100.0 * (math.exp(math.sqrt(sum(logs) / len(logs))) - 1.0)


def calibrate_from_times(us: dict[str, float], suite: dict[str, list[Kernel]], whole: dict[str, list[Kernel]],
                         threads: int) -> KernelCalibration:
    """Fit the kernel costs on the suite's times; the whole calibration models, measured in the same run and not
    fitted on, give the error band."""
    run_us = us.get("trivial", 0.0)
    model = KernelModel.fit([(suite[s], us[s]) for s in suite if s in us], run_us, threads)
    model.memory = MemoryModel.fit(us, run_us)
    if DISPATCH_STEM in us:
        model.node_us = max(us[DISPATCH_STEM] - run_us, 0.0) / (DISPATCH_NODES - 1)
    validation, whole_ms = [], {}
    for name, kernels in sorted(whole.items()):
        if WHOLE_PREFIX + name not in us:
            continue
        ms = whole_ms[name] = us[WHOLE_PREFIX + name] / 1000.0
        predicted = model.predict_ms(kernels)
        validation.append({"model": name, "observed_ms": ms, "predicted_ms": predicted,
                           "error_pct": 100.0 * (predicted / ms - 1.0)})
    band = band_from_errors([e["error_pct"] for e in validation])
    return KernelCalibration(model, band, validation, whole_ms)
