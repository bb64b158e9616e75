"""What a kernel costs more inside a whole model than alone: its weights come from memory instead of the cache.

A micro-benchmark runs one kernel over and over, so its weights stay in the cache. Inside a whole model
whose weights and activations do not fit in the cache, every weight-bearing kernel reads its weights from
memory on every run: on a 2-core EPYC VM a 960->1280 1x1 convolution of ghostnet took 63 us alone and
299 us inside the model (per-node profiles of the whole model and of the node cut out alone). Both effects
are measured on the device by chains of 1x1 convolutions with distinct weights (``memory_models``):

* the **working-set curve**: per-layer time of chains of 256 KiB layers whose weights total 1-48 MiB,
  made rising by pooling adjacent violators and read, from its pooled first point ("all in cache", 0) to its
  pooled last ("all from memory", 1), as the cold fraction of a working set of that size;
* the **cold cost**: per-layer time of chains of 64 KiB - 4 MiB layers, totalling about 2 MiB (warm)
  and 32 MiB (cold), and of the curve's own (pooled) ends; the difference, fitted as ``c0 + c1 * weight bytes``.

A graph's working set is its weights plus the activations its kernels read and write (fp32 bytes); its
penalty is ``cold fraction(working set) * sum(c0 + c1 * weight bytes)`` over its weight-bearing kernels
(depthwise ones excepted: their few weights stay in the cache). Nothing is fitted on whole models.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

MIB = 1 << 20
PREFIX = "memory__"  # suite files that are memory chains, not kernels
CURVE_LAYER_KIB = 256
CURVE_MIB = (1, 4, 8, 12, 16, 24, 32, 48)
COLD_LAYER_KIB = (64, 1024, 4096)
WARM_TOTAL_MIB, COLD_TOTAL_MIB = 2, 32
SPATIAL = 2  # 2x2 activations: the layers are weight-bound, as the late layers of a small student are


def _chain(name: str, layer_kib: int, layers: int) -> Any:
    """``layers`` 1x1 convolutions in a chain, each with its own ``layer_kib`` KiB of weights. The weights repeat a
    short pattern, distinct per layer (the suite's archive compresses them; the cache sees distinct bytes)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    c = int(math.isqrt(layer_kib * 1024 // 4))
    nodes, inits, cur = [], [], "x"
    for i in range(layers):
        pattern = np.random.default_rng(i).uniform(-0.05, 0.05, 257).astype(np.float32)
        inits.append(numpy_helper.from_array(np.resize(pattern, (c, c, 1, 1)), f"w{i}"))
        nodes.append(helper.make_node("Conv", [cur, f"w{i}"], [f"y{i}"], kernel_shape=[1, 1], name=f"conv{i}"))
        cur = f"y{i}"
    dims = [1, c, SPATIAL, SPATIAL]
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info(cur, TensorProto.FLOAT, dims)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def memory_plan() -> dict[str, tuple[int, int]]:
    """file stem -> (layer KiB, layers) of every chain: the curve, and a warm and a cold chain per layer size."""
    plan = {f"{PREFIX}ws_{mib:03d}": (CURVE_LAYER_KIB, mib * 1024 // CURVE_LAYER_KIB) for mib in CURVE_MIB}
    for kib in COLD_LAYER_KIB:
        plan[f"{PREFIX}warm_{kib:05d}"] = (kib, max(1, WARM_TOTAL_MIB * 1024 // kib))
        plan[f"{PREFIX}cold_{kib:05d}"] = (kib, max(2, COLD_TOTAL_MIB * 1024 // kib))
    return plan


def memory_models() -> list[tuple[str, Any]]:
    """(file stem, chain model) for ``memory_plan``."""
    return [(stem, _chain(stem, kib, n)) for stem, (kib, n) in memory_plan().items()]


@dataclass
class MemoryModel:
    """The device's working-set curve (MiB -> cold fraction) and the cold cost of a kernel's weights."""

    curve: list[list[float]]
    cold_us: list[float]  # [per weight-bearing kernel, per weight byte]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MemoryModel":
        """Inverse of ``to_dict``."""
        return cls(**d)

    @classmethod
    def fit(cls, us: dict[str, float], run_us: float) -> "MemoryModel | None":
        """From the chains' times (microseconds per run); None when the suite had no chains."""
        plan = memory_plan()
        per_layer = {s: (us[s] - run_us) / n for s, (_, n) in plan.items() if s in us}
        curve_stems = [s for s in plan if s.startswith(PREFIX + "ws_") and s in per_layer]
        if len(curve_stems) < 2:
            return None
        pooled = _rising([per_layer[s] for s in curve_stems])
        warm, cold = pooled[0], pooled[-1]  # the pooled ends: the curve runs from 0 to 1
        fractions = [(t - warm) / (cold - warm) if cold > warm else 0.0 for t in pooled]
        curve = [[plan[s][0] * plan[s][1] / 1024, round(f, 4)] for s, f in zip(curve_stems, fractions)]
        points = [(CURVE_LAYER_KIB * 1024, cold - warm)]
        for kib in COLD_LAYER_KIB:
            w, c = per_layer.get(f"{PREFIX}warm_{kib:05d}"), per_layer.get(f"{PREFIX}cold_{kib:05d}")
            if w is not None and c is not None:
                points.append((kib * 1024, c - w))
        return cls(curve, _fit_line(points))

    def describe(self) -> str:
        """One line for a person: the curve and the cold cost."""
        curve = ", ".join(f"{mib:g} MiB {frac:.2f}" for mib, frac in self.curve)
        return (f"cold fraction by working set: {curve}; a cold weight-bearing kernel pays {self.cold_us[0]:.1f} us + its "
                f"weights at {1e-3 / max(self.cold_us[1], 1e-12):.1f} GB/s")

    def cold_fraction(self, working_set_mib: float) -> float:
        """The share of weight reads that miss the cache for a graph of this working set (log-interpolated)."""
        pts = self.curve
        if working_set_mib <= pts[0][0]:
            return pts[0][1]
        for (s0, f0), (s1, f1) in zip(pts, pts[1:]):
            if working_set_mib <= s1:
                return f0 + (f1 - f0) * math.log(working_set_mib / s0) / math.log(s1 / s0)
        return pts[-1][1]

    def penalty_us(self, kernels: list[Any]) -> float:
        """A graph's extra time for its weights read from memory."""
        weights = sum(k.weight_elems for k in kernels) * 4
        activations = sum(k.in_elems + k.out_elems for k in kernels) * 4
        bearing = [k.weight_elems * 4 for k in kernels if k.weight_elems > 0 and not k.kind.startswith("dw")]
        c0, c1 = self.cold_us
        return self.cold_fraction((weights + activations) / MIB) * sum(c0 + c1 * b for b in bearing)


def _rising(values: list[float]) -> list[float]:
    """The closest non-decreasing sequence (least squares, pool-adjacent-violators): a noisy point pulls its
    neighbours a little instead of lifting (a running maximum) or sinking the rest of the curve."""
    blocks: list[list[float]] = []  # [mean, count]
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (m1, n1), (m2, n2) = blocks.pop(-2), blocks.pop()
            blocks.append([(m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2])
    return [m for m, n in blocks for _ in range(int(n))]


def _fit_line(points: list[tuple[float, float]]) -> list[float]:
    """Non-negative ``c0 + c1 * bytes`` through (bytes, extra us) points, minimising the relative error."""
    good = [(b, y) for b, y in points if y > 0]
    return fit_relative([([1.0, b], y) for b, y in good]) if good else [0.0, 0.0]


def fit_relative(rows: list[tuple[list[float], float]]) -> list[float]:
    """Non-negative coefficients minimising the relative error of ``features . c`` against times (> 0)."""
    import numpy as np
    from scipy.optimize import nnls

    a = np.array([f for f, _ in rows], dtype=float)
    t = np.array([y for _, y in rows], dtype=float)
    scale = a.max(axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls((a / scale) / t[:, None], np.ones(len(t)))
    return [float(c) for c in coef / scale]
