"""FrameStore: read access to a frame store written by ``kdbench data prepare``.

``frames.npy`` is opened as a read-only memmap, so opening is instant and many processes share the
page cache; ``index.csv`` gives each row's label, split, source, patient and video.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from kdbench.data.views import SPLITS, VIEW_INDEX, VIEWS
from kdbench.errors import DataError
from kdbench.manifest import read_json

INDEX_COLUMNS = ("row", "source", "patient", "video", "view", "split", "frame")


class FrameStore:
    """A prepared frame store: uint8 frames [N, S, S] plus per-row labels and metadata."""

    path: Path
    size: int
    store_hash: str
    manifest: dict
    frames: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    sources: np.ndarray
    patients: np.ndarray
    videos: np.ndarray
    frame_ids: np.ndarray

    @classmethod
    def open(cls, path: str | Path) -> FrameStore:
        """Open the store at path; DataError if it is missing, incomplete or inconsistent."""
        path = Path(path).expanduser()
        if not path.is_dir():
            raise DataError(f"frame store {path} does not exist; create it with `kdbench data prepare`")
        manifest_path = path / "manifest.json"
        if not manifest_path.is_file():
            hint = " (a prepare run was interrupted; rerun it to finish)" if (path / "parts").is_dir() else ""
            raise DataError(f"frame store {path} has no manifest.json{hint}; expected a finished `kdbench data prepare` output")
        try:
            manifest = read_json(manifest_path)
        except ValueError as err:
            raise DataError(f"{manifest_path} is not valid JSON ({err})") from None
        if manifest.get("stage") != "frame_store":
            raise DataError(f"{manifest_path}: stage is {manifest.get('stage')!r}, expected 'frame_store'")
        if manifest.get("format_version") != 1:
            raise DataError(f"{manifest_path}: format_version {manifest.get('format_version')!r}, expected 1")
        for name in ("frames.npy", "index.csv"):
            if not (path / name).is_file():
                raise DataError(f"frame store {path} has no {name}; rerun `kdbench data prepare`")
        try:
            frames = np.load(path / "frames.npy", mmap_mode="r")
        except ValueError as err:
            raise DataError(f"{path / 'frames.npy'} is not a readable .npy file ({err})") from None
        try:
            n, size = int(manifest["n_frames"]), int(manifest["config"]["size"])
            store_hash = str(manifest["store_hash"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"{manifest_path}: missing or bad key {err}; expected n_frames, config.size, store_hash") from None
        if frames.dtype != np.uint8 or frames.shape != (n, size, size):
            raise DataError(
                f"{path / 'frames.npy'} holds {frames.dtype} {tuple(frames.shape)}, expected uint8 "
                f"{(n, size, size)} from manifest.json; rerun `kdbench data prepare --force`"
            )
        columns = _read_index(path / "index.csv", n)

        store = cls.__new__(cls)
        store.path, store.size, store.manifest = path, size, manifest
        store.store_hash = store_hash
        store.frames = frames
        store.sources = columns["source"]
        store.patients = columns["patient"]
        store.videos = columns["video"]
        store.splits = columns["split"]
        store.frame_ids = columns["frame"].astype(np.int64)
        store.labels = np.array([VIEW_INDEX[v] for v in columns["view"]], dtype=np.int64)
        return store

    def indices(self, split: str) -> np.ndarray:
        """Sorted int64 row indices of one split."""
        if split not in SPLITS:
            raise DataError(f"split {split!r} does not exist; expected one of {', '.join(SPLITS)}")
        return np.flatnonzero(self.splits == split).astype(np.int64)

    def __len__(self) -> int:
        """Number of frames (rows) in the store."""
        return int(self.frames.shape[0])

    def __repr__(self) -> str:
        return f"FrameStore({str(self.path)!r}, n={len(self)}, size={self.size}, hash={self.store_hash})"


def _read_index(path: Path, n: int) -> dict[str, np.ndarray]:
    """Read index.csv into column arrays, checking its header, row numbering and view names."""
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = tuple(next(reader, ()))
        if header != INDEX_COLUMNS:
            raise DataError(f"{path}: header {list(header)}, expected {list(INDEX_COLUMNS)}")
        rows = list(reader)
    if len(rows) != n:
        raise DataError(f"{path} has {len(rows)} rows but manifest.json says n_frames={n}; rerun prepare --force")
    if n == 0:
        return {c: np.zeros(0, dtype=object if c != "frame" else np.int64) for c in INDEX_COLUMNS}
    table = np.array(rows, dtype=str)
    if not np.array_equal(table[:, 0].astype(np.int64), np.arange(n)):
        raise DataError(f"{path}: column 'row' is not 0..{n - 1} in order")
    bad = ~np.isin(table[:, 4], VIEWS)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path} line {i + 2}, column 'view': {str(table[i, 4])!r}, expected one of {', '.join(VIEWS)}")
    bad = ~np.isin(table[:, 5], SPLITS)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path} line {i + 2}, column 'split': {str(table[i, 5])!r}, expected one of {', '.join(SPLITS)}")
    return {c: table[:, j] for j, c in enumerate(INDEX_COLUMNS)}
