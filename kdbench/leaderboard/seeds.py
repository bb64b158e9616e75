"""What a trial's seeds say: validation and test accuracy per seed, their means and 95% intervals.

An interval resamples seeds and clips (``kdbench.metrics.seed_clip_interval``) when every seed saved its
predictions (``seed_<s>/predictions.npz``) and the study's frame store can be opened; otherwise it is the
interval of the mean over seeds alone (``kdbench.search.statistics.mean_ci``), and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kdbench.errors import DataError
from kdbench.manifest import read_json

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

    @property
    def n(self) -> int:
        """Seeds with a test accuracy."""
        return sum(a is not None for a in self.accuracies["test"])


def _mean(values: list[Any]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def seed_metrics(run_dir: Path, seed: int | str) -> dict[str, Any]:
    """metrics.metrics ({'val': ..., 'test': ...}) of one seed run ({} when its metrics.json is missing)."""
    path = Path(run_dir) / f"seed_{seed}" / "metrics.json"
    if not path.is_file():
        return {}
    try:
        doc = read_json(path)
    except ValueError as err:
        raise DataError(f"{path}: not valid JSON ({err}); expected a training run's metrics.json") from None
    return (doc.get("metrics") or {}) if isinstance(doc, dict) else {}


def seed_logits(run_dir: Path, seeds: list[int], split: str, store: Any) -> tuple[list[np.ndarray], np.ndarray] | None:
    """(per-seed logits, store rows) of a split from every seed's predictions.npz; None when one is missing or they differ."""
    logits, rows0 = [], None
    for s in seeds:
        path = Path(run_dir) / f"seed_{s}" / "predictions.npz"
        if not path.is_file():
            return None
        with np.load(path) as doc:
            if f"{split}_logits" not in doc or f"{split}_rows" not in doc:
                return None
            lg, rows = np.asarray(doc[f"{split}_logits"]), np.asarray(doc[f"{split}_rows"], dtype=np.int64)
        if rows0 is not None and not np.array_equal(rows, rows0):
            return None
        if len(rows) == 0 or rows.max() >= len(store) or lg.shape[0] != len(rows):
            raise DataError(f"{path}: {split} rows/logits do not fit the study's frame store {store.path} "
                            f"({len(store)} frames); expected predictions written by `kdbench search` on that store")
        logits.append(lg)
        rows0 = rows
    return (logits, rows0) if rows0 is not None else None


def teacher_test_hits(run_dir: Path, seeds: list[int], rows: np.ndarray, store: Any) -> np.ndarray | None:
    """The teacher's hits [N] on the test rows, from a seed's predictions.npz (None when not saved)."""
    for s in seeds:
        path = Path(run_dir) / f"seed_{s}" / "predictions.npz"
        with np.load(path) as doc:
            if "test_teacher_logits" in doc and len(doc["test_teacher_logits"]) == len(rows):
                return np.asarray(doc["test_teacher_logits"]).argmax(axis=1) == store.labels[rows]
    return None


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


def seed_hits(logits: list[np.ndarray], rows: np.ndarray, store: Any, per_clip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(hits [S, N], cluster ids [N]): per frame with its clip as cluster, or per clip (mean logits) as its own cluster."""
    from kdbench.metrics import clip_ids, clip_table

    labels, clips = store.labels[rows], np.asarray(clip_ids(store, rows))
    if not per_clip:
        return np.stack([lg.argmax(axis=1) == labels for lg in logits]), clips
    tables = [clip_table(np.asarray(lg, dtype=np.float64), labels, clips) for lg in logits]
    return np.stack([pred == lab for _, lab, pred, _ in tables]), tables[0][0]


def _interval(values: list[float], hits: tuple[np.ndarray, np.ndarray] | None) -> tuple[float | None, float | None]:
    """The seed(+clip) interval of a mean accuracy."""
    from kdbench.metrics import seed_clip_interval
    from kdbench.search.statistics import mean_ci

    if hits is not None:
        low, high = seed_clip_interval(*hits)
        return float(low), float(high)
    low, high = mean_ci(values)
    return low, high


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


def summarise_trial(trial: dict[str, Any], store: Any = None) -> SeedSummary:
    """The seed summary of a trial.json (``store``: the study's FrameStore, for seed+clip intervals; None: seeds only)."""
    seeds = sorted(int(s) for s in trial["seeds"])
    ok = [s for s in seeds if trial["seeds"][str(s)].get("status", "ok") == "ok"]
    per_seed = [seed_metrics(Path(trial["run_dir"]), s) for s in ok]
    accs = {split: [trial["seeds"][str(s)].get(f"{split}_accuracy") for s in ok] for split in SPLITS}
    preds = {split: seed_logits(Path(trial["run_dir"]), ok, split, store) if store is not None and ok else None
             for split in SPLITS}
    hits = {split: seed_hits(*preds[split], store) if preds[split] else None for split in SPLITS}
    intervals = {split: _interval([a for a in accs[split] if a is not None], hits[split]) for split in SPLITS}
    test = _test_means(per_seed)
    if preds["test"]:
        test["clip_accuracy_ci"] = _interval([], seed_hits(*preds["test"], store, per_clip=True))
    teacher = next((m["test"]["teacher_accuracy"] for m in per_seed
                    if (m.get("test") or {}).get("teacher_accuracy") is not None), None)
    return SeedSummary(student=trial["student"], method=trial["method"], trial=int(trial["trial"]), seeds=ok,
                       accuracies=accs, means={split: _mean(accs[split]) for split in SPLITS}, intervals=intervals,
                       interval_kind="seeds+clips" if all(h is not None for h in hits.values()) else "seeds",
                       test=test, teacher_accuracy=teacher,
                       relative=_relative(Path(trial["run_dir"]), ok, preds["test"], store))
