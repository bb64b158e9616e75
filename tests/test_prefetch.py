"""The prefetching feed gives the loader's own batches, and training checks its losses once per window."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from kdbench.data.augment import AugmentedLoader
from kdbench.data.loader import StoreLoader
from kdbench.data.prefetch import prefetch, to_device


def _same(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert len(x) == len(y) and all(torch.equal(p, q) for p, q in zip(x, y))


@pytest.mark.parametrize("augmented", [False, True])
def test_prefetch_yields_the_loader_batches_in_order(tiny_store, augmented: bool) -> None:
    loader = (AugmentedLoader(tiny_store, "train", 5, versions=3, seed=2) if augmented
              else StoreLoader(tiny_store, "train", 5, shuffle=True, seed=2))
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        want = list(loader)
        with prefetch(loader, "cpu") as batches:
            got = list(batches)
        _same(got, want)
    with prefetch(loader, "cpu", limit=2) as batches:
        _same(list(batches), want[:2])
    for workers in (2, 3):  # batches made by several threads at once still come in order
        with prefetch(loader, "cpu", workers=workers) as batches:
            _same(list(batches), want)
        with prefetch(loader, "cpu", limit=1, workers=workers) as batches:
            _same(list(batches), want[:1])


def test_stopping_early_ends_the_thread_and_errors_reach_the_consumer(tiny_store) -> None:
    loader = StoreLoader(tiny_store, "train", 2, shuffle=True)
    before = threading.active_count()
    with prefetch(loader, "cpu", depth=1) as batches:
        next(batches)
    assert threading.active_count() == before
    augmented = AugmentedLoader(tiny_store, "train", 2, versions=2)
    with prefetch(augmented, "cpu", depth=1, workers=3) as batches:
        next(batches)
    assert threading.active_count() == before

    class Broken:
        def __iter__(self):
            yield from list(loader)[:1]
            raise ValueError("frame 7 unreadable")

    with pytest.raises(ValueError, match="frame 7"), prefetch(Broken(), "cpu") as batches:
        list(batches)


def test_raw_batches_become_the_loader_values_on_the_device(tiny_store) -> None:
    from kdbench.data.resized import resized_store

    for store in (tiny_store, resized_store(tiny_store, 40)):
        loader = StoreLoader(store, "val", 7)
        for plain, raw in zip(loader, loader.raw_batches()):
            assert raw[0].dtype == torch.uint8 and raw[0].shape[-1] == tiny_store.size  # resized on the device
            _same([to_device(raw, torch.device("cpu"), raw=True, size=store.size)], [plain])


@pytest.mark.parametrize(("augmented", "size"), [(False, None), (True, None), (False, 40), (True, 40)])
def test_the_cuda_feed_gives_the_same_batches(tiny_store, augmented: bool, size: int | None) -> None:
    """The CUDA branch's sources (uint8 frames divided on the device; augmented draws finished there), run on the
    CPU: the same batches (augmented: within float32 rounding, see finish_batch_torch); also through input_size."""
    from kdbench.data.prefetch import _source
    from kdbench.data.resized import resized_store

    store = resized_store(tiny_store, size)
    loader = (AugmentedLoader(store, "train", 5, versions=3, seed=2) if augmented
              else StoreLoader(store, "train", 5, shuffle=True, seed=2))
    loader.set_epoch(1)
    source, finish = _source(loader, torch.device("cpu"), cuda=True, workers=2)
    got, want = [finish(batch) for batch in source], list(loader)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        torch.testing.assert_close(g[0], w[0], rtol=0, atol=0 if not augmented else 1e-5)
        assert all(torch.equal(p, q) for p, q in zip(g[1:], w[1:]))


def test_a_non_finite_loss_is_found_at_the_window_check_and_named(tiny_store) -> None:
    from kdbench.distill.registry import create_method
    from kdbench.models import create_model
    from kdbench.train import TrainConfig, fit, seed_everything

    seed_everything(0)
    method = create_method("scratch")
    calls = {"n": 0}
    forward = method.forward

    def nan_on_third(student_logits, teacher_logits, targets, epoch):
        calls["n"] += 1
        terms = forward(student_logits, teacher_logits, targets, epoch)
        return {k: v * float("nan") for k, v in terms.items()} if calls["n"] == 3 else terms

    method.forward = nan_on_third
    cfg = TrainConfig(epochs=2, batch_size=4, precise_bn_batches=0, device="cpu", fast_path="off")
    result = fit(create_model("mobilenet_v3_small"), method, tiny_store, cfg, progress=False)
    assert result.status == "non_finite_loss" and result.epochs_run == 0
    assert "loss became nan at epoch 0 batch 2" in result.message and "check of batches 0-" in result.message


def test_epoch_windows_count_only_the_batches_before_a_non_finite_loss() -> None:
    from kdbench.train import _Epoch

    out = _Epoch(epoch=4, check_every=3)
    losses = [1.0, 2.0, 3.0, 4.0, float("inf"), 6.0]
    results = [out.add(b, torch.tensor(v), {"ce": torch.tensor(v)}, 10, b % 2) for b, v in enumerate(losses)]
    assert results == [True, True, True, True, True, False]
    assert out.status == "non_finite_loss" and "epoch 4 batch 4" in out.message and "batches 3-5" in out.message
    out.finish()
    assert out.images == 40 and out.unlabelled == 2 and out.terms == {"ce": 100.0}
    assert np.isfinite(out.terms["ce"])
