"""FrameStore: read access to a frame store written by ``kdbench data prepare``.

``frames.npy`` is opened as a read-only memmap, so opening is instant and many processes share the
page cache; ``index.csv`` gives each row's label, split, source, patient and video. Rows of the ``unlabelled``
split (``--unlabelled``) have an empty view and label -1 and come after every labelled row;
``indices("train" | "val" | "test")`` never includes them.

Integrity: ``data prepare`` records in the manifest's ``integrity`` the size of ``frames.npy``, the
hashes of both files and a hash of a fixed sample of rows. ``open`` checks the size, the sample and
``index.csv`` (cheap: a few hundred KB read), so frames changed in place are caught in most cases;
``verify_store`` (``kdbench data verify``) rehashes every byte against ``store_hash``. Stores written
before ``integrity`` existed still open; ``verify_store`` checks them against ``store_hash``.
"""

from __future__ import annotations

import csv
import hashlib
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from kdbench.data.views import NO_LABEL, STORE_SPLITS, UNLABELLED, VIEW_INDEX, VIEWS
from kdbench.errors import DataError
from kdbench.manifest import config_hash, file_hash, read_json

INDEX_COLUMNS = ("row", "source", "patient", "video", "view", "split", "frame")
SAMPLE_ROWS = 64  # rows hashed on every open


class FrameStore:
    """A prepared frame store: uint8 frames [N, S, S] plus per-row labels and metadata."""

    path: Path
    size: int
    store_hash: str
    manifest: dict
    frames: np.ndarray
    labels: np.ndarray  # int64 index into VIEWS; NO_LABEL (-1) on unlabelled rows
    splits: CodedColumn  # text columns: int32 codes into tables of distinct values, read like str arrays
    sources: CodedColumn
    patients: CodedColumn
    videos: CodedColumn
    frame_ids: np.ndarray

    @classmethod
    def open(cls, path: str | Path, sampled_check: bool = True) -> FrameStore:
        """Open the store at path; DataError if it is missing, incomplete, inconsistent or changed (sampled)."""
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
        if sampled_check and "integrity" in manifest:
            _check_sampled(path, manifest["integrity"], frames)

        store = cls.__new__(cls)
        store.path, store.size, store.manifest = path, size, manifest
        store.store_hash = store_hash
        store.frames = frames
        store.sources = columns["source"]
        store.patients = columns["patient"]
        store.videos = columns["video"]
        store.splits = columns["split"]
        store.frame_ids = columns["frame"]
        view = columns["view"]
        store.labels = np.array([VIEW_INDEX.get(v, NO_LABEL) for v in view.table.tolist()], dtype=np.int64)[view.codes]
        return store

    def indices(self, split: str) -> np.ndarray:
        """Sorted int64 row indices of one split ("unlabelled" gives the rows without a label)."""
        if split not in STORE_SPLITS:
            raise DataError(f"split {split!r} does not exist; expected one of {', '.join(STORE_SPLITS)}")
        return np.flatnonzero(self.splits == split).astype(np.int64)

    def __len__(self) -> int:
        """Number of frames (rows) in the store."""
        return int(self.frames.shape[0])

    def __repr__(self) -> str:
        return f"FrameStore({str(self.path)!r}, n={len(self)}, size={self.size}, hash={self.store_hash})"


def sample_rows(n: int, k: int = SAMPLE_ROWS) -> np.ndarray:
    """The rows hashed by the cheap check: ``k`` rows spread evenly from the first to the last."""
    return np.unique(np.linspace(0, max(n - 1, 0), min(n, k)).round().astype(np.int64))


def sample_hash(frames: np.ndarray, rows: np.ndarray) -> str:
    """First 16 hex digits of the sha256 of the given rows' bytes."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(np.ascontiguousarray(frames[int(row)]).tobytes())
    return digest.hexdigest()[:16]


def integrity_record(path: Path, n: int) -> dict:
    """What ``data prepare`` records for the checks: sizes, full hashes and the sampled-rows hash."""
    frames = np.load(path / "frames.npy", mmap_mode="r")
    return {"frames_bytes": (path / "frames.npy").stat().st_size, "frames_hash": file_hash(path / "frames.npy"),
            "index_hash": file_hash(path / "index.csv"), "sample_rows": int(min(n, SAMPLE_ROWS)),
            "sample_hash": sample_hash(frames, sample_rows(n))}


def store_hash_of(frames_hash: str, index_hash: str) -> str:
    """The store hash: one hash of the frames file's and the index file's hashes."""
    return config_hash({"frames": frames_hash, "index": index_hash})


def _changed(path: Path, what: str) -> DataError:
    return DataError(f"frame store {path}: {what} changed since `kdbench data prepare` wrote it; run "
                     f"`kdbench data verify {path}`, then rebuild it with `kdbench data prepare --force`")


def _check_sampled(path: Path, integrity: dict, frames: np.ndarray) -> None:
    """The cheap check on open: frames.npy's size, a sampled-rows hash and index.csv's hash."""
    size = (path / "frames.npy").stat().st_size
    if size != integrity.get("frames_bytes", size):
        raise _changed(path, f"frames.npy ({size} bytes, manifest says {integrity['frames_bytes']})")
    rows = sample_rows(len(frames), int(integrity.get("sample_rows", SAMPLE_ROWS)))
    if sample_hash(frames, rows) != integrity.get("sample_hash"):
        raise _changed(path, f"frames.npy (the hash of {len(rows)} sampled rows differs)")
    if file_hash(path / "index.csv") != integrity.get("index_hash"):
        raise _changed(path, "index.csv")


def verify_store(path: str | Path) -> dict:
    """Open a store and rehash every byte against its store_hash; DataError naming what changed."""
    return verify_frames(FrameStore.open(path, sampled_check=False))


def verify_frames(store: FrameStore) -> dict:
    """Rehash an open store's frames.npy and index.csv against its store_hash; DataError if changed."""
    frames_hash, index_hash = file_hash(store.path / "frames.npy"), file_hash(store.path / "index.csv")
    if store_hash_of(frames_hash, index_hash) != store.store_hash:
        integrity = store.manifest.get("integrity", {})
        changed = [name for name, now, key in (("frames.npy", frames_hash, "frames_hash"),
                                               ("index.csv", index_hash, "index_hash")) if integrity.get(key) != now]
        what = " and ".join(changed) if integrity else "frames.npy or index.csv (store_hash differs)"
        raise DataError(f"frame store {store.path}: {what} changed since `kdbench data prepare` wrote it (full "
                        f"rehash); rebuild it with `kdbench data prepare --force`")
    return {"path": str(store.path), "n_frames": len(store), "store_hash": store.store_hash,
            "bytes": (store.path / "frames.npy").stat().st_size + (store.path / "index.csv").stat().st_size,
            "integrity_recorded": "integrity" in store.manifest}


def frames_stat(store: FrameStore) -> dict:
    """Size, mtime and inode of frames.npy and index.csv: unchanged stat means unchanged files."""
    out = {}
    for name in ("frames.npy", "index.csv"):
        st = (store.path / name).stat()
        out[name] = [st.st_size, st.st_mtime_ns, st.st_ino]
    return out


class CodedColumn:
    """A text column of the index held as int32 codes into a small table of its distinct values.

    It reads like the numpy string array it replaces: ``col[i]`` is a str, ``col[rows]`` / ``col[a:b]`` a str array
    of just those rows, ``col == "train"`` a bool array (compared on the codes), ``np.asarray(col)`` every row
    decoded, iteration and ``len`` as an array's. At 350k rows it takes a few MB where the string array took
    hundreds."""

    __slots__ = ("codes", "table")

    def __init__(self, codes: np.ndarray, table: np.ndarray) -> None:
        self.codes, self.table = codes, table

    @classmethod
    def encode(cls, values: Any) -> CodedColumn:
        """The coded form of a sequence of strings."""
        table, codes = np.unique(np.asarray(values, dtype=str), return_inverse=True)
        return cls(codes.astype(np.int32).reshape(-1), table)

    shape = property(lambda self: self.codes.shape)
    ndim = property(lambda self: 1)
    size = property(lambda self: len(self.codes))
    dtype = property(lambda self: self.table.dtype)

    def __len__(self) -> int:
        return len(self.codes)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, CodedColumn):
            raise TypeError("index a column with row numbers or a mask, not another column")
        picked = self.codes[key]
        return str(self.table[picked]) if np.ndim(picked) == 0 else self.table[picked]

    def __iter__(self) -> Iterator[str]:
        return iter(self.table[self.codes].tolist())

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        decoded = self.table[self.codes]
        return decoded if dtype is None else decoded.astype(dtype)

    def _compare(self, other: Any, equal: bool) -> Any:
        if not isinstance(other, str):
            return np.asarray(self) == other if equal else np.asarray(self) != other
        hit = np.flatnonzero(self.table == other)
        found = np.isin(self.codes, hit) if len(hit) else np.zeros(len(self.codes), bool)
        return found if equal else ~found

    def __eq__(self, other: Any) -> Any:  # type: ignore[override]
        return self._compare(other, True)

    def __ne__(self, other: Any) -> Any:  # type: ignore[override]
        return self._compare(other, False)

    __hash__ = None  # type: ignore[assignment]

    def astype(self, dtype: Any) -> np.ndarray:
        """Every row decoded, as ``dtype``."""
        return np.asarray(self).astype(dtype)

    def tolist(self) -> list[str]:
        """Every row as a Python str."""
        return self.table[self.codes].tolist()

    def __repr__(self) -> str:
        return f"CodedColumn({len(self)} rows, {len(self.table)} distinct)"


_CODED = ("source", "patient", "video", "view", "split")


def _read_index(path: Path, n: int) -> dict[str, Any]:
    """Read index.csv into columns (text ones coded, ``CodedColumn``), checking its header, fields, row numbering
    and view names; rows are read in a stream, so no copy of the file's text is held."""
    maps: dict[str, dict[str, int]] = {c: {} for c in _CODED}
    codes = {c: array("i") for c in _CODED}
    frames = array("q")
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = tuple(next(reader, ()))
        if header != INDEX_COLUMNS:
            raise DataError(f"{path}: header {list(header)}, expected {list(INDEX_COLUMNS)}")
        for i, fields in enumerate(reader):
            frame = fields[6] if len(fields) == len(INDEX_COLUMNS) else ""
            if not frame or fields[0] != str(i) or not (frame.isascii() and frame.isdigit()):
                raise _bad_line(path, i, fields)
            for c, value in zip(_CODED, fields[1:6]):
                known = maps[c]
                codes[c].append(known.setdefault(value, len(known)))
            frames.append(int(frame))
    count = len(frames)
    if count != n:
        raise DataError(f"{path} has {count} rows but manifest.json says n_frames={n}; rerun prepare --force")
    columns: dict[str, Any] = {c: _coded(maps[c], codes[c]) for c in _CODED}
    columns["frame"] = np.frombuffer(frames, dtype=np.int64).copy() if count else np.zeros(0, np.int64)
    _check_coded(path, columns)
    return columns


def _bad_line(path: Path, i: int, fields: list[str]) -> DataError:
    """The DataError naming the first malformed line of index.csv."""
    if len(fields) != len(INDEX_COLUMNS):
        return DataError(f"{path} line {i + 2}: {len(fields)} fields, expected {len(INDEX_COLUMNS)} "
                         f"({', '.join(INDEX_COLUMNS)})")
    if fields[0] != str(i):
        return DataError(f"{path} line {i + 2}, column 'row': {fields[0]!r}; column 'row' is not 0..N-1 in order")
    return DataError(f"{path} line {i + 2}, column 'frame': {fields[6]!r}, expected a whole number >= 0")


def _coded(known: dict[str, int], codes: array) -> CodedColumn:
    """A CodedColumn from first-seen codes, its table sorted (codes renumbered to match)."""
    table = np.array(list(known), dtype=str) if known else np.zeros(0, dtype=str)
    order = np.argsort(table, kind="stable")
    rank = np.empty(len(order), np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    first = np.frombuffer(codes, dtype=np.int32) if len(codes) else np.zeros(0, np.int32)
    return CodedColumn(rank[first] if len(first) else first, table[order])


def _check_coded(path: Path, columns: dict[str, Any]) -> None:
    """Every split is a store split; a labelled row's view is a view, an unlabelled row's is empty."""
    split, view = columns["split"], columns["view"]
    bad = ~np.isin(split.table, STORE_SPLITS)
    if bad.any():
        i = int(np.flatnonzero(np.isin(split.codes, np.flatnonzero(bad)))[0])
        raise DataError(f"{path} line {i + 2}, column 'split': {split[i]!r}, expected one of {', '.join(STORE_SPLITS)}")
    unlabelled = split == UNLABELLED
    view_ok = np.isin(view.table, VIEWS)[view.codes]
    empty = (view.table == "")[view.codes]
    bad_rows = np.where(unlabelled, ~empty, ~view_ok)
    if bad_rows.any():
        i = int(np.flatnonzero(bad_rows)[0])
        expected = "empty (an unlabelled row)" if unlabelled[i] else f"one of {', '.join(VIEWS)}"
        raise DataError(f"{path} line {i + 2}, column 'view': {view[i]!r}, expected {expected}")
