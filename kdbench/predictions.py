"""A training run's ``predictions.npz``: written by ``kdbench.train`` and read back here (one owner of the format).

Keys: ``<split>_logits`` [N, 4] and ``<split>_rows`` [N] (store rows) for ``val`` and ``test``, and,
when the run had a teacher, ``<split>_teacher_logits`` (the teacher on the same rows). Readers:
the search's statistics (KD vs scratch on every prediction) and the leaderboard (intervals, decisions).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from kdbench.errors import DataError
from kdbench.layout import seed_dir


def save_predictions(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A run's predictions.npz (np.savez), written atomically: a temporary file, then renamed."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)


def seed_logits(run_dir: Path, seeds: list[int], split: str, store: Any) -> tuple[list[np.ndarray], np.ndarray] | None:
    """(per-seed logits, store rows) of a split from every seed's predictions.npz; None when one is missing or they differ."""
    logits, rows0 = [], None
    for s in seeds:
        path = seed_dir(run_dir, s) / "predictions.npz"
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
        path = seed_dir(run_dir, s) / "predictions.npz"
        with np.load(path) as doc:
            if "test_teacher_logits" in doc and len(doc["test_teacher_logits"]) == len(rows):
                return np.asarray(doc["test_teacher_logits"]).argmax(axis=1) == store.labels[rows]
    return None


def seed_hits(logits: list[np.ndarray], rows: np.ndarray, store: Any, per_clip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(hits [S, N], cluster ids [N]): per frame with its clip as cluster, or per clip (mean logits) as its own cluster."""
    from kdbench.metrics import clip_ids, clip_table

    labels, clips = store.labels[rows], np.asarray(clip_ids(store, rows))
    if not per_clip:
        return np.stack([lg.argmax(axis=1) == labels for lg in logits]), clips
    tables = [clip_table(np.asarray(lg, dtype=np.float64), labels, clips) for lg in logits]
    return np.stack([pred == lab for _, lab, pred, _ in tables]), tables[0][0]
