"""The profile record: ``ProfileRecord`` (one per variant x runtime x precision x batch; measured and estimated
figures alike; ``to_dict`` is the results.json form, field list in docs/ARCHITECTURE.md), its upgrade from older
files, and its assembly from the agent's runs.

Memory has one definition everywhere: ``model_memory_mb`` is the peak RSS increment over the same runtime running a
trivial one-op model (measured by the agent, or estimated from the graph); ``process_peak_rss_mb`` is the whole
process's peak. Measured records are the median over ``runs`` processes (``p50_runs_ms``, ``p50_spread_pct``), each
fresh or forked from a fork server (``process``); ``stable`` is False when any run missed its confidence target or the
runs' p50 spread exceeds ``MAX_SPREAD_PCT``.
"""

from __future__ import annotations

import platform
import socket
import statistics
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from kdbench.errors import DataError
from kdbench.profile.constraints import evaluate_constraints
from kdbench.profile.entries import ModelEntry
from kdbench.profile.hardware import HardwareProfile

RECORD_VERSION = 2  # 1 (no format_version): before the one memory definition; read through LEGACY_KEYS
LEGACY_KEYS = {"rss_increment_mb": "model_memory_mb", "peak_rss_mb": "process_peak_rss_mb",
               "baseline_rss_mb": "runtime_baseline_rss_mb"}  # version 1's names of today's fields
LEGACY_MEMORY_DEFINITION = ("model_memory_mb (version 1's rss_increment_mb): peak RSS increment over the process after "
                            "importing the runtime, before loading the model (no trivial-model baseline); "
                            "process_peak_rss_mb: the process's peak RSS")
MAX_SPREAD_PCT = 10.0  # runs whose p50s differ by more than this (max - min, % of median) are unstable
MEMORY_DEFINITION = ("model_memory_mb: peak RSS increment over the same runtime running a trivial one-op model "
                     "(weights, activation arena, session); process_peak_rss_mb: the process's peak RSS")
FORK_SERVER_MEMORY_NOTE = ("; runs forked from a fork server that had imported the runtime: model_memory_mb is the "
                           "same increment (over the child's RSS after the one-op model), but process_peak_rss_mb and "
                           "runtime_baseline_rss_mb count only pages the child mapped (runtime library pages only the "
                           "server touched are shared and not counted: some 10-15 MB below a fresh process)")


@dataclass
class ProfileRecord:
    """One measured or estimated result (results.json row)."""

    variant_id: str
    file: str
    target: str
    runtime: str
    method: str  # local | remote | estimated
    precision: str = "fp32"
    batch: int = 1
    threads: int = 0
    input_size: int | None = None
    measured: bool = True
    status: str = "ok"
    error: str | None = None
    runtime_version: str | None = None
    device: str | None = None
    inference_precision: str | None = None  # what ran (OpenVINO: read back from the compiled model)
    host: dict[str, Any] | None = None
    conditions: list[dict[str, Any]] = field(default_factory=list)  # per run: before/after load, MHz, temp
    input_source: str | None = None
    latency_ms: dict[str, float] | None = None
    runs: int = 0
    p50_runs_ms: list[float] = field(default_factory=list)
    p50_spread_pct: float | None = None
    stable: bool | None = None
    n_queries: int | None = None
    fps: float | None = None
    fps_low: float | None = None
    fps_high: float | None = None
    throughput: float | None = None
    model_memory_mb: float | None = None
    model_memory_mb_low: float | None = None
    model_memory_mb_high: float | None = None
    process_peak_rss_mb: float | None = None
    runtime_baseline_rss_mb: float | None = None
    memory_definition: str = MEMORY_DEFINITION
    process: str | None = None  # how each run's process was made: "fork-server" | "fresh" (None: estimated)
    file_size_mb: float | None = None
    preprocess_ms: float | None = None
    frame_fps: float | None = None
    raw_frame_shape: list[int] | None = None
    error_band: dict[str, Any] | None = None
    constraints: dict[str, Any] | None = None
    rule: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    breakdown_ms: dict[str, float] | None = None
    features: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    timestamp: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    meta: dict[str, Any] = field(default_factory=dict)
    format_version: int = RECORD_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "profile record") -> "ProfileRecord":
        """Inverse of ``to_dict``, reading version 1 records too (``upgrade_record``); DataError naming ``where`` and
        the key that does not fit."""
        if not isinstance(d, dict):
            raise DataError(f"{where} is {type(d).__name__}; expected an object")
        d = upgrade_record(d, where)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise DataError(f"{where} {d.get('variant_id')!r}: unknown key(s) {unknown}; expected {sorted(known)}")
        missing = [f.name for f in fields(cls) if f.name not in d and f.default is MISSING
                   and f.default_factory is MISSING]
        if missing:
            raise DataError(f"{where} has no key {missing[0]!r}")
        return cls(**d)


def upgrade_record(d: dict[str, Any], where: str = "profile record") -> dict[str, Any]:
    """A results.json record in today's keys: a version 1 record (no ``format_version``) has its memory figures under
    ``LEGACY_KEYS`` (today's key wins when both are there), keys no field holds now moved to ``meta["legacy"]`` and,
    without a ``memory_definition``, the one its agent measured."""
    version = d.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= RECORD_VERSION:
        raise DataError(f"{where}: format_version {version!r}; this kdbench reads 1 to {RECORD_VERSION}")
    if version == RECORD_VERSION:
        return d
    out = {LEGACY_KEYS.get(k, k): v for k, v in d.items() if k not in LEGACY_KEYS or LEGACY_KEYS[k] not in d}
    known = {f.name for f in fields(ProfileRecord)}
    legacy = {k: out.pop(k) for k in sorted(set(out) - known)}
    if legacy:
        out["meta"] = {**(out.get("meta") or {}), "legacy": legacy}
    out.setdefault("memory_definition", LEGACY_MEMORY_DEFINITION)  # records since have it: it states what was measured
    return {**out, "format_version": RECORD_VERSION}


def local_host() -> dict[str, Any]:
    """The host kdbench itself runs on."""
    return {"hostname": socket.gethostname(), "machine": platform.machine(), "system": platform.system()}


def check_constraints(record: ProfileRecord, profile: HardwareProfile) -> dict[str, Any] | None:
    """The shared evaluator's verdict on a batch-1 ok record; None without constraints."""
    if not profile.constraints or record.batch != 1 or record.status != "ok":
        return None
    status, reasons = evaluate_constraints({**record.to_dict(), "size_mb": record.file_size_mb}, profile.constraints)
    return {"limits": dict(profile.constraints), "status": status, "reasons": reasons}


def base_record(entry: ModelEntry, profile: HardwareProfile, runtime: str, precision: str, method: str) -> ProfileRecord:
    """The fields every record carries, before any measurement."""
    return ProfileRecord(variant_id=entry.variant_id, file=entry.path.name, target=profile.name, runtime=runtime,
                         method=method, precision=precision, threads=profile.threads, input_size=entry.input_size,
                         measured=method != "estimated", file_size_mb=round(entry.size_mb(), 4), meta=dict(entry.meta))


def failed_record(
    entry: ModelEntry, profile: HardwareProfile, runtime: str, precision: str, method: str, error: str,
    host: Any = None, batch: int = 1,
) -> dict[str, Any]:
    """A record saying what could not be measured and why."""
    rec = base_record(entry, profile, runtime, precision, method)
    rec.status, rec.error, rec.host, rec.batch = "failed", error, host, batch
    return rec.to_dict()


def _median(values: list[float]) -> float:
    """Median of a non-empty list."""
    return float(statistics.median(values))


def _batch_record(results: list[dict[str, Any]], batch: int, rec: ProfileRecord) -> ProfileRecord:
    """Fill ``rec`` from the runs' entries for one batch size: medians, spread, band, memory."""
    entries = [next(b for b in r["batches"] if b["batch"] == batch) for r in results]
    failed = [e for e in entries if not e.get("ok")]
    if failed:
        rec.status, rec.error = "failed", str(failed[0].get("error"))
        return rec
    p50s = [e["latency_ms"]["p50"] for e in entries]
    med = _median(p50s)
    rec.latency_ms = {k: round(_median([e["latency_ms"][k] for e in entries]), 5) for k in ("p50", "p90", "p99", "mean")}
    rec.runs, rec.p50_runs_ms = len(entries), [round(v, 5) for v in p50s]
    # from the recorded (rounded) p50s, so the spread can be recomputed from the record itself: a tiny model's
    # p50 of ~0.01 ms rounded to 1e-5 ms moves the spread by tenths of a percent
    rounded_med = rec.latency_ms["p50"]
    rec.p50_spread_pct = round(100.0 * (max(rec.p50_runs_ms) - min(rec.p50_runs_ms)) / rounded_med, 2) \
        if med > 0 and rounded_med > 0 else None
    rec.stable = all(e.get("stable") for e in entries) and (rec.p50_spread_pct or 0.0) <= MAX_SPREAD_PCT
    rec.n_queries = sum(int(e.get("n") or 0) for e in entries)
    rec.throughput = _median([e["throughput"] for e in entries if e.get("throughput")] or [0.0]) or None
    if batch == 1:
        rec.fps = 1000.0 / rec.latency_ms["p50"]
        # from the same rounded p50s as latency_ms, so fps_low <= fps <= fps_high holds exactly
        rec.fps_low, rec.fps_high = 1000.0 / max(rec.p50_runs_ms), 1000.0 / min(rec.p50_runs_ms)
        mems = [r["model_memory_mb"] for r in results if r.get("model_memory_mb") is not None]
        rec.model_memory_mb = round(_median(mems), 3) if mems else None
        peaks = [r["process_peak_rss_mb"] for r in results if r.get("process_peak_rss_mb") is not None]
        rec.process_peak_rss_mb = round(max(peaks), 3) if peaks else None
        pre = [r["preprocess"]["p50_ms"] for r in results if r.get("preprocess")]
        if pre:
            rec.preprocess_ms = round(_median(pre), 4)
            rec.frame_fps = 1000.0 / (rec.preprocess_ms + rec.latency_ms["p50"])
            rec.raw_frame_shape = results[0]["preprocess"]["raw_shape"]
    else:
        base = [r.get("runtime_baseline_rss_mb") for r in results]
        incs = [e["peak_rss_mb"] - b for e, b in zip(entries, base) if e.get("peak_rss_mb") is not None and b is not None]
        rec.model_memory_mb = round(_median(incs), 3) if incs else None
    return rec


def records_from_runs(
    results: list[dict[str, Any]], entry: ModelEntry, profile: HardwareProfile, runtime: str, precision: str, method: str
) -> list[dict[str, Any]]:
    """Merge the agent results of several fresh processes into one record per batch size."""
    ok = [r for r in results if r.get("ok")]
    if not ok:
        first = results[0] if results else {}
        return [failed_record(entry, profile, runtime, precision, method, str(first.get("error")), first.get("host"))]
    head = ok[0]
    out = []
    for b in head.get("batches", []):
        rec = base_record(entry, profile, runtime, precision, method)
        rec.batch = b["batch"]
        rec.runtime_version, rec.device = head.get("runtime_version"), head.get("device")
        rec.threads = head.get("threads", profile.threads)
        rec.input_size = head.get("input_size") or entry.input_size
        rec.host, rec.rule, rec.input_source = head.get("host"), head.get("rule"), head.get("input_source")
        rec.inference_precision = head.get("inference_precision")
        rec.file_size_mb = round(head.get("file_size_mb", entry.size_mb()), 4)
        rec.conditions = [r.get("conditions") or {} for r in ok]
        rec.runtime_baseline_rss_mb = head.get("runtime_baseline_rss_mb")
        rec.process = (head.get("process") or {}).get("mode")
        if rec.process == "fork-server":
            rec.memory_definition = MEMORY_DEFINITION + FORK_SERVER_MEMORY_NOTE
        if len(ok) < len(results):
            rec.notes.append(f"{len(results) - len(ok)} of {len(results)} runs failed: {next(r for r in results if not r.get('ok')).get('error')}")
        rec = _batch_record(ok, b["batch"], rec)
        rec.constraints = check_constraints(rec, profile)
        out.append(rec.to_dict())
    return out
