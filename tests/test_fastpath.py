"""The training-format choice: measured once, cached, recorded; failing or result-changing formats dropped."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from kdbench import fastpath
from kdbench.errors import ConfigError
from kdbench.fastpath import Trial

CPU = torch.device("cpu")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A private choice cache, no KDBENCH_FAST_PATH (the suite's default is a fixed format), and a quiet host as far
    as the cache rule sees (a probe on a busy one is not cached: test_a_probe_on_a_busy_host_is_not_cached), so these
    tests do not depend on what else runs on the machine."""
    monkeypatch.setenv(fastpath.ENV_CACHE_DIR, str(tmp_path))
    monkeypatch.delenv(fastpath.ENV_FAST_PATH, raising=False)
    monkeypatch.setattr(fastpath.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    return tmp_path


def _tiny_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Dropout(0.2), nn.Linear(8, 4))


class _ReadsRawMemory(nn.Module):
    """A layer that assumes NCHW memory: it reinterprets the storage with contiguous strides."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.as_strided(x, x.shape, torch.empty(x.shape).stride())


class _NeedsContiguous(nn.Module):
    """A layer that fails on channels_last inputs (``view`` needs contiguous memory)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], -1)[:, : x.shape[1]].view(x.shape[0], x.shape[1], 1, 1).expand_as(x) + x


def _batch(n: int = 8, size: int = 16):
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, size, size, generator=g), torch.randint(0, 4, (n,), generator=g)


def test_choice_is_measured_once_then_read_from_the_cache(cache_dir):
    model, (x, y) = _tiny_cnn(), _batch()
    weights = [p.detach().clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    short = fastpath.choose(model, x, y, "train", CPU, "probe", "tiny", batch=8, planned_steps=5)
    assert (short.format, short.source) == ("nchw", "default") and "shorter than the probe" in short.trials[0].reason
    assert not (cache_dir / fastpath.CACHE_FILE).exists()
    first = fastpath.choose(model, x, y, "train", CPU, "probe", "tiny", batch=8, planned_steps=30)
    assert first.source == "measured" and first.load_avg is not None
    assert [t.format for t in first.trials] == ["nchw", "channels_last", "compile"]
    assert all(t.status == "ok" and t.images_per_s > 0 for t in first.trials[:2])
    assert first.trials[2].status == "skipped" and "compilation would not pay" in first.trials[2].reason
    # probing touches neither the model nor the global RNG (runs stay reproducible)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters()))
    assert torch.equal(rng, torch.get_rng_state())
    # hand-edit the cached speeds: the next choice must follow the file, not a new measurement
    path = cache_dir / fastpath.CACHE_FILE
    body = json.loads(path.read_text())
    entry = body[first.key]
    entry["trials"][0]["images_per_s"], entry["trials"][1]["images_per_s"] = 100.0, 300.0
    path.write_text(json.dumps(body))
    again = fastpath.choose(model, x, y, "train", CPU, "probe", "tiny", batch=8, planned_steps=5)  # short, but cached
    assert again.source == "cache" and again.format == "channels_last" and again.key == first.key


def test_a_cache_written_by_another_version_is_measured_again_not_a_crash(cache_dir):
    model, (x, y) = _tiny_cnn(), _batch()
    key = fastpath.format_key("train", "tiny", int(x.shape[-1]), CPU, 8)
    old = {"phase": "train", "format": "channels_last", "source": "measured", "key": key,
           "trials": [{"format": "nchw", "status": "ok", "images_per_s": 1.0, "max_rel_diff": 0.1}]}
    (cache_dir / fastpath.CACHE_FILE).write_text(json.dumps({key: old, "other": {"trials": "garbage"}}))
    extra_key = fastpath.choose(model, x, y, "train", CPU, "probe", "tiny", batch=8, planned_steps=30)
    assert extra_key.source == "cache" and extra_key.format == "nchw"  # unknown key ignored, entry still used
    (cache_dir / fastpath.CACHE_FILE).write_text(json.dumps({key: {"trials": [{"images_per_s": 1.0}]}}))
    fresh = fastpath.choose(model, x, y, "train", CPU, "probe", "tiny", batch=8, planned_steps=30)
    assert fresh.source == "measured" and [t.format for t in fresh.trials][:2] == ["nchw", "channels_last"]


def test_a_format_that_fails_is_dropped_with_its_reason(cache_dir):
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), _NeedsContiguous(), nn.Flatten(), nn.LazyLinear(4))
    x, y = _batch()
    model(x)  # materialise the lazy layer
    choice = fastpath.choose(model, x, y, "train", CPU, "probe", "needs-contiguous", batch=8, planned_steps=30)
    dropped = {t.format: t for t in choice.trials}["channels_last"]
    assert dropped.status == "dropped" and dropped.reason.startswith("RuntimeError: view size is not compatible")
    assert choice.format == "nchw"


@pytest.mark.parametrize("phase", ["train", "eval"])
def test_a_format_that_changes_the_result_is_dropped(cache_dir, phase):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), _ReadsRawMemory(), nn.Conv2d(6, 4, 3),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten())
    x, y = _batch()
    choice = fastpath.choose(model, x, y, phase, CPU, "probe", f"raw-memory-{phase}", batch=8, planned_steps=30)
    trials = {t.format: t for t in choice.trials}
    assert trials["nchw"].status == "ok" and trials["nchw"].rel_error < 1e-5
    assert trials["channels_last"].status == "dropped" and trials["channels_last"].rel_error > 1e-2
    assert "differs from float64: output by" in trials["channels_last"].reason and choice.format == "nchw"


def test_compilation_is_chosen_only_where_it_repays_its_warm_up():
    trials = [Trial("nchw", "ok", images_per_s=100.0), Trial("channels_last", "ok", images_per_s=150.0),
              Trial("compile+channels_last", "ok", images_per_s=300.0, warmup_s=60.0),
              Trial("compile+nchw", "dropped", reason="InductorError: ...")]
    # 32-image steps: channels_last 0.213 s, compiled 0.107 s + 60 s once -> compile pays after ~563 steps
    assert fastpath.pick(trials, planned_steps=500, batch=32) == "channels_last"
    assert fastpath.pick(trials, planned_steps=700, batch=32) == "compile+channels_last"
    # a gain within the margin keeps the plain format; nothing measured also means the plain format
    assert fastpath.pick([Trial("nchw", "ok", images_per_s=100.0), Trial("channels_last", "ok", images_per_s=102.0)],
                         planned_steps=10, batch=32) == "nchw"
    assert fastpath.pick([Trial("channels_last", "dropped")], planned_steps=10, batch=32) == "nchw"


def test_fixed_requests_skip_the_probe(monkeypatch):
    model, (x, y) = _tiny_cnn(), _batch()
    monkeypatch.delenv(fastpath.ENV_FAST_PATH, raising=False)
    off = fastpath.choose(model, x, y, "train", CPU, "off", "tiny", batch=8)
    assert (off.format, off.source, off.trials) == ("nchw", "config", [])
    assert fastpath.choose(model, x, y, "eval", CPU, "compile+channels_last", "tiny", batch=8).format == "channels_last"
    monkeypatch.setenv(fastpath.ENV_FAST_PATH, "channels_last")
    env = fastpath.choose(model, x, y, "train", CPU, "auto", "tiny", batch=8)
    assert (env.format, env.source) == ("channels_last", "env")
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        fastpath.choose(model, x, y, "train", CPU, "cudagraphs+channels_last", "tiny", batch=8)
    with pytest.raises(ConfigError, match="fast_path='turbo' is not allowed"):
        fastpath.choose(model, x, y, "train", CPU, "turbo", "tiny", batch=8)


def test_probe_training_run_records_the_measured_choice(tiny_store, cache_dir, tmp_path):
    from kdbench.train import TrainConfig, train_student

    cfg = TrainConfig(epochs=20, batch_size=16, max_batches_per_epoch=1, patience=0, device="cpu", precise_bn_batches=0,
                      fast_path="probe")
    result = train_student(tiny_store, "mobilenet_v3_small", "scratch", {}, cfg, out_dir=tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())["fast_path"]
    assert result.status == "ok" and saved == result.fast_path
    assert saved["train"]["source"] == saved["eval"]["source"] == "measured"
    assert saved["train"]["format"] in ("nchw", "channels_last") and saved["train"]["key"].startswith("train|mobilenet_v3_small|64px|cpu|b16|")
    cached = json.loads((cache_dir / fastpath.CACHE_FILE).read_text())
    assert set(cached) == {saved["train"]["key"], saved["eval"]["key"]}


def test_inference_forward_gives_the_plain_logits_and_caches_its_choice(cache_dir):
    model, (x, _) = _tiny_cnn().eval(), _batch(n=12)
    with torch.no_grad():
        expected = model(x)
    forward = fastpath.inference(model, CPU, "tiny-teacher", "probe", probe_batch=8)
    torch.testing.assert_close(forward(x), expected, rtol=1e-4, atol=1e-5)
    cached = json.loads((cache_dir / fastpath.CACHE_FILE).read_text())
    (key,) = cached
    assert key.startswith("eval|tiny-teacher|16px|cpu|b8|") and cached[key]["format"] in fastpath.LAYOUTS


def _depthwise_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


@pytest.mark.parametrize("phase", ["train", "eval"])
def test_auto_is_a_rule_that_never_times_candidates_or_reads_the_cache(cache_dir, monkeypatch, phase):
    x, y = _batch()
    (cache_dir / fastpath.CACHE_FILE).write_text(json.dumps({fastpath.format_key(phase, "dw", 16, CPU, 8): {
        "phase": phase, "format": "nchw", "source": "measured", "trials": [{"format": "nchw", "status": "ok"}]}}))

    def no_timing(*args):
        raise AssertionError("auto timed the candidates")

    monkeypatch.setattr(fastpath, "_time_rounds", no_timing)
    dw = fastpath.choose(_depthwise_cnn(), x, y, phase, CPU, "auto", "dw", batch=8, planned_steps=500)
    assert (dw.format, dw.source) == ("channels_last", "rule")  # the cached "nchw" is not read
    assert [t.status for t in dw.trials] == ["ok", "ok"] and all(t.images_per_s is None for t in dw.trials)
    plain = fastpath.choose(_tiny_cnn(), x, y, phase, CPU, "auto", "plain", batch=8, planned_steps=500)
    assert (plain.format, plain.source) == ("nchw", "rule") and "no depthwise" in plain.trials[0].reason
    # a rule's format that fails the float64 check falls back to nchw, with the reason
    broken = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1, groups=1), nn.Conv2d(6, 6, 3, padding=1, groups=6),
                           _ReadsRawMemory(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    fallback = fastpath.choose(broken, x, y, phase, CPU, "auto", "broken", batch=8, planned_steps=500)
    assert fallback.format == "nchw" and fallback.trials[1].status == "dropped"
    assert json.loads((cache_dir / fastpath.CACHE_FILE).read_text()).keys() == {
        fastpath.format_key(phase, "dw", 16, CPU, 8)}  # nothing written


def test_the_cuda_rule_keeps_depthwise_students_in_nchw():
    """On CUDA the rule is the CPU's reversed (measured on an H200 by tests/gpu/gpu_check.py formats: channels_last
    trained mobilenet_v3_small slower); the probe there also offers CUDA graphs in either layout. No GPU needed:
    the rule reads the device's type and the model only."""
    cuda = torch.device("cuda")
    assert fastpath.rule_format(_depthwise_cnn(), cuda)[0] == "nchw"
    assert fastpath.rule_format(_tiny_cnn(), cuda)[0] == "channels_last"
    assert fastpath.rule_format(_depthwise_cnn(), CPU)[0] == "channels_last"
    assert {"cudagraphs+nchw", "cudagraphs+channels_last"} <= set(fastpath.candidates("train", cuda, True))
    assert not any(f.startswith("cudagraphs") for f in fastpath.candidates("train", CPU, True))


def test_a_probe_on_a_busy_host_is_not_cached(cache_dir, monkeypatch):
    monkeypatch.setattr(fastpath.os, "getloadavg", lambda: (1000.0, 0.0, 0.0))
    x, y = _batch()
    choice = fastpath.choose(_tiny_cnn(), x, y, "train", CPU, "probe", "busy", batch=8, planned_steps=30)
    assert choice.source == "measured" and choice.load_avg == 1000.0
    assert not (cache_dir / fastpath.CACHE_FILE).exists()


def test_the_rules_check_does_not_depend_on_the_seed_the_batch_or_the_rng(cache_dir):
    """The rule's float64 check runs on fixed weights, a fixed batch and fixed dropout masks: two seed runs of one
    architecture (other weights, other first batch, another RNG state) get the very same check, so a check
    reused from another run (the per-process memo) is the check this run would have made: a resumed search
    trains in the format of the uninterrupted one. On a run's own weights the check's tolerance (relative to
    nchw's own float error) moved with the seed, and a reused check gave a seed another format."""
    from kdbench.models import create_model

    outcomes = []
    for seed in (4, 999):
        torch.manual_seed(seed)
        model = create_model("mobilenet_v3_small", num_classes=4)  # depthwise, dropout: the rule's check runs
        x, y = torch.rand(8, 1, 32, 32), torch.randint(0, 4, (8,))
        torch.rand(seed)  # another RNG state
        fastpath._RULE_CHECKS.clear()
        state = torch.get_rng_state()
        choice = fastpath.choose(model, x, y, "train", torch.device("cpu"), "auto", "mobilenet_v3_small", 8)
        assert torch.equal(torch.get_rng_state(), state)  # the run's own RNG is left as it was
        outcomes.append([(t.format, t.status, t.rel_error) for t in choice.trials])
    assert outcomes[0] == outcomes[1] and outcomes[0][1][1] == "ok", outcomes
