"""Estimated latency for an absent target: a per-kernel-class cost model with calibrated constants.

Model (batch ``b``, ``T`` threads; features from ``features.graph_features``)::

    t = b * (macs_dense + macs_fc) / (P * eff_dense)      dense conv / GEMM at a share of peak
      + b * macs_dw / (P * eff_dw)                        depthwise conv: a far lower share
      + (b * act_bytes + weight_bytes) / bandwidth        activations and weights through DRAM
      + n_ops * op_overhead                               per-layer dispatch and thread sync

``P`` is the theoretical fp32 peak of the target (Raspberry Pi 4: 4 cores x 1.5 GHz x 8 fp32
FMA/cycle = 48 GMAC/s). The four constants are fitted by maximum a posteriori in log space: each
has a prior from the hardware's specifications (``DEFAULT_PRIORS``) and the measured rows pull
them where the data can pin them down. With the three published rows only two or three directions
are constrained (VGG16 pins ``eff_dense`` and bandwidth, the two mobile nets the sum of the
depthwise, memory and overhead terms); the priors hold the rest. This is why a single FLOPs ratio
is not used: VGG16 reaches ~35% of peak, a depthwise net under 10%.

Calibration data: ``shared/reference/rpi4_published.csv`` holds ncnn ``benchncnn`` latencies on a
Raspberry Pi 4 (4 threads, fp32, 224 px). They are a *proxy* for ONNX Runtime / OpenVINO on the
Pi: the runtimes differ in kernels (ncnn uses Winograd for 3x3 convs, ORT's MLAS uses im2col GEMM
and may be slower on depthwise layers), and no ORT-on-Pi measurement was available to measure the
gap. The error band therefore combines the leave-one-out error of the fit with an *assumed*
runtime-proxy uncertainty of 40% (``PROXY_SIGMA_LOG``); calibrating with your own measurements
(``kdbench profile calibrate``) removes the proxy term.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdbench.errors import ConfigError
from kdbench.profile.features import GraphFeatures

PARAMS: tuple[str, ...] = ("eff_dense", "eff_dw", "bw_gbs", "op_overhead_us")
# Priors for a Cortex-A72 class CPU (fp32, all cores): value and log-space standard deviation.
DEFAULT_PRIORS: dict[str, dict[str, Any]] = {
    "eff_dense": {"value": 0.35, "sigma_log": 0.7,
                  "why": "share of NEON peak an optimised GEMM/Winograd conv keeps on 4 A72 cores"},
    "eff_dw": {"value": 0.06, "sigma_log": 0.7,
               "why": "depthwise 3x3: ~1 FMA per loaded value, load/store bound"},
    "bw_gbs": {"value": 4.0, "sigma_log": 0.4,
               "why": "sustained DRAM bandwidth of a Pi 4 (32-bit LPDDR4-3200, ~4 GB/s in STREAM-like tests)"},
    "op_overhead_us": {"value": 20.0, "sigma_log": 1.0,
                       "why": "per-layer dispatch and 4-thread barrier cost"},
}
OBS_SIGMA_LOG = 0.05  # weight of a measured row (log space): rows dominate where they inform
PROXY_SIGMA_LOG = math.log(1.4)  # assumed ncnn -> ONNX Runtime proxy uncertainty (+-40%), not measured
CALIBRATION_DIR = Path(__file__).with_name("calibration")


@dataclass
class Row:
    """One measured latency used for fitting: features at the measured input size, batch 1."""

    name: str
    features: GraphFeatures
    latency_ms: float
    source: str = ""


def predict_ms(constants: dict[str, float], peak_gmacs: float, f: GraphFeatures, batch: int = 1,
               thread_scale: float = 1.0) -> float:
    """Predicted latency (ms) of one query of ``batch`` images."""
    peak = peak_gmacs * 1e9 / thread_scale
    compute = (f.macs_dense + f.macs_fc) / (peak * constants["eff_dense"]) + f.macs_dw / (peak * constants["eff_dw"])
    memory = (batch * f.act_bytes + f.weight_bytes) / (constants["bw_gbs"] * 1e9)
    return 1e3 * (batch * compute + memory) + f.n_ops * constants["op_overhead_us"] / 1e3


def breakdown_ms(constants: dict[str, float], peak_gmacs: float, f: GraphFeatures) -> dict[str, float]:
    """Batch-1 latency split into the model's terms (ms)."""
    peak = peak_gmacs * 1e9
    return {
        "dense": 1e3 * (f.macs_dense + f.macs_fc) / (peak * constants["eff_dense"]),
        "depthwise": 1e3 * f.macs_dw / (peak * constants["eff_dw"]),
        "memory": 1e3 * (f.act_bytes + f.weight_bytes) / (constants["bw_gbs"] * 1e9),
        "overhead": f.n_ops * constants["op_overhead_us"] / 1e3,
    }


def fit_constants(rows: list[Row], peak_gmacs: float, priors: dict[str, dict[str, Any]] | None = None) -> dict[str, float]:
    """MAP fit of the four constants in log space (priors + rows); returns the constants."""
    import numpy as np
    from scipy.optimize import minimize

    priors = priors or DEFAULT_PRIORS
    mu = np.array([math.log(priors[p]["value"]) for p in PARAMS])
    sig = np.array([priors[p]["sigma_log"] for p in PARAMS])
    obs = np.array([math.log(r.latency_ms) for r in rows])

    def loss(theta: np.ndarray) -> float:
        c = dict(zip(PARAMS, np.exp(theta)))
        pred = np.array([math.log(predict_ms(c, peak_gmacs, r.features)) for r in rows])
        return float(np.sum(((pred - obs) / OBS_SIGMA_LOG) ** 2) + np.sum(((theta - mu) / sig) ** 2))

    best = minimize(loss, mu, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 20000})
    best = minimize(loss, best.x, method="BFGS")
    return {p: float(v) for p, v in zip(PARAMS, np.exp(best.x))}


def leave_one_out(rows: list[Row], peak_gmacs: float, priors: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Fit on all rows but one, predict that one; for each row."""
    out = []
    for i, row in enumerate(rows):
        rest = rows[:i] + rows[i + 1:]
        c = fit_constants(rest, peak_gmacs, priors)
        pred = predict_ms(c, peak_gmacs, row.features)
        out.append({
            "model": row.name, "observed_ms": row.latency_ms, "predicted_ms": pred,
            "error_pct": 100.0 * (pred - row.latency_ms) / row.latency_ms, "fitted_on": [r.name for r in rest],
        })
    return out


def error_band_pct(loo: list[dict[str, Any]], proxy: bool) -> float:
    """Expected error (+-%, about one standard deviation): LOO log-RMS combined with the proxy term."""
    if loo:
        rms = math.sqrt(sum(math.log(1 + e["error_pct"] / 100.0) ** 2 for e in loo) / len(loo))
    else:
        rms = DEFAULT_PRIORS["eff_dense"]["sigma_log"]
    total = math.sqrt(rms ** 2 + (PROXY_SIGMA_LOG ** 2 if proxy else 0.0))
    return 100.0 * (math.exp(total) - 1.0)


@dataclass
class Calibration:
    """Fitted constants for one target, with where they came from and how well they predict."""

    target: str
    peak_gmacs: float
    threads: int
    constants: dict[str, float]
    error_band_pct: float
    source: str
    path: str = ""
    data: dict[str, Any] | None = None

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
        for key in ("target", "peak_gmacs", "threads", "constants", "error_band_pct", "source"):
            if key not in d:
                raise ConfigError(f"calibration file {path}: missing key {key!r}")
        for p in PARAMS:
            v = d["constants"].get(p)
            if not isinstance(v, (int, float)) or v <= 0:
                raise ConfigError(f"calibration file {path}: key 'constants.{p}' = {v!r}; expected a positive number")
        return cls(d["target"], float(d["peak_gmacs"]), int(d["threads"]), d["constants"], float(d["error_band_pct"]),
                   d["source"], str(path), d)


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


def estimate_memory_mb(f: GraphFeatures) -> float:
    """Rough model-memory estimate (MB): weights held once plus prepacked copies of conv weights
    and a few live activations. Uncalibrated; labelled as such in the record."""
    return (1.5 * f.weight_bytes + 0.25 * f.act_bytes) / 1e6 + 2.0


def flops_ratio_loo(rows: list[Row]) -> list[dict[str, Any]]:
    """Baseline for comparison: latency proportional to total MACs, leave-one-out."""
    out = []
    for i, row in enumerate(rows):
        rest = rows[:i] + rows[i + 1:]
        k = sum(r.latency_ms for r in rest) / sum(r.features.gmacs for r in rest)
        pred = k * row.features.gmacs
        out.append({"model": row.name, "predicted_ms": pred, "error_pct": 100.0 * (pred - row.latency_ms) / row.latency_ms})
    return out


def estimate_records(entries: list[Any], profile: Any, calibration: Calibration) -> list[dict[str, Any]]:
    """Estimated records (one per model and batch size), each labelled with method and error band."""
    from kdbench.errors import DataError
    from kdbench.profile.results import base_record, check_constraints, failed_record, local_host, runtimes_for

    threads = profile.threads or calibration.threads
    thread_scale = calibration.threads / threads if threads < calibration.threads else 1.0
    out: list[dict[str, Any]] = []
    for entry in entries:
        runtimes = runtimes_for(entry, profile) or list(profile.runtimes)
        runtime = runtimes[0]
        if entry.fmt != "onnx":
            out.append(failed_record(entry, profile, runtime, entry.precision, "estimated",
                                     f"the estimator reads ONNX graphs; {entry.path.name} is {entry.fmt}", local_host()))
            continue
        try:
            from kdbench.profile.features import graph_features

            f = graph_features(entry.path, entry.input_size)
        except DataError as err:
            out.append(failed_record(entry, profile, runtime, entry.precision, "estimated", str(err), local_host()))
            continue
        notes = []
        if entry.precision != "fp32":
            notes.append(f"precision {entry.precision} is outside the fp32 calibration: compute rates assumed as fp32")
        if thread_scale != 1.0:
            notes.append(f"{threads} threads: compute scaled from the {calibration.threads}-thread calibration")
        for batch in profile.batch_sizes:
            ms = predict_ms(calibration.constants, calibration.peak_gmacs, f, batch, thread_scale)
            rec = base_record(entry, profile, runtime, entry.precision, "estimated")
            rec.update({
                "batch": batch,
                "threads": threads,
                "input_size": f.input_size,
                "host": {**local_host(), "note": "estimated on this host for the absent target"},
                "latency_ms": {"p50": ms, "p90": ms, "p99": ms, "mean": ms},
                "latency_kind": "point estimate of the mean; percentiles not modelled",
                "fps": 1000.0 / ms if batch == 1 else None,
                "throughput": 1000.0 * batch / ms,
                "rss_increment_mb": estimate_memory_mb(f),
                "memory_note": "rough, uncalibrated estimate (weights + prepacked copies + live activations)",
                "error_band": {"pct": round(calibration.error_band_pct, 1), "kind": "+-, about one standard deviation",
                               "applies_to": "latency_ms, fps, throughput"},
                "calibration": {"source": calibration.source, "file": calibration.path,
                                "constants": calibration.constants, "peak_gmacs": calibration.peak_gmacs},
                "breakdown_ms": breakdown_ms(calibration.constants, calibration.peak_gmacs, f) if batch == 1 else None,
                "features": f.to_dict(),
                "notes": notes,
            })
            cons = check_constraints(rec, profile)
            if cons is not None:
                rec["constraints"] = cons
            out.append(rec)
    return out
