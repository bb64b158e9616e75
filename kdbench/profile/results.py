"""``<out>/<target>/results.json``: its one writer (``ResultsWriter``) and reader (``load_results``), and the table.

The records themselves are ``record.ProfileRecord``; the model files they measure, ``entries.ModelEntry`` (both
importable from here too, as before).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from kdbench.errors import ConfigError, DataError
from kdbench.manifest import read_json, write_json
from kdbench.profile.hardware import HardwareProfile
from kdbench.profile.entries import (MODEL_SUFFIXES, ModelEntry, discover_models, external_data_files, precisions_for,
                                     runtimes_for)
from kdbench.profile.record import (FORK_SERVER_MEMORY_NOTE, LEGACY_KEYS, LEGACY_MEMORY_DEFINITION, MAX_SPREAD_PCT,
                                    MEMORY_DEFINITION, RECORD_VERSION, ProfileRecord, base_record, check_constraints,
                                    failed_record, local_host, records_from_runs, upgrade_record)

__all__ = ["MODEL_SUFFIXES", "ModelEntry", "discover_models", "external_data_files", "precisions_for", "runtimes_for",
           "FORK_SERVER_MEMORY_NOTE", "LEGACY_KEYS", "LEGACY_MEMORY_DEFINITION", "MAX_SPREAD_PCT", "MEMORY_DEFINITION",
           "RECORD_VERSION", "ProfileRecord", "base_record", "check_constraints", "failed_record", "local_host",
           "records_from_runs", "upgrade_record", "results_path", "load_results", "ResultsWriter", "render_table",
           "require_ok"]

_KEY_FIELDS = ("variant_id", "runtime", "precision", "batch", "method")


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
