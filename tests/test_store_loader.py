"""FrameStore (opening, validation) and StoreLoader (batches straight from the memmap)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from echo_fixtures import make_all
from kdbench.data.loader import StoreLoader
from kdbench.data.prepare import prepare_store
from kdbench.data.store import FrameStore
from kdbench.data.views import VIEWS
from kdbench.errors import DataError


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    base = tmp_path_factory.mktemp("store")
    sources = make_all(base / "data", n=6, frames=6)
    prepare_store(sources, base / "store", size=32, frames_per_video=4, workers=1)
    return base / "store"


@pytest.fixture(scope="module")
def store(store_path):
    return FrameStore.open(store_path)


def test_store_columns_match_index_csv(store, store_path):
    lines = (store_path / "index.csv").read_text().splitlines()[1:]
    assert len(store) == len(lines) == store.frames.shape[0]
    assert isinstance(store.frames, np.memmap) and store.frames.dtype == np.uint8
    for i in (0, len(lines) // 2, len(lines) - 1):
        row, source, patient, video, view, split, frame = lines[i].split(",")
        assert int(row) == i
        assert (store.sources[i], store.patients[i], store.videos[i], store.splits[i]) == (source, patient, video, split)
        assert VIEWS[store.labels[i]] == view and store.labels.dtype == np.int64
    assert store.size == 32 and store.store_hash == json.loads((store_path / "manifest.json").read_text())["store_hash"]


def test_indices_are_sorted_and_partition_the_store(store):
    parts = [store.indices(s) for s in ("train", "val", "test")]
    for idx in parts:
        assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(store)))
    with pytest.raises(DataError, match="split 'dev' does not exist"):
        store.indices("dev")


def test_open_rejects_missing_incomplete_and_inconsistent_stores(store_path, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        FrameStore.open(tmp_path / "none")
    (tmp_path / "half" / "parts").mkdir(parents=True)
    with pytest.raises(DataError, match="no manifest.json.*interrupted"):
        FrameStore.open(tmp_path / "half")
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("manifest.json", "frames.npy", "index.csv"):
        (broken / name).write_bytes((store_path / name).read_bytes())
    lines = (broken / "index.csv").read_text().splitlines()
    (broken / "index.csv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError, match=r"index.csv has \d+ rows but manifest.json says n_frames"):
        FrameStore.open(broken)
    lines[1] = lines[1].replace(",A4C,", ",A5C,")
    (broken / "index.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"index.csv line 2, column 'view': 'A5C'"):
        FrameStore.open(broken)
    np.save(broken / "frames.npy", np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(DataError, match=r"frames.npy holds uint8 \(3, 32, 32\), expected uint8"):
        FrameStore.open(broken)


def test_batches_hold_the_right_frames_labels_and_rows(store):
    loader = StoreLoader(store, "train", batch_size=5)
    rows = store.indices("train")
    assert len(loader) == -(-len(rows) // 5)
    seen = []
    for x, y, idx in loader:
        assert x.dtype == torch.float32 and x.shape == (len(idx), 1, 32, 32)
        assert y.dtype == torch.int64 and idx.dtype == torch.int64
        i = idx.numpy()
        assert np.all(np.diff(i) > 0)  # sorted within the batch
        assert torch.equal(x[:, 0], torch.from_numpy(store.frames[i].astype(np.float32) / 255.0))
        assert np.array_equal(y.numpy(), store.labels[i])
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        seen.append(i)
    assert np.array_equal(np.concatenate(seen), rows)  # unshuffled: the split in order, once


def test_shuffle_is_deterministic_per_seed_and_epoch(store):
    def epoch_rows(seed: int, epoch: int) -> list[list[int]]:
        loader = StoreLoader(store, "train", batch_size=4, shuffle=True, seed=seed)
        loader.set_epoch(epoch)
        return [idx.tolist() for _, _, idx in loader]

    a = epoch_rows(0, 0)
    assert a == epoch_rows(0, 0)
    assert a != epoch_rows(0, 1) and a != epoch_rows(1, 0)
    flat = sorted(i for batch in a for i in batch)
    assert flat == store.indices("train").tolist()  # a permutation: every row exactly once
    assert [i for batch in a for i in batch] != flat  # and actually shuffled


def test_drop_last_and_whole_store_iteration(store):
    n = len(store.indices("train"))
    loader = StoreLoader(store, "train", batch_size=7, drop_last=True)
    sizes = [len(idx) for _, _, idx in loader]
    assert len(loader) == n // 7 == len(sizes) and set(sizes) == {7}
    everything = StoreLoader(store, None, batch_size=64)
    assert sum(len(idx) for _, _, idx in everything) == len(store)
