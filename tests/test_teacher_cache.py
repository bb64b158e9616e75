"""The teacher-logit cache: computed once, reused, rebuilt when stale, identical to a live teacher."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from kdbench.distill.cache import cache_key, cache_paths, load_or_build_teacher_logits
from kdbench.train import TrainConfig, train_student


@pytest.fixture(scope="module")
def teacher_pt(tiny_store, tmp_path_factory):
    """A stand-in teacher (a small student architecture) trained for one epoch."""
    out = tmp_path_factory.mktemp("teacher")
    result = train_student(tiny_store, "mobilenet_v3_small", "scratch", {},
                           TrainConfig(epochs=1, batch_size=16, device="cpu", seed=1), out_dir=out, progress=False)
    return result.checkpoint and out / "best.pt"


def test_cache_matches_the_teacher_and_is_reused(tiny_store, teacher_pt):
    from kdbench.models.checkpoint import load_checkpoint

    logits = load_or_build_teacher_logits(tiny_store, teacher_pt)
    assert logits.shape == (len(tiny_store), 4) and logits.dtype == np.float32
    model, _ = load_checkpoint(teacher_pt)
    model.eval()
    with torch.no_grad():
        x = torch.from_numpy(np.asarray(tiny_store.frames[:8], np.float32) / 255.0)[:, None]
        np.testing.assert_allclose(logits[:8], model(x).numpy(), rtol=1e-5, atol=1e-5)
    key, _ = cache_key(teacher_pt, tiny_store)
    npy, _ = cache_paths(tiny_store, key)
    stamp = npy.stat().st_mtime_ns
    again = load_or_build_teacher_logits(tiny_store, teacher_pt)
    assert npy.stat().st_mtime_ns == stamp  # read, not recomputed
    np.testing.assert_array_equal(again, logits)


def test_corrupted_cache_is_detected_and_rebuilt(tiny_store, teacher_pt, caplog):
    good = load_or_build_teacher_logits(tiny_store, teacher_pt)
    key, _ = cache_key(teacher_pt, tiny_store)
    npy, _ = cache_paths(tiny_store, key)
    np.save(npy, np.zeros_like(good))  # same shape, wrong values: only the hash check can catch it
    rebuilt = load_or_build_teacher_logits(tiny_store, teacher_pt)
    np.testing.assert_array_equal(rebuilt, good)
    assert "stale" in caplog.text and "hash mismatch" in caplog.text


def test_changed_teacher_gets_a_new_entry(tiny_store, teacher_pt, tmp_path):
    from kdbench.models.checkpoint import load_checkpoint, save_checkpoint

    model, meta = load_checkpoint(teacher_pt)
    with torch.no_grad():
        list(model.parameters())[-1].add_(0.5)  # the head bias: batch norm cannot undo it
    other = tmp_path / "other.pt"
    save_checkpoint(model, other, arch=meta["arch"], num_classes=4, input_size=tiny_store.size)
    assert cache_key(other, tiny_store)[0] != cache_key(teacher_pt, tiny_store)[0]
    a = load_or_build_teacher_logits(tiny_store, teacher_pt)
    b = load_or_build_teacher_logits(tiny_store, other)
    assert not np.allclose(a, b)


def test_onnx_teacher_gives_the_same_logits(tiny_store, teacher_pt, tmp_path):
    from kdbench.export.onnx_export import export_onnx
    from kdbench.models.checkpoint import load_checkpoint

    model, _ = load_checkpoint(teacher_pt)
    onnx_path = tmp_path / "teacher.onnx"
    export_onnx(model.eval(), onnx_path, tiny_store.size)
    from_onnx = load_or_build_teacher_logits(tiny_store, onnx_path)
    from_pt = load_or_build_teacher_logits(tiny_store, teacher_pt)
    np.testing.assert_allclose(from_onnx, from_pt, atol=1e-4)


@pytest.mark.parametrize("method", ["vanilla", "ctkd"])
def test_cached_and_live_teacher_train_identically(tiny_store, teacher_pt, tmp_path, method):
    """The cache is an optimisation only: the same seed gives the same student either way."""
    from kdbench.teacher import live_teacher

    cfg = TrainConfig(epochs=1, batch_size=16, device="cpu", seed=5, max_batches_per_epoch=2)
    cached = train_student(tiny_store, "mobilenet_v3_small", method, {}, cfg,
                           teacher_logits=load_or_build_teacher_logits(tiny_store, teacher_pt),
                           out_dir=tmp_path / "cached", progress=False)
    live = train_student(tiny_store, "mobilenet_v3_small", method, {}, cfg, teacher_model=live_teacher(teacher_pt),
                         out_dir=tmp_path / "live", progress=False)
    assert cached.history[0]["train_loss"] == pytest.approx(live.history[0]["train_loss"], rel=1e-4)
    assert cached.metrics["val"]["accuracy"] == live.metrics["val"]["accuracy"]


def test_missing_teacher_file_is_a_clear_error(tiny_store, tmp_path):
    from kdbench.errors import ConfigError

    with pytest.raises(ConfigError, match="does not exist"):
        load_or_build_teacher_logits(tiny_store, tmp_path / "nope.pt")
    assert not os.path.exists(tmp_path / "nope.pt")


def test_frames_changed_in_place_are_not_trusted(tiny_store, teacher_pt, tmp_path):
    """The cache key trusts store_hash: a frame edited after the cache was built must stop the run."""
    import json
    import shutil

    from kdbench.data.store import FrameStore, sample_rows
    from kdbench.errors import DataError

    copy = tmp_path / "store"
    shutil.copytree(tiny_store.path, copy, ignore=shutil.ignore_patterns("teacher_cache"))
    store = FrameStore.open(copy)
    logits = load_or_build_teacher_logits(store, teacher_pt)
    _, meta_path = cache_paths(store, cache_key(teacher_pt, store)[0])
    assert json.loads(meta_path.read_text())["frames_stat"]["frames.npy"][0] == (copy / "frames.npy").stat().st_size

    os.utime(copy / "frames.npy")  # touched, same bytes: rehashed once, then trusted again
    np.testing.assert_array_equal(load_or_build_teacher_logits(store, teacher_pt), logits)

    unsampled = sorted(set(range(len(store))) - set(sample_rows(len(store)).tolist()))
    row = unsampled[0] if unsampled else 0
    frames = np.load(copy / "frames.npy", mmap_mode="r+")
    frames[row] = 255 - frames[row]
    frames.flush()
    del frames
    with pytest.raises(DataError, match=r"frames.npy changed since `kdbench data prepare` wrote it"):
        load_or_build_teacher_logits(store, teacher_pt)
    with pytest.raises(DataError, match=r"frames.npy changed since"):
        load_or_build_teacher_logits(store, teacher_pt, rebuild=True)


def test_unwritable_cache_folder_fails_before_the_teacher_pass(tiny_store, teacher_pt, tmp_path):
    import shutil

    from kdbench.data.store import FrameStore
    from kdbench.errors import ConfigError

    copy = tmp_path / "store"
    shutil.copytree(tiny_store.path, copy, ignore=shutil.ignore_patterns("teacher_cache"))
    (copy / "teacher_cache").write_text("a file where the cache folder should be")
    with pytest.raises(ConfigError, match=r"teacher cache folder .*teacher_cache: exists and is not a folder"):
        load_or_build_teacher_logits(FrameStore.open(copy), teacher_pt)
