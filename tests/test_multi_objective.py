"""Multi-objective hardware-aware search: [study] objective = ["val_accuracy", "latency_p50@rpi4"].

A tiny real search on the phantom (one student, three input sizes, two seeds, one epoch of one batch)
whose Optuna study has two directions; its Pareto front as kdbench.search.results.best_trials gives it
must be non-dominated, equal Optuna's own study.best_trials, and be exactly what the leaderboard's
"Pareto front for rpi4" section lists. Also: the up-front errors of a hardware-aware space.
"""

from __future__ import annotations

import re

import pytest

from kdbench.errors import ConfigError, KdbenchError

ARCH = "mobilenetv3_small_050"
SPACE = f"""
[study]
name = "mo"
families = {{tiny = ["{ARCH}"]}}
objective = ["val_accuracy", "latency_p50@rpi4"]
seeds = [0, 1]
sampler = "grid"
baseline = "none"

[train]
epochs = 1
batch_size = 8
max_batches_per_epoch = 1

[space]
method = "scratch"
input_size = [16, 24, 32]
"""


def _parse(study: dict):
    from kdbench.search.space import parse_space

    return parse_space({"study": {"students": [ARCH], "seeds": 1, **study}, "space": {"method": "scratch"}}, "mo.toml")


def test_objective_list_is_parsed_and_checked():
    space = _parse({"objective": ["val_accuracy", "latency_p50@rpi4"], "pruner": "wilcoxon"})
    assert space.objectives == ["val_accuracy", "latency_p50@rpi4"] and space.objective == "val_accuracy"
    assert space.target == "rpi4" and space.pruner == "none"  # pruning is off in multi-objective mode, and said so
    assert any("pruning is off" in w for w in space.warnings)
    assert space.to_dict()["objectives"] == space.objectives
    single = _parse({})
    assert single.objectives == ["val_accuracy"] and single.target is None and single.pruner == "first_seed_median"
    for objective, message in [
        (["val_accuracy", "fps@rpi4"], r"mo.toml: study.objective\[1\] = 'fps@rpi4' is not a known objective"),
        (["test_accuracy", "latency_p50@rpi4"], r"study.objective\[0\] = 'test_accuracy' is not an accuracy objective"),
        (["val_accuracy", "latency_p50"], r"study.objective\[1\] = 'latency_p50' is not a known objective"),
        (["val_accuracy", "latency_p50@mars"],
         r"study.objective\[1\] = 'latency_p50@mars' names target 'mars': hardware profile 'mars' not found"),
        ("latency_p50@rpi4", r"study.objective = 'latency_p50@rpi4'; expected one of"),
    ]:
        with pytest.raises(ConfigError, match=message):
            _parse({"objective": objective})
    with pytest.raises(ConfigError, match=r"names target 'rpi4' but study.target = 'x86'"):
        _parse({"objective": ["val_accuracy", "latency_p50@rpi4"], "target": "x86"})


def test_unknown_family_member_and_target_without_profile_are_rejected_by_name():
    from kdbench.search.space import parse_space

    with pytest.raises(ConfigError, match=r"^f.toml: study.families.mine member 'notanet_9': unknown model"):
        parse_space({"study": {"families": {"mine": ["resnet18", "notanet_9"]}, "seeds": 1},
                     "space": {"method": "scratch"}}, "f.toml")
    with pytest.raises(ConfigError, match=r"^t.toml: study.target = 'nosuch': hardware profile 'nosuch' not found"):
        parse_space({"study": {"students": [ARCH], "target": "nosuch", "seeds": 1}, "space": {"method": "scratch"}},
                    "t.toml")


def test_input_size_above_the_store_is_an_error_before_any_training(phantom_32px, tmp_path):
    from typer.testing import CliRunner

    from kdbench.cli import app

    store, _ = phantom_32px
    space = tmp_path / "big.toml"
    space.write_text(SPACE.replace("[16, 24, 32]", "[16, 64]"))
    result = CliRunner().invoke(app, ["search", "--config", str(space), "--store", str(store),
                                      "--run-dir", str(tmp_path / "runs"), "--device", "cpu"])
    assert isinstance(result.exception, KdbenchError), result.output
    msg = str(result.exception)
    assert "\n" not in msg and msg.startswith(f"{space}: space.input_size 64 is larger than the store's 32 px frames")
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("trial.json"))


@pytest.fixture(scope="module")
def mo_run(phantom_32px, tmp_path_factory):
    """The tiny multi-objective study (3 grid configurations x 2 seeds) run once through the CLI; (dir, output)."""
    from typer.testing import CliRunner

    from kdbench.cli import app

    store, teacher = phantom_32px
    root = tmp_path_factory.mktemp("mo")
    space = root / "mo.toml"
    space.write_text(SPACE)
    result = CliRunner().invoke(app, ["search", "--config", str(space), "--store", str(store),
                                      "--run-dir", str(root / "runs"), "--device", "cpu"])
    assert result.exit_code == 0, (result.output, result.exception)
    return root / "runs" / "mo", result.output


@pytest.fixture(scope="module")
def mo_study(mo_run):
    return mo_run[0]


@pytest.mark.slow
def test_pareto_front_is_optunas_best_trials_and_non_dominated(mo_run):
    from kdbench.search.results import best_trials
    from kdbench.search.runner import load_studies

    mo_study, output = mo_run
    assert "pruning is off" in output and "pruner none" in output
    assert "3 configurations priced, 0 infeasible not trained" in " ".join(output.split())
    study = load_studies(mo_study, None)[ARCH]
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    done = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert len(done) == 3 and {t.params["input_size"] for t in done} == {16, 24, 32}
    for t in done:  # the values Optuna got: the seed mean and the price recorded on the trial
        acc = [t.user_attrs[f"seed_{s}_val_accuracy"] for s in (0, 1)]
        assert t.values == [pytest.approx(sum(acc) / 2), t.user_attrs["price_latency_ms"]]
        assert t.intermediate_values == {}  # nothing reported to a pruner
    front = best_trials(mo_study, per_architecture=False, pareto=True)
    assert sorted(e["trial"] for e in front) == sorted(t.number for t in study.best_trials)
    values = {t.number: t.values for t in done}
    on = {e["trial"] for e in front}
    for n in on:  # no trial dominates a front member; every other trial is dominated by one
        assert not any(v[0] >= values[n][0] and v[1] <= values[n][1] and v != values[n] for v in values.values())
    for n in set(values) - on:
        assert any(values[m][0] >= values[n][0] and values[m][1] <= values[n][1] for m in on)
    assert [e["latency_p50_ms"] for e in front] == sorted(e["latency_p50_ms"] for e in front)
    assert all(e["family"] == "tiny" and e["input_size"] == e["train"]["input_size"] for e in front)


@pytest.mark.slow
def test_leaderboard_lists_exactly_the_front(mo_study, tmp_path):
    from kdbench.leaderboard.build import build_leaderboard
    from kdbench.search.results import best_trials

    lb, _ = build_leaderboard(mo_study, tmp_path / "lb", plots=False)
    readme = (tmp_path / "lb" / "README.md").read_text()
    section = readme.split("## Pareto front for rpi4 (estimated latency)", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith(f"| tiny | {ARCH} |")]
    listed = sorted(int(re.split(r"\s*\|\s*", r)[5]) for r in rows)
    assert listed == sorted(e["trial"] for e in best_trials(mo_study, per_architecture=False, pareto=True))
    assert "Pruning was off" in section and "≈" in section
    assert '"pareto_front"' in (tmp_path / "lb" / "leaderboard.json").read_text()
    methods = readme.split("## Accuracy per method", 1)[1]
    assert "| family | student<br>method · trial |" in methods and f"| tiny | {ARCH}<br>scratch · " in methods  # by family
