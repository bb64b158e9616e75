"""What a trial's seeds say: validation and test accuracy per seed, their means and 95% intervals.

An interval allows for new seeds and new clips (``kdbench.metrics.seed_clip_interval``) when every seed saved its
predictions (``seed_<s>/predictions.npz``) and the study's frame store can be opened; otherwise it is the
interval of the mean over seeds alone (``kdbench.search.statistics.mean_ci``), and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kdbench.errors import DataError
from kdbench.layout import seed_dir
from kdbench.leaderboard.columns import PROPORTION
from kdbench.leaderboard.row import clip_interval
from kdbench.manifest import read_json
from kdbench.predictions import seed_hits, seed_logits, teacher_test_hits
from kdbench.search.trial_record import TrialRecord

SPLITS = ("val", "test")


@dataclass
class SeedSummary:
    """Per-seed and mean figures of one trial over its seeds."""

    student: str
    method: str
    trial: int
    seeds: list[int]
    accuracies: dict[str, list[float | None]]  # split -> per-seed accuracy
    means: dict[str, float | None]
    intervals: dict[str, tuple[float | None, float | None]]
    interval_kind: str  # "seeds+clips" | "seeds"
    test: dict[str, Any] = field(default_factory=dict)  # seed means of other test figures (clip accuracy, ECE, ...)
    teacher_accuracy: float | None = None
    relative: tuple[float, float, float] | None = None  # seed-mean test accuracy / the teacher's: (ratio, low, high)
    val_hits: Any = None  # kdbench.leaderboard.decisions.ValHits: per-seed validation hits for the decisions

    @property
    def n(self) -> int:
        """Seeds with a test accuracy."""
        return sum(a is not None for a in self.accuracies["test"])


def _mean(values: list[Any]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def seed_metrics(run_dir: Path, seed: int | str) -> dict[str, Any]:
    """metrics.metrics ({'val': ..., 'test': ...}) of one seed run ({} when its metrics.json is missing)."""
    path = seed_dir(run_dir, seed) / "metrics.json"
    if not path.is_file():
        return {}
    try:
        doc = read_json(path)
    except ValueError as err:
        raise DataError(f"{path}: not valid JSON ({err}); expected a training run's metrics.json") from None
    return (doc.get("metrics") or {}) if isinstance(doc, dict) else {}


def _relative(run_dir: Path, seeds: list[int], preds: tuple[list[np.ndarray], np.ndarray] | None,
              store: Any) -> tuple[float, float, float] | None:
    """Seed-mean test accuracy over the teacher's, with its paired seed+clip interval (None without teacher hits)."""
    from kdbench.metrics import relative_interval

    if not preds:
        return None
    ref = teacher_test_hits(run_dir, seeds, preds[1], store)
    if ref is None or not ref.any():
        return None
    hits, clips = seed_hits(*preds, store)
    return tuple(float(v) for v in relative_interval(hits, ref, clips))  # type: ignore[return-value]


def _interval(values: list[float], hits: tuple[np.ndarray, np.ndarray] | None) -> tuple[float | None, float | None]:
    """The seed(+clip) interval of a mean accuracy, cut to [0, 1]."""
    from kdbench.metrics import seed_clip_interval
    from kdbench.search.statistics import mean_ci

    return clip_interval(seed_clip_interval(*hits) if hits is not None else mean_ci(values), PROPORTION)


def _test_means(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Seed means of the other test figures; the shortcut check of the seed with the median gap."""
    tests = [m.get("test") or {} for m in per_seed]
    out = {key: _mean([t.get(key) for t in tests]) for key in
           ("clip_accuracy", "macro_f1", "clip_macro_f1", "ece", "worst_source_accuracy")}
    gaps = sorted((t["shortcut_gap"] for t in tests if t.get("shortcut_gap")), key=lambda g: g["gap"])
    out["shortcut_gap"] = gaps[len(gaps) // 2] if gaps else None
    out["n"] = next((t.get("n") for t in tests if t.get("n")), None)
    out["n_clips"] = next((t.get("n_clips") for t in tests if t.get("n_clips")), None)
    return out


def summarise_trial(trial: TrialRecord, store: Any = None) -> SeedSummary:
    """The seed summary of a trial (``store``: the study's FrameStore, for seed+clip intervals; None: seeds only)."""
    run_dir = Path(str(trial.run_dir))
    seeds = sorted(int(s) for s in trial.seeds)
    ok = [s for s in seeds if trial.seeds[str(s)].get("status", "ok") == "ok"]
    per_seed = [seed_metrics(run_dir, s) for s in ok]
    accs = {split: [trial.seeds[str(s)].get(f"{split}_accuracy") for s in ok] for split in SPLITS}
    preds = {split: seed_logits(run_dir, ok, split, store) if store is not None and ok else None
             for split in SPLITS}
    hits = {split: seed_hits(*preds[split], store) if preds[split] else None for split in SPLITS}
    intervals = {split: _interval([a for a in accs[split] if a is not None], hits[split]) for split in SPLITS}
    test = _test_means(per_seed)
    if preds["test"]:
        test["clip_accuracy_ci"] = _interval([], seed_hits(*preds["test"], store, per_clip=True))
        test["ece_ci"] = _ece_interval(preds["test"], store)
    teacher = next((m["test"]["teacher_accuracy"] for m in per_seed
                    if (m.get("test") or {}).get("teacher_accuracy") is not None), None)
    return SeedSummary(student=trial.student, method=trial.method, trial=int(trial.trial), seeds=ok,
                       accuracies=accs, means={split: _mean(accs[split]) for split in SPLITS}, intervals=intervals,
                       interval_kind="seeds+clips" if all(h is not None for h in hits.values()) else "seeds",
                       test=test, teacher_accuracy=teacher,
                       relative=_relative(run_dir, ok, preds["test"], store),
                       val_hits=_val_hits(ok, preds["val"], hits["val"], store))


def _val_hits(seeds: list[int], preds: Any, hits: tuple[np.ndarray, np.ndarray] | None, store: Any) -> Any:
    """The trial's per-seed validation hits for the leaderboard's decisions, or why there are none."""
    from kdbench.leaderboard.decisions import ValHits

    if store is None:
        return ValHits(missing="no frame store to read the seeds' validation predictions against (the study's "
                               "store is unknown or could not be opened)")
    if preds is None or hits is None:
        return ValHits(missing="not every seed of this trial saved validation predictions on the same frames "
                               "(seed_<s>/predictions.npz)")
    return ValHits(hits=hits[0], rows=preds[1], clips=hits[1], seeds=list(seeds))


def _ece_interval(preds: tuple[list[np.ndarray], np.ndarray], store: Any) -> tuple[float, float] | None:
    """Clip-bootstrap interval of the seed-mean test ECE (kdbench.leaderboard.calibration.ece_interval), cut to [0, 1]."""
    from kdbench.leaderboard.calibration import ece_interval
    from kdbench.metrics import clip_ids

    logits, rows = preds
    ci = ece_interval(logits, store.labels[rows], np.asarray(clip_ids(store, rows)))
    return None if ci is None else clip_interval(ci, PROPORTION)
