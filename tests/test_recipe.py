"""The training recipe: per-step warm-up + cosine schedule and the weights' moving average (issue 21, item 4)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from kdbench.distill.registry import create_method
from kdbench.errors import ConfigError
from kdbench.search.space import grid_id
from kdbench.search.trial_config import TrialConfig
from kdbench.train import TrainConfig, WeightAverage, _optimizers, predict_logits, train_student, warmup_cosine

CPU = dict(device="cpu", batch_size=16)


def test_warmup_cosine_factors_by_hand():
    f = warmup_cosine(10, 0.2)  # 2 warm-up steps, then cosine over the remaining 8
    assert [f(0), f(1)] == [0.5, 1.0]
    assert f(2) == 1.0  # cos(0)
    assert f(6) == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))  # = 0.5
    assert f(10) == pytest.approx(0.0)
    assert warmup_cosine(10, 0.0)(0) == 1.0  # warm-up 0: one step of 1/1, full rate from the start


def test_the_student_optimizer_follows_the_per_step_schedule():
    model = nn.Linear(2, 4)
    config = TrainConfig(lr=0.01, epochs=2, lr_schedule="warmup_cosine", warmup=0.25)
    (opt,), scheduler = _optimizers(model, create_method("scratch"), config, n_batches=4)  # 8 planned steps
    f = warmup_cosine(8, 0.25)
    seen = []
    for _ in range(8):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    assert seen == pytest.approx([0.01 * f(t) for t in range(8)])
    assert seen[0] == pytest.approx(0.005) and seen[2] == pytest.approx(0.01)


def test_weight_average_by_hand():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    avg = WeightAverage(model, decay=0.9)
    expected = 1.0
    for t, w in enumerate([2.0, 3.0, 5.0], start=1):
        with torch.no_grad():
            model.weight.fill_(w)
        avg.update(model)
        d = min(0.9, (1 + t) / (10 + t))  # 2/11, 3/12, 4/13: the early steps weigh the new weights most
        expected = d * expected + (1 - d) * w
    assert float(avg.state["weight"]) == pytest.approx(expected)
    assert expected == pytest.approx((4 / 13) * ((3 / 12) * ((2 / 11) * 1 + (9 / 11) * 2) + (9 / 12) * 3) + (9 / 13) * 5)
    with avg.swapped_in(model):
        assert float(model.weight.detach()) == pytest.approx(expected)
    assert float(model.weight.detach()) == 5.0  # the model's own weights are back


def test_bad_recipe_settings_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="lr_schedule='onecycle' is not allowed"):
        TrainConfig(lr_schedule="onecycle")
    for key, value in (("ema", 1.0), ("ema", -0.1), ("warmup", True), ("warmup", "0.1")):
        with pytest.raises(ConfigError, match=f"train {key}="):
            TrainConfig(**{key: value})


def test_older_configuration_ids_are_unchanged_and_the_recipe_is_part_of_new_ones():
    old = TrialConfig(student="mobilenet_v3_small", method="vanilla", train=TrainConfig(epochs=5, lr=2e-3))
    body = {key: value for key, value in old.train_dict().items()}
    assert not {"lr_schedule", "warmup", "ema"} & set(body)  # an older study's trial reads back with its old id
    assert old.config_id == grid_id({"method": "vanilla", "hparams": {}, "train": body})
    ids = {TrialConfig(student="mobilenet_v3_small", method="vanilla", train=TrainConfig(epochs=5, lr=2e-3, **kw)).config_id
           for kw in ({}, {"lr_schedule": "warmup_cosine"}, {"lr_schedule": "warmup_cosine", "warmup": 0.2},
                      {"ema": 0.99}, {"lr_schedule": "warmup_cosine", "ema": 0.99})}
    assert len(ids) == 5
    back = TrialConfig.from_dict(TrialConfig(student="s", method="vanilla",
                                             train=TrainConfig(lr_schedule="warmup_cosine", ema=0.9)).to_dict())
    assert (back.train.lr_schedule, back.train.ema) == ("warmup_cosine", 0.9)


def test_the_saved_weights_are_the_average_that_was_validated(tiny_store, tmp_path):
    from kdbench.models.checkpoint import load_checkpoint

    recipe = dict(epochs=2, lr_schedule="warmup_cosine", **CPU)
    with_avg = train_student(tiny_store, "mobilenet_v3_small", "scratch", {}, TrainConfig(ema=0.9, **recipe),
                             out_dir=tmp_path / "ema", progress=False)
    plain = train_student(tiny_store, "mobilenet_v3_small", "scratch", {}, TrainConfig(**recipe),
                          out_dir=tmp_path / "plain", progress=False)
    assert with_avg.status == plain.status == "ok"
    model, _ = load_checkpoint(tmp_path / "ema" / "best.pt")
    logits, rows = predict_logits(model, tiny_store, "val", 512, torch.device("cpu"))
    saved = json.loads((tmp_path / "ema" / "metrics.json").read_text())
    assert float((logits.argmax(1) == tiny_store.labels[rows]).mean()) == pytest.approx(saved["metrics"]["val"]["accuracy"])
    assert saved["config"]["ema"] == 0.9 and saved["config"]["lr_schedule"] == "warmup_cosine"
    other, _ = load_checkpoint(tmp_path / "plain" / "best.pt")
    a = torch.cat([p.flatten() for p in model.parameters()])
    b = torch.cat([p.flatten() for p in other.parameters()])
    assert not torch.allclose(a, b)  # same seed, same batches: only the averaging differs
