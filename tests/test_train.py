"""One training run: metrics, determinism, early stopping, non-finite losses, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kdbench.data.views import VIEWS
from kdbench.train import TrainConfig, train_student

CPU = dict(device="cpu", batch_size=16)


def _weights(run_dir):
    from kdbench.models.checkpoint import load_checkpoint

    model, _ = load_checkpoint(run_dir / "best.pt")
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_run_writes_checkpoint_and_complete_metrics(tiny_store, tmp_path):
    result = train_student(tiny_store, "mobilenet_v3_small", "scratch", {}, TrainConfig(epochs=2, **CPU),
                           out_dir=tmp_path, progress=False)
    assert result.status == "ok" and result.epochs_run == 2
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["student"] == "mobilenet_v3_small" and metrics["method"] == "scratch"
    for split in ("val", "test"):
        m = metrics["metrics"][split]
        rows = tiny_store.indices(split)
        assert m["n"] == len(rows)
        assert set(m["per_class_accuracy"]) == set(VIEWS)
        assert set(m["per_source_accuracy"]) == set(np.unique(tiny_store.sources[rows]))
        assert np.asarray(m["confusion"]).sum() == len(rows)
    assert metrics["wall_time_s"] > 0 and metrics["train_images_per_s"] > 0
    # the checkpoint holds the best epoch's weights: re-evaluating it reproduces the val accuracy
    from kdbench.models.checkpoint import load_checkpoint
    from kdbench.train import predict_logits

    model, meta = load_checkpoint(tmp_path / "best.pt")
    logits, rows = predict_logits(model, tiny_store, "val", 64, torch.device("cpu"))
    acc = float(np.mean(logits.argmax(1) == tiny_store.labels[rows]))
    assert acc == pytest.approx(metrics["metrics"]["val"]["accuracy"])
    assert meta["arch"] == "mobilenet_v3_small"


def test_same_seed_same_weights_other_seed_other_weights(tiny_store, tmp_path):
    cfg = dict(epochs=1, max_batches_per_epoch=2, **CPU)
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        train_student(tiny_store, "mobilenet_v3_small", "scratch", {}, TrainConfig(seed=seed, **cfg),
                      out_dir=tmp_path / name, progress=False)
    a, b, c = (_weights(tmp_path / n) for n in "abc")
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_exploding_run_stops_with_status_instead_of_raising(tiny_store, tmp_path):
    # an absurd learning rate drives the weights to inf within a few steps: a real non-finite loss
    result = train_student(tiny_store, "mobilenet_v3_small", "scratch", {},
                           TrainConfig(epochs=3, lr=1e30, **CPU), out_dir=tmp_path, progress=False)
    assert result.status == "non_finite_loss"
    assert "loss became" in result.message and "epoch" in result.message
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["status"] == "non_finite_loss"


def test_early_stopping_ends_after_patience(tiny_store, tmp_path):
    # lr 0: validation accuracy never improves after epoch 1, so patience 1 stops after 2 epochs
    result = train_student(tiny_store, "mobilenet_v3_small", "scratch", {},
                           TrainConfig(epochs=6, lr=0.0, patience=1, **CPU), progress=False)
    assert result.epochs_run == 2 and result.best_epoch == 0


def test_kd_method_without_teacher_is_refused(tiny_store):
    with pytest.raises(ValueError, match="needs a teacher"):
        train_student(tiny_store, "mobilenet_v3_small", "vanilla", {}, TrainConfig(epochs=1, **CPU), progress=False)


def test_precise_batch_norm_matches_full_batch_statistics(tiny_store):
    """After recalibration, a BN layer's running mean is the plain average of its batch means."""
    from kdbench.data.loader import StoreLoader
    from kdbench.models import create_model
    from kdbench.train import recalibrate_batch_norm

    torch.manual_seed(0)
    model = create_model("mobilenet_v3_small")
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    loader = StoreLoader(tiny_store, "train", 8)
    model.eval()
    captured = []
    handle = bn.register_forward_hook(lambda mod, inp, out: captured.append(inp[0].mean(dim=(0, 2, 3))))
    assert recalibrate_batch_norm(model, loader, max_batches=3, device=torch.device("cpu"))
    handle.remove()
    assert len(captured) == 3
    expected = torch.stack(captured).mean(0)  # equal-size batches: mean of batch means
    torch.testing.assert_close(bn.running_mean, expected, rtol=1e-5, atol=1e-6)
    assert bn.momentum == 0.1  # restored
    assert not model.training  # the eval mode it had before is restored
