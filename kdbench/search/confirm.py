"""`kdbench search confirm`: retrain each student's chosen configuration and its baseline on fresh seeds.

A study picks the best of many configurations on its seeds, then compares it with scratch on the
same seeds: the winner's curse makes that comparison optimistic. Confirmation retrains, per student,
the chosen configuration (``best_trials``: best mean validation objective), the best distillation
configuration when the chosen one is the baseline, and the best baseline configuration, on K seeds
the study never used (1000, 1001, ... minus the study's seeds), and compares them on those seeds only:

    DIR/confirm/<student>/<method>-trial<N>/seed_<s>/  best.pt + metrics.json (kdbench.train)
    DIR/confirm/<student>/<method>-trial<N>/trial.json  the study trial.json's shape, on the fresh seeds
    DIR/confirm/statistics.json                         the study statistics.json's format, plus
                                                        "stage": "confirm", "study_seeds", "candidates"

Resumable: a seed whose metrics.json exists for the same method and seed is read back, never
trained again; asking for more seeds later extends the same sequence.
"""

from __future__ import annotations

import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kdbench.errors import ConfigError, DataError
from kdbench.manifest import write_json

CONFIRM_DIR = "confirm"
FIRST_SEED = 1000
DEFAULT_SEEDS = 5
SUMMARY_METRICS = ("val_accuracy", "test_accuracy", "val_macro_f1", "test_macro_f1", "val_clip_accuracy",
                   "test_clip_accuracy")


@dataclass
class ConfirmRequest:
    """The arguments of one `kdbench search confirm` invocation."""

    study_dir: Path
    n_seeds: int = DEFAULT_SEEDS
    device: str = "auto"
    store: Path | None = None  # default: the study's store (study.json)


def confirm_seeds(study_seeds: list[int], k: int) -> list[int]:
    """The first ``k`` seeds from FIRST_SEED on that the study did not use."""
    used = {int(s) for s in study_seeds}
    out: list[int] = []
    seed = FIRST_SEED
    while len(out) < k:
        if seed not in used:
            out.append(seed)
        seed += 1
    return out


def candidates(study_dir: Path) -> list[dict[str, Any]]:
    """Per student: the chosen trial, the best distillation trial if the chosen one is the baseline, the best baseline."""
    from kdbench.search.results import best_trials, read_study_json, read_trials
    from kdbench.search.statistics import best_trial

    cfg = read_study_json(study_dir)["config"]
    baseline, objective = cfg.get("baseline"), cfg.get("objective", "val_accuracy")
    complete = [t for t in read_trials(study_dir) if t.get("state") == "complete"]
    out = []
    for chosen in best_trials(study_dir):
        mine = [t for t in complete if t["student"] == chosen["student"]]
        picks = {"chosen": next(t for t in mine if t["trial"] == chosen["trial"]),
                 "best distillation": best_trial([t for t in mine if t["method"] != baseline], objective),
                 "baseline": best_trial([t for t in mine if t["method"] == baseline], objective)}
        seen: dict[int, dict[str, Any]] = {}
        for role, t in picks.items():
            if t is not None:
                seen.setdefault(t["trial"], {**t, "roles": []})["roles"].append(role)
        out += list(seen.values())
    return out


def config_dir(study_dir: Path, trial: dict[str, Any]) -> Path:
    """DIR/confirm/<student>/<method>-trial<N>."""
    return Path(study_dir) / CONFIRM_DIR / trial["student"] / f"{trial['method']}-trial{trial['trial']}"


def _record(trial: dict[str, Any], results: dict[str, dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """A trial.json-shaped record of one configuration on the confirmation seeds."""
    body = {k: trial[k] for k in ("trial", "student", "method", "hparams", "train", "config_id")}
    body.update(state="complete", reason="", roles=trial["roles"], seeds=results, study_seeds=seeds)
    for metric in SUMMARY_METRICS:
        values = [r[metric] for r in results.values() if r.get(metric) is not None]
        body[f"mean_{metric}"] = statistics.fmean(values) if values else None
        body[f"std_{metric}"] = statistics.stdev(values) if len(values) > 1 else None
    return body


class _Trainer:
    """Trains one seed of a configuration; opens the store and teacher logits on first use."""

    def __init__(self, info: dict[str, Any], req: ConfirmRequest) -> None:
        self.info, self.req = info, req
        self.store: Any = None
        self.teacher_logits: Any = None
        self.augmented: dict = {}  # augmented teacher logits per augmentation (train.augmented_logits_for)

    def __call__(self, trial: dict[str, Any], seed: int, sdir: Path) -> None:
        from kdbench.data.store import FrameStore
        from kdbench.distill.registry import METHODS
        from kdbench.search.trial_config import TrialConfig
        from kdbench.train import augmented_logits_for, train_student

        if self.store is None:
            self.store = FrameStore.open(self.req.store or self.info["store"])
        if METHODS[trial["method"]].needs_teacher and self.teacher_logits is None:
            if not self.info.get("teacher"):
                raise ConfigError(f"{trial['method']} needs a teacher but study.json names none")
            from kdbench.distill.cache import load_or_build_teacher_logits

            self.teacher_logits = load_or_build_teacher_logits(self.store, self.info["teacher"])
        config = TrialConfig.from_dict(trial)
        meta = {"study": self.info.get("study"), "trial": trial["trial"], "seed": seed, "confirm": True,
                "teacher": self.info.get("teacher")}
        cfg = config.seed_config(seed, self.req.device)
        augmented = augmented_logits_for(self.store, self.info.get("teacher"), cfg, self.augmented, method=config.method)
        train_student(self.store, config.student, config.method, config.hparams, cfg, teacher_logits=self.teacher_logits,
                      out_dir=sdir, progress=False, meta=meta, augmented_logits=augmented)


def run_confirm(req: ConfirmRequest, on_event: Callable[..., None] | None = None) -> dict[str, Any]:
    """Train (or reuse) every candidate on the fresh seeds; write confirm/statistics.json; counts and statistics."""
    from kdbench.search.objective import completed_seed, seed_summary
    from kdbench.search.results import read_study_json

    if req.n_seeds < 2:
        raise ConfigError(f"--seeds {req.n_seeds}; expected at least 2 (a paired comparison needs 2 seeds, 5 or more to be useful)")
    study_dir = Path(req.study_dir)
    info = read_study_json(study_dir)
    cfg = info["config"]
    seeds = confirm_seeds(info["seeds"], req.n_seeds)
    train = _Trainer(info, req)
    records, trained, reused, warnings = [], 0, 0, []
    for trial in candidates(study_dir):
        results: dict[str, dict[str, Any]] = {}
        for seed in seeds:
            sdir = config_dir(study_dir, trial) / f"seed_{seed}"
            done = completed_seed(sdir, trial["method"], seed)
            if done is None:
                if sdir.exists():
                    shutil.rmtree(sdir)  # interrupted mid-run: start over
                if on_event is not None:
                    on_event(student=trial["student"], method=trial["method"], trial=trial["trial"], seed=seed)
                train(trial, seed, sdir)
                done = completed_seed(sdir, trial["method"], seed)
                if done is None:
                    raise DataError(f"{sdir / 'metrics.json'}: training finished without a readable metrics.json")
                trained += 1
            else:
                reused += 1
            results[str(seed)] = seed_summary(done)
            if results[str(seed)]["status"] != "ok":
                warnings.append(f"{trial['student']} {trial['method']} trial {trial['trial']} seed {seed}: "
                                f"{results[str(seed)]['status']} ({results[str(seed)]['message']}); left out")
        record = _record(trial, results, seeds)
        write_json(config_dir(study_dir, trial) / "trial.json", record)
        records.append(record)
    stats = confirm_statistics(records, seeds, info, cfg)
    stats["warnings"] = warnings + stats["warnings"]
    write_json(study_dir / CONFIRM_DIR / "statistics.json", stats)
    return {"statistics": stats, "trained": trained, "reused": reused, "seeds": seeds}


def confirm_statistics(records: list[dict[str, Any]], seeds: list[int], info: dict[str, Any],
                       cfg: dict[str, Any]) -> dict[str, Any]:
    """study_statistics on the confirmation records, labelled as a confirmation."""
    from kdbench.search.statistics import study_statistics

    ok = [{**r, "seeds": {s: v for s, v in r["seeds"].items() if v.get("status") == "ok"}} for r in records]
    stats = study_statistics(ok, seeds, baseline=cfg.get("baseline"), objective=cfg.get("objective", "val_accuracy"))
    stats.update(stage="confirm", study_seeds=info["seeds"],
                 selection="configurations chosen on the study's seeds by validation; compared here on fresh seeds "
                           "that took no part in the choice",
                 candidates=[{"student": r["student"], "trial": r["trial"], "method": r["method"],
                              "config_id": r["config_id"], "roles": r["roles"]} for r in records])
    return stats
