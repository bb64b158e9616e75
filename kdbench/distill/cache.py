"""The teacher-logit cache: the teacher runs once over the store, every trial reuses its logits.

A cache entry lives in ``STORE/teacher_cache/<key>.npy`` (float32 ``[N, 4]``, one row per store
frame, the unlabelled ones included: a run with ``TrainConfig.unlabelled`` distils on them) with
``<key>.json`` beside it. The key hashes the teacher file's bytes, the store's hash and the
preprocessing, so a different teacher or store never hits an old entry. On load the JSON is
checked against the current teacher, store and the array itself (shape and file hash); anything
that does not match is reported as stale and rebuilt, never used.

The key trusts the store's ``store_hash``, so the cache also checks that the store's files still
match it: a build rehashes them fully and records their stat (size, mtime, inode); a later use
whose stat differs rehashes them again. Frames changed in place are a ``DataError``, never a hit.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from kdbench.checks import ensure_writable_dir, write_errors
from kdbench.data.store import FrameStore, frames_stat, verify_frames
from kdbench.data.views import VIEWS
from kdbench.errors import ConfigError
from kdbench.manifest import config_hash, file_hash, read_json, write_json

log = logging.getLogger(__name__)

# Bump when the way frames become model input changes: old caches then no longer match.
PREPROCESSING = "grey-uint8/255-[B,1,S,S]-v1"
CACHE_DIR = "teacher_cache"


def cache_key(teacher_path: Path, store: FrameStore) -> tuple[str, dict]:
    """The cache key for a teacher file on a store, and the identity record it hashes."""
    if not Path(teacher_path).is_file():
        raise ConfigError(f"teacher file {teacher_path} does not exist (expected a kdbench .pt checkpoint or an .onnx file)")
    identity = {
        "teacher_hash": file_hash(teacher_path),
        "store_hash": store.store_hash,
        "preprocessing": PREPROCESSING,
        "input_size": store.size,
    }
    return config_hash(identity), identity


def cache_paths(store: FrameStore, key: str) -> tuple[Path, Path]:
    """The .npy and .json paths of a cache entry."""
    base = Path(store.path) / CACHE_DIR
    return base / f"{key}.npy", base / f"{key}.json"


def stale_reason(store: FrameStore, key: str, identity: dict) -> str | None:
    """Why the cache entry cannot be used (missing, mismatched, corrupt), or None if it is valid."""
    npy, meta_path = cache_paths(store, key)
    if not npy.exists() or not meta_path.exists():
        return "no cache entry"
    try:
        meta = read_json(meta_path)
    except ValueError as err:
        return f"unreadable {meta_path.name}: {err}"
    for k, v in identity.items():
        if meta.get(k) != v:
            return f"{k} is {meta.get(k)!r} in the cache but {v!r} now"
    if meta.get("shape") != [len(store), len(VIEWS)]:
        return f"cache shape {meta.get('shape')} does not match the store's {len(store)} frames"
    if meta.get("file_hash") != file_hash(npy):
        return f"{npy.name} changed since it was written (hash mismatch)"
    return None


def compute_teacher_logits(
    teacher: Callable[[np.ndarray], np.ndarray], store: FrameStore, batch_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Run the teacher over every frame of the store, in store order."""
    n = len(store)
    out = np.empty((n, len(VIEWS)), np.float32)
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        x = (np.asarray(store.frames[start:stop], dtype=np.float32) / 255.0)[:, None]
        out[start:stop] = teacher(x)
        if progress is not None:
            progress(stop, n)
    if not np.isfinite(out).all():
        bad = np.argwhere(~np.isfinite(out).all(axis=1))[:5, 0].tolist()
        raise ValueError(f"the teacher produced non-finite logits for store rows {bad}")
    return out


def cache_status(store: FrameStore, teacher_path: str | Path, rebuild: bool = False) -> tuple[str, dict, str | None]:
    """(key, identity, why the entry must be (re)built or None when it is valid) for a teacher on a store."""
    key, identity = cache_key(Path(teacher_path), store)
    reason = "rebuild requested" if rebuild else stale_reason(store, key, identity)
    if reason is None:
        _check_store_unchanged(store, cache_paths(store, key)[1])
    return key, identity, reason


def _check_store_unchanged(store: FrameStore, meta_path: Path) -> None:
    """Rehash the store's files when their stat differs from the one recorded at build; DataError if changed."""
    meta = read_json(meta_path)
    stat = frames_stat(store)
    if meta.get("frames_stat") == stat:
        return
    verify_frames(store)
    try:  # unchanged content (a copy, a touch): remember the new stat so the next use is cheap
        write_json(meta_path, {**meta, "frames_stat": stat})
    except OSError:
        pass


def build_teacher_logits(
    store: FrameStore, teacher_path: str | Path, key: str, identity: dict, reason: str, batch_size: int = 256,
    device: str = "cpu", progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Compute the teacher's logits and write them as cache entry ``key`` (reason: why it was needed)."""
    from kdbench.teacher import load_teacher

    npy, meta_path = cache_paths(store, key)
    if reason != "no cache entry":
        log.warning("teacher-logit cache %s is stale (%s): rebuilding", npy, reason)
    verify_frames(store)  # the key trusts store_hash: make sure the frames still match it
    stat = frames_stat(store)
    # before the teacher pass, not after it: the entry, its temp file and the JSON need room
    ensure_writable_dir(npy.parent, "teacher cache folder", need_mb=2 * len(store) * len(VIEWS) * 4 / 2**20 + 1)
    logits = compute_teacher_logits(load_teacher(teacher_path, device), store, batch_size, progress)
    tmp = npy.with_name(npy.name + ".tmp.npy")
    with write_errors(f"teacher cache {npy.parent}"):
        npy.parent.mkdir(parents=True, exist_ok=True)
        np.save(tmp, logits)
        os.replace(tmp, npy)
        write_json(meta_path, {**identity, "teacher_path": str(Path(teacher_path).resolve()),
                               "shape": list(logits.shape), "file_hash": file_hash(npy),
                               "stale_reason_at_build": reason, "frames_stat": stat})
    return logits


def load_or_build_teacher_logits(
    store: FrameStore, teacher_path: str | Path, batch_size: int = 256, device: str = "cpu",
    progress: Callable[[int, int], None] | None = None, rebuild: bool = False,
) -> np.ndarray:
    """Cached teacher logits [N, 4] for the store; computed (once) when missing or stale."""
    key, identity, reason = cache_status(store, teacher_path, rebuild)
    if reason is None:
        return np.load(cache_paths(store, key)[0])
    return build_teacher_logits(store, teacher_path, key, identity, reason, batch_size, device, progress)
