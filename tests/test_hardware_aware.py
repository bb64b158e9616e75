"""Hardware-aware search: input size and width as search dimensions, the target's constraints inside the search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kdbench.errors import ConfigError

ARCH = "mobilenetv3_small_050"


@pytest.fixture(scope="module")
def search_inputs(tmp_path_factory):
    """A 32 px phantom store and an untrained stand-in teacher checkpoint."""
    from fault_fixtures import make_search_inputs

    return make_search_inputs(tmp_path_factory.mktemp("hw"))


@pytest.fixture(scope="module")
def prices(tmp_path_factory):
    """The rpi4 price of ARCH at 16 and 32 px (one export each, shared by the tests)."""
    from kdbench.search.hardware_aware import Pricer

    pricer = Pricer("rpi4", tmp_path_factory.mktemp("pricing"))
    return pricer, {s: pricer.price(ARCH, s) for s in (16, 32)}


def _profile(tmp_path: Path, min_fps: float, name: str = "tight") -> Path:
    """A copy of the rpi4 profile with another fps limit (the same estimator)."""
    from kdbench.profile.hardware import load_profile

    text = load_profile("rpi4").path.read_text().replace('name = "rpi4"', f'name = "{name}"')
    path = tmp_path / f"{name}.toml"
    path.write_text(text.replace("min_fps = 30.0", f"min_fps = {min_fps}"))
    return path


def test_resized_store_resizes_batches_and_keeps_rows(search_inputs):
    import torch
    import torch.nn.functional as F

    from kdbench.data.loader import StoreLoader
    from kdbench.data.resized import resized_store
    from kdbench.data.store import FrameStore

    store = FrameStore.open(search_inputs[0])
    assert resized_store(store, None) is store and resized_store(store, 32) is store
    small = resized_store(store, 16)
    assert small.size == 16 and small.store_hash == store.store_hash and len(small) == len(store)
    x, y, idx = next(iter(StoreLoader(small, "train", 4)))
    assert tuple(x.shape) == (len(idx), 1, 16, 16) and torch.equal(y, torch.from_numpy(store.labels[idx.numpy()]))
    full = torch.from_numpy(store.frames[idx.numpy()].astype(np.float32) / 255)[:, None]
    want = F.interpolate(full, size=(16, 16), mode="bilinear", antialias=True, align_corners=False)
    assert torch.allclose(x, want, atol=1e-6)
    # a 1-pixel checkerboard averages to grey (away from the border) instead of aliasing to one of its values
    board = np.indices((32, 32)).sum(0) % 2 * 255
    assert np.allclose(small.frames.__class__(board[None], 16)[0][1:-1, 1:-1], 127.5, atol=1e-3)
    with pytest.raises(ConfigError, match="larger than the store's 32 px"):
        resized_store(store, 48)


def test_families_expand_into_students():
    from kdbench.search.families import FAMILIES, family_of
    from kdbench.search.space import parse_space

    raw = {"study": {"families": ["shufflenet_v2"], "students": ["mobilenet_v3_small"], "seeds": 1},
           "space": {"method": "scratch", "input_size": [16, 24, 32]}}
    space = parse_space(raw, "fam.toml")
    assert space.students == ["mobilenet_v3_small", *FAMILIES["shufflenet_v2"]]
    assert space.families == {m: "shufflenet_v2" for m in FAMILIES["shufflenet_v2"]}
    assert family_of("shufflenet_v2_x1_5", space.families) == "shufflenet_v2" and family_of("resnet18") == "resnet18"
    assert space.shared["input_size"].choices == (16, 24, 32)
    own = parse_space({"study": {"families": {"mine": ["resnet18", "resnet34"]}, "seeds": 1},
                       "space": {"method": "scratch"}}, "own.toml")
    assert own.students == ["resnet18", "resnet34"] and own.families["resnet34"] == "mine"
    with pytest.raises(ConfigError, match=r"fam.toml: study.families 'nope' is not a known family"):
        parse_space({"study": {"families": ["nope"]}, "space": {"method": "scratch"}}, "fam.toml")
    with pytest.raises(ConfigError, match=r"space.input_size = 4 is out of range"):
        parse_space({**raw, "space": {"method": "scratch", "input_size": [4, 16]}}, "fam.toml")


def test_target_keys_are_checked():
    from kdbench.search.space import parse_space

    base = {"students": [ARCH], "seeds": 1}
    space = parse_space({"study": {**base, "target": "rpi4"}, "space": {"method": "scratch"}}, "t.toml")
    assert space.target == "rpi4" and space.precision == "fp32"
    with pytest.raises(ConfigError, match=r"t.toml: study.target = 'mars'"):
        parse_space({"study": {**base, "target": "mars"}, "space": {"method": "scratch"}}, "t.toml")
    with pytest.raises(ConfigError, match=r"study.precision = 'int4'; expected one of \['fp32', 'int8'\]"):
        parse_space({"study": {**base, "target": "rpi4", "precision": "int4"}, "space": {"method": "scratch"}}, "t.toml")
    with pytest.raises(ConfigError, match="study.precision is given without study.target"):
        parse_space({"study": {**base, "precision": "int8"}, "space": {"method": "scratch"}}, "t.toml")


def test_a_local_target_is_measured_here_not_estimated(tmp_path):
    """x86 (this host's architecture, no calibration): the price is a real ONNX Runtime measurement, 3 processes."""
    from kdbench.profile.hardware import load_profile
    from kdbench.search.hardware_aware import Pricer, check_target, is_local

    assert is_local(load_profile("x86")) and not is_local(load_profile("rpi4")) and not is_local(load_profile("gpu"))
    check_target("x86", "fp32", "t.toml")  # measurable here: no calibration needed
    with pytest.raises(ConfigError, match="study.target = 'gpu'"):
        check_target("gpu", "fp32", "t.toml")  # neither this host nor calibrated
    pricer = Pricer("x86", tmp_path)
    price = pricer.price(ARCH, 16)
    assert price.method == "measured" and price.target == "x86" and not price.cached
    assert 0 < price.fps_low <= price.fps <= price.fps_high
    assert price.fps == pytest.approx(1000.0 / price.latency_ms, rel=0.02)
    assert price.model_memory_mb > 0 and price.size_mb > 0 and price.status == "meets"  # >= 30 fps on a desktop CPU
    again = Pricer("x86", tmp_path).price(ARCH, 16)  # a new process reads the cached measurement: not measured twice
    assert again.cached and again.fps == price.fps and again.latency_ms == price.latency_ms


def test_price_is_the_estimators_record_cached_and_judged_by_the_shared_evaluator(prices, tmp_path):
    from kdbench.profile.constraints import evaluate_constraints
    from kdbench.search.hardware_aware import Pricer

    pricer, by_size = prices
    small, big = by_size[16], by_size[32]
    assert small.method == "estimated" and small.fps > big.fps > 0  # fewer pixels, less work
    assert small.fps_low < small.fps < small.fps_high and small.error_band_pct > 0
    again = pricer.price(ARCH, 16)
    assert again.cached and again.fps == small.fps
    assert pricer.model_path(ARCH, 16).is_file() and pricer.price_path(ARCH, 16).is_file()
    assert (small.status, small.reasons) == evaluate_constraints(small.to_dict(), pricer.profile.constraints)
    # a limit between the two sizes' optimistic ends: 32 px fails, 16 px does not; the cached prices are judged anew
    limit = (small.fps_high + big.fps_high) / 2
    tight = Pricer(str(_profile(tmp_path, limit)), pricer.cache_dir)
    tight_small, tight_big = tight.price(ARCH, 16), tight.price(ARCH, 32)
    assert tight_big.status == "fails" and not tight_big.feasible
    assert tight_small.feasible and tight_small.constraint["min_fps"] == pytest.approx(limit - small.fps_high)
    assert tight_small.constraint["min_fps"] < 0 < tight_big.constraint["min_fps"] == pytest.approx(limit - big.fps_high)
    assert set(tight_big.constraint) == {"min_fps", "max_memory_mb"}


@pytest.mark.slow
def test_rpi4_aware_search_skips_infeasible_sizes_and_trains_the_rest_at_their_size(search_inputs, prices, tmp_path):
    from kdbench.search.hardware_aware import price_of, pricing_line
    from kdbench.search.objective import read_seed_log
    from kdbench.search.results import read_study_json
    from kdbench.search.runner import SearchRequest, load_studies, run_search

    store, teacher = search_inputs
    _, by_size = prices
    profile = _profile(tmp_path, (by_size[16].fps_high + by_size[32].fps_high) / 2)
    space = tmp_path / "hw.toml"
    space.write_text(f"""
[study]
name = "hw"
families = {{tiny = ["{ARCH}"]}}
target = "{profile}"
seeds = [0]
n_trials = 5
n_startup_trials = 1
pruner = "none"
baseline = "none"
sampler_seed = 0

[train]
epochs = 1
batch_size = 8
max_batches_per_epoch = 1

[space]
method = "vanilla"
input_size = [16, 32]
""")
    study_dir = run_search(SearchRequest(config=space, store=store, teacher=teacher, run_dir=tmp_path / "runs",
                                         device="cpu"))["study_dir"]
    trials = load_studies(study_dir, None)[ARCH].get_trials()
    assert read_study_json(study_dir)["config"]["raw"]["study"]["target"] == str(profile)
    # n_trials is a training budget: the trials priced infeasible (never trained) come on top of the 5
    infeasible = [t for t in trials if "infeasible" in t.user_attrs]
    assert infeasible and len(trials) == 5 + len(infeasible) and all(t.state.name == "PRUNED" for t in infeasible)
    pricing = json.loads((study_dir / "statistics.json").read_text())["pricing"]
    assert (pricing["priced"], pricing["infeasible"], pricing["exports"]) == (len(trials), len(infeasible), 2)
    assert pricing_line(pricing).startswith(f"{len(trials)} configurations priced, {len(infeasible)} infeasible "
                                            "not trained")
    started = {e["trial"] for e in read_seed_log(study_dir) if e["event"] == "start"}
    for t in trials:
        size = t.params["input_size"]
        assert t.user_attrs["family"] == "tiny" and price_of(t)["input_size"] == size and t.user_attrs["price_input_size"] == size
        assert not [k for k, v in t.user_attrs.items() if len(json.dumps(v)) > 200], "optuna-dashboard: flat attributes"
        assert t.constraints == t.user_attrs["constraint"]  # given to Optuna: its TPE sampler learns the feasible region
        if size == 32:  # priced infeasible: pruned before any seed trained
            assert t.state.name == "PRUNED" and t.user_attrs["infeasible"].endswith("not trained")
            assert "fps" in t.user_attrs["infeasible"] and t.number not in started
        elif "same_as_trial" in t.user_attrs:  # the sampler proposed the trained 16 px configuration again: reused
            twin = t.user_attrs["same_as_trial"]
            assert t.state.name == "COMPLETE" and t.number not in started and twin in started
        else:
            assert t.state.name == "COMPLETE" and t.number in started
            metrics = json.loads((study_dir / "trials" / ARCH / str(t.number) / "seed_0" / "metrics.json").read_text())
            assert metrics["config"]["input_size"] == 16
    assert {t.params["input_size"] for t in trials} == {16, 32}
    exports = list((study_dir / "pricing" / "onnx").glob("*.onnx"))
    assert sorted(p.name for p in exports) == [f"{ARCH}_16_fp32.onnx", f"{ARCH}_32_fp32.onnx"]  # once per size
