"""What a study leaves on disk for the later stages: summary.csv, statistics.json, best trials.

Everything here reads the study directory only (``study.json`` and each trial's ``trial.json``),
so the export stage can run on a machine that cannot reach the study's database.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from kdbench.errors import ConfigError, DataError
from kdbench.layout import seed_dir
from kdbench.manifest import read_json, write_json
from kdbench.pareto import pareto_fronts

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
    """Every trial.json of the study (any state), sorted by student then trial number.

    A trial.json that records another ``study_id`` than study.json (a folder written through another
    storage under the same name) is not this study's and is left out."""
    out = []
    owner = read_study_json(study_dir).get("study_id") if (Path(study_dir) / "study.json").is_file() else None
    for path in sorted(Path(study_dir).glob("trials/*/*/trial.json")):
        try:
            body = json.loads(path.read_text())
        except ValueError as err:
            raise DataError(f"{path}: not valid JSON ({err})") from err
        if owner and body.get("study_id") not in (None, owner):
            continue
        body["run_dir"] = str(path.parent)
        out.append(body)
    return sorted(out, key=lambda t: (t["student"], t["trial"]))


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
    for t in read_trials(study_dir):
        row = by_key.get((t["student"], t["trial"]))
        if row is None or int(Path(t["run_dir"]).name) != t["trial"]:
            continue  # a retried trial's record under its new number, or a trial of another storage
        if row["state"] in ("complete", "pruned", "failed") and t.get("state") != row["state"]:
            t["state"], t["reason"] = row["state"], row["reason"] or f"the storage says {row['state']}"
            write_json(Path(t["run_dir"]) / "trial.json", {k: v for k, v in t.items() if k != "run_dir"})
        if row["state"] != "complete":
            continue
        missing = [s for s in seeds if s not in t.get("seeds", {}) or not (seed_dir(t["run_dir"], s) / "metrics.json").is_file()]
        if missing:
            warnings.append(f"{t['student']} trial {t['trial']}: complete in the storage but seed(s) {missing} have no "
                            f"metrics.json under {t['run_dir']}; left out of the statistics")
            continue
        usable.append(t)
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


def trial_latency(trial: dict[str, Any]) -> float | None:
    """The priced (estimated) batch-1 latency p50 in ms a hardware-aware trial recorded, else None."""
    return (trial.get("price") or {}).get("latency_ms")


def pareto_front(trials: list[dict[str, Any]], objective: str) -> list[dict[str, Any]]:
    """Trials no other trial dominates on (mean ``objective`` up, priced latency down), as Optuna's best_trials,
    fastest first; trials without a price are left out."""
    pts = [t for t in trials if trial_latency(t) is not None]
    fronts = pareto_fronts([(t[f"mean_{objective}"], trial_latency(t)) for t in pts], ("max", "min"))
    front = [t for t, k in zip(pts, fronts) if k == 1]
    return sorted(front, key=lambda t: (trial_latency(t), -t[f"mean_{objective}"], t["student"], t["trial"]))


def best_trials(study_dir: str | Path, per_architecture: bool = True, pareto: bool = False) -> list[dict[str, Any]]:
    """The best completed trial (by mean validation metric) per student, or the single best overall; with
    ``pareto`` (a multi-objective study) every trial of the Pareto front instead, per student or over all.

    Each entry: student, method, hparams, train, trial, seed_dirs (seed -> run dir with best.pt and
    metrics.json; best.pt may be absent with keep_checkpoints = 'best'), best_seed_dir, mean and std
    validation/test accuracy, n_seeds and ``ci``, the Student t interval over seeds of the mean validation metric
    (the chosen configuration's: selected on that metric, so optimistic); a
    hardware-aware trial adds family, input_size, price and latency_p50_ms (estimated).
    """
    study_dir = Path(study_dir)
    info = read_study_json(study_dir)
    objective = study_objectives(info)[0]
    complete = [t for t in read_trials(study_dir) if t.get("state") == "complete" and t.get(f"mean_{objective}") is not None
                and all(s.get("status") == "ok" for s in t.get("seeds", {}).values())]  # never a non-finite run
    if not complete:
        raise DataError(f"{study_dir}: no completed trial yet (run `kdbench search` or see `kdbench search status`)")
    if pareto and len(study_objectives(info)) < 2:
        raise ConfigError(f"{study_dir}: study objective {objective!r} is single; a Pareto front needs "
                          "objective = [..., 'latency_p50@<target>']")
    from kdbench.search.statistics import best_trial  # the one best-trial rule (ties: the earlier configuration)

    groups: dict[str, list[dict[str, Any]]] = {}
    for t in complete:
        groups.setdefault(t["student"] if per_architecture else "*", []).append(t)
    chosen = [t for key in sorted(groups)
              for t in (pareto_front(groups[key], objective) if pareto else [best_trial(groups[key], objective)])]
    return [_best_entry(t, objective) for t in chosen]


def _best_entry(best: dict[str, Any], objective: str) -> dict[str, Any]:
    """The entry best_trials gives for one chosen trial."""
    from kdbench.search.statistics import mean_ci

    seeds = best["seeds"]
    seed_dirs = {int(s): str(seed_dir(best["run_dir"], s)) for s in seeds}
    best_seed = max(seeds, key=lambda s: seeds[s][objective])
    low, high = mean_ci([seeds[s][objective] for s in seeds], bounds=(0.0, 1.0))  # an accuracy or F1
    entry = {"student": best["student"], "method": best["method"], "hparams": best["hparams"],
             "train": best["train"], "trial": best["trial"], "config_id": best["config_id"],
             "seed_dirs": seed_dirs, "best_seed_dir": seed_dirs[int(best_seed)],
             "objective": objective, "mean": best[f"mean_{objective}"], "ci": [low, high],
             "mean_val_accuracy": best["mean_val_accuracy"], "std_val_accuracy": best.get("std_val_accuracy"),
             "mean_test_accuracy": best["mean_test_accuracy"], "std_test_accuracy": best.get("std_test_accuracy"),
             "n_seeds": len(seeds)}
    if best.get("price"):
        entry.update(family=best.get("family"), input_size=best.get("input_size"), price=best["price"],
                     latency_p50_ms=trial_latency(best))
    return entry


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
