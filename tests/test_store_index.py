"""The store's coded index reads like the string arrays it replaced, and bad lines are named."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest

from kdbench.data.store import INDEX_COLUMNS, CodedColumn, FrameStore
from kdbench.errors import DataError


def _plain(store: FrameStore) -> dict[str, np.ndarray]:
    with open(store.path / "index.csv", newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    table = np.array(rows, dtype=str)
    return {c: table[:, j] for j, c in enumerate(INDEX_COLUMNS)}


def test_columns_read_like_string_arrays(tiny_store) -> None:
    plain = _plain(tiny_store)
    rows = np.array([5, 0, 17, 5])
    mask = np.arange(len(tiny_store)) % 3 == 0
    for name, column in (("source", tiny_store.sources), ("patient", tiny_store.patients),
                         ("video", tiny_store.videos), ("split", tiny_store.splits)):
        want = plain[name]
        assert isinstance(column, CodedColumn) and len(column) == len(want) and column.shape == want.shape
        assert np.array_equal(np.asarray(column), want)
        assert column.tolist() == want.tolist() and list(column) == list(want)
        assert column[3] == want[3] and isinstance(column[3], str)
        for key in (rows, mask, slice(2, 9), slice(None, None, -4)):
            assert np.array_equal(column[key], want[key])
        assert np.array_equal(column == want[0], want == want[0]) and np.array_equal(column != want[0], want != want[0])
        assert not (column == "no such value").any()
        assert np.array_equal(column.astype(str), want) and set(column) == set(want)
        assert np.array_equal(np.unique(column), np.unique(want))
    assert np.array_equal(tiny_store.frame_ids, plain["frame"].astype(np.int64))
    for split in ("train", "val", "test"):
        assert np.array_equal(tiny_store.indices(split), np.flatnonzero(plain["split"] == split))


def test_encode_round_trips() -> None:
    values = ["b", "a", "", "b", "c"]
    column = CodedColumn.encode(values)
    assert column.tolist() == values and column.codes.dtype == np.int32 and list(column.table) == ["", "a", "b", "c"]


@pytest.mark.parametrize(("line", "edit", "match"), [
    (3, lambda f: f[:-1], r"line 4: 6 fields, expected 7"),
    (4, lambda f: ["9", *f[1:]], r"line 5, column 'row': '9'"),
    (2, lambda f: [*f[:6], "x1"], r"line 3, column 'frame': 'x1'"),
    (6, lambda f: [*f[:5], "training", f[6]], r"line 7, column 'split': 'training'"),
    (1, lambda f: [*f[:4], "A3C", *f[5:]], r"line 2, column 'view': 'A3C'"),
])
def test_bad_index_lines_are_named(tiny_store, tmp_path, line, edit, match) -> None:
    copy = tmp_path / "store"
    shutil.copytree(tiny_store.path, copy, ignore=shutil.ignore_patterns("teacher_cache"))
    with open(copy / "index.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    rows[line] = edit(rows[line])
    with open(copy / "index.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(DataError, match=match):
        FrameStore.open(copy)
