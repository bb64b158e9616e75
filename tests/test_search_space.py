"""Search space files: the shipped spaces, conditional dimensions, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from kdbench.errors import ConfigError
from kdbench.search.space import grid_id, load_space, parse_space

SPACES = Path(__file__).resolve().parents[1] / "search_spaces"


def _raw(**overrides):
    raw = {"study": {"students": ["mobilenet_v3_small"], "seeds": [0, 1]},
           "train": {"epochs": 2},
           "space": {"method": ["scratch", "vanilla", "ctkd"],
                     "vanilla": {"temperature": {"low": 1.0, "high": 8.0}, "alpha": 0.5},
                     "ctkd": {"schedule": ["linear", "cosine"], "e_cap": {"low": 2, "high": 10}}}}
    for dotted, value in overrides.items():
        table, key = dotted.split("__")
        raw[table][key] = value
    return raw


def test_paper_space_is_the_reports_grid():
    space = load_space(SPACES / "paper.toml")
    assert space.students == ["mobilenet_v3_small", "mobilenet_v3_large", "shufflenet_v2_x1_0", "ghostnet_100"]
    assert space.seeds == [0, 1, 2, 3, 4] and space.sampler == "grid" and space.warnings == []
    assert space.train["batch_size"] == 256 and space.train["epochs"] == 20
    grid = space.grid()
    assert grid[0]["method"] == "scratch"  # the baseline first
    kd = [c for c in grid if c["method"] != "scratch"]
    assert all(c["hparams"].get("alpha", 0.5) == 0.5 for c in kd)
    assert sorted(c["hparams"]["temperature"] for c in grid if c["method"] == "vanilla") == [1.0, 2.0, 4.0, 8.0]
    assert [c["hparams"]["temperature"] for c in grid if c["method"] == "conditional"] == [4.0]
    assert sorted(c["hparams"]["schedule"] for c in grid if c["method"] == "ctkd") == ["cosine", "linear"]
    newer = {c["method"]: c["hparams"] for c in grid if c["method"] in ("dist", "wttm", "nkd")}
    assert newer == {"dist": {"beta": 1.0, "gamma": 1.0, "temperature": 1.0}, "wttm": {"gamma": 0.2, "beta": 4.0},
                     "nkd": {"temperature": 1.0, "gamma": 1.5}}  # the newer logit methods at their recipes
    assert len({grid_id(c) for c in grid}) == len(grid) == 11
    assert space.trials_per_student() == {s: 11 for s in space.students}


def test_quick_and_wide_spaces_load():
    quick = load_space(SPACES / "quick.toml")
    assert sum(quick.trials_per_student().values()) == quick.n_trials
    assert quick.warnings and "3 seed" in quick.warnings[0]  # fewer than 5 seeds is flagged
    wide = load_space(SPACES / "wide.toml", check_students=False)
    assert wide.method_dims["vanilla"]["temperature"].kind == "float"
    assert wide.method_dims["ctkd"]["e_cap"].kind == "int"
    assert wide.shared["batch_size"].kind == "categorical" and len(wide.students) > 4


def test_conditional_dimensions_only_for_their_method():
    space = parse_space(_raw())
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {}
    for _ in range(30):
        trial = study.ask()
        config = space.suggest(trial)
        seen.setdefault(config["method"], set()).update(trial.params)
        study.tell(trial, 0.0)
    assert seen["scratch"] == {"method"}
    assert seen["vanilla"] == {"method", "vanilla.temperature"}  # alpha is fixed: not an Optuna param
    assert seen["ctkd"] == {"method", "ctkd.schedule", "ctkd.e_cap"}
    study.enqueue_trial(space.cell_params({"method": "scratch", "hparams": {}, "train": {}}))
    trial = study.ask()
    baseline = space.suggest(trial)  # the baseline is a queued trial whose method param is fixed
    assert baseline["method"] == "scratch" and baseline["train"]["epochs"] == 2
    assert trial.params == {"method": "scratch"}


def test_grid_cells_are_queued_as_real_optuna_params():
    """Every grid cell's params make suggest() return that cell; the params are real Optuna params."""
    space = load_space(SPACES / "paper.toml", check_students=False)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for cell in space.grid():
        study.enqueue_trial(space.cell_params(cell))
        trial = study.ask()
        assert space.suggest(trial) == cell
        assert trial.params["method"] == cell["method"]
        assert {k.split(".", 1)[1]: v for k, v in trial.params.items() if "." in k} == {
            k: v for k, v in cell["hparams"].items() if space.method_dims[cell["method"]][k].kind != "fixed"}
        study.tell(trial, 0.0)


def test_n_trials_is_split_over_students():
    space = parse_space(_raw(study__students=["mobilenet_v3_small", "shufflenet_v2_x1_0"], study__n_trials=5))
    assert space.trials_per_student() == {"mobilenet_v3_small": 3, "shufflenet_v2_x1_0": 2}
    assert space.trials_per_student(2) == {"mobilenet_v3_small": 1, "shufflenet_v2_x1_0": 1}


@pytest.mark.parametrize("overrides, needle", [
    ({"study__sampler": "bayes"}, "study.sampler = 'bayes'; expected one of ['tpe', 'random', 'grid']"),
    ({"study__colour": 1}, "unknown [study] key 'colour'"),
    ({"study__seeds": [0, 0]}, "repeats a seed"),
    ({"study__students": "mobilenet_v3_small"}, "study.students"),
    ({"study__students": ["mobilenet_v9_tiny"]}, "mobilenet_v9_tiny"),
    ({"train__epochs": 0}, "train.epochs = 0"),
    ({"train__optimizer": "sgd"}, "unknown [train] key 'optimizer'"),
    ({"space__method": ["scratch", "hinton"]}, "space.method 'hinton'"),
    ({"space__vanilla": {"temprature": 4.0}}, "space.vanilla.temprature is not a setting of method 'vanilla'; allowed: temperature"),
    ({"space__vanilla": {"temperature": {"low": 8.0, "high": 1.0}}}, "space.vanilla.temperature low = 8.0 is not below high"),
    ({"space__vanilla": {"alpha": [0.5, 1.5]}}, "space.vanilla.alpha = 1.5"),
    ({"space__ctkd": {"schedule": ["linear", "exponential"]}}, "space.ctkd.schedule = 'exponential'"),
    ({"space__lr": {"low": 0.0, "high": 0.1, "log": True}}, "space.lr has log = true but low = 0.0"),
    ({"study__sampler": "grid"}, "space.vanilla.temperature = range [1.0, 8.0]: the grid sampler needs a list"),
    ({"study__baseline": "dkd"}, "study.baseline = 'dkd'"),
])
def test_malformed_spaces_name_the_key(overrides, needle):
    with pytest.raises(ConfigError) as err:
        parse_space(_raw(**overrides), "bad.toml")
    assert needle in str(err.value) and "bad.toml" in str(err.value)


def test_bad_toml_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[study\nstudents = [")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        load_space(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_space(tmp_path / "missing.toml")
