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


# ---- non-finite weights, epoch selection, predictions, CTKD's optimizer, formats, threads ---------


def _nan_on_training_call(model, call: int):
    """A forward hook that, on the ``call``-th training forward, writes NaN into the classifier's weights.

    The batch's loss is already computed (finite); its backward and optimizer step then spread the
    NaN, as a real overflow on the last batch of an epoch would.
    """
    seen = {"n": 0}
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]

    def hook(module, inputs, output):
        if module.training:
            seen["n"] += 1
            if seen["n"] == call:
                last.weight.data.view(-1)[0] = float("nan")  # .data: behind autograd's back, like a kernel bug

    return model.register_forward_hook(hook)


@pytest.mark.parametrize("epochs", [1, 2])
def test_nan_weights_on_the_last_batch_end_the_run_as_non_finite(tiny_store, tmp_path, epochs):
    from kdbench.distill.registry import create_method
    from kdbench.models import create_model
    from kdbench.train import fit, seed_everything

    seed_everything(0)
    model = create_model("mobilenet_v3_small")
    _nan_on_training_call(model, call=2 * epochs)  # the last batch of the last epoch (2 batches per epoch)
    cfg = TrainConfig(epochs=epochs, max_batches_per_epoch=2, precise_bn_batches=0, **CPU)
    result = fit(model, create_method("scratch"), tiny_store, cfg, out_dir=tmp_path, progress=False,
                 checkpoint_meta={"arch": "mobilenet_v3_small"})
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert result.status == saved["status"] == "non_finite"
    assert f"weights became non-finite in epoch {epochs - 1}" in saved["message"]
    if epochs == 1:  # no finite epoch: no checkpoint, no predictions, no metrics
        assert not (tmp_path / "best.pt").exists() and not (tmp_path / "predictions.npz").exists()
        assert saved["metrics"] == {} and saved["best_epoch"] == -1
    else:  # the finite first epoch is what is kept and saved
        assert saved["best_epoch"] == 0 and saved["epochs_run"] == 1
        assert torch.isfinite(_weights(tmp_path)).all()


@pytest.mark.parametrize("select_on", ["val_accuracy", "val_macro_f1"])
def test_the_kept_epoch_is_the_best_on_the_selection_figure(tiny_store, select_on):
    result = train_student(tiny_store, "mobilenet_v3_small", "scratch", {},
                           TrainConfig(epochs=3, lr=3e-3, max_batches_per_epoch=2, select_on=select_on, **CPU),
                           progress=False)
    values = [r[select_on] for r in result.history]
    assert result.best_epoch == int(np.argmax(values))  # the first epoch reaching the maximum
    assert result.history[-1]["best_score"] == max(values)
    key = "macro_f1" if select_on == "val_macro_f1" else "accuracy"
    assert result.metrics["val"][key] == pytest.approx(values[result.best_epoch])


def test_bad_train_settings_are_config_errors():
    from kdbench.errors import ConfigError

    with pytest.raises(ConfigError, match="select_on='test_accuracy' is not allowed"):
        TrainConfig(select_on="test_accuracy")
    with pytest.raises(ConfigError, match="method_optimizer='adam' is not allowed"):
        TrainConfig(method_optimizer="adam")
    with pytest.raises(ConfigError, match="fast_path='fast' is not allowed"):
        TrainConfig(fast_path="fast")


def test_predictions_file_matches_the_reported_metrics(tiny_store, tmp_path):
    train_student(tiny_store, "mobilenet_v3_small", "scratch", {},
                  TrainConfig(epochs=1, max_batches_per_epoch=2, **CPU), out_dir=tmp_path, progress=False)
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    with np.load(tmp_path / "predictions.npz") as doc:
        for split in ("val", "test"):
            logits, rows = doc[f"{split}_logits"], doc[f"{split}_rows"]
            assert logits.dtype == np.float32 and logits.shape == (len(rows), len(VIEWS))
            assert np.array_equal(rows, tiny_store.indices(split))
            acc = float(np.mean(logits.argmax(1) == tiny_store.labels[rows]))
            assert acc == pytest.approx(metrics[split]["accuracy"])
            clips = {f"{s}/{v}" for s, v in zip(tiny_store.sources[rows], tiny_store.videos[rows])}
            assert metrics[split]["n_clips"] == len(clips) and 0 <= metrics[split]["clip_accuracy"] <= 1


@pytest.mark.parametrize("method_optimizer, moves", [("student", False), ("sgd", True)])
def test_ctkd_temperature_follows_the_students_optimizer_by_default(tiny_store, method_optimizer, moves):
    """With the student's learning rate at 0, the temperature stays put in the student's optimizer
    (the official CTKD recipe) and moves only on its own SGD (the option)."""
    from kdbench.distill.registry import create_method
    from kdbench.models import create_model
    from kdbench.train import fit

    teacher = np.random.default_rng(0).normal(size=(len(tiny_store), len(VIEWS))).astype(np.float32) * 3
    method = create_method("ctkd", temperature=4.0)
    theta0 = float(method.theta.detach())
    cfg = TrainConfig(epochs=1, lr=0.0, max_batches_per_epoch=2, method_optimizer=method_optimizer, **CPU)
    fit(create_model("mobilenet_v3_small"), method, tiny_store, cfg, teacher_logits=teacher, progress=False)
    assert (float(method.theta.detach()) != theta0) is moves


def test_fixed_format_is_used_and_recorded(tiny_store, tmp_path):
    result = train_student(tiny_store, "mobilenet_v3_small", "scratch", {},
                           TrainConfig(epochs=1, max_batches_per_epoch=2, fast_path="channels_last", **CPU),
                           out_dir=tmp_path, progress=False)
    saved = json.loads((tmp_path / "metrics.json").read_text())["fast_path"]
    assert result.status == "ok"
    assert saved["train"]["format"] == saved["eval"]["format"] == "channels_last"
    assert saved["train"]["source"] == "config"
    # the checkpoint is written in the plain layout and reloads to the reported accuracy
    test_run = json.loads((tmp_path / "metrics.json").read_text())["metrics"]["val"]["accuracy"]
    from kdbench.models.checkpoint import load_checkpoint
    from kdbench.train import predict_logits

    model, _ = load_checkpoint(tmp_path / "best.pt")
    assert all(p.is_contiguous() for p in model.parameters())
    logits, rows = predict_logits(model, tiny_store, "val", 64, torch.device("cpu"))
    assert float(np.mean(logits.argmax(1) == tiny_store.labels[rows])) == pytest.approx(test_run)


def _thread_ticks() -> dict[str, int]:
    """CPU ticks (user + system) used so far by each OS thread of this process."""
    import os

    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[tid] = int(fields[11]) + int(fields[12])
    return out


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/task"), reason="per-thread CPU times need Linux /proc")
def test_one_thread_worker_evaluates_and_recalibrates_on_one_thread(tiny_store):
    """A search worker given one thread (--workers = cores) must not use more in precise BN, evaluation
    or the metrics' clip bootstrap (numpy's BLAS has its own thread pool). Counted per OS thread, so a
    busy machine cannot hide a second busy thread."""
    from types import SimpleNamespace

    from kdbench.data.loader import StoreLoader
    from kdbench.models import create_model
    from kdbench.train import evaluate_split, predict_logits, recalibrate_batch_norm

    model, cpu = create_model("mobilenet_v3_small"), torch.device("cpu")
    n = 4000  # the bootstrap's matrix products are large enough for BLAS to go parallel
    big = SimpleNamespace(labels=np.arange(n) // 10 % 4, sources=np.array(["tmed2"] * n),
                          videos=np.array([f"v{i // 10}" for i in range(n)]))
    logits = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = _thread_ticks()
        for _ in range(3):
            recalibrate_batch_norm(model, StoreLoader(tiny_store, "train", 16), 4, cpu, "channels_last")
            predict_logits(model, tiny_store, None, 32, cpu, "channels_last")
            evaluate_split(logits, np.arange(n), big, None)
        end = _thread_ticks()
    finally:
        torch.set_num_threads(before)
    used = sorted((end[t] - start.get(t, 0) for t in end), reverse=True)
    assert used[0] > 0 and sum(used[1:]) <= max(2, 0.05 * used[0]), f"CPU ticks per thread: {used}"


def test_predictions_keep_the_teachers_logits_for_the_relative_interval(tiny_store, tmp_path):
    teacher = np.random.default_rng(3).normal(size=(len(tiny_store), len(VIEWS))).astype(np.float32)
    train_student(tiny_store, "mobilenet_v3_small", "scratch", {},
                  TrainConfig(epochs=1, max_batches_per_epoch=1, **CPU), teacher_logits=teacher, out_dir=tmp_path,
                  progress=False)
    metrics = json.loads((tmp_path / "metrics.json").read_text())["metrics"]
    with np.load(tmp_path / "predictions.npz") as doc:
        rows = doc["test_rows"]
        assert np.array_equal(doc["test_teacher_logits"], teacher[rows])
        hits = doc["test_teacher_logits"].argmax(1) == tiny_store.labels[rows]
        assert float(hits.mean()) == pytest.approx(metrics["test"]["teacher_accuracy"])
