"""Distillation on unlabelled frames (issue 21 part 3): the teacher labels what nobody labelled.

Losses: a batch's rows with label -1 (``NO_LABEL``) get only the distillation term, which is averaged
over every row; the label term is averaged over the labelled rows. The golden values below are
computed by hand with plain ``math``; a batch without unlabelled rows must give the very bits the
methods gave before unlabelled rows existed (the references here are those forwards, term by term).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdbench.data.augment import AugmentedLoader
from kdbench.data.loader import StoreLoader, unlabelled_count
from kdbench.data.store import FrameStore
from kdbench.data.views import NO_LABEL
from kdbench.distill import create_method
from kdbench.distill.base import kd_term, kl_per_sample, standardize
from kdbench.distill.dist import dist_terms
from kdbench.distill.dkd import dkd_terms
from kdbench.distill.nkd import nkd_terms
from kdbench.distill.wttm import wttm_per_sample
from kdbench.errors import ConfigError
from kdbench.train import TrainConfig, fit, seed_everything, train_student

# ---- the loss: bitwise unchanged on labelled batches ------------------------------------------------


def _pair(s, t, std: bool):
    return (standardize(s), standardize(t)) if std else (s, t)


def _old_terms(name: str, m, s, t, y, epoch: int) -> dict[str, torch.Tensor]:
    """The forward each method had before unlabelled rows existed, from the same building blocks."""
    h = m.hparams()
    std = h.get("standardize", name == "logit_std")
    ce = F.cross_entropy(s, y)
    if name == "scratch":
        return {"ce": ce}
    ds, dt = _pair(s, t, std)
    if name in ("vanilla", "logit_std"):
        return {"kd": h["alpha"] * kd_term(ds, dt, h["temperature"]), "ce": (1.0 - h["alpha"]) * ce}
    if name == "ctkd":
        temp = m.current_temperature(m.lambda_at(epoch))
        return {"kd": h["alpha"] * kd_term(ds, dt, temp), "ce": (1.0 - h["alpha"]) * ce}
    if name == "conditional":
        correct = (t.argmax(dim=1) == y).to(s.dtype)
        per = F.cross_entropy(s, y, reduction="none")
        return {"kd": (correct * kl_per_sample(ds, dt, h["temperature"])).mean() * h["temperature"] ** 2,
                "ce": ((1.0 - correct) * per).mean()}
    if name == "dkd":
        tckd, nckd = dkd_terms(ds, dt, y, h["temperature"])
        return {"ce": h["ce_weight"] * ce, "kd": m.warmup_factor(epoch) * (h["alpha"] * tckd + h["beta"] * nckd)}
    if name == "dist":
        inter, intra = dist_terms(ds, dt, h["temperature"])
        return {"ce": h["ce_weight"] * ce, "kd": h["temperature"] ** 2 * (h["beta"] * inter + h["gamma"] * intra)}
    if name == "wttm":
        return {"ce": h["ce_weight"] * ce, "kd": h["beta"] * wttm_per_sample(ds, dt, h["gamma"]).mean()}
    if name == "nkd":
        target, non = nkd_terms(ds, dt, y, h["temperature"])
        return {"ce": h["ce_weight"] * ce, "kd": target + h["gamma"] * h["temperature"] ** 2 * non}
    raise AssertionError(name)


CASES = [("scratch", {}), ("vanilla", {}), ("vanilla", {"standardize": True, "temperature": 2.0}), ("logit_std", {}),
         ("conditional", {}), ("conditional", {"standardize": True}), ("ctkd", {}), ("dkd", {"warmup": 3}),
         ("dkd", {"standardize": True}), ("dist", {}), ("wttm", {}), ("wttm", {"standardize": True}), ("nkd", {}),
         ("nkd", {"temperature": 2.0, "standardize": True})]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("name", "hparams"), CASES)
def test_a_batch_without_unlabelled_rows_gives_exactly_the_old_loss(name, hparams, dtype):
    gen = torch.Generator().manual_seed(7)
    s, t = torch.randn(16, 4, generator=gen, dtype=dtype) * 3, torch.randn(16, 4, generator=gen, dtype=dtype) * 3
    y = torch.randint(0, 4, (16,), generator=gen)
    for epoch in (0, 4):
        method = create_method(name, **hparams)
        new = method(s, t, y, epoch)
        old = _old_terms(name, method, s, t, y, epoch)
        assert list(new) == list(old)
        for key in old:
            assert torch.equal(new[key], old[key]), (key, new[key].item(), old[key].item())
        assert torch.equal(sum(new.values()), sum(old.values()))


# ---- the loss: golden values on mixed batches, by hand ----------------------------------------------

S = [[1.0, 0.0, -1.0, 2.0], [0.5, 1.5, 0.0, -0.5], [-1.0, 2.0, 0.5, 0.0]]
T = [[2.0, 0.0, -2.0, 1.0], [0.0, 3.0, 1.0, -1.0], [1.0, 0.5, 2.5, -0.5]]  # teacher argmax: 0, 1, 2


def softmax(z, temp=1.0):
    e = [math.exp((v - max(z)) / temp) for v in z]
    return [v / sum(e) for v in e]


def kl(p, q):
    return sum(a * (math.log(a) - math.log(b)) for a, b in zip(p, q))


def ce_row(z, g):
    return -math.log(softmax(z)[g])


def terms(name, s, t, y, **hparams):
    method = create_method(name, **hparams)
    out = method(torch.tensor(s, dtype=torch.float64), torch.tensor(t, dtype=torch.float64), torch.tensor(y), 0)
    return {k: float(v.detach()) for k, v in out.items()}, method


def test_vanilla_on_two_labelled_rows_and_one_unlabelled_row():
    temp, alpha = 2.0, 0.3
    got, _ = terms("vanilla", S, T, [3, 1, -1], temperature=temp, alpha=alpha)
    ce = (ce_row(S[0], 3) + ce_row(S[1], 1)) / 2  # the label term: mean over the 2 labelled rows
    kd = temp**2 * sum(kl(softmax(t, temp), softmax(s, temp)) for s, t in zip(S, T)) / 3  # over all 3 rows
    assert got["ce"] == pytest.approx((1 - alpha) * ce, abs=1e-12)
    assert got["kd"] == pytest.approx(alpha * kd, abs=1e-12)
    assert (got["ce"], got["kd"]) == pytest.approx((0.3451686309756187, 0.19704561950191365), abs=1e-12)


def _dkd_row(s, t, g, temp):
    """(TCKD, NCKD) of one row with target class g, not yet scaled by T^2."""
    ps, pt = softmax(s, temp), softmax(t, temp)
    tckd = kl([pt[g], 1 - pt[g]], [ps[g], 1 - ps[g]])
    drop = lambda z: [v for c, v in enumerate(z) if c != g]  # noqa: E731
    return tckd, kl(softmax(drop(t), temp), softmax(drop(s), temp))


def test_dkd_splits_an_unlabelled_row_on_the_teachers_argmax():
    temp, alpha, beta = 4.0, 1.0, 8.0
    got, _ = terms("dkd", S[:2], T[:2], [3, -1], warmup=0)  # row 1: no label; the teacher says class 1
    rows = [_dkd_row(S[0], T[0], 3, temp), _dkd_row(S[1], T[1], 1, temp)]
    kd = temp**2 * (alpha * (rows[0][0] + rows[1][0]) / 2 + beta * (rows[0][1] + rows[1][1]) / 2)
    assert got["ce"] == pytest.approx(ce_row(S[0], 3), abs=1e-12)  # the one labelled row
    assert got["kd"] == pytest.approx(kd, abs=1e-12)
    assert (got["ce"], got["kd"]) == pytest.approx((0.44018969856119533, 2.494258302632471), abs=1e-12)
    alone, _ = terms("dkd", S[1:2], T[1:2], [-1], warmup=0)
    assert alone["ce"] == 0.0
    assert alone["kd"] == pytest.approx(temp**2 * (alpha * rows[1][0] + beta * rows[1][1]), abs=1e-12)


def test_conditional_counts_an_unlabelled_row_as_teacher_right_and_averages_ce_over_labelled_rows():
    temp = 4.0
    got, method = terms("conditional", S, T, [3, 1, -1])  # teacher wrong on row 0, right on row 1
    kd = temp**2 * (kl(softmax(T[1], temp), softmax(S[1], temp)) + kl(softmax(T[2], temp), softmax(S[2], temp))) / 3
    assert got["kd"] == pytest.approx(kd, abs=1e-12)
    assert got["ce"] == pytest.approx(ce_row(S[0], 3) / 2, abs=1e-12)  # 2 labelled rows
    assert method.epoch_log() == {"teacher_correct": 0.5}  # the labelled rows only


@pytest.mark.parametrize("name", ["vanilla", "logit_std", "conditional", "ctkd", "dkd", "dist", "wttm", "nkd"])
def test_unlabelled_rows_get_the_distillation_term_of_the_teachers_class_and_no_label_term(name):
    argmax = [0, 1, 2]
    unlabelled, _ = terms(name, S, T, [-1, -1, -1])
    as_labelled, _ = terms(name, S, T, argmax)
    assert unlabelled["kd"] == as_labelled["kd"]
    assert unlabelled["ce"] == 0.0
    s = torch.tensor(S, dtype=torch.float64, requires_grad=True)
    loss = sum(create_method(name)(s, torch.tensor(T, dtype=torch.float64), torch.tensor([3, -1, -1]), 0).values())
    loss.backward()
    assert torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0


# ---- data: a 32 px store with an unlabelled pool ---------------------------------------------------

@pytest.fixture(scope="module")
def pool_store(tmp_path_factory):
    """(store, teacher): a 32 px phantom with 12 train frames and an unlabelled pool, and an untrained stand-in teacher."""
    from kdbench.data.prepare import prepare_store
    from kdbench.data.synth import DYNAMIC_DIR, LVH_DIR, TMED_DIR, UNLABELLED_DIR, synthesize
    from kdbench.models import create_model
    from kdbench.models.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("unlabelled_kd")
    synthesize(root / "raw", videos_per_view=3, seed=0, frames=4, unlabelled=5)
    raw = root / "raw"
    prepare_store({"echonet_dynamic": raw / DYNAMIC_DIR, "echonet_lvh": raw / LVH_DIR, "tmed2": raw / TMED_DIR,
                   "unlabelled": raw / UNLABELLED_DIR}, root / "store", size=32, frames_per_video=2, workers=1)
    teacher = save_checkpoint(create_model("mobilenet_v3_small", num_classes=4), root / "teacher.pt",
                              arch="mobilenet_v3_small", num_classes=4, input_size=32)
    store = FrameStore.open(root / "store")
    assert len(store.indices("unlabelled")) >= 6 and len(store.indices("train")) >= 8
    return store, teacher


@pytest.fixture(scope="module")
def feed(pool_store):
    from kdbench.distill.feed import TeacherFeed

    store, teacher = pool_store
    return TeacherFeed.open(store, teacher)


def test_loader_adds_the_pool_every_epoch_and_a_seeded_draw_for_a_share(pool_store):
    store, _ = pool_store
    train, pool = store.indices("train"), store.indices("unlabelled")
    plain = StoreLoader(store, "train", 5, shuffle=True, seed=3)
    off = StoreLoader(store, "train", 5, shuffle=True, seed=3, unlabelled=0.0)
    full = StoreLoader(store, "train", 5, shuffle=True, seed=3, unlabelled=1.0)
    half, again = (StoreLoader(store, "train", 5, shuffle=True, seed=3, unlabelled=0.5) for _ in range(2))
    n_half = unlabelled_count(0.5, len(pool))
    assert n_half == round(len(pool) / 2) and unlabelled_count(0.01, len(pool)) == 1
    draws = []
    for epoch in range(3):
        for loader in (plain, off, full, half, again):
            loader.set_epoch(epoch)
        assert np.array_equal(off.order(), plain.order())  # share 0: the batches of old
        assert np.array_equal(plain.order(), train[np.random.default_rng((3, epoch)).permutation(len(train))])
        assert sorted(full.order()) == sorted([*train, *pool])
        rows = np.concatenate([idx.numpy() for _, _, idx in half])
        labels = np.concatenate([y.numpy() for _, y, _ in half])
        assert len(half) == -(-(len(train) + n_half) // 5) and len(rows) == len(train) + n_half
        assert set(train) <= set(rows) and (labels == NO_LABEL).sum() == n_half
        assert np.array_equal(labels, store.labels[rows])
        assert np.array_equal(half.order(), again.order())  # the seed fixes the draw and the shuffle
        draws.append(frozenset(rows[labels == NO_LABEL]))
    assert len(set(draws)) > 1  # a new draw each epoch


def test_augmented_loader_and_cache_cover_the_unlabelled_rows(pool_store, feed):
    from kdbench.data.augment import AugmentConfig
    from kdbench.distill.augmented_cache import augmented_cache_key

    store, teacher = pool_store
    pool = store.indices("unlabelled")
    loader = AugmentedLoader(store, "train", 8, versions=2, seed=1, unlabelled=1.0)
    loader.set_epoch(1)
    idx = np.concatenate([b[2].numpy() for b in loader])
    assert sorted(idx) == sorted([*store.indices("train"), *pool])
    keys = {split: augmented_cache_key(store, teacher, 2, 0, AugmentConfig(), split)[0]
            for split in ("train", "train+unlabelled")}
    assert keys["train"] != keys["train+unlabelled"]
    covered = feed.augmented_logits(store, TrainConfig(augment_versions=2, unlabelled=0.5))
    plain = feed.augmented_logits(store, TrainConfig(augment_versions=2))
    assert np.isfinite(covered[:, pool]).all() and np.isnan(plain[:, pool]).all()
    rows = store.indices("train")
    assert np.array_equal(covered[:, rows], plain[:, rows])  # the same versions of the training frames
    assert (store.path / "teacher_cache" / f"{keys['train+unlabelled']}.npy").is_file()


def test_the_plain_teacher_cache_covers_the_unlabelled_rows(pool_store, feed):
    from kdbench.teacher import load_teacher

    store, teacher = pool_store
    pool = store.indices("unlabelled")
    assert feed.logits.shape == (len(store), 4)
    live = load_teacher(teacher, "cpu")((np.asarray(store.frames[pool], np.float32) / 255.0)[:, None])
    assert np.allclose(feed.logits[pool], live, atol=1e-5)
    given = feed.for_run("vanilla", store, TrainConfig(unlabelled=1.0))
    assert given["teacher_logits"] is feed.logits and given["augmented_logits"] is None


def _run(store, method_name, config, feed, out_dir=None):
    """A short run of ``method_name``; its result and (targets, teacher logits) of every training batch it saw."""
    from kdbench.distill.registry import create_method
    from kdbench.models import create_model

    seed_everything(config.seed)
    model = create_model("mobilenet_v3_small")
    method = create_method(method_name)
    seen = []
    method.register_forward_pre_hook(
        lambda m, args: seen.append((args[2].clone(), None if args[1] is None else args[1].clone())) if m.training else None)
    given = feed.for_run(method_name, store, config)
    result = fit(model, method, store, config, progress=False, out_dir=out_dir, **given)
    return result, seen, model


CFG = dict(epochs=2, batch_size=8, patience=5, device="cpu", precise_bn_batches=1)


def test_a_kd_run_trains_on_every_unlabelled_frame_and_records_the_counts(pool_store, feed, tmp_path):
    store, _ = pool_store
    n_train, n_pool = len(store.indices("train")), len(store.indices("unlabelled"))
    config = TrainConfig(unlabelled=1.0, seed=2, **CFG)
    result, seen, model = _run(store, "vanilla", config, feed, tmp_path / "a")
    assert result.status == "ok" and result.epochs_run == 2
    assert result.frames_seen == {"labelled": 2 * n_train, "unlabelled": 2 * n_pool}
    assert [r["frames_seen"] for r in result.history] == [{"labelled": n_train, "unlabelled": n_pool}] * 2
    targets = torch.cat([y for y, _ in seen])
    assert int((targets == NO_LABEL).sum()) == 2 * n_pool  # the method really got them, label -1
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert metrics["frames_seen"] == result.frames_seen and metrics["unlabelled_share"] == 1.0
    assert metrics["config"]["unlabelled"] == 1.0
    again, seen2, model2 = _run(store, "vanilla", config, feed)
    assert again.history == result.history and again.frames_seen == result.frames_seen
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(seen, seen2))


def test_a_share_draws_its_count_per_epoch_with_a_batch_cap(pool_store, feed):
    store, _ = pool_store
    config = TrainConfig(unlabelled=0.5, seed=4, max_batches_per_epoch=2, **CFG)
    result, seen, _ = _run(store, "dkd", config, feed)
    expected = []
    loader = StoreLoader(store, "train", 8, shuffle=True, seed=4, unlabelled=0.5)
    for epoch in range(2):
        loader.set_epoch(epoch)
        labels = np.concatenate([y.numpy() for _, (_, y, _) in zip(range(2), loader)])
        expected.append({"labelled": int((labels != NO_LABEL).sum()), "unlabelled": int((labels == NO_LABEL).sum())})
    assert [r["frames_seen"] for r in result.history] == expected
    assert sum(e["labelled"] + e["unlabelled"] for e in expected) == 2 * 2 * 8


def test_scratch_with_unlabelled_trains_on_labelled_frames_only_and_says_so(pool_store, feed, tmp_path):
    store, _ = pool_store
    n_train = len(store.indices("train"))
    result, seen, _ = _run(store, "scratch", TrainConfig(unlabelled=1.0, seed=2, **CFG), feed, tmp_path / "s")
    assert result.status == "ok"
    assert result.frames_seen == {"labelled": 2 * n_train, "unlabelled": 0} and result.unlabelled_share == 0.0
    assert all((y != NO_LABEL).all() for y, _ in seen)
    metrics = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert metrics["config"]["unlabelled"] == 1.0 and metrics["unlabelled_share"] == 0.0


def test_augmented_kd_with_unlabelled_needs_a_cache_that_covers_them(pool_store, feed):
    store, _ = pool_store
    config = TrainConfig(unlabelled=1.0, augment_versions=1, seed=0, **{**CFG, "epochs": 1})
    from kdbench.distill.registry import create_method
    from kdbench.models import create_model

    train_only = feed.augmented_logits(store, TrainConfig(augment_versions=1))
    with pytest.raises(ConfigError, match=r"do not cover the store's unlabelled frames") as err:
        fit(create_model("mobilenet_v3_small"), create_method("vanilla"), store, config, teacher_logits=feed.logits,
            augmented_logits=train_only, progress=False)
    assert "\n" not in str(err.value)
    result = train_student(store, "mobilenet_v3_small", "vanilla", {}, config, teacher=feed, progress=False)
    assert result.status == "ok" and result.frames_seen["unlabelled"] == len(store.indices("unlabelled"))


# ---- settings, search spaces and errors -------------------------------------------------------------


def test_train_config_round_trip_older_records_and_the_run_record():
    from kdbench.search.objective import recorded_run, run_record

    config = TrainConfig(unlabelled=0.25, epochs=3)
    assert TrainConfig.from_dict(config.to_dict()) == config and config.to_dict()["unlabelled"] == 0.25
    older = {k: v for k, v in TrainConfig(epochs=3).to_dict().items() if k != "unlabelled"}
    assert TrainConfig.from_dict(older).unlabelled == 0.0
    old_metrics = {"student": "s", "method": "vanilla", "hparams": create_method("vanilla").hparams(), "config": older}
    assert recorded_run(old_metrics) == run_record("s", "vanilla", {}, TrainConfig(epochs=3))  # resumes as before
    assert recorded_run(old_metrics) != run_record("s", "vanilla", {}, config)  # another share: another run


@pytest.mark.parametrize("value", [1.5, -0.1, float("nan"), True, "half"])
def test_bad_shares_are_one_line_config_errors_naming_the_key(value):
    with pytest.raises(ConfigError, match=r"^train unlabelled=.*expected a share in \[0, 1\]") as err:
        TrainConfig(unlabelled=value)
    assert "\n" not in str(err.value)


def _space(train=None, space=None):
    from kdbench.search.space import parse_space

    return parse_space({"study": {"students": ["mobilenet_v3_small"], "seeds": [0], "sampler": "grid"},
                        "train": {"epochs": 2, **(train or {})},
                        "space": {"method": ["scratch", "vanilla"], **(space or {})}}, "space.toml")


def test_search_space_unlabelled_reaches_trials_and_config_ids_name_it_only_when_on():
    from kdbench.search.trial_config import TrialConfig

    ids = [TrialConfig.from_dict({"student": "m", **c}).config_id for c in _space({"unlabelled": 0.5}).grid()]
    assert len(ids) == 2 and all("unlabelled=0.5" in i for i in ids)
    trial = TrialConfig.from_dict({"student": "m", **_space({"unlabelled": 0.5}).grid()[1]})
    assert trial.train.unlabelled == 0.5 and TrialConfig.from_dict(trial.to_dict()) == trial
    assert trial.seed_config(3, "cpu").unlabelled == 0.5
    off = [TrialConfig.from_dict({"student": "m", **c}) for c in _space().grid()]
    assert all("unlabelled" not in t.config_id and "unlabelled" not in t.to_dict()["train"] for t in off)
    searched = _space(space={"unlabelled": [0.0, 0.5]})
    cells = sorted(TrialConfig.from_dict({"student": "m", **c}).config_id for c in searched.grid())
    assert len(cells) == 4 and sum("unlabelled=0.5" in c for c in cells) == 2
    with pytest.raises(ConfigError, match=r"space.toml: train.unlabelled = 1.5: .*expected a share in \[0, 1\]"):
        _space({"unlabelled": 1.5})
    with pytest.raises(ConfigError, match=r"space.unlabelled = 2"):
        _space(space={"unlabelled": [0.0, 2]})


def test_unlabelled_on_a_store_without_a_pool_is_one_config_error_naming_the_store(tiny_store):
    from kdbench.distill.registry import create_method
    from kdbench.models import create_model
    from kdbench.search.space import check_unlabelled

    for method in ("scratch", "vanilla"):
        with pytest.raises(ConfigError, match=rf"frame store {tiny_store.path} has no unlabelled frames") as err:
            fit(create_model("mobilenet_v3_small"), create_method(method), tiny_store,
                TrainConfig(unlabelled=0.5, epochs=1, device="cpu"), teacher_logits=np.zeros((len(tiny_store), 4)),
                progress=False)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"^space.toml: unlabelled=0.5, but frame store"):
        check_unlabelled(_space(space={"unlabelled": [0.0, 0.5]}), tiny_store, "space.toml")
    check_unlabelled(_space(), tiny_store, "space.toml")  # off: fine


def test_a_search_asking_for_unlabelled_frames_stops_before_any_work(tiny_store, tmp_path):
    from kdbench.search.runner import SearchRequest, run_search

    space = tmp_path / "space.toml"
    space.write_text('[study]\nname = "u"\nstudents = ["mobilenet_v3_small"]\nseeds = [0, 1]\n\n[train]\nunlabelled = 0.5\n\n[space]\nmethod = "scratch"\n')
    with pytest.raises(ConfigError, match=rf"^{space}: unlabelled=0.5, but frame store"):
        run_search(SearchRequest(config=space, store=tiny_store.path, run_dir=tmp_path / "runs", device="cpu"))
    assert not (tmp_path / "runs").exists()  # nothing written, nothing trained


@pytest.mark.slow
def test_distill_cli_unlabelled_option(pool_store, tiny_store, tmp_path):
    import subprocess
    import sys

    store, teacher = pool_store
    cli = [sys.executable, "-c", "from kdbench.cli import main; main()", "distill", "--teacher", str(teacher),
           "--epochs", "1", "--batch-size", "8", "--device", "cpu"]
    r = subprocess.run([*cli, "--store", str(store.path), "--method", "scratch", "--unlabelled", "0.5",
                        "--out", str(tmp_path / "s")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: --unlabelled 0.5 ignored: method 'scratch' has no teacher to label them; training on "
                        "the labelled frames only"]
    assert json.loads((tmp_path / "s" / "metrics.json").read_text())["frames_seen"]["unlabelled"] == 0
    r = subprocess.run([*cli, "--store", str(store.path), "--method", "vanilla", "--unlabelled", "1",
                        "--out", str(tmp_path / "v")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    seen = json.loads((tmp_path / "v" / "metrics.json").read_text())["frames_seen"]
    assert seen == {"labelled": len(store.indices("train")), "unlabelled": len(store.indices("unlabelled"))}
    r = subprocess.run([*cli, "--store", str(tiny_store.path), "--method", "vanilla", "--unlabelled", "0.5",
                        "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"error: unlabelled=0.5, but frame store {tiny_store.path} has no unlabelled frames; add a folder with "
        "`kdbench data prepare --unlabelled DIR`, or set unlabelled to 0"]
    r = subprocess.run([*cli, "--store", str(store.path), "--unlabelled", "1.5", "--out", str(tmp_path / "y")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--unlabelled=1.5; expected a share in [0, 1]" in r.stderr
