"""KD vs scratch at the same input size: the statistics pair them, and the search trains a missing baseline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdbench.search.baselines import matched_baseline, missing_baselines
from kdbench.search.statistics import study_statistics


def _trial(n: int, method: str, size: int | None, accs: list[float]) -> dict:
    seeds = {str(s): {"val_accuracy": a, "test_accuracy": a, "macro_f1": a} for s, a in enumerate(accs)}
    return {"trial": n, "student": "s", "method": method, "config_id": f"c{n}", "hparams": {}, "state": "complete",
            "train": {"input_size": size} if size else {}, "seeds": seeds,
            "mean_val_accuracy": sum(accs) / len(accs)}


def test_the_baseline_is_the_best_one_at_the_kd_configurations_size():
    scratch32 = _trial(0, "scratch", 32, [0.9, 0.9, 0.9])
    scratch24 = _trial(1, "scratch", 24, [0.5, 0.6, 0.7])
    kd24 = _trial(2, "vanilla", 24, [0.7, 0.8, 0.9])
    kd32 = _trial(3, "vanilla", 32, [0.6, 0.6, 0.6])
    assert matched_baseline([scratch32, scratch24, kd24], kd24, "scratch", "val_accuracy") is scratch24
    assert missing_baselines([scratch32, kd24, kd32], "scratch", "val_accuracy") == [24]
    stats = study_statistics([scratch32, scratch24, kd24, kd32], [0, 1, 2])
    (row,) = [c for c in stats["comparisons"] if c["metric"] == "val_accuracy"]
    assert (row["a"]["trial"], row["b"]["trial"]) == (2, 1)  # KD at 24 px against scratch at 24 px, not the 32 px one
    assert row["diff"] == pytest.approx(0.2)
    lacking = study_statistics([scratch32, kd24, kd32], [0, 1, 2])
    assert not lacking["comparisons"]
    assert any("no completed 'scratch' trial at input size 24 px" in w for w in lacking["warnings"])
    # without input sizes (a fixed-size study) the rule is the old one: the best baseline configuration
    plain = [_trial(0, "scratch", None, [0.5] * 3), _trial(1, "scratch", None, [0.6] * 3), _trial(2, "dkd", None, [0.7] * 3)]
    assert matched_baseline(plain, plain[2], "scratch", "val_accuracy") is plain[1]


def test_search_trains_the_missing_baseline_once_at_the_best_kd_size(phantom_32px, tmp_path: Path):
    from kdbench.search.liveness import SLOT_ATTR
    from kdbench.search.runner import SearchRequest, load_studies, run_search

    store, teacher = phantom_32px
    space = tmp_path / "sizes.toml"
    space.write_text("""
[study]
name = "sizes"
students = ["mobilenet_v3_small"]
seeds = [0, 1]
n_trials = 2
sampler = "random"
sampler_seed = 12  # the baseline draws 32 px, the KD trial 24 px (kdbench.search.sampler.slot_seed)
pruner = "none"
baseline = "scratch"

[train]
epochs = 1
batch_size = 8
max_batches_per_epoch = 1

[space]
method = ["scratch", "vanilla"]
input_size = [16, 24, 32]
""")
    req = SearchRequest(config=space, store=store, teacher=teacher, run_dir=tmp_path / "runs", device="cpu")
    study_dir = run_search(req)["study_dir"]
    trials = load_studies(study_dir, None)["mobilenet_v3_small"].get_trials()
    extra = [t for t in trials if str(t.system_attrs.get(SLOT_ATTR, "")).startswith("baseline@input_size=")]
    kd = [t for t in trials if t.params.get("method") == "vanilla"]
    assert len(kd) == 1 and len(extra) == 1, [(t.params, t.system_attrs.get(SLOT_ATTR)) for t in trials]
    assert extra[0].params == {"method": "scratch", "input_size": kd[0].params["input_size"]}
    assert extra[0].state.name == "COMPLETE" and len(trials) == 3  # the budget's 2, plus the baseline it needed
    stats = json.loads((study_dir / "statistics.json").read_text())
    (row,) = [c for c in stats["comparisons"] if c["metric"] == "val_accuracy"]
    assert (row["a"]["trial"], row["b"]["trial"]) == (kd[0].number, extra[0].number)
    run_search(req)  # resumed: nothing queued twice
    assert len(load_studies(study_dir, None)["mobilenet_v3_small"].get_trials()) == 3
