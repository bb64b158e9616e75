"""``TrialRecord``: what a trial's ``trial.json`` holds, and the one writer and reader of that file.

The search writes it (``objective``), the confirmation writes one per configuration on its fresh seeds,
the race and the statistics rewrite it (added seeds, the storage's state); every later stage reads it
back through ``read_trial`` / ``read_trial_records`` here. Files written before ``format_version``
existed read as version 1; keys this record does not name (hardware-aware ``infeasible``, a race's
``race``/``race_kd``, a confirmation's ``roles``, ...) travel unchanged in ``extra``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdbench.errors import DataError
from kdbench.layout import TRIALS, seed_dir
from kdbench.manifest import write_json

TRIAL_JSON = "trial.json"
FORMAT_VERSION = 1
REQUIRED = ("trial", "student", "method", "state", "seeds")
_OPTIONAL = ("first_trial", "study_id", "method_settings", "family", "input_size", "price")
_PLAIN = REQUIRED + ("hparams", "train", "config_id", "reason", "study_seeds") + _OPTIONAL + ("format_version",)


@dataclass
class TrialRecord:
    """One trial (or one confirmed configuration): its configuration, per-seed figures, means and state.

    ``seeds`` maps the seed as a string (JSON's object keys) to that seed's figures; ``means`` holds the
    ``mean_<metric>`` / ``std_<metric>`` keys as written; ``run_dir`` is the folder it was read from (never written).
    """

    trial: int
    student: str
    method: str
    state: str
    seeds: dict[str, dict[str, Any]]
    hparams: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    config_id: str | None = None
    reason: str = ""
    study_seeds: list[int] = field(default_factory=list)
    first_trial: int | None = None  # the first trial of a retry chain (ties break on it); None: the trial itself
    study_id: str | None = None
    method_settings: dict[str, Any] | None = None
    family: str | None = None
    input_size: int | None = None
    price: dict[str, Any] | None = None  # hardware-aware: Price.to_dict()
    means: dict[str, float | None] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    run_dir: str | None = None
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_dict(cls, body: Any, where: str = TRIAL_JSON) -> "TrialRecord":
        """The record of a trial.json body (any version so far); DataError naming ``where`` when it is not one."""
        if not isinstance(body, dict):
            raise DataError(f"{where}: expected a JSON object written by `kdbench search`, got {type(body).__name__}")
        missing = [k for k in REQUIRED if k not in body]
        if missing:
            raise DataError(f"{where}: key {missing[0]!r} missing (expected a trial written by `kdbench search`)")
        version = body.get("format_version", 1)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise DataError(f"{where}: format_version {version!r} is newer than this kdbench reads ({FORMAT_VERSION})")
        plain = {k: body[k] for k in _PLAIN if k in body and k != "format_version"}
        plain["seeds"] = {str(s): dict(v) for s, v in (body["seeds"] or {}).items()}
        for key in ("hparams", "train"):
            plain[key] = body.get(key) or {}
        plain["reason"] = body.get("reason") or ""
        plain["study_seeds"] = list(body.get("study_seeds") or [])
        means = {k: v for k, v in body.items() if k.startswith(("mean_", "std_"))}
        extra = {k: v for k, v in body.items() if k not in _PLAIN and k not in means and k != "run_dir"}
        return cls(**plain, means=means, extra=extra, run_dir=body.get("run_dir"))

    def to_dict(self) -> dict[str, Any]:
        """The trial.json body: every field but ``run_dir``; optional ones only when set (the files' old shape)."""
        body: dict[str, Any] = {"trial": self.trial, "student": self.student, "method": self.method,
                                "state": self.state, "seeds": self.seeds, "hparams": self.hparams,
                                "train": self.train, "config_id": self.config_id, "reason": self.reason,
                                "study_seeds": self.study_seeds, "format_version": self.format_version}
        body.update({k: getattr(self, k) for k in _OPTIONAL if getattr(self, k) is not None})
        return {**body, **self.means, **self.extra}

    @property
    def key(self) -> tuple[str, int]:
        """(student, trial number): how the leaderboard and the statistics index trials."""
        return self.student, int(self.trial)

    def mean(self, metric: str) -> float | None:
        """The mean of ``metric`` over the seeds as recorded (None when not recorded)."""
        return self.means.get(f"mean_{metric}")

    def std(self, metric: str) -> float | None:
        """The standard deviation of ``metric`` over the seeds as recorded (None when not recorded)."""
        return self.means.get(f"std_{metric}")

    @property
    def latency_ms(self) -> float | None:
        """The priced (estimated) batch-1 latency p50 in ms of a hardware-aware trial, else None."""
        return (self.price or {}).get("latency_ms")

    @property
    def race_verdict(self) -> str | None:
        """This configuration's verdict in the configurations race (``race.verdict``), if raced."""
        return (self.extra.get("race") or {}).get("verdict")

    def all_seeds_ok(self) -> bool:
        """Whether every recorded seed finished (never a non-finite run)."""
        return all(s.get("status") == "ok" for s in self.seeds.values())

    def seed_dirs(self) -> dict[int, Path]:
        """Seed (int) -> its run folder, for the recorded seeds."""
        return {int(s): seed_dir(self.run_dir or ".", s) for s in self.seeds}


def write_trial(run_dir: str | Path, record: TrialRecord | dict[str, Any]) -> Path:
    """Write ``run_dir/trial.json`` atomically (a dict is read as a record first: one shape on disk)."""
    if isinstance(record, dict):
        record = TrialRecord.from_dict(record, f"{run_dir}/{TRIAL_JSON}")
    path = Path(run_dir) / TRIAL_JSON
    write_json(path, record.to_dict())
    return path


def read_trial(path: str | Path) -> TrialRecord:
    """One trial.json as a record, ``run_dir`` its folder (DataError when not valid JSON or not a trial)."""
    path = Path(path)
    try:
        body = json.loads(path.read_text())
    except ValueError as err:
        raise DataError(f"{path}: not valid JSON ({err})") from err
    record = TrialRecord.from_dict(body, str(path))
    record.run_dir = str(path.parent)
    return record


def read_trial_records(study_dir: str | Path, study_id: str | None = None) -> list[TrialRecord]:
    """Every trial.json of the study (any state), sorted by student then trial number; with ``study_id``,
    a trial.json recording another one (a folder written through another storage) is left out."""
    out = [read_trial(p) for p in sorted(Path(study_dir).glob(f"{TRIALS}/*/*/{TRIAL_JSON}"))]
    out = [r for r in out if not study_id or r.study_id in (None, study_id)]
    return sorted(out, key=lambda r: r.key)
