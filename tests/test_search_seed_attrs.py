"""Per-seed results on the Optuna trial as flat scalars (optuna-dashboard stays narrow), the full record in
trial.json, the objective named as the seed mean, and older studies' ``seed_results`` attribute still read."""

from __future__ import annotations

import json
import statistics
import warnings
from pathlib import Path

import pytest
from search_fixtures import tiny_space_toml

STUDENT = "test_efficientnet"
SEEDS = (0, 1, 2)
WIDE = 200  # characters: a serialised dict/list user attribute longer than this widens the dashboard's page


def _summary(val: float, test: float, wall: float, status: str = "ok") -> dict:
    return {"status": status, "val_accuracy": val, "test_accuracy": test, "val_macro_f1": val / 2,
            "test_macro_f1": test / 2, "wall_time_s": wall}


LEGACY = {"0": {**_summary(0.5, 0.4, 3.0), "epochs_run": 2, "best_epoch": 1, "message": ""},
          "1": {**_summary(0.7, 0.6, 5.0), "epochs_run": 2, "best_epoch": 0, "message": ""}}


def _trial(value: float, **user_attrs):
    import optuna

    return optuna.trial.create_trial(value=value, user_attrs=user_attrs)


def _legacy_study(tmp_path: Path):
    """An in-memory study whose one trial carries what older kdbench wrote: ``seed_results`` and flat metrics."""
    import optuna

    flat = {f"seed_{s}_{k}": r[k] for s, r in LEGACY.items() for k in ("val_accuracy", "test_accuracy")}
    study = optuna.create_study(direction="maximize")
    study.add_trial(_trial(0.6, seed_results=LEGACY, method="vanilla", **flat))
    return study


def test_flat_attributes_rebuild_the_per_seed_dict_in_seed_order():
    from kdbench.search.seed_attrs import seed_attrs, seed_results_of

    summaries = {"10": _summary(0.9, 0.8, 2.0), "2": _summary(0.5, 0.4, 1.0),
                 "3": {**_summary(0.1, 0.1, 1.5), "val_clip_accuracy": 0.25}}
    attrs = {}
    for seed, summary in summaries.items():  # trial.json's extra keys (epochs, message) stay off the trial
        attrs.update(seed_attrs(seed, {**summary, "message": "x", "best_epoch": 1}))
    assert attrs["seed_10_val_accuracy"] == 0.9 and "seed_10_message" not in attrs
    assert all(not isinstance(v, (dict, list)) for v in attrs.values())
    rebuilt = seed_results_of(_trial(0.5, seed_2_unknown=1, mean_val_accuracy=0.5, **attrs))
    assert list(rebuilt) == ["2", "3", "10"] and rebuilt == summaries
    assert seed_attrs(0, {"status": "non_finite", "val_accuracy": None, "wall_time_s": 0.5}) == {
        "seed_0_status": "non_finite", "seed_0_wall_time_s": 0.5}


def test_a_legacy_seed_results_attribute_is_still_read(tmp_path):
    from kdbench.search.hardware_aware import pricing_summary
    from kdbench.search.results import storage_rows
    from kdbench.search.seed_attrs import seed_results_of
    from kdbench.search.status import study_status

    only_legacy = _trial(0.6, seed_results=LEGACY)
    assert seed_results_of(only_legacy) == LEGACY
    study = _legacy_study(tmp_path)
    assert seed_results_of(study.trials[0]) == LEGACY  # the flat metrics agree; status and wall time from the dict
    row = storage_rows({STUDENT: study})[0]
    assert row["n_seeds"] == 2 and row["mean_val_accuracy"] == pytest.approx(0.6)
    assert row["std_test_accuracy"] == pytest.approx(statistics.stdev([0.4, 0.6]))
    best = study_status({STUDENT: study}, tmp_path)["students"][STUDENT]["best"]
    assert best["mean_test_accuracy"] == pytest.approx(0.5)
    summary = pricing_summary(study.trials)
    assert summary["seeds_trained"] == 2 and summary["median_seed_s"] == pytest.approx(4.0)


def test_a_reused_legacy_twin_gives_flat_attributes(tmp_path):
    from kdbench.search.objective import REUSED_ATTR, _reuse_results

    class Recorder:
        def __init__(self):
            self.user_attrs = {}

        def set_user_attr(self, key, value):
            self.user_attrs[key] = value

    class Config:
        def to_dict(self):
            return {"student": STUDENT, "method": "vanilla"}

    twin = _legacy_study(tmp_path).trials[0]
    trial = Recorder()
    assert _reuse_results(trial, Config(), twin) == 0.6
    assert trial.user_attrs[REUSED_ATTR] == 0 and "seed_results" not in trial.user_attrs
    assert trial.user_attrs["seed_1_wall_time_s"] == 5.0 and trial.user_attrs["seed_0_status"] == "ok"


def test_metric_names_say_seed_mean_whatever_the_number_of_seeds():
    from kdbench.search.runner import metric_names
    from kdbench.search.space import parse_space

    def names(study: dict) -> list[str]:
        return metric_names(parse_space({"study": {"students": [STUDENT], **study}, "space": {"method": "scratch"}},
                                        "m.toml", check_students=False))

    assert names({"seeds": 3}) == names({"seeds": {"min": 2, "max": 8}}) == ["val_accuracy_seed_mean"]
    assert names({"seeds": 3, "objective": "val_macro_f1"}) == ["val_macro_f1_seed_mean"]
    assert names({"seeds": 3, "objective": ["val_accuracy", "latency_p50@rpi4"]}) == [
        "val_accuracy_seed_mean", "latency_p50@rpi4"]


@pytest.fixture(scope="module")
def study_run(tmp_path_factory):
    """A real two-cell grid (scratch, vanilla) on three seeds, run in process."""
    from fault_fixtures import make_search_inputs

    from kdbench.search.runner import SearchRequest, run_search

    root = tmp_path_factory.mktemp("seed_attrs")
    store, teacher = make_search_inputs(root, STUDENT)
    space = root / "attrs.toml"
    space.write_text(tiny_space_toml("attrs", [STUDENT], list(SEEDS), study={"sampler": "grid"},
                                     vanilla={"temperature": [2.0]}))
    req = SearchRequest(config=space, store=store, teacher=teacher, run_dir=root / "runs", device="cpu")
    return req, run_search(req)["study_dir"]


def _study(study_dir: Path):
    from kdbench.search.runner import load_studies

    return load_studies(study_dir, None)[STUDENT]


def _records(study_dir: Path) -> dict[int, dict]:
    paths = study_dir.glob(f"trials/{STUDENT}/*/trial.json")
    return {t["trial"]: t for t in (json.loads(p.read_text()) for p in paths)}


def test_a_real_study_keeps_per_seed_results_flat_and_in_trial_json(study_run):
    from kdbench.search.seed_attrs import SEED_KEYS, seed_results_of

    _, study_dir = study_run
    study, records = _study(study_dir), _records(study_dir)
    trials = study.get_trials()
    assert len(trials) == 2 and all(t.state.name == "COMPLETE" for t in trials) and set(records) == {0, 1}
    assert study.metric_names == ["val_accuracy_seed_mean"]
    for t in trials:
        wide = {k: len(json.dumps(v)) for k, v in t.user_attrs.items()
                if isinstance(v, (dict, list)) and len(json.dumps(v)) > WIDE}
        assert not wide and "seed_results" not in t.user_attrs
        record = records[t.number]
        assert sorted(record["seeds"]) == [str(s) for s in SEEDS] and record["seeds"]["0"]["epochs_run"] >= 1
        for s in SEEDS:
            assert t.user_attrs[f"seed_{s}_val_accuracy"] == record["seeds"][str(s)]["val_accuracy"]
        assert seed_results_of(t) == {s: {k: r[k] for k in SEED_KEYS if r.get(k) is not None}
                                      for s, r in record["seeds"].items()}
        assert t.value == pytest.approx(record["mean_val_accuracy"])


def test_readers_give_the_numbers_of_trial_json(study_run, tmp_path):
    from kdbench.search.hardware_aware import pricing_summary
    from kdbench.search.results import storage_rows
    from kdbench.search.status import study_status

    _, study_dir = study_run
    study, records = _study(study_dir), _records(study_dir)
    for row in storage_rows({STUDENT: study}):
        record = records[row["trial"]]
        assert row["n_seeds"] == len(record["seeds"]) == len(SEEDS)
        for key in ("mean_val_accuracy", "std_val_accuracy", "mean_test_accuracy", "std_test_accuracy",
                    "mean_val_macro_f1", "mean_test_macro_f1"):
            assert row[key] == pytest.approx(record[key]), key
    best = study_status({STUDENT: study}, study_dir)["students"][STUDENT]["best"]
    assert best["mean_test_accuracy"] == pytest.approx(records[best["trial"]]["mean_test_accuracy"])
    walls = [s["wall_time_s"] for r in records.values() for s in r["seeds"].values()]
    summary = pricing_summary(study.get_trials())
    assert summary["seeds_trained"] == len(walls) == 2 * len(SEEDS)
    assert summary["median_seed_s"] == pytest.approx(statistics.median(walls))


def test_resuming_a_study_with_the_old_metric_names_renames_them(study_run):
    import optuna

    from kdbench.search.runner import run_search

    req, study_dir = study_run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        _study(study_dir).set_metric_names(["val_accuracy"])  # what kdbench named it before
    assert _study(study_dir).metric_names == ["val_accuracy"]
    run_search(req)  # the budget is used: nothing trains
    study = _study(study_dir)
    assert study.metric_names == ["val_accuracy_seed_mean"] and len(study.get_trials()) == 2
