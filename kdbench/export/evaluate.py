"""Score an exported model file in its runtime (kdbench.convert.runtimes) over a store split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kdbench.convert.runtimes import Runner, frames_as_input, load_runner
from kdbench.data.store import FrameStore
from kdbench.errors import ConfigError
from kdbench.metrics import classification_metrics, clip_ids
from kdbench.predictions import save_predictions


def predict_split(run: Runner, store: FrameStore, split: str, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Logits of ``run`` on every frame of a split (in batches) and the store rows they belong to."""
    rows = store.indices(split)
    outs = [run(frames_as_input(store, rows[i : i + batch_size])) for i in range(0, len(rows), batch_size)]
    logits = np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)
    if len(rows) and (logits.ndim != 2 or logits.shape[0] != len(rows)):
        raise ValueError(f"model returned logits of shape {logits.shape} for {len(rows)} frames; expected [N, C]")
    return logits, rows


def evaluate_runner(
    run: Runner, store: FrameStore, splits: tuple[str, ...] = ("val", "test"), batch_size: int = 64,
    logits_out: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Frame- and clip-level metrics (with clip-bootstrap intervals and ECE) of a logits function on each split;
    with ``logits_out`` also each split's (logits, store rows) put into it."""
    out: dict[str, Any] = {}
    for split in splits:
        logits, rows = predict_split(run, store, split, batch_size)
        if not len(rows):
            raise ConfigError(f"store {store.path} has no frames in split {split!r}; cannot evaluate on it")
        if not np.isfinite(logits).all():
            raise ValueError(f"non-finite logits on split {split!r}")
        if logits_out is not None:
            logits_out[split] = (logits, rows)
        out[split] = classification_metrics(logits, store.labels[rows], store.sources[rows], clips=clip_ids(store, rows))
    return out


def evaluate_file(
    path: str | Path, runtime: str, store: FrameStore, splits: tuple[str, ...] = ("val", "test"), batch_size: int = 64,
    logits_out: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Metrics of an exported file run in its runtime on the store's splits: ``{split: metrics}`` (``logits_out``:
    see ``evaluate_runner``)."""
    return evaluate_runner(load_runner(path, runtime), store, splits, batch_size, logits_out)


def save_variant_predictions(path: str | Path, store: FrameStore, logits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """Write a variant's per-frame predictions atomically (kdbench.predictions' format): ``<split>_logits`` [N, C]
    float32, ``<split>_rows`` (store rows), ``<split>_labels`` and ``<split>_clips`` (clip ids) per split."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for split, (lg, rows) in sorted(logits.items()):
        rows = np.asarray(rows, dtype=np.int64)
        arrays.update({f"{split}_logits": np.asarray(lg, dtype=np.float32), f"{split}_rows": rows,
                       f"{split}_labels": np.asarray(store.labels[rows], dtype=np.int64),
                       f"{split}_clips": np.asarray(clip_ids(store, rows)).astype(str)})
    save_predictions(path, arrays)
    return path
