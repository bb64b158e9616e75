"""A frame store of any size written directly (no phantom, no decoding): for benchmarks at full dataset scale.

``write_store(path, n, size)`` writes frames.npy (smooth random blobs under the fan mask, so augmentation has edges
to move), an index.csv shaped like the real datasets' (sources, ``<source>:<patient>`` ids, 16 frames per video,
patient-level splits 70/15/15) and a manifest with the integrity record, so ``FrameStore.open`` checks it as it
checks a prepared store.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SOURCES = ("echonet_dynamic", "echonet_lvh", "tmed2")
VIEWS_OF = {"echonet_dynamic": ("A4C",), "echonet_lvh": ("PLAX",), "tmed2": ("A2C", "A4C", "PLAX", "PSAX")}


def _frames(path: Path, n: int, size: int, seed: int) -> None:
    """frames.npy [n, size, size] uint8 written in chunks (never the whole array in memory)."""
    from kdbench.data.harmonise import sector_mask

    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, size, size))
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (64, size, size), dtype=np.uint8)
    base[:, size // 3 : size // 2] = 255
    base *= sector_mask(size)
    for start in range(0, n, 4096):
        stop = min(n, start + 4096)
        out[start:stop] = base[np.arange(start, stop) % len(base)]
    out.flush()
    del out


def _index(path: Path, n: int) -> None:
    """index.csv with 16 frames per video, 2 videos per patient, splits by patient."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(("row", "source", "patient", "video", "view", "split", "frame"))
        for row in range(n):
            video = row // 16
            patient = video // 2
            source = SOURCES[patient % len(SOURCES)]
            views = VIEWS_OF[source]
            split = ("train", "train", "train", "train", "train", "train", "train", "val", "test", "val")[patient % 10]
            writer.writerow((row, source, f"{source}:P{patient:07d}", f"0X{video * 2654435761 % 16**16:016X}",
                             views[video % len(views)], split, row % 16))


def write_store(path: Path, n: int, size: int = 112, seed: int = 0) -> Path:
    """Write a checked frame store of ``n`` frames at ``size`` px into ``path``; returns the path."""
    from kdbench import __version__
    from kdbench.data.store import integrity_record, store_hash_of
    from kdbench.manifest import write_json

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    _frames(path / "frames.npy", n, size, seed)
    _index(path / "index.csv", n)
    integrity = integrity_record(path, n)
    write_json(path / "manifest.json", {
        "stage": "frame_store", "format_version": 1, "kdbench_version": __version__, "n_frames": n,
        "config": {"size": size, "frames_per_video": 16, "sources": {}}, "config_hash": "synthetic",
        "store_hash": store_hash_of(integrity["frames_hash"], integrity["index_hash"]), "integrity": integrity,
        "counts": {}, "skipped": [], "missing": [],
    })
    return path
