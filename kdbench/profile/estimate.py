"""Estimated latency and model memory for an absent target: a per-kernel-class cost model.

Latency of one query (batch ``b``, ``T`` threads, precision ``p``; features from ``features.py``)::

    compute = b * [(macs_dense + macs_fc) / (P1 * eff_dense_p) + macs_dw / (P1 * eff_dw_p)] / S(T, parallel)
    memory  = (b * act_bytes * a_p + weight_bytes * w_p) / (bw1_gbs * S(T, parallel_mem))
    t       = compute + memory + n_ops * (op_us + sync_us * [T > 1])

``P1`` is one core's fp32 peak (Raspberry Pi 4: 1.5 GHz x 8 FMA/cycle = 12 GMAC/s) and
``S(T, f) = 1 / ((1 - f) + f / T)`` is Amdahl's speed-up: the 1- and 4-thread reference rows fit the
parallel fractions of compute and of memory traffic (published Pi 4 figures scale 1.3x-2.1x from
1 to 4 threads, far from 4x). fp32 and int8 have their own compute rates (``eff_*_fp32`` /
``eff_*_int8``), fitted on their own rows: an int8 model is priced with the int8 rates and 1-byte
weights, never as extra fp32 work. int8 activation traffic is taken as half of fp32's
(``INT8_ACT_FACTOR``: requantised int8 between most layers, dequantised around the rest); fp16
models are priced at fp32 rates (labelled in the record).

The constants are fitted by maximum a posteriori in log space (priors from the hardware's
specifications; the rows pull the constants where they can pin them down). The calibration keeps
the leave-one-architecture-out (LOAO) table: every row of one architecture held out at once, the
constants refitted on the others, its rows predicted -- the median error and the share within
+-10% / +-25%, per precision, the metrics nn-Meter and LitePred publish.

Error band: the LOAO log-RMS of the precision, combined with an *assumed* +-40% for the runtime
proxy (ncnn rows standing in for ONNX Runtime / OpenVINO; ``PROXY_SIGMA_LOG``, not measured).

Kernel level: a calibration measured on the device (``kdbench profile calibrate --kernels``, see
``kernels.py``) carries a ``kernels`` section; fp32 ONNX graphs at batch 1 for its runtime are then priced
as the sum of their kernels plus the fitted whole-graph terms, with that calibration's own band, and the
record says which method priced it (``calibration.method``).

Model memory (the one definition, as measured by the agent: peak RSS increment over the same runtime
running a trivial one-op model) is estimated per runtime as ``k_w * param_bytes + k_a *
peak_act_bytes + c`` with coefficients fitted on measurements (calibration ``memory`` section).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kdbench.errors import ConfigError
from kdbench.profile.features import GraphFeatures
from kdbench.profile.kernels import KernelCalibration, graph_kernels

PARAMS: tuple[str, ...] = ("eff_dense_fp32", "eff_dw_fp32", "eff_dense_int8", "eff_dw_int8", "parallel",
                           "bw1_gbs", "parallel_mem", "op_us", "sync_us")
FRACTIONS = ("parallel", "parallel_mem")  # in (0, 1): fitted through a logit
# Priors for a Cortex-A72 class core: value and log-space standard deviation (logit space for fractions).
DEFAULT_PRIORS: dict[str, dict[str, Any]] = {
    "eff_dense_fp32": {"value": 0.5, "sigma_log": 1.0, "why": "share of one core's NEON peak a tuned GEMM/Winograd conv keeps"},
    "eff_dw_fp32": {"value": 0.1, "sigma_log": 1.0, "why": "depthwise 3x3: ~1 FMA per loaded value, load/store bound"},
    "eff_dense_int8": {"value": 1.0, "sigma_log": 1.0, "why": "int8 dot products: ~2x the fp32 MAC rate at best"},
    "eff_dw_int8": {"value": 0.1, "sigma_log": 1.0, "why": "depthwise int8: as bound by loads as fp32"},
    "parallel": {"value": 0.8, "sigma_log": 1.0, "why": "Amdahl parallel fraction of compute"},
    "bw1_gbs": {"value": 2.0, "sigma_log": 0.7, "why": "one core's sustained DRAM bandwidth on a Pi 4"},
    "parallel_mem": {"value": 0.5, "sigma_log": 1.0, "why": "Amdahl parallel fraction of memory traffic"},
    "op_us": {"value": 20.0, "sigma_log": 1.0, "why": "per-layer dispatch cost"},
    "sync_us": {"value": 20.0, "sigma_log": 1.5, "why": "per-layer thread barrier cost with more than one thread"},
}
INT8_ACT_FACTOR = 0.5
OBS_SIGMA_LOG = 0.1  # weight of a measured row (log space)
PROXY_SIGMA_LOG = math.log(1.4)  # assumed ncnn -> ONNX Runtime/OpenVINO proxy uncertainty (+-40%), not measured
CALIBRATION_DIR = Path(__file__).with_name("calibration")
REFERENCE_CSV = CALIBRATION_DIR / "rpi4_published.csv"


@dataclass
class Row:
    """One measured latency used for fitting: features at the measured input size, batch 1."""

    name: str
    features: GraphFeatures
    latency_ms: float
    threads: int = 4
    precision: str = "fp32"
    arch: str = ""
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON)."""
        return {"name": self.name, "arch": self.arch or self.name, "threads": self.threads, "precision": self.precision,
                "latency_ms": self.latency_ms, "source": self.source, "features": self.features.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Row":
        """Inverse of ``to_dict``."""
        return cls(d["name"], GraphFeatures.from_dict(d["features"]), float(d["latency_ms"]), int(d["threads"]),
                   d["precision"], d.get("arch", ""), d.get("source", ""))


def _speedup(threads: Any, frac: Any) -> Any:
    """Amdahl's speed-up of ``threads`` for a parallel fraction ``frac`` (numpy-friendly)."""
    return 1.0 / ((1.0 - frac) + frac / threads)


def _matrix(feats: list[GraphFeatures], threads: list[int], precisions: list[str], batch: int = 1) -> dict[str, Any]:
    """Feature columns as numpy arrays for the vectorised predictor."""
    import numpy as np

    def col(key: str) -> Any:
        return np.array([float(getattr(f, key)) for f in feats])

    int8 = np.array([p == "int8" for p in precisions])
    return {"dense": batch * (col("macs_dense") + col("macs_fc")), "dw": batch * col("macs_dw"),
            "act": batch * col("act_bytes") * np.where(int8, INT8_ACT_FACTOR, 1.0),
            "wbytes": col("weight_bytes"), "n_ops": col("n_ops"), "threads": np.array(threads, float), "int8": int8}


def _predict_matrix(c: dict[str, float], core_gmacs: float, m: dict[str, Any]) -> Any:
    """Latency (ms) for every row of a feature matrix."""
    import numpy as np

    peak = core_gmacs * 1e9
    eff_d = np.where(m["int8"], c["eff_dense_int8"], c["eff_dense_fp32"])
    eff_w = np.where(m["int8"], c["eff_dw_int8"], c["eff_dw_fp32"])
    compute = (m["dense"] / (peak * eff_d) + m["dw"] / (peak * eff_w)) / _speedup(m["threads"], c["parallel"])
    memory = (m["act"] + m["wbytes"]) / (c["bw1_gbs"] * 1e9 * _speedup(m["threads"], c["parallel_mem"]))
    overhead = m["n_ops"] * (c["op_us"] + c["sync_us"] * (m["threads"] > 1)) * 1e-6
    return 1e3 * (compute + memory + overhead)


def predict_ms(constants: dict[str, float], core_gmacs: float, f: GraphFeatures, batch: int = 1, threads: int = 4,
               precision: str | None = None) -> float:
    """Predicted latency (ms) of one query of ``batch`` images (precision defaults to the graph's)."""
    prec = precision or f.precision
    return float(_predict_matrix(constants, core_gmacs, _matrix([f], [threads], [prec], batch))[0])


def breakdown_ms(constants: dict[str, float], core_gmacs: float, f: GraphFeatures, threads: int,
                 precision: str) -> dict[str, float]:
    """Batch-1 latency split into compute, memory and per-op overhead (ms)."""
    c = constants
    int8 = precision == "int8"
    peak = core_gmacs * 1e9
    compute = ((f.macs_dense + f.macs_fc) / (peak * c["eff_dense_int8" if int8 else "eff_dense_fp32"])
               + f.macs_dw / (peak * c["eff_dw_int8" if int8 else "eff_dw_fp32"])) / _speedup(threads, c["parallel"])
    act = f.act_bytes * (INT8_ACT_FACTOR if int8 else 1.0)
    return {"compute": 1e3 * compute,
            "memory": 1e3 * (act + f.weight_bytes) / (c["bw1_gbs"] * 1e9 * _speedup(threads, c["parallel_mem"])),
            "overhead": f.n_ops * (c["op_us"] + c["sync_us"] * (threads > 1)) / 1e3}


def _to_theta(constants: dict[str, float]) -> list[float]:
    """Constants to the unconstrained fitting space (log; logit for fractions)."""
    return [math.log(v / (1 - v)) if p in FRACTIONS else math.log(v) for p, v in ((p, constants[p]) for p in PARAMS)]


def _from_theta(theta: Any) -> dict[str, float]:
    """Inverse of ``_to_theta``."""
    return {p: float(1 / (1 + math.exp(-t)) if p in FRACTIONS else math.exp(t)) for p, t in zip(PARAMS, theta)}


def fit_constants(rows: list[Row], core_gmacs: float, priors: dict[str, dict[str, Any]] | None = None) -> dict[str, float]:
    """MAP fit of the constants (priors + rows, log space); returns the constants."""
    import numpy as np
    from scipy.optimize import minimize

    priors = priors or DEFAULT_PRIORS
    mu = np.array(_to_theta({p: priors[p]["value"] for p in PARAMS}))
    sig = np.array([priors[p]["sigma_log"] for p in PARAMS])
    m = _matrix([r.features for r in rows], [r.threads for r in rows], [r.precision for r in rows])
    obs = np.log([r.latency_ms for r in rows])

    def loss(theta: Any) -> float:
        pred = np.log(_predict_matrix(_from_theta(theta), core_gmacs, m))
        return float(np.sum(((pred - obs) / OBS_SIGMA_LOG) ** 2) + np.sum(((theta - mu) / sig) ** 2))

    best = mu
    for _ in range(2):
        best = minimize(loss, best, method="Nelder-Mead", options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 40000}).x
    return _from_theta(best)


def leave_one_architecture_out(rows: list[Row], core_gmacs: float,
                               priors: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """For each architecture: fit on the other architectures' rows, predict all of its rows."""
    out = []
    for arch in dict.fromkeys(r.arch or r.name for r in rows):
        held = [r for r in rows if (r.arch or r.name) == arch]
        c = fit_constants([r for r in rows if (r.arch or r.name) != arch], core_gmacs, priors)
        for r in held:
            pred = predict_ms(c, core_gmacs, r.features, 1, r.threads, r.precision)
            out.append({"model": r.name, "arch": arch, "threads": r.threads, "precision": r.precision,
                        "observed_ms": r.latency_ms, "predicted_ms": pred,
                        "error_pct": 100.0 * (pred - r.latency_ms) / r.latency_ms})
    return out


def error_summary(loo: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per precision: n, median |error| %, share within +-10% and +-25% (percent), log-RMS band %."""
    out: dict[str, dict[str, float]] = {}
    for prec in sorted({e["precision"] for e in loo}):
        errs = sorted(abs(e["error_pct"]) for e in loo if e["precision"] == prec)
        n = len(errs)
        median = errs[n // 2] if n % 2 else (errs[n // 2 - 1] + errs[n // 2]) / 2
        rms = math.sqrt(sum(math.log(1 + e["error_pct"] / 100.0) ** 2 for e in loo if e["precision"] == prec) / n)
        out[prec] = {"n": n, "median_abs_pct": median, "within_10_pct": 100.0 * sum(e <= 10 for e in errs) / n,
                     "within_25_pct": 100.0 * sum(e <= 25 for e in errs) / n, "log_rms_pct": 100 * (math.exp(rms) - 1)}
    return out


def error_band_pct(log_rms_pct: float, proxy: bool) -> float:
    """Expected error (+-%, about one standard deviation): LOAO log-RMS combined with the proxy term."""
    rms = math.log(1 + log_rms_pct / 100.0)
    return 100.0 * (math.exp(math.sqrt(rms ** 2 + (PROXY_SIGMA_LOG ** 2 if proxy else 0.0))) - 1.0)


@dataclass
class MemoryModel:
    """Model memory (MB) of one runtime: ``k_w * param_bytes + k_a * batch * peak_act_bytes + c``."""

    k_w: float = 1.0
    k_a: float = 1.0
    c_mb: float = 1.0
    band_pct: float = 50.0
    source: str = "prior: weights once, the live activations, 1 MB of session state (not fitted)"

    def predict_mb(self, f: GraphFeatures, batch: int = 1) -> float:
        """Estimated model memory in MB."""
        return (self.k_w * f.param_bytes + self.k_a * batch * f.peak_act_bytes) / 1e6 + self.c_mb

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MemoryModel":
        """Inverse of ``to_dict``."""
        return cls(**d)


@dataclass
class Calibration:
    """Fitted constants for one target, with where they came from and how well they predict."""

    target: str
    core_gmacs: float
    threads: int
    constants: dict[str, float]
    error_band_pct: dict[str, float]
    source: str
    memory: dict[str, MemoryModel] = field(default_factory=dict)
    path: str = ""
    data: dict[str, Any] | None = None
    kernels: KernelCalibration | None = None

    def kernel_model_for(self, entry: Any, runtime: str, precision: str, batch: int) -> KernelCalibration | None:
        """The kernel-level model where it applies (measured on the device for this runtime: fp32 ONNX at batch 1)."""
        k = self.kernels
        if k is None or batch != 1 or precision != "fp32" or getattr(entry, "fmt", "") != "onnx":
            return None
        return k if runtime == k.model.runtime else None

    def band_for(self, precision: str) -> float:
        """The error band (+-%) for a precision (fp16 and others: the fp32 band)."""
        return self.error_band_pct.get(precision, self.error_band_pct.get("fp32", 50.0))

    def memory_for(self, runtime: str) -> MemoryModel:
        """The memory model of a runtime (family name: 'openvino-bf16' uses 'openvino'), else the prior."""
        base = runtime.split("-")[0]
        return self.memory.get(runtime) or self.memory.get(base) or MemoryModel()

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        """Read a calibration JSON (ConfigError naming the missing key)."""
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"calibration file {path}: not found") from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"calibration file {path}: not valid JSON: {err}") from None
        for key in ("target", "core_gmacs", "threads", "constants", "error_band_pct", "source"):
            if key not in d:
                raise ConfigError(f"calibration file {path}: missing key {key!r}")
        for p in PARAMS:
            v = d["constants"].get(p)
            if not isinstance(v, (int, float)) or v <= 0:
                raise ConfigError(f"calibration file {path}: key 'constants.{p}' = {v!r}; expected a positive number")
        band = d["error_band_pct"]
        if not isinstance(band, dict) or "fp32" not in band:
            raise ConfigError(f"calibration file {path}: key 'error_band_pct' = {band!r}; expected {{'fp32': %, ...}}")
        memory = {rt: MemoryModel.from_dict(m) for rt, m in (d.get("memory") or {}).items()}
        try:
            kernels = KernelCalibration.from_dict(d["kernels"]) if d.get("kernels") else None
        except (KeyError, TypeError) as err:
            raise ConfigError(f"calibration file {path}: key 'kernels' is not a kernel calibration ({err})") from None
        return cls(d["target"], float(d["core_gmacs"]), int(d["threads"]), d["constants"], band, d["source"], memory,
                   str(path), d, kernels)


def find_calibration(name_or_path: str, out_dir: str | Path | None = None) -> Calibration:
    """A calibration by path, else the user's fitted ``<out>/calibration/<name>.json``, else the shipped one."""
    p = Path(name_or_path)
    if p.suffix == ".json" or "/" in name_or_path:
        return Calibration.load(p)
    if out_dir is not None:
        user = Path(out_dir) / "calibration" / f"{name_or_path}.json"
        if user.is_file():
            return Calibration.load(user)
    shipped = CALIBRATION_DIR / f"{name_or_path}.json"
    if not shipped.is_file():
        raise ConfigError(
            f"no calibration {name_or_path!r}: expected {shipped} or a path; "
            f"run `kdbench profile calibrate --target {name_or_path} ...` first"
        )
    return Calibration.load(shipped)


def flops_ratio_loao(rows: list[Row]) -> list[dict[str, Any]]:
    """Baseline for comparison: latency proportional to total MACs (per threads and precision), LOAO."""
    out = []
    for r in rows:
        rest = [o for o in rows if (o.arch or o.name) != (r.arch or r.name) and o.threads == r.threads
                and o.precision == r.precision]
        if not rest:
            continue
        k = sum(o.latency_ms for o in rest) / sum(o.features.gmacs for o in rest)
        pred = k * r.features.gmacs
        out.append({"model": r.name, "threads": r.threads, "precision": r.precision, "predicted_ms": pred,
                    "error_pct": 100.0 * (pred - r.latency_ms) / r.latency_ms})
    return out


def model_features(entry: Any) -> GraphFeatures:
    """Graph features of a model file: ONNX read with onnx, OpenVINO IR with OpenVINO (DataError otherwise)."""
    from kdbench.errors import DataError
    from kdbench.profile.features import graph_features, ir_features

    if entry.fmt == "onnx":
        return graph_features(entry.path, entry.input_size)
    if entry.fmt == "openvino":
        return ir_features(entry.path, entry.input_size)
    raise DataError(f"{entry.path}: the estimator reads ONNX and OpenVINO IR graphs, not {entry.fmt}")


def estimate_record(entry: Any, profile: Any, calibration: Calibration, runtime: str, f: GraphFeatures,
                    batch: int, threads: int) -> dict[str, Any]:
    """One estimated record: latency and model memory with their bands, verdict from the shared evaluator."""
    from kdbench.profile.results import base_record, check_constraints, local_host

    prec = f.precision
    kernel_model = calibration.kernel_model_for(entry, runtime, prec, batch)
    if kernel_model is not None:
        ms, band = kernel_model.predict_ms(graph_kernels(entry.path, entry.input_size)), kernel_model.band_pct
    else:
        ms = predict_ms(calibration.constants, calibration.core_gmacs, f, batch, threads, prec)
        band = calibration.band_for(prec)
    mem = calibration.memory_for(runtime)
    rec = base_record(entry, profile, runtime, entry.precision, "estimated")
    rec.batch, rec.threads, rec.input_size, rec.inference_precision = batch, threads, f.input_size, prec
    rec.host = {**local_host(), "note": "estimated on this host for the absent target"}
    rec.latency_ms = {"p50": ms, "p90": ms, "p99": ms, "mean": ms}
    rec.throughput = 1000.0 * batch / ms
    if batch == 1:
        rec.fps, rec.fps_low, rec.fps_high = 1000.0 / ms, 1000.0 / (ms * (1 + band / 100)), 1000.0 * (1 + band / 100) / ms
    rec.model_memory_mb = mem.predict_mb(f, batch)
    rec.model_memory_mb_low = rec.model_memory_mb / (1 + mem.band_pct / 100)
    rec.model_memory_mb_high = rec.model_memory_mb * (1 + mem.band_pct / 100)
    rec.error_band = {"pct": round(band, 1), "kind": "+-, about one standard deviation (log scale)",
                      "applies_to": "latency_ms, fps, throughput", "memory_pct": mem.band_pct}
    rec.calibration = {"source": calibration.source, "file": calibration.path, "constants": calibration.constants,
                       "core_gmacs": calibration.core_gmacs, "memory": mem.to_dict(),
                       "method": "kernel-level (measured micro-benchmarks)" if kernel_model else "per-class constants"}
    rec.breakdown_ms = breakdown_ms(calibration.constants, calibration.core_gmacs, f, threads, prec) if batch == 1 else None
    rec.features = f.to_dict()
    if prec == "fp16":
        rec.notes.append("fp16 graph priced at the fp32 rates (no fp16 reference rows)")
    if entry.precision != prec:
        rec.notes.append(f"file named {entry.precision} but its graph is {prec}; priced as {prec}")
    rec.constraints = check_constraints(rec, profile)
    return rec.to_dict()


def estimate_records(entries: list[Any], profile: Any, calibration: Calibration) -> list[dict[str, Any]]:
    """Estimated records (one per model, runtime and batch size), each labelled with method and error band."""
    from kdbench.errors import DataError
    from kdbench.profile.results import failed_record, local_host, runtimes_for

    threads = profile.threads or calibration.threads
    out: list[dict[str, Any]] = []
    for entry in entries:
        runtimes = runtimes_for(entry, profile) or list(profile.runtimes)
        try:
            f = model_features(entry)
        except DataError as err:
            out += [failed_record(entry, profile, rt, entry.precision, "estimated", str(err), local_host()) for rt in runtimes]
            continue
        for runtime in runtimes:
            out += [estimate_record(entry, profile, calibration, runtime, f, b, threads) for b in profile.batch_sizes]
    return out
