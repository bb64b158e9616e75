"""What a study leaves on disk for the later stages: summary.csv, statistics.json, best trials.

The readers here need the study directory only (``study.json`` and each trial's ``trial.json``, read through
``kdbench.search.trial_record``), so the export stage can run on a machine that cannot reach the study's database;
``usable_trials`` also rewrites a trial.json whose state disagrees with the storage. ``BestTrial`` is the record of
one best-trial entry (``best_trial_records``; ``best_trials`` gives their dicts).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdbench.errors import ConfigError, DataError
from kdbench.layout import seed_dir
from kdbench.manifest import read_json, write_json
from kdbench.pareto import pareto_fronts
from kdbench.search.selection import best_trial
from kdbench.search.trial_record import TrialRecord, read_trial_records, write_trial

STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}
SUMMARY_COLUMNS = ("student", "trial", "state", "method", "config_id", "hparams", "train", "n_seeds",
                   "mean_val_accuracy", "std_val_accuracy", "mean_test_accuracy", "std_test_accuracy",
                   "mean_val_macro_f1", "mean_test_macro_f1", "retry_of", "reason", "run_dir")


def read_study_json(study_dir: Path) -> dict[str, Any]:
    """The study's study.json (DataError when the folder is not a kdbench study)."""
    path = Path(study_dir) / "study.json"
    if not path.is_file():
        raise DataError(f"{path} does not exist: {study_dir} is not a study directory written by `kdbench search`")
    try:
        body = read_json(path)
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not valid JSON ({err}); restore it or start a new study with another --study name") from None
    missing = [k for k in ("study", "config", "seeds", "optuna_studies") if not isinstance(body, dict) or k not in body]
    if missing:
        raise DataError(f"{path}: key {missing[0]!r} missing; expected the study.json written by `kdbench search`")
    return body


def read_trials(study_dir: Path) -> list[dict[str, Any]]:
    """Every trial.json of the study (any state) as dicts with ``run_dir``, sorted by student then trial number
    (``read_trial_records`` gives the records; a trial.json of another ``study_id`` is left out)."""
    return [{**r.to_dict(), "run_dir": r.run_dir} for r in study_trial_records(study_dir)]


def study_trial_records(study_dir: Path) -> list[TrialRecord]:
    """Every TrialRecord of the study (any state), sorted by student then trial number.

    A trial.json that records another ``study_id`` than study.json (a folder written through another
    storage under the same name) is not this study's and is left out."""
    owner = read_study_json(study_dir).get("study_id") if (Path(study_dir) / "study.json").is_file() else None
    return read_trial_records(study_dir, owner)


def storage_rows(studies: dict[str, Any]) -> list[dict[str, Any]]:
    """One summary row per Optuna trial of every student study (states straight from the storage)."""
    from kdbench.search.seed_attrs import seed_results_of

    rows = []
    for student, study in studies.items():
        for t in study.get_trials(deepcopy=False):
            ua = t.user_attrs
            seeds = seed_results_of(t)
            row = {"student": student, "trial": t.number, "state": STATES.get(t.state.name, t.state.name.lower()),
                   "method": ua.get("method"),
                   "config_id": ua.get("config_id"), "hparams": json.dumps(ua.get("hparams", {}), sort_keys=True),
                   "train": json.dumps(ua.get("train", {}), sort_keys=True), "n_seeds": len(seeds),
                   "retry_of": t.system_attrs.get("failed_trial", ""),
                   "reason": trial_reason(t),
                   "run_dir": ua.get("run_dir", "")}
            for metric in ("val_accuracy", "test_accuracy", "val_macro_f1", "test_macro_f1"):
                values = [s[metric] for s in seeds.values() if s.get(metric) is not None]
                row[f"mean_{metric}"] = sum(values) / len(values) if values else ""
                if metric in ("val_accuracy", "test_accuracy"):
                    mean = row[f"mean_{metric}"]
                    row[f"std_{metric}"] = ((sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
                                            if len(values) > 1 else "")
            rows.append(row)
    return rows


def write_summary(study_dir: Path, rows: list[dict[str, Any]]) -> Path:
    """Write summary.csv (one row per trial) atomically."""
    path = Path(study_dir) / "summary.csv"
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in SUMMARY_COLUMNS})
    tmp.replace(path)
    return path


def trial_reason(trial: Any) -> str:
    """Why a trial ended the way it did (empty for a complete one), from its attributes."""
    from kdbench.search.liveness import DUPLICATE_ATTR, FINAL_ATTR, INTERRUPTED_ATTR, STALE_ATTR

    sa, ua = trial.system_attrs, trial.user_attrs
    reason = ua.get(FINAL_ATTR) or sa.get(DUPLICATE_ATTR) or sa.get(INTERRUPTED_ATTR) or sa.get(STALE_ATTR) or ""
    if "same_as_trial" in ua:
        reason = f"same configuration as trial {ua['same_as_trial']}: its results, not trained again"
    return reason or ("failed outside the objective (e.g. a storage error)" if trial.state.name == "FAIL" else "")


def usable_trials(study_dir: Path, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """trial.json of the trials complete in the storage and on disk (every seed's metrics.json), and warnings.

    A trial.json whose state disagrees with the storage (a run stopped between the two writes) is
    rewritten with the storage's state, so files and storage agree.
    """
    by_key = {(r["student"], int(r["trial"])): r for r in rows}
    seeds = [str(s) for s in read_study_json(study_dir)["seeds"]]
    usable, warnings = [], []
    for t in study_trial_records(study_dir):
        row = by_key.get(t.key)
        if row is None or int(Path(str(t.run_dir)).name) != t.trial:
            continue  # a retried trial's record under its new number, or a trial of another storage
        if row["state"] in ("complete", "pruned", "failed") and t.state != row["state"]:
            t.state, t.reason = row["state"], row["reason"] or f"the storage says {row['state']}"
            write_trial(str(t.run_dir), t)
        if row["state"] != "complete":
            continue
        missing = [s for s in seeds if s not in t.seeds or not (seed_dir(str(t.run_dir), s) / "metrics.json").is_file()]
        if missing:
            warnings.append(f"{t.student} trial {t.trial}: complete in the storage but seed(s) {missing} have no "
                            f"metrics.json under {t.run_dir}; left out of the statistics")
            continue
        usable.append({**t.to_dict(), "run_dir": t.run_dir})
    return usable, warnings


def baseline_warnings(rows: list[dict[str, Any]], usable: list[dict[str, Any]], baseline: str | None) -> list[str]:
    """Per student without a usable baseline trial: why (failed, queued, interrupted, never run)."""
    if not baseline:
        return []
    out = []
    for student in sorted({r["student"] for r in rows}):
        if any(t["student"] == student and t["method"] == baseline for t in usable):
            continue
        mine = [r for r in rows if r["student"] == student and r["method"] == baseline]
        why = "; ".join(f"trial {r['trial']} is {r['state']}" + (f" ({r['reason']})" if r["reason"] else "")
                        for r in mine) or "no baseline trial has run yet"
        out.append(f"{student}: no usable {baseline!r} baseline ({why}); its comparisons are left out, not replaced: "
                   "rerun the same command to finish the baseline")
    return out


def write_statistics(study_dir: Path, rows: list[dict[str, Any]] | None = None,
                     extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Compute the study's statistics and write statistics.json.

    With ``rows`` (``storage_rows``), only trials complete in the storage and on disk count and a
    missing baseline is explained; without, every trial.json that says complete counts.
    ``extra`` keys (e.g. the hardware-aware ``pricing`` summary) are added to the file. The comparisons use
    paired_interval on the seeds' predictions when the study's frame store (study.json ``store``) opens here,
    else the seed-level t (``engine``/``engine_note`` say which); verdicts use the study's ``margin``.
    """
    from kdbench.search.statistics import open_store, study_margin, study_statistics

    info = read_study_json(study_dir)
    cfg = info["config"]
    if rows is None:
        trials, warnings = read_trials(study_dir), []
    else:
        trials, warnings = usable_trials(study_dir, rows)
        warnings += baseline_warnings(rows, trials, cfg.get("baseline"))
    store, store_note = open_store(info.get("store"))
    result = study_statistics(trials, info["seeds"], baseline=cfg.get("baseline"),
                              objective=cfg.get("objective", "val_accuracy"), store=store, store_note=store_note,
                              margin=study_margin(cfg))
    result["warnings"] = warnings + result.get("warnings", [])
    result.update(extra or {})
    write_json(Path(study_dir) / "statistics.json", result)
    return result


def study_objectives(info: dict[str, Any]) -> list[str]:
    """The study's objectives from study.json: [accuracy objective] or [accuracy, 'latency_p50@<target>']."""
    cfg = info["config"]
    return list(cfg.get("objectives") or [cfg.get("objective", "val_accuracy")])


def pareto_front(trials: list[TrialRecord], objective: str) -> list[TrialRecord]:
    """Trials no other trial dominates on (mean ``objective`` up, priced latency down), as Optuna's best_trials,
    fastest first; trials without a price are left out."""
    pts = [t for t in trials if t.latency_ms is not None]
    fronts = pareto_fronts([(t.mean(objective), t.latency_ms) for t in pts], ("max", "min"))
    front = [t for t, k in zip(pts, fronts) if k == 1]
    return sorted(front, key=lambda t: (t.latency_ms, -t.mean(objective), t.student, t.trial))


BEST_FORMAT_VERSION = 1
_PRICED = ("family", "input_size", "price", "latency_p50_ms")


@dataclass
class BestTrial:
    """One best-trial entry: the chosen configuration, its seed runs and its figures over seeds.

    ``ci``: the Student t interval over seeds of the mean ``objective`` (the chosen configuration's: selected on that
    metric, so optimistic); ``family``, ``input_size``, ``price``, ``latency_p50_ms`` (estimated) for priced trials.
    """

    student: str
    method: str
    trial: int
    objective: str
    mean: float
    hparams: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    config_id: str | None = None
    seed_dirs: dict[int, str] = field(default_factory=dict)  # seed -> run dir (best.pt may be absent)
    best_seed_dir: str | None = None
    ci: list[float] = field(default_factory=list)
    mean_val_accuracy: float | None = None
    std_val_accuracy: float | None = None
    mean_test_accuracy: float | None = None
    std_test_accuracy: float | None = None
    n_seeds: int = 0
    family: str | None = None
    input_size: int | None = None
    price: dict[str, Any] | None = None
    latency_p50_ms: float | None = None
    format_version: int = BEST_FORMAT_VERSION

    @classmethod
    def from_dict(cls, body: Any) -> "BestTrial":
        """The record of an entry as ``to_dict`` (or best_trials before records) gave it; seed keys become ints."""
        if not isinstance(body, dict) or any(k not in body for k in ("student", "method", "trial", "objective", "mean")):
            raise DataError(f"a best-trial entry needs student, method, trial, objective and mean (got {body!r:.200})")
        if body.get("format_version", 1) > BEST_FORMAT_VERSION:
            raise DataError(f"best-trial entry format_version {body['format_version']} is newer than this kdbench reads")
        out = cls(**{k: v for k, v in body.items() if k in cls.__dataclass_fields__})
        out.seed_dirs = {int(s): str(d) for s, d in (body.get("seed_dirs") or {}).items()}
        return out

    def to_dict(self) -> dict[str, Any]:
        """The entry as a dict (the priced fields only for a priced trial, as before the record)."""
        body = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in _PRICED}
        body["seed_dirs"] = dict(self.seed_dirs)
        if self.price:
            body.update({k: getattr(self, k) for k in _PRICED})
        return body

    @classmethod
    def of(cls, best: TrialRecord, objective: str) -> "BestTrial":
        """The entry for one chosen trial."""
        from kdbench.search.statistics import mean_ci

        seeds = best.seeds
        seed_dirs = {s: str(d) for s, d in best.seed_dirs().items()}
        best_seed = max(seeds, key=lambda s: seeds[s][objective])
        low, high = mean_ci([seeds[s][objective] for s in seeds], bounds=(0.0, 1.0))  # an accuracy or F1
        out = cls(student=best.student, method=best.method, trial=best.trial, objective=objective,
                  mean=best.mean(objective), hparams=best.hparams, train=best.train, config_id=best.config_id,
                  seed_dirs=seed_dirs, best_seed_dir=seed_dirs[int(best_seed)], ci=[low, high],
                  mean_val_accuracy=best.mean("val_accuracy"), std_val_accuracy=best.std("val_accuracy"),
                  mean_test_accuracy=best.mean("test_accuracy"), std_test_accuracy=best.std("test_accuracy"),
                  n_seeds=len(seeds))
        if best.price:
            out.family, out.input_size, out.price = best.family, best.input_size, best.price
            out.latency_p50_ms = best.latency_ms
        return out


def best_trial_records(study_dir: str | Path, per_architecture: bool = True, pareto: bool = False) -> list[BestTrial]:
    """The best completed trial (by mean validation metric) per student, or the single best overall; with
    ``pareto`` (a multi-objective study) every trial of the Pareto front instead, per student or over all."""
    study_dir = Path(study_dir)
    info = read_study_json(study_dir)
    objective = study_objectives(info)[0]
    complete = [t for t in study_trial_records(study_dir)
                if t.state == "complete" and t.mean(objective) is not None and t.all_seeds_ok()]  # never a non-finite run
    if not complete:
        raise DataError(f"{study_dir}: no completed trial yet (run `kdbench search` or see `kdbench search status`)")
    if pareto and len(study_objectives(info)) < 2:
        raise ConfigError(f"{study_dir}: study objective {objective!r} is single; a Pareto front needs "
                          "objective = [..., 'latency_p50@<target>']")

    groups: dict[str, list[TrialRecord]] = {}
    for t in complete:
        groups.setdefault(t.student if per_architecture else "*", []).append(t)
    chosen = [t for key in sorted(groups)
              for t in (pareto_front(groups[key], objective) if pareto else [best_trial(groups[key], objective)])]
    return [BestTrial.of(t, objective) for t in chosen]


def best_trials(study_dir: str | Path, per_architecture: bool = True, pareto: bool = False) -> list[dict[str, Any]]:
    """``best_trial_records`` as dicts (``BestTrial.to_dict``): student, method, hparams, train, trial, config_id,
    seed_dirs, best_seed_dir, objective, mean, ci, mean/std validation and test accuracy, n_seeds (+ the priced
    fields of a hardware-aware trial)."""
    return [b.to_dict() for b in best_trial_records(study_dir, per_architecture, pareto)]


def check_study_identity(study_dir: Path, identity: dict[str, Any]) -> None:
    """ConfigError when an existing study was created from another config, store or teacher."""
    if not (Path(study_dir) / "study.json").is_file():
        return
    old = read_study_json(study_dir)
    for key, what in (("config_hash", "search space"), ("store_hash", "frame store"), ("teacher_hash", "teacher")):
        if old.get(key) != identity.get(key):
            raise ConfigError(f"study {old.get('study')!r} in {study_dir} was created with another {what} "
                              f"({key} {old.get(key)} there, {identity.get(key)} now); resume with the same inputs "
                              "or choose a new --study name")
