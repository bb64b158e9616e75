"""Training with augmentation that keeps the teacher cache: what the student and the teacher see.

A KD run with K augmented versions reads every training batch through ``AugmentedLoader`` and looks
the teacher's logits up as ``aug[k, row]``; these tests record what really reached the student's
forward and the method's loss and compare it with the versions the loader defines. Real phantom
store, real teacher checkpoint (tests/conftest.py's ``phantom_32px``), no stand-ins.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kdbench.data.augment import AugmentConfig, AugmentedLoader, augment_batch
from kdbench.distill.augmented_cache import load_or_build_augmented_logits
from kdbench.distill.feed import TeacherFeed
from kdbench.data.loader import StoreLoader
from kdbench.data.store import FrameStore
from kdbench.distill.vanilla import Vanilla
from kdbench.errors import ConfigError
from kdbench.train import TrainConfig, fit, seed_everything, train_student

K = 2
CPU = dict(device="cpu", batch_size=8, lr=1e-3)


@pytest.fixture(scope="module")
def store_teacher(phantom_32px):
    store, teacher = phantom_32px
    return FrameStore.open(store), teacher


@pytest.fixture(scope="module")
def aug(store_teacher):
    """The K = 2 augmented teacher logits [2, N, 4] of the stand-in teacher (built once, cached on disk)."""
    store, teacher = store_teacher
    return load_or_build_augmented_logits(store, teacher, K, seed=0)


class RecordingVanilla(Vanilla):
    """Vanilla KD that keeps the teacher logits and epoch of every batch it is given."""

    name = "vanilla"

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, torch.Tensor]] = []

    def forward(self, student_logits, teacher_logits, targets, epoch):
        self.seen.append((epoch, teacher_logits.detach().clone()))
        return super().forward(student_logits, teacher_logits, targets, epoch)


def _record_training_inputs(model) -> list[torch.Tensor]:
    """Every input the model gets in training mode (training steps, then precise BN's batches)."""
    inputs: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda m, args: inputs.append(args[0].detach().clone()) if m.training else None)
    return inputs


def _kd_run(store, config, **teachers):
    from kdbench.models import create_model

    seed_everything(config.seed)
    model = create_model("mobilenet_v3_small")
    inputs = _record_training_inputs(model)
    method = RecordingVanilla()
    result = fit(model, method, store, config, progress=False, **teachers)
    return result, method.seen, inputs


def test_student_sees_version_epoch_mod_k_and_the_teacher_logits_of_that_version(store_teacher, aug):
    store, _ = store_teacher
    cfg = TrainConfig(epochs=3, augment_versions=K, precise_bn_batches=1, seed=5, **CPU)
    result, seen, inputs = _kd_run(store, cfg, augmented_logits=aug)
    assert result.status == "ok" and result.epochs_run == 3
    loader = AugmentedLoader(store, "train", 8, versions=K, seed=5)
    plain = StoreLoader(store, "train", 8, shuffle=True, seed=5)
    n = len(loader)
    assert len(seen) == 3 * n and len(inputs) == 3 * (n + 1)  # n steps and 1 precise-BN batch per epoch
    for epoch in range(3):
        loader.set_epoch(epoch)
        plain.set_epoch(epoch)
        for b, (x, _, idx, k) in enumerate(loader):
            assert (k == epoch % K).all()  # cycle: version epoch mod K
            expected_x = augment_batch(store.frames[idx.numpy()], idx.numpy(), k.numpy(), 0, AugmentConfig())
            assert np.array_equal(inputs[epoch * (n + 1) + b].numpy(), expected_x)  # the student saw version k
            got_epoch, teacher = seen[epoch * n + b]
            assert got_epoch == epoch
            assert np.array_equal(teacher.numpy(), aug[k.numpy(), idx.numpy()])  # the lookup is aug[k, row]
            assert not np.array_equal(teacher.numpy(), aug[1 - k.numpy(), idx.numpy()])  # and not the other version
        bn_x = inputs[epoch * (n + 1) + n]  # precise BN recalibrates on the plain (un-augmented) frames
        assert np.array_equal(bn_x.numpy(), next(iter(plain))[0].numpy())


def test_random_choice_looks_up_each_frames_own_version(store_teacher, aug):
    store, _ = store_teacher
    cfg = TrainConfig(epochs=2, augment_versions=K, augment_choice="random", precise_bn_batches=0, seed=1, **CPU)
    _, seen, inputs = _kd_run(store, cfg, augmented_logits=aug)
    loader = AugmentedLoader(store, "train", 8, versions=K, seed=1, choice="random")
    batches = []
    for epoch in range(2):
        loader.set_epoch(epoch)
        batches += list(loader)
    ks = torch.cat([k for *_, k in batches])
    assert set(ks.tolist()) == {0, 1}  # both versions within one epoch's batches
    for (x, _, idx, k), (_, teacher), x_seen in zip(batches, seen, inputs, strict=True):
        assert np.array_equal(x_seen.numpy(), x.numpy())
        assert np.array_equal(teacher.numpy(), aug[k.numpy(), idx.numpy()])


def test_a_live_teacher_sees_the_augmented_frames_the_student_sees(store_teacher):
    from kdbench.teacher import live_teacher

    store, teacher_path = store_teacher
    teacher, teacher_inputs = live_teacher(teacher_path), []

    def recording_teacher(x):
        teacher_inputs.append(x.detach().clone())
        return teacher(x)

    cfg = TrainConfig(epochs=2, augment_versions=K, precise_bn_batches=0, max_batches_per_epoch=2, **CPU)
    _, _, inputs = _kd_run(store, cfg, teacher_model=recording_teacher)
    assert len(teacher_inputs) == len(inputs) == 4
    plain = next(iter(StoreLoader(store, "train", 8, shuffle=True, seed=0)))[0]
    for seen_by_teacher, seen_by_student in zip(teacher_inputs, inputs):
        assert torch.equal(seen_by_teacher, seen_by_student)
    assert not torch.equal(teacher_inputs[0], plain)  # augmented, not the plain batch


def test_kd_with_augmentation_refuses_the_plain_cache_alone_and_a_wrong_shape(store_teacher, aug):
    store, _ = store_teacher
    cfg = TrainConfig(epochs=1, augment_versions=K, **CPU)
    plain = np.zeros((len(store), 4), np.float32)
    with pytest.raises(ConfigError, match="augment_versions=2 with method 'vanilla': the teacher must see the augmented"):
        train_student(store, "mobilenet_v3_small", "vanilla", {}, cfg, teacher_logits=plain, progress=False)
    with pytest.raises(ConfigError, match=r"shape \(3, \d+, 4\); expected \[2, \d+, 4\]"):
        train_student(store, "mobilenet_v3_small", "vanilla", {}, cfg, teacher_logits=plain, progress=False,
                      augmented_logits=np.concatenate([aug, aug[:1]]))


def test_run_records_its_augmentation_and_reruns_identically(store_teacher, aug, tmp_path):
    store, teacher = store_teacher
    cfg = TrainConfig(epochs=2, augment_versions=K, augment_choice="random", augment_seed=0, seed=3,
                      augment=AugmentConfig(speckle=0.1), max_batches_per_epoch=2, **CPU)
    feed = TeacherFeed.open(store, teacher)
    logits = feed.augmented_logits(store, cfg)
    assert logits.shape == (K, len(store), 4) and feed.augmented_logits(store, cfg) is logits  # built once
    scratch = feed.for_run("scratch", store, cfg)  # no teacher to train with; the plain logits for its evaluation
    assert scratch["augmented_logits"] is None and scratch["teacher_logits"] is feed.logits
    assert feed.for_run("vanilla", store, cfg)["augmented_logits"] is logits
    live = TeacherFeed.open(store, teacher, cache=False)  # a live teacher sees the augmented frames itself
    assert live.logits is None and live.model is not None and live.for_run("vanilla", store, cfg)["augmented_logits"] is None
    for name in ("a", "b"):
        train_student(store, "mobilenet_v3_small", "vanilla", {}, cfg, augmented_logits=logits, out_dir=tmp_path / name,
                      progress=False)
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in "ab")
    assert a["config"]["augment_versions"] == K and a["config"]["augment_choice"] == "random"
    assert a["config"]["augment"] == {**AugmentConfig().to_dict(), "speckle": 0.1}
    assert TrainConfig.from_dict(a["config"]) == cfg  # the record rebuilds the run's configuration
    assert a["history"] == b["history"] and a["metrics"] == b["metrics"]
    with np.load(tmp_path / "a" / "predictions.npz") as pa, np.load(tmp_path / "b" / "predictions.npz") as pb:
        assert np.array_equal(pa["val_logits"], pb["val_logits"])


def test_augmentation_changes_what_a_scratch_run_learns(store_teacher):
    """Same seed and batches, with and without augmentation: the weights differ (augmentation is really on)."""
    store, _ = store_teacher
    runs = [train_student(store, "mobilenet_v3_small", "scratch", {},
                          TrainConfig(epochs=1, max_batches_per_epoch=2, augment_versions=k, **CPU), progress=False)
            for k in (0, K)]
    assert runs[0].history[0]["train_loss"] != runs[1].history[0]["train_loss"]


def test_train_config_round_trip_and_older_records():
    cfg = TrainConfig(augment_versions=4, augment_choice="random", augment_seed=7, augment=AugmentConfig(rotate_deg=3.0))
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data["augment"]["rotate_deg"] == 3.0 and TrainConfig.from_dict(data) == cfg
    old = {k: v for k, v in TrainConfig().to_dict().items() if not k.startswith("augment")}  # before augmentation
    assert TrainConfig.from_dict(old) == TrainConfig() and TrainConfig.from_dict(old).augment_versions == 0
    with pytest.raises(ConfigError, match=r"train has no setting\(s\) \['augmentation'\]"):
        TrainConfig.from_dict({"augmentation": 2})


@pytest.mark.parametrize("kwargs,match", [
    ({"augment_versions": -1}, r"train augment_versions=-1; expected a whole number >= 0"),
    ({"augment_versions": 1.5}, r"train augment_versions=1.5; expected a whole number >= 0"),
    ({"augment_choice": "often"}, r"train augment_choice='often' is not allowed; expected one of \['cycle', 'random'\]"),
    ({"augment_seed": -2}, r"train augment_seed=-2; expected an integer >= 0"),
    ({"augment": {"rotation": 5}}, r"augment has no setting\(s\) \['rotation'\]"),
    ({"augment": {"speckle": 2.0}}, r"augment.speckle=2.0 is out of range"),
])
def test_bad_augment_settings_are_one_line_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match) as err:
        TrainConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_distill_cli_augments_with_the_teachers_cache_of_each_version(store_teacher, aug, tmp_path):
    import subprocess
    import sys

    store, teacher = store_teacher
    cli = [sys.executable, "-c", "from kdbench.cli import main; main()", "distill", "--store", str(store.path),
           "--teacher", str(teacher), "--method", "vanilla", "--epochs", "2", "--batch-size", "8", "--device", "cpu"]
    r = subprocess.run([*cli, "--augment-versions", "2", "--out", str(tmp_path / "run")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    config = json.loads((tmp_path / "run" / "metrics.json").read_text())["config"]
    assert (config["augment_versions"], config["augment_choice"], config["augment_seed"]) == (2, "cycle", 0)
    r = subprocess.run([*cli, "--augment-versions", "-1", "--out", str(tmp_path / "bad")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: train augment_versions=-1; expected a whole number >= 0 (0 turns augmentation off)"]
