"""Profile results: which model files to measure, result records, results.json and the table.

A record (one per variant x runtime x precision x batch), as in docs/ARCHITECTURE.md::

    {"variant_id", "file", "target", "runtime", "runtime_version", "threads", "precision", "batch",
     "input_size", "measured": bool, "method": "local|remote|estimated", "host",
     "latency_ms": {"p50", "p90", "p99"}, "fps", "throughput", "peak_rss_mb", "rss_increment_mb",
     "file_size_mb", "error_band" (estimates), "status": "ok|failed", "error", "constraints", ...}
"""

from __future__ import annotations

import json
import platform
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdbench.errors import ConfigError, DataError
from kdbench.manifest import read_json, write_json
from kdbench.profile.hardware import HardwareProfile

MODEL_SUFFIXES = (".onnx", ".xml", ".pt2")
_KEY_FIELDS = ("variant_id", "runtime", "precision", "batch", "method")


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
        """The files that make up the model (an OpenVINO .xml has its .bin beside it)."""
        out = [self.path]
        if self.fmt == "openvino":
            out.append(self.path.with_suffix(".bin"))
        return out

    def size_mb(self) -> float:
        """Total size of the model's files in MB (1e6 bytes)."""
        return sum(p.stat().st_size for p in self.files() if p.exists()) / 1e6


def _precision_of(name: str) -> str:
    """Guess a variant's precision from its variant name or file name."""
    low = name.lower()
    if "int8" in low or "qdq" in low or "quant" in low:
        return "int8"
    if "fp16" in low or "half" in low:
        return "fp16"
    return "fp32"


def discover_models(models_dir: str | Path) -> list[ModelEntry]:
    """Models in a folder: the export manifest's ok variants when present, else every model file."""
    root = Path(models_dir)
    if not root.is_dir():
        raise DataError(f"models folder {root}: not found or not a folder")
    manifest = root / "manifest.json"
    entries: list[ModelEntry] = []
    if manifest.is_file():
        try:
            data = read_json(manifest)
        except json.JSONDecodeError as err:
            raise DataError(f"{manifest}: not valid JSON: {err}") from None
        variants = data.get("variants") if isinstance(data, dict) else None
        if not isinstance(variants, list):
            raise DataError(f"{manifest}: key 'variants' missing or not a list (expected the export manifest)")
        for i, v in enumerate(variants):
            if not isinstance(v, dict):
                raise DataError(f"{manifest}: variants[{i}] is {type(v).__name__}; expected an object")
            if v.get("status", "ok") != "ok":
                continue
            for key in ("id", "file"):
                if key not in v:
                    raise DataError(f"{manifest}: variants[{i}] has no key {key!r}")
            path = root / v["file"]
            if path.suffix not in MODEL_SUFFIXES:
                raise DataError(f"{manifest}: variants[{i}].file = {v['file']!r}; expected one of {MODEL_SUFFIXES}")
            if not path.is_file():
                raise DataError(f"{manifest}: variants[{i}].file = {v['file']!r} does not exist under {root}")
            entries.append(
                ModelEntry(
                    variant_id=str(v["id"]),
                    path=path,
                    precision=_precision_of(str(v.get("variant", v["file"]))),
                    input_size=v.get("input_size"),
                    runtime_hint=v.get("runtime"),
                    meta={k: v[k] for k in ("candidate", "student", "method", "variant") if k in v},
                )
            )
    else:
        for path in sorted(p for p in root.rglob("*") if p.suffix in MODEL_SUFFIXES and p.is_file()):
            rel = path.relative_to(root).with_suffix("")
            entries.append(ModelEntry(variant_id=rel.as_posix(), path=path, precision=_precision_of(path.name)))
    if not entries:
        raise DataError(f"models folder {root}: no model files ({', '.join(MODEL_SUFFIXES)}) and no ok variants")
    return entries


def runtimes_for(entry: ModelEntry, profile: HardwareProfile) -> list[str]:
    """The profile's runtimes that can read this model's format."""
    can = {
        "onnx": ("onnxruntime", "onnxruntime-cuda", "openvino", "openvino-gpu"),
        "openvino": ("openvino", "openvino-gpu"),
        "pt2": ("pytorch", "pytorch-cuda"),
    }[entry.fmt]
    return [rt for rt in profile.runtimes if rt in can]


def precisions_for(entry: ModelEntry, runtime: str, profile: HardwareProfile) -> list[str]:
    """Precisions to run: the file's own, except PyTorch, which casts to each profile precision."""
    if runtime.startswith("pytorch"):
        return [p for p in profile.precisions if p in ("fp32", "fp16")] or ["fp32"]
    return [entry.precision]


def local_host() -> dict[str, Any]:
    """The host kdbench itself runs on."""
    return {"hostname": socket.gethostname(), "machine": platform.machine(), "system": platform.system()}


def check_constraints(record: dict[str, Any], profile: HardwareProfile) -> dict[str, Any] | None:
    """Compare a batch-1 record with the profile's constraints; None when there are none."""
    cons = profile.constraints
    if not cons or record.get("batch") != 1 or record.get("status") != "ok":
        return None
    violations = []
    fps = record.get("fps")
    if "min_fps" in cons and fps is not None and fps < cons["min_fps"]:
        violations.append(f"fps {fps:.1f} < {cons['min_fps']:g}")
    mem = record.get("rss_increment_mb")
    if "max_memory_mb" in cons and mem is not None and mem >= cons["max_memory_mb"]:
        violations.append(f"memory {mem:.1f} MB >= {cons['max_memory_mb']:g} MB")
    size = record.get("file_size_mb")
    if "max_file_mb" in cons and size is not None and size >= cons["max_file_mb"]:
        violations.append(f"file {size:.1f} MB >= {cons['max_file_mb']:g} MB")
    return {**cons, "meets": not violations, "violations": violations}


def base_record(entry: ModelEntry, profile: HardwareProfile, runtime: str, precision: str, method: str) -> dict[str, Any]:
    """The fields every record carries, before any measurement."""
    return {
        "variant_id": entry.variant_id,
        "file": entry.path.name,
        "target": profile.name,
        "runtime": runtime,
        "runtime_version": None,
        "threads": profile.threads,
        "precision": precision,
        "batch": 1,
        "input_size": entry.input_size,
        "measured": method != "estimated",
        "method": method,
        "host": None,
        "latency_ms": None,
        "fps": None,
        "throughput": None,
        "peak_rss_mb": None,
        "rss_increment_mb": None,
        "file_size_mb": round(entry.size_mb(), 4),
        "status": "ok",
        "error": None,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **({"meta": entry.meta} if entry.meta else {}),
    }


def failed_record(
    entry: ModelEntry, profile: HardwareProfile, runtime: str, precision: str, method: str, error: str,
    host: Any = None, batch: int = 1,
) -> dict[str, Any]:
    """A record saying what could not be measured and why."""
    rec = base_record(entry, profile, runtime, precision, method)
    rec.update({"status": "failed", "error": error, "host": host, "batch": batch})
    return rec


def records_from_agent(
    result: dict[str, Any], entry: ModelEntry, profile: HardwareProfile, runtime: str, precision: str, method: str
) -> list[dict[str, Any]]:
    """Turn one agent JSON result into one record per batch size."""
    if not result.get("ok"):
        return [failed_record(entry, profile, runtime, precision, method, str(result.get("error")), result.get("host"))]
    records = []
    for b in result.get("batches", []):
        rec = base_record(entry, profile, runtime, precision, method)
        rec.update(
            {
                "runtime_version": result.get("runtime_version"),
                "device": result.get("device"),
                "threads": result.get("threads", profile.threads),
                "batch": b["batch"],
                "input_size": result.get("input_size") or entry.input_size,
                "host": result.get("host"),
                "file_size_mb": round(result.get("file_size_mb", entry.size_mb()), 4),
                "rule": result.get("rule"),
            }
        )
        if not b.get("ok"):
            rec.update({"status": "failed", "error": b.get("error")})
            records.append(rec)
            continue
        lat = b["latency_ms"]
        rec.update(
            {
                "latency_ms": {k: round(lat[k], 5) for k in ("p50", "p90", "p99", "mean")},
                "throughput": b.get("throughput"),
                "fps": 1000.0 / lat["mean"] if b["batch"] == 1 else None,
                "n_queries": b.get("n"),
                "timed_s": b.get("timed_s"),
                "p90_ci_rel": b.get("p90_ci_rel"),
                "stable": b.get("stable"),
                "peak_rss_mb": result.get("peak_rss_mb") if b["batch"] == 1 else b.get("peak_rss_mb"),
                "rss_increment_mb": (
                    result.get("rss_increment_mb")
                    if b["batch"] == 1
                    else (b["peak_rss_mb"] - result["baseline_rss_mb"])
                    if b.get("peak_rss_mb") is not None and result.get("baseline_rss_mb") is not None
                    else None
                ),
                "baseline_rss_mb": result.get("baseline_rss_mb"),
            }
        )
        cons = check_constraints(rec, profile)
        if cons is not None:
            rec["constraints"] = cons
        records.append(rec)
    return records


def _key(rec: dict[str, Any]) -> tuple:
    """Identity of a record: a rerun replaces the record with the same key."""
    return tuple(rec.get(k) for k in _KEY_FIELDS)


def results_path(out_dir: str | Path, target: str) -> Path:
    """``<out>/<target>/results.json``."""
    return Path(out_dir) / target / "results.json"


def load_results(path: str | Path) -> list[dict[str, Any]]:
    """Read a results.json (a list of records); DataError when it is not one."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        data = read_json(path)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise DataError(f"{path}: expected a JSON list of result records")
    return data


class ResultsWriter:
    """Merge records into ``<out>/<target>/results.json``, saving after every model (crash-safe)."""

    def __init__(self, out_dir: str | Path, profile: HardwareProfile, extra_manifest: dict[str, Any] | None = None) -> None:
        self.path = results_path(out_dir, profile.name)
        self.profile = profile
        self.records = load_results(self.path)
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
    for col in ("variant", "runtime", "prec", "batch", "how", "p50 ms", "p90 ms", "p99 ms", "fps | img/s", "+RSS MB", "file MB", "verdict"):
        table.add_column(col, justify="left" if col in ("variant", "runtime", "how", "verdict") else "right",
                         overflow="fold")
    for r in records:
        lat = r.get("latency_ms") or {}
        how = r.get("method", "?")
        if not r.get("measured", True):
            how = f"ESTIMATED ±{(r.get('error_band') or {}).get('pct', '?')}%"
        cons = r.get("constraints")
        if r.get("status") != "ok":
            verdict = f"[red]failed: {r.get('error')}[/]"
        elif cons is not None:
            verdict = "[green]meets[/]" if cons["meets"] else f"[yellow]{'; '.join(cons['violations'])}[/]"
        else:
            verdict = "[green]ok[/]"
        rate = r.get("fps") if r.get("batch") == 1 else r.get("throughput")
        table.add_row(
            str(r.get("variant_id")), str(r.get("runtime")), str(r.get("precision")), str(r.get("batch")), how,
            _fmt(lat.get("p50"), ".3f"), _fmt(lat.get("p90"), ".3f"), _fmt(lat.get("p99"), ".3f"),
            _fmt(rate, ".1f"), _fmt(r.get("rss_increment_mb"), ".1f"), _fmt(r.get("file_size_mb"), ".2f"), verdict,
        )
    return table


def require_ok(records: list[dict[str, Any]], what: str) -> None:
    """ConfigError when nothing at all could be measured, listing the reasons."""
    if records and all(r.get("status") != "ok" for r in records):
        reasons = sorted({str(r.get("error")) for r in records})
        raise ConfigError(f"{what}: nothing could be measured: {'; '.join(reasons)}")
