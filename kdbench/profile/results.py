"""Profile results: which model files to measure, the ProfileRecord, results.json and the table.

One ``ProfileRecord`` (one per variant x runtime x precision x batch) holds measured and estimated
figures alike; ``to_dict`` is the results.json form (field list in docs/ARCHITECTURE.md). Memory has
one definition everywhere: ``model_memory_mb`` is the peak RSS increment over the same runtime
running a trivial one-op model (measured by the agent, or estimated from the graph);
``process_peak_rss_mb`` is the whole process's peak. Measured records are the median over
``runs`` processes (``p50_runs_ms``, ``p50_spread_pct``), each fresh or forked from a fork server
(``process``); ``stable`` is False when any run missed its confidence target or the runs' p50
spread exceeds ``MAX_SPREAD_PCT``.
"""

from __future__ import annotations

import json
import platform
import socket
import statistics
import time
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from kdbench.convert.runtimes import RUNTIMES
from kdbench.errors import ConfigError, DataError
from kdbench.export_manifest import MANIFEST, ExportManifest, VariantRecord, precision_of_name
from kdbench.manifest import read_json, write_json
from kdbench.profile.constraints import evaluate_constraints
from kdbench.profile.hardware import HardwareProfile

RECORD_VERSION = 2  # 1 (no format_version): before the one memory definition; read through LEGACY_KEYS
LEGACY_KEYS = {"rss_increment_mb": "model_memory_mb", "peak_rss_mb": "process_peak_rss_mb",
               "baseline_rss_mb": "runtime_baseline_rss_mb"}  # version 1's names of today's fields
LEGACY_MEMORY_DEFINITION = ("model_memory_mb (version 1's rss_increment_mb): peak RSS increment over the process after "
                            "importing the runtime, before loading the model (no trivial-model baseline); "
                            "process_peak_rss_mb: the process's peak RSS")
MODEL_SUFFIXES = (".onnx", ".xml", ".pt2")
_KEY_FIELDS = ("variant_id", "runtime", "precision", "batch", "method")
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


@dataclass
class ModelEntry:
    """One model file to profile."""

    variant_id: str
    path: Path
    precision: str = "fp32"
    input_size: int | None = None
    runtime_hint: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def fmt(self) -> str:
        """'onnx', 'openvino' or 'pt2'."""
        return {".onnx": "onnx", ".xml": "openvino", ".pt2": "pt2"}[self.path.suffix]

    def files(self) -> list[Path]:
        """The files that make up the model: an OpenVINO .xml has its .bin, an ONNX file its external data."""
        out = [self.path]
        if self.fmt == "openvino":
            out.append(self.path.with_suffix(".bin"))
        elif self.fmt == "onnx":
            try:
                out += [self.path.parent / loc for loc in external_data_files(self.path)]
            except DataError:  # unreadable: the agent reports why when it tries to load it
                pass
        return out

    def size_mb(self) -> float:
        """Total size of the model's files in MB (1e6 bytes)."""
        return sum(p.stat().st_size for p in self.files() if p.exists()) / 1e6


def external_data_files(path: Path) -> list[str]:
    """Relative locations of an ONNX file's external-data files (DataError naming one that escapes its folder)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - onnx raises several types for bad files
        raise DataError(f"{path}: not a readable ONNX file: {err}") from None
    locations: list[str] = []
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            loc = {e.key: e.value for e in t.external_data}.get("location", "")
            if Path(loc).is_absolute() or ".." in Path(loc).parts:
                raise DataError(f"{path}: external data location {loc!r} is outside the model's folder")
            if loc and loc not in locations:
                locations.append(loc)
    return locations


def discover_models(models_dir: str | Path) -> list[ModelEntry]:
    """Models in a folder: the export manifest's ok variants when present, else every model file."""
    root = Path(models_dir)
    if not root.is_dir():
        raise DataError(f"models folder {root}: not found or not a folder")
    if (root / MANIFEST).is_file():
        entries = [_manifest_entry(root, i, v) for i, v in enumerate(ExportManifest.read(root).variants) if v.status == "ok"]
    else:
        entries = [ModelEntry(variant_id=path.relative_to(root).with_suffix("").as_posix(), path=path,
                              precision=precision_of_name(path.name))
                   for path in sorted(p for p in root.rglob("*") if p.suffix in MODEL_SUFFIXES and p.is_file())]
    if not entries:
        raise DataError(f"models folder {root}: no model files ({', '.join(MODEL_SUFFIXES)}) and no ok variants")
    return entries


def _manifest_entry(root: Path, i: int, v: VariantRecord) -> ModelEntry:
    """The model of an ok variant of the export manifest; DataError when its file is not there."""
    where = f"{root / MANIFEST}: variants[{i}]"
    if not v.file:
        raise DataError(f"{where} has no key 'file'")
    path = root / v.file
    if path.suffix not in MODEL_SUFFIXES:
        raise DataError(f"{where}.file = {v.file!r}; expected one of {MODEL_SUFFIXES}")
    if not path.is_file():
        raise DataError(f"{where}.file = {v.file!r} does not exist under {root}")
    meta = {k: getattr(v, k) for k in ("candidate", "student", "method", "variant")}
    return ModelEntry(variant_id=str(v.id), path=path, precision=v.precision, input_size=v.input_size,
                      runtime_hint=v.runtime, meta=meta)


def runtimes_for(entry: ModelEntry, profile: HardwareProfile) -> list[str]:
    """The profile's runtimes that can read this model's format."""
    return [rt for rt in profile.runtimes if entry.fmt in RUNTIMES[rt].formats]


def precisions_for(entry: ModelEntry, runtime: str, profile: HardwareProfile) -> list[str]:
    """Precisions to run: the file's own, except PyTorch, which casts to each profile precision."""
    if runtime.startswith("pytorch"):
        return [p for p in profile.precisions if p in ("fp32", "fp16")] or ["fp32"]
    return [entry.precision]


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


def _key(rec: dict[str, Any]) -> tuple:
    """Identity of a record: a rerun replaces the record with the same key."""
    return tuple(rec.get(k) for k in _KEY_FIELDS)


def results_path(out_dir: str | Path, target: str) -> Path:
    """``<out>/<target>/results.json``."""
    return Path(out_dir) / target / "results.json"


def load_results(path: str | Path) -> list[ProfileRecord]:
    """The records of a results.json (none when the file is absent), older ones included; DataError naming the file
    and record when it is not a list of records."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        data = read_json(path)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of result records")
    return [ProfileRecord.from_dict(r, f"{path}: record {i}") for i, r in enumerate(data)]


class ResultsWriter:
    """Merge records into ``<out>/<target>/results.json``, saving after every model (crash-safe)."""

    def __init__(self, out_dir: str | Path, profile: HardwareProfile, extra_manifest: dict[str, Any] | None = None) -> None:
        self.path = results_path(out_dir, profile.name)
        self.profile = profile
        self.records = [r.to_dict() for r in load_results(self.path)]
        self.new: list[dict[str, Any]] = []
        self.extra = extra_manifest or {}

    def add(self, records: list[dict[str, Any]]) -> None:
        """Add (or replace) records and write the file at once."""
        keys = {_key(r) for r in records}
        self.records = [r for r in self.records if _key(r) not in keys] + list(records)
        self.new.extend(records)
        write_json(self.path, self.records)
        write_json(
            self.path.parent / "manifest.json",
            {
                "stage": "profile",
                "target": self.profile.to_dict(),
                "results": self.path.name,
                "n_records": len(self.records),
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                **self.extra,
            },
        )


def _fmt(value: Any, spec: str = ".2f") -> str:
    """Format a number or show a dash."""
    return "-" if value is None else format(value, spec)


def render_table(records: list[dict[str, Any]], title: str) -> Any:
    """A rich Table of records: measured and estimated figures are labelled."""
    from rich.table import Table

    table = Table(title=title, show_lines=False)
    for col in ("variant", "runtime", "prec", "batch", "how", "p50 ms", "p90 ms", "fps | img/s", "frame fps", "model MB",
                "file MB", "verdict"):
        table.add_column(col, justify="left" if col in ("variant", "runtime", "how", "verdict") else "right",
                         overflow="fold")
    for r in records:
        lat = r.get("latency_ms") or {}
        how = r.get("method", "?")
        if not r.get("measured", True):
            how = f"ESTIMATED ±{(r.get('error_band') or {}).get('pct', '?')}%"
        elif r.get("runs"):
            how += f" x{r['runs']} ±{r.get('p50_spread_pct') or 0:.0f}%" + ("" if r.get("stable") else " UNSTABLE")
        cons = r.get("constraints")
        if r.get("status") != "ok":
            verdict = f"[red]failed: {r.get('error')}[/]"
        elif cons is not None:
            colour = {"meets": "green", "fails": "red", "uncertain": "yellow"}.get(cons["status"], "white")
            verdict = f"[{colour}]{cons['status']}[/]" + (f": {'; '.join(cons['reasons'])}" if cons["reasons"] else "")
        else:
            verdict = "[green]ok[/]"
        rate = r.get("fps") if r.get("batch") == 1 else r.get("throughput")
        table.add_row(
            str(r.get("variant_id")), str(r.get("runtime")), str(r.get("precision")), str(r.get("batch")), how,
            _fmt(lat.get("p50"), ".3f"), _fmt(lat.get("p90"), ".3f"), _fmt(rate, ".1f"), _fmt(r.get("frame_fps"), ".1f"),
            _fmt(r.get("model_memory_mb"), ".1f"), _fmt(r.get("file_size_mb"), ".2f"), verdict,
        )
    return table


def require_ok(records: list[dict[str, Any]], what: str) -> None:
    """ConfigError when nothing at all could be measured, listing the reasons."""
    if records and all(r.get("status") != "ok" for r in records):
        reasons = sorted({str(r.get("error")) for r in records})
        raise ConfigError(f"{what}: nothing could be measured: {'; '.join(reasons)}")
