"""The teacher-logit cache of echo augmentation's K fixed versions: ``[K, N, 4]`` under ``STORE/teacher_cache/aug-*``.

The versions themselves are ``kdbench.data.augment`` (pure pixels); the teacher's logits of them are cached here,
beside the plain cache (``kdbench.distill.cache``), so the data package never reaches for a teacher.
An entry covers the rows of one split or of splits joined by ``+``: ``"train"``, or ``"train+unlabelled"`` for a
run that adds the store's unlabelled frames (``TrainConfig.unlabelled``); the split is part of the key.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kdbench.data.augment import AUGMENT_VERSION, AugmentConfig, augment_batch, check_versions
from kdbench.data.store import FrameStore
from kdbench.data.views import VIEWS
from kdbench.distill.cache import cache_key, cache_paths
from kdbench.manifest import config_hash, file_hash, read_json, write_json

log = logging.getLogger(__name__)

TeacherFn = Callable[[np.ndarray], np.ndarray]


def augmented_teacher_logits(
    store: FrameStore, teacher: TeacherFn, versions: int, seed: int = 0, config: AugmentConfig | None = None,
    split: str | None = "train", batch_size: int = 256, progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Teacher logits float32 [K, N, 4] of the K augmented versions of the split's frames (NaN elsewhere)."""
    versions = check_versions(versions)
    config = config or AugmentConfig()
    rows = split_rows(store, split)
    out = np.full((versions, len(store), len(VIEWS)), np.nan, np.float32)
    done, total = 0, versions * len(rows)
    for k in range(versions):
        for start in range(0, len(rows), batch_size):
            idx = rows[start : start + batch_size]
            x = augment_batch(store.frames[idx], idx, np.full(len(idx), k), seed, config)
            out[k, idx] = teacher(x)
            done += len(idx)
            if progress is not None:
                progress(done, total)
    bad = ~np.isfinite(out[:, rows]).all(axis=2)
    if bad.any():
        k, i = np.argwhere(bad)[0]
        raise ValueError(f"the teacher produced non-finite logits for store row {int(rows[i])}, augmented version {int(k)}")
    return out


def split_rows(store: FrameStore, split: str | None) -> np.ndarray:
    """Sorted store rows of a split, of splits joined by '+' (``"train+unlabelled"``), or of every row (None)."""
    if split is None:
        return np.arange(len(store), dtype=np.int64)
    return np.sort(np.concatenate([store.indices(name) for name in split.split("+")]))


def augmented_cache_key(store: FrameStore, teacher_path: str | Path, versions: int, seed: int,
                        config: AugmentConfig, split: str | None) -> tuple[str, dict]:
    """Key and identity of an augmented cache entry: the plain cache's identity plus the augmentation's."""
    _, identity = cache_key(Path(teacher_path), store)
    identity = {**identity, "augment": config.to_dict(), "augment_version": AUGMENT_VERSION,
                "versions": check_versions(versions), "augment_seed": int(seed), "split": split}
    return "aug-" + config_hash(identity), identity


def load_or_build_augmented_logits(
    store: FrameStore, teacher_path: str | Path, versions: int, seed: int = 0, config: AugmentConfig | None = None,
    split: str | None = "train", batch_size: int = 256, device: str = "cpu",
    progress: Callable[[int, int], None] | None = None, rebuild: bool = False,
) -> np.ndarray:
    """Cached augmented teacher logits [K, N, 4] under ``STORE/teacher_cache/aug-<key>.npy``; built when missing or stale.

    Processes building the same entry at once (search workers) take turns under a file lock: the
    first builds it, the others then find it and load it.
    """
    config = config or AugmentConfig()
    key, identity = augmented_cache_key(store, teacher_path, versions, seed, config, split)
    npy, meta_path = cache_paths(store, key)
    identity = {**identity, "shape": [int(versions), len(store), len(VIEWS)]}
    hit = None if rebuild else _cached(npy, meta_path, identity)
    if hit is not None:
        return hit
    npy.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(npy):
        hit = None if rebuild else _cached(npy, meta_path, identity)  # another process may have built it meanwhile
        if hit is not None:
            return hit
        if npy.exists():
            log.warning("augmented teacher-logit cache %s is stale or corrupt: rebuilding", npy)
        from kdbench.teacher import load_teacher

        logits = augmented_teacher_logits(store, load_teacher(teacher_path, device), versions, seed, config, split,
                                          batch_size, progress)
        tmp = npy.with_name(f"{npy.name}.{os.getpid()}.tmp.npy")
        np.save(tmp, logits)
        os.replace(tmp, npy)
        write_json(meta_path, {**identity, "teacher_path": str(Path(teacher_path).resolve()), "file_hash": file_hash(npy)})
    return logits


def _cached(npy: Path, meta_path: Path, identity: dict[str, Any]) -> np.ndarray | None:
    """The entry's array when its record matches ``identity`` and the file's hash, else None."""
    if not (npy.exists() and meta_path.exists()):
        return None
    try:
        meta = read_json(meta_path)
    except ValueError:
        return None
    if all(meta.get(k) == v for k, v in identity.items()) and meta.get("file_hash") == file_hash(npy):
        return np.load(npy)
    return None


@contextlib.contextmanager
def _build_lock(npy: Path) -> Iterator[None]:
    """An exclusive lock on ``<entry>.lock`` for the duration (a no-op where fcntl is missing, e.g. Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with open(npy.with_name(npy.name + ".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
