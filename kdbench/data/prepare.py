"""``kdbench data prepare``: read the official datasets, harmonise sampled frames, write a frame store.

Work is resumable: each clip is decoded by a worker into ``STORE/parts/<hash>.npy`` plus a
``<hash>.json`` written last (both atomically), so a killed run, rerun with the same config, only
decodes the clips that have no ``.json`` yet. When every clip is done the parts are assembled into
``frames.npy`` + ``index.csv`` and ``manifest.json`` is written last; the parts are then removed.
A rerun whose config and input CSVs match the manifest does nothing; a changed config or ``force``
rebuilds from scratch.

Every file goes through ``kdbench.data.media.read_frames`` (AVI and other videos with OpenCV, PNG/JPG
stills with OpenCV, DICOM with pydicom) and then the same harmonisation. Clips with fewer frames
than ``frames_per_video`` keep every frame they have, once (no repeated frames); those of two frames
or more are listed in the manifest under ``short_clips``. Unreadable, corrupt or truncated videos,
images and DICOM files (also DICOM compressed in a way pydicom cannot decode here) are skipped with a
warning and listed under ``skipped`` (with ``strict`` they are an error). Unlabelled clips
(``--unlabelled``) are stored after every labelled one, as split ``unlabelled`` with an empty view,
counted under ``counts["unlabelled"]``.
Videos and images a CSV lists but the folder lacks (a partial download) are skipped the same way and
listed under ``missing`` (``strict``: an error); a rerun after they appear rebuilds the store.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from kdbench import __version__
from kdbench.checks import ensure_writable_dir, write_errors
from kdbench.data.clips import Clip, LoadResult
from kdbench.data.harmonise import HARMONISE_VERSION, harmonise_clip, sample_indices
from kdbench.data.media import media_kind, read_frames, read_still, sample_video
from kdbench.data.sources import OWN, find_source, registered, source_rank
from kdbench.data.splits import check_patient_splits
from kdbench.data.store import integrity_record, store_hash_of
from kdbench.data.views import SPLITS, UNLABELLED, VIEWS
from kdbench.errors import ConfigError, DataError
from kdbench.manifest import config_hash, file_hash, read_json, write_json

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SLEEP_ENV = "KDBENCH_TEST_PREPARE_SLEEP"  # test-only: seconds each worker sleeps per clip
INDEX_COLUMNS = ("row", "source", "patient", "video", "view", "split", "frame")
ProgressFn = Callable[[int, int], None]


@dataclass
class PrepareResult:
    """Outcome of prepare_store: whether it built, and the manifest of the store."""

    status: str  # "built" | "up_to_date"
    path: Path
    manifest: dict[str, Any]
    seconds: float
    decoded: int  # clips decoded in this run (0 when up to date)
    reused: int  # clips taken from parts of an interrupted run


def load_sources(sources: dict[str, str | Path], tmed_fold: int = 0,
                 view_map: str | Path | None = None) -> list[LoadResult]:
    """Run the loader of each given source (registry order) and check that patients do not cross splits."""
    unknown = [s for s in sources if find_source(s) is None]
    if unknown:
        raise ConfigError(f"unknown source(s) {unknown}; expected some of {', '.join(s.name for s in registered())}")
    if not sources:
        raise ConfigError(f"no dataset given; pass at least one of {', '.join(s.flag for s in registered())}")
    if view_map is not None and OWN not in sources:
        raise ConfigError(f"--view-map {view_map} renames the views of a {find_source(OWN).flag} labels CSV; "
                          f"pass {find_source(OWN).flag} as well, or leave --view-map out")
    settings = {"tmed_fold": tmed_fold, "view_map": view_map}
    results = [source.load(sources[source.name], settings) for source in registered() if source.name in sources]
    check_patient_splits(c for r in results for c in r.clips)
    return results


def check_missing(results: list[LoadResult]) -> None:
    """Under --strict, a listed-but-absent video or image is a DataError naming the CSV line."""
    missing = [m for r in results for m in r.missing]
    if missing:
        more = f" (and {len(missing) - 1} more listed files are missing)" if len(missing) > 1 else ""
        raise DataError(f"{missing[0]['reason']}{more}; add the files or run without --strict to skip them")


# ---------------------------------------------------------------------------------------------
# decoding (runs in worker processes)


def _quiet_opencv() -> None:
    """Silence OpenCV's own stderr logging and threads; problems are reported by kdbench."""
    import cv2

    cv2.setNumThreads(1)
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    except AttributeError:  # pragma: no cover - older OpenCV without the logging module
        pass


def decode_clip(clip: Clip, size: int, frames_per_video: int) -> dict[str, Any]:
    """Decode, sample and harmonise one clip: {"frames": uint8 [n,S,S] | None, "meta": {...}}."""
    meta: dict[str, Any] = {"video": clip.video, "source": clip.source, "problems": []}
    decode = _decode_video if clip.kind == "video" else _decode_images
    out, ids = decode(clip, size, frames_per_video, meta)
    if out is None:
        return {"frames": None, "meta": meta}
    meta.update(status="ok", frame_ids=[int(i) for i in ids])
    return {"frames": out, "meta": meta}


def _decode_video(clip: Clip, size: int, k: int, meta: dict) -> tuple[np.ndarray | None, np.ndarray]:
    """One file with any number of frames (a video, a DICOM cine loop or a still): k of them, harmonised."""
    if media_kind(clip.files[0]) == "video":  # only the k frames kept are decoded and held
        frames, ids, meta["available"], reason = sample_video(clip.files[0], k)
    else:
        frames, reason = read_frames(clip.files[0])
        meta["available"] = len(frames)
        ids = sample_indices(len(frames), k)
        frames = [frames[i] for i in ids]
    if reason is not None:
        meta.update(status="skipped", reason=reason, file=clip.files[0])
        return None, np.zeros(0, np.int64)
    return harmonise_clip(frames, size), ids


def _decode_images(clip: Clip, size: int, k: int, meta: dict) -> tuple[np.ndarray | None, np.ndarray]:
    """Stills, one per file: k of the files, harmonised; unreadable ones are listed under the clip's problems."""
    images, ids = [], []
    for i in sample_indices(len(clip.files), k):
        img, reason = read_still(clip.files[i])
        if img is None:
            meta["problems"].append({"file": clip.files[i], "reason": reason})
            continue
        images.append(img)
        ids.append(int(i))
    meta["available"] = len(clip.files)
    if not images:
        meta.update(status="skipped", reason="no readable image", file=clip.files[0])
        return None, np.zeros(0, np.int64)
    if len({im.shape for im in images}) == 1:
        return harmonise_clip(images, size), np.asarray(ids, dtype=np.int64)
    # stills of different sizes: harmonise one by one
    return np.concatenate([harmonise_clip([im], size) for im in images]), np.asarray(ids, dtype=np.int64)


def part_name(clip: Clip) -> str:
    """File stem of a clip's part: a hash of its video id (ids may hold any characters)."""
    return hashlib.sha256(clip.video.encode()).hexdigest()[:20]


def _atomic_save(path: Path, array: np.ndarray) -> None:
    """np.save to a temp file in the same folder, then rename over path."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, array)
    os.replace(tmp, path)


def _work(task: tuple[Clip, int, int, str]) -> dict[str, Any]:
    """Worker: decode one clip and write its part (.npy, then .json as the done-marker)."""
    clip, size, k, parts = task
    delay = float(os.environ.get(SLEEP_ENV, "0") or 0)
    if delay:
        time.sleep(delay)
    result = decode_clip(clip, size, k)
    stem = Path(parts) / part_name(clip)
    if result["frames"] is not None:
        _atomic_save(stem.with_suffix(".npy"), result["frames"])
    write_json(stem.with_suffix(".json"), result["meta"])
    return result["meta"]


def _check_strict(meta: dict) -> None:
    """Under --strict, a skipped clip or an unreadable image is a DataError."""
    if meta["status"] != "ok":
        raise DataError(
            f"{meta.get('file')}: {meta.get('reason')} (video {meta['video']}); remove it from the "
            f"CSV or run without --strict to skip it"
        )
    if meta["problems"]:
        problem = meta["problems"][0]
        raise DataError(f"{problem['file']}: {problem['reason']} (clip {meta['video']}); run without --strict to skip it")


def _decode_all(tasks: list[tuple], workers: int, record: Callable[[dict], None]) -> None:
    """Decode every clip (in this process, or in spawned workers), passing each clip's meta to record."""
    if workers == 1 or len(tasks) <= 1 or not _can_spawn():
        _quiet_opencv()
        for task in tasks:
            record(_work(task))
    else:
        # spawn, not fork: a forked child inherits OpenCV/BLAS thread-pool locks held by the
        # parent's threads (e.g. after the phantom writer ran) and can deadlock on them.
        # ProcessPoolExecutor, not Pool: a worker killed by the OS raises BrokenProcessPool
        # instead of hanging; the parts written so far survive for the next run.
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=ctx, initializer=_init_worker) as pool:
            futures = [pool.submit(_work, task) for task in tasks]
            try:
                for future in as_completed(futures):
                    record(future.result())
            except BaseException:
                for future in futures:
                    future.cancel()
                raise


def _can_spawn() -> bool:
    """False when spawned workers could not re-import __main__ (a script piped on stdin)."""
    import sys

    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is None and main_file is not None and not os.path.exists(main_file):
        log.warning("__main__ (%s) cannot be re-imported by worker processes; decoding in one process", main_file)
        return False
    return True


def _init_worker() -> None:
    """Pool initialiser: one OpenCV thread per worker, no OpenCV log spam."""
    _quiet_opencv()


# ---------------------------------------------------------------------------------------------
# the store


def _clip_order(clip: Clip) -> tuple:
    """Store order: labelled clips by source (registry order), split, video; unlabelled ones after them all."""
    return (clip.split == UNLABELLED, source_rank(clip.source), clip.split, clip.video)


def store_config(sources: dict[str, str | Path], size: int, frames_per_video: int, tmed_fold: int,
                 view_map: str | Path | None = None) -> dict:
    """The config that defines a store's content (hashed into config_hash)."""
    config = {
        "size": int(size),
        "frames_per_video": int(frames_per_video),
        "tmed_fold": int(tmed_fold) if "tmed2" in sources else None,
        "sources": {name: _absolute(p) for name, p in sorted(sources.items())},
        "harmonise_version": HARMONISE_VERSION,
    }
    if OWN in sources:  # only then, so stores of the public datasets keep their config_hash
        config["view_map"] = _absolute(view_map) if view_map is not None else None
    return config


def _absolute(path: str | Path) -> str:
    """A path as the absolute string the manifest records."""
    return str(Path(path).expanduser().resolve())


def _is_current(out: Path, cfg_hash: str, inputs: dict[str, str], missing: list[dict]) -> dict | None:
    """The existing manifest if the store at out is complete and built from this config and inputs."""
    manifest_path = out / "manifest.json"
    if not manifest_path.is_file() or not (out / "frames.npy").is_file() or not (out / "index.csv").is_file():
        return None
    try:
        manifest = read_json(manifest_path)
    except (OSError, ValueError):
        return None
    if manifest.get("config_hash") != cfg_hash or manifest.get("inputs") != inputs:
        return None
    if manifest.get("missing", []) != missing:  # files have appeared (or gone) since the store was built
        return None
    return manifest


def _empty_counts(clips: list[Clip]) -> dict[str, dict]:
    """Zero counts: "frames"/"clips" {view: {split: {source}}} (labelled), "unlabelled" {"frames"/"clips": {source}}."""
    labelled = sorted({c.source for c in clips if c.split != UNLABELLED}, key=source_rank)
    pool = sorted({c.source for c in clips if c.split == UNLABELLED}, key=source_rank)
    counts: dict[str, dict] = {key: {v: {s: dict.fromkeys(labelled, 0) for s in SPLITS} for v in VIEWS}
                               for key in ("frames", "clips")}
    counts[UNLABELLED] = {"frames": dict.fromkeys(pool, 0), "clips": dict.fromkeys(pool, 0)}
    return counts


def _add_count(counts: dict[str, dict], clip: Clip, n_frames: int) -> None:
    """Count one stored clip and its frames in the cell of its view, split and source."""
    if clip.split == UNLABELLED:
        cells = [counts[UNLABELLED]["frames"], counts[UNLABELLED]["clips"]]
    else:
        cells = [counts["frames"][clip.view][clip.split], counts["clips"][clip.view][clip.split]]
    cells[0][clip.source] += n_frames
    cells[1][clip.source] += 1


def _assemble(out: Path, clips: list[Clip], metas: dict[str, dict], size: int) -> tuple[int, dict, dict]:
    """Concatenate parts into frames.npy + index.csv (atomically); returns (N, counts, integrity)."""
    parts = out / "parts"
    counts = _empty_counts(clips)
    ok = [c for c in clips if metas[c.video]["status"] == "ok"]
    n_total = sum(len(metas[c.video]["frame_ids"]) for c in ok)
    if n_total == 0:
        raise DataError(f"no frames could be decoded from any of the {len(clips)} clips; see the skipped list")
    tmp_frames = out / "frames.tmp.npy"
    tmp_index = out / "index.csv.tmp"
    row = 0
    # frames.npy is written as a stream (header, then each part's bytes), not through a memmap whose dirty pages
    # would count as this process's memory up to the store's size; the bytes are np.save's
    with open(tmp_frames, "wb") as frames, open(tmp_index, "w", newline="") as fh:
        np.lib.format.write_array_header_1_0(frames, {"descr": "|u1", "fortran_order": False,
                                                      "shape": (n_total, size, size)})
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(INDEX_COLUMNS)
        for clip in ok:
            ids = metas[clip.video]["frame_ids"]
            part = np.load(parts / f"{part_name(clip)}.npy")
            if part.shape != (len(ids), size, size):
                raise DataError(
                    f"part {parts / part_name(clip)}.npy of {clip.video} has shape {part.shape}, expected "
                    f"{(len(ids), size, size)}; rerun with --force"
                )
            frames.write(np.ascontiguousarray(part, dtype=np.uint8).data)
            for fid in ids:
                writer.writerow((row, clip.source, clip.patient, clip.video, clip.view, clip.split, fid))
                row += 1
            _add_count(counts, clip, len(ids))
    os.replace(tmp_frames, out / "frames.npy")
    os.replace(tmp_index, out / "index.csv")
    return n_total, counts, integrity_record(out, n_total)


def prepare_store(
    sources: dict[str, str | Path],
    out: str | Path,
    size: int = 112,
    frames_per_video: int = 16,
    tmed_fold: int = 0,
    workers: int = 2,
    strict: bool = False,
    force: bool = False,
    progress: ProgressFn | None = None,
    view_map: str | Path | None = None,
) -> PrepareResult:
    """Build (or resume, or leave alone if current) the frame store at out from the given datasets."""
    start = time.perf_counter()
    if size < 16:
        raise ConfigError(f"--size {size} is too small; expected at least 16 pixels")
    if frames_per_video < 1:
        raise ConfigError(f"--frames-per-video {frames_per_video}; expected at least 1")
    if workers < 1:
        raise ConfigError(f"--workers {workers}; expected at least 1")
    out = Path(out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; expected a folder for the frame store")

    results = load_sources(sources, tmed_fold, view_map)
    clips = sorted((c for r in results for c in r.clips), key=_clip_order)
    config = store_config(sources, size, frames_per_video, tmed_fold, view_map)
    cfg_hash = config_hash(config)
    inputs = {p: file_hash(p) for r in results for p in r.inputs}
    inputs.update({key: value for r in results for key, value in r.fingerprints.items()})
    missing = [m for r in results for m in r.missing]
    if strict:
        check_missing(results)
    for item in missing:
        log.warning("skipping %s: %s", item["video"], item["reason"])

    if not force:
        current = _is_current(out, cfg_hash, inputs, missing)
        if current is not None:
            return PrepareResult("up_to_date", out, current, time.perf_counter() - start, 0, 0)

    need_mb = 2 * len(clips) * frames_per_video * size * size / 2**20  # the parts, then frames.npy
    ensure_writable_dir(out, "--out", need_mb=need_mb)
    (out / "manifest.json").unlink(missing_ok=True)  # the store is incomplete from here on
    parts = out / "parts"
    parts_cfg = parts / "config.json"
    if force or (parts.exists() and (not parts_cfg.is_file() or read_json(parts_cfg).get("config_hash") != cfg_hash)):
        shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir(exist_ok=True)
    write_json(parts_cfg, {"config_hash": cfg_hash, "config": config})
    for stale in parts.glob("*.tmp"):  # half-written files of a killed run
        stale.unlink(missing_ok=True)

    metas: dict[str, dict] = {}
    todo: list[Clip] = []
    for clip in clips:
        stem = parts / part_name(clip)
        meta_path = stem.with_suffix(".json")
        if meta_path.is_file():
            try:
                meta = read_json(meta_path)
            except ValueError:
                meta = None
            if meta and meta.get("video") == clip.video and (
                meta.get("status") != "ok" or stem.with_suffix(".npy").is_file()
            ):
                metas[clip.video] = meta
                continue
        todo.append(clip)
    reused = len(metas)

    done = reused
    if progress:
        progress(done, len(clips))

    def _record(meta: dict) -> None:
        nonlocal done
        metas[meta["video"]] = meta
        done += 1
        if meta["status"] != "ok":
            log.warning("skipping %s (%s): %s", meta["video"], meta.get("file"), meta.get("reason"))
        if strict:
            _check_strict(meta)
        if progress:
            progress(done, len(clips))

    if strict:  # problems found by an interrupted run are errors under --strict as well
        for meta in metas.values():
            _check_strict(meta)
    tasks = [(clip, size, frames_per_video, str(parts)) for clip in todo]
    with write_errors(f"frame store {out}"):  # a disk filling up mid-run: one line; the parts are kept
        _decode_all(tasks, workers, _record)
        n_frames, counts, integrity = _assemble(out, clips, metas, size)
    skipped, short = [], []
    for clip in clips:
        meta = metas[clip.video]
        if meta["status"] != "ok":
            skipped.append({"source": clip.source, "video": clip.video, "file": meta.get("file"), "reason": meta.get("reason")})
            continue
        for problem in meta["problems"]:
            skipped.append({"source": clip.source, "video": clip.video, **problem})
        if 1 < meta["available"] < frames_per_video:  # a one-frame clip is a still, not a short video
            short.append({"source": clip.source, "video": clip.video, "frames_available": meta["available"], "frames_used": len(meta["frame_ids"])})
    manifest = {
        "stage": "frame_store",
        "format_version": FORMAT_VERSION,
        "kdbench_version": __version__,
        "config": config,
        "config_hash": cfg_hash,
        "store_hash": store_hash_of(integrity["frames_hash"], integrity["index_hash"]),
        "integrity": integrity,
        "inputs": inputs,
        "n_frames": n_frames,
        "n_clips": sum(1 for c in clips if metas[c.video]["status"] == "ok"),
        "counts": counts,
        "skipped": skipped,
        "missing": missing,
        "short_clips": short,
        "short_clip_policy": "clips with fewer frames than frames_per_video keep all their frames, once each "
                             "(listed from 2 frames up: a one-frame clip is a still)",
        "dropped_labels": {r.source: r.dropped_labels for r in results if r.dropped_labels},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_json(out / "manifest.json", manifest)
    shutil.rmtree(parts, ignore_errors=True)
    seconds = time.perf_counter() - start
    return PrepareResult("built", out, manifest, seconds, len(todo), reused)


def describe_counts(manifest: dict) -> list[tuple[str, str, str, int, int]]:
    """Flatten a manifest's counts into (view, split, source, frames, clips) rows; unlabelled ones have view ""."""
    frames, clips = manifest["counts"]["frames"], manifest["counts"]["clips"]
    rows = []
    for view in VIEWS:
        for split in SPLITS:
            for source, n in frames.get(view, {}).get(split, {}).items():
                rows.append((view, split, source, int(n), int(clips[view][split][source])))
    pool = manifest["counts"].get(UNLABELLED, {"frames": {}, "clips": {}})
    rows += [("", UNLABELLED, source, int(n), int(pool["clips"][source])) for source, n in pool["frames"].items()]
    return rows

