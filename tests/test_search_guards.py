"""Guards around a search: confirm only a finished study (or say it is not), the leaderboard uses a confirmation
only while it matches the study's choice, confirm checks its device, augment_versions is bounded by the epochs,
messages name keys as the file wrote them, and a priced search says its pricing line once, without Optuna's
"constraint already set" warning on retried trials."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from search_fixtures import tiny_space_toml

from kdbench.errors import ConfigError, KdbenchError

STUDENT = "test_efficientnet"
CLI = [sys.executable, "-c", "from kdbench.cli import main; main()"]
# a 3-cell grid (scratch, vanilla T=2, vanilla T=4) priced on rpi4; run with --n-trials 2 it is left unfinished
SPACE = tiny_space_toml("guard", [STUDENT], [0, 1], study={"sampler": "grid", "target": "rpi4"},
                        vanilla={"temperature": [2.0, 4.0]})


def _kdbench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def partial(phantom_32px, tmp_path_factory):
    """(study dir, the search's output): the grid's first 2 of 3 cells trained through the real CLI."""
    store, teacher = phantom_32px
    root = tmp_path_factory.mktemp("guard")
    (root / "guard.toml").write_text(SPACE)
    proc = _kdbench("search", "--config", str(root / "guard.toml"), "--store", str(store), "--teacher", str(teacher),
                    "--run-dir", str(root / "runs"), "--n-trials", "2", "--device", "cpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    info_path = root / "runs" / "guard" / "study.json"
    info = json.loads(info_path.read_text())
    assert info["n_trials"] == 2  # the budget this search was given: confirm takes it as the study's
    info["n_trials"] = None  # as a search of the space's whole budget (3) records it, stopped after 2 trials
    info_path.write_text(json.dumps(info))
    return root / "runs" / "guard", proc.stdout + proc.stderr


def test_a_priced_search_prints_its_pricing_line_once(partial):
    _, output = partial
    assert " ".join(output.split()).count("configurations priced") == 1, output
    assert "already set" not in output


def test_confirm_refuses_an_unfinished_study_in_one_line(partial):
    study_dir, _ = partial
    proc = _kdbench("search", "confirm", "--study", str(study_dir), "--seeds", "2", "--device", "cpu")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stdout + proc.stderr
    assert lines[0].startswith("error: study 'guard' is not finished") and "2 of its 3 trial(s) used" in lines[0]
    assert "--allow-unfinished" in lines[0] and "--n-trials" in lines[0]
    assert not (study_dir / "confirm").exists()


def test_a_waiting_trial_or_a_missing_storage_is_unfinished(partial, tmp_path):
    import optuna

    from kdbench.search.confirm import unfinished

    study_dir, _ = partial
    assert unfinished(study_dir, n_trials=2) == []  # the quota the search ran with is used
    copy = tmp_path / "guard"
    shutil.copytree(study_dir, copy, ignore=shutil.ignore_patterns("seed_*", "pricing"))
    optuna.load_study(study_name=f"guard.{STUDENT}", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(copy / "optuna.journal")))).enqueue_trial({"method": "scratch"})
    assert unfinished(copy, n_trials=2) == [f"{STUDENT}: trial(s) [2] WAITING"]
    assert unfinished(study_dir, n_trials=2) == []  # the copy's own journal, not the one study.json names
    (copy / "optuna.journal").unlink()
    with pytest.raises(ConfigError, match=r"Optuna storage .*optuna.journal does not exist; pass --storage URL"):
        unfinished(copy)


def test_confirm_device_tpu_is_one_error_line(partial):
    study_dir, _ = partial
    proc = _kdbench("search", "confirm", "--study", str(study_dir), "--seeds", "2", "--device", "tpu")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stdout + proc.stderr
    assert "tpu" in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_allow_unfinished_is_recorded_and_the_leaderboard_uses_only_a_matching_confirmation(partial):
    from typer.testing import CliRunner

    from kdbench.cli import app
    from kdbench.leaderboard.collect import collect

    study_dir, _ = partial
    args = ["search", "confirm", "--study", str(study_dir), "--seeds", "2", "--device", "cpu"]
    result = CliRunner().invoke(app, [*args, "--allow-unfinished"])
    assert result.exit_code == 0, (result.output, result.exception)
    text = " ".join(result.output.split())
    assert "study 'guard' is not finished" in text and f"confirming {STUDENT} trial " in text
    stats_path = study_dir / "confirm" / "statistics.json"
    stats = json.loads(stats_path.read_text())
    assert stats["study_finished"] is False and stats["unfinished"] == [f"{STUDENT}: 2 of its 3 trial(s) used"]
    trials = {t: json.loads((study_dir / "trials" / STUDENT / str(t) / "trial.json").read_text()) for t in (0, 1)}
    assert {c["trial"]: (c["student"], c["config_id"]) for c in stats["candidates"]} == {
        t: (STUDENT, body["config_id"]) for t, body in trials.items()}
    assert all(c["roles"] for c in stats["candidates"])

    board = collect(study_dir)
    assert board.comparisons_source == "search"
    why = [n for n in board.notes if "KD vs scratch" in n]
    assert len(why) == 1 and why[0].startswith(f"{stats_path} not used: it was made while the study was not finished")

    # the study is finished for the --n-trials it ran with: the same choice is confirmed again (nothing trains)
    result = CliRunner().invoke(app, [*args, "--n-trials", "2"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "trained 0, reused 4" in result.output and "not finished" not in result.output
    assert json.loads(stats_path.read_text())["study_finished"] is True
    board = collect(study_dir)
    assert board.comparisons_source == "confirm" and not [n for n in board.notes if "not used" in n]

    # a confirmation of other configurations than the study chooses now is not used, and the note says which
    stats = json.loads(stats_path.read_text())
    stats["candidates"][0]["trial"] = 7
    stats_path.write_text(json.dumps(stats))
    board = collect(study_dir)
    why = [n for n in board.notes if "KD vs scratch" in n]
    assert board.comparisons_source == "search" and len(why) == 1
    assert "trial 7" in why[0] and "but the study now chooses" in why[0]


def test_augment_versions_beyond_the_epochs_is_one_error_line_naming_the_key(phantom_32px, tmp_path):
    from typer.testing import CliRunner

    from kdbench.cli import app
    from kdbench.search.space import parse_space

    store, teacher = phantom_32px
    space = tmp_path / "aug.toml"
    space.write_text(tiny_space_toml("aug", [STUDENT], [0, 1], train={"epochs": 3, "augment_versions": 1000}))
    proc = _kdbench("search", "--config", str(space), "--store", str(store), "--teacher", str(teacher),
                    "--run-dir", str(tmp_path / "runs"), "--device", "cpu")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stdout + proc.stderr
    assert lines[0].startswith(f"error: {space}: train.augment_versions = 1000 is more than the 3 epoch(s) "
                               "(train.epochs = 3) can use")
    assert not (tmp_path / "runs").exists()
    raw = {"study": {"students": [STUDENT], "seeds": [0, 1]}, "space": {"method": "scratch"},
           "train": {"epochs": 3, "augment_versions": 4, "augment_choice": "random"}}
    assert any("train.augment_versions = 4 with 3 epoch(s)" in w for w in parse_space(raw, "r.toml").warnings)
    raw["train"].update(augment_versions=3, augment_choice="cycle")
    assert not any("augment_versions" in w for w in parse_space(raw, "r.toml").warnings)  # K = epochs: every one used
    result = CliRunner().invoke(app, ["distill", "--store", str(store), "--method", "scratch", "--epochs", "2",
                                      "--augment-versions", "1000", "--device", "cpu", "--out", str(tmp_path / "d")])
    assert isinstance(result.exception, KdbenchError), result.output
    msg = str(result.exception)
    assert "\n" not in msg and msg.startswith("--augment-versions 1000 is more than the 2 epoch(s) (--epochs 2) can use")


def test_messages_name_the_keys_as_written():
    from kdbench.search.space import parse_space

    with pytest.raises(ConfigError) as err:
        parse_space({"study": {"families": [], "seeds": 1}, "space": {"method": "scratch"}}, "f.toml")
    assert str(err.value).startswith("f.toml: study.families = []; expected") and "study.students" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        parse_space({"study": {"students": [STUDENT], "seeds": 1, "objective": ["val_accuracy", "latency_p50@rpi5"]},
                     "space": {"method": "scratch"}}, "o.toml")
    assert str(err.value).startswith("o.toml: study.objective[1] = 'latency_p50@rpi5' names target 'rpi5': hardware "
                                     "profile 'rpi5' not found") and "study.target" not in str(err.value)
    with pytest.raises(ConfigError, match=r"^s.toml: study.students = 'resnet18'; expected a non-empty list"):
        parse_space({"study": {"students": "resnet18", "families": ["ghostnet"], "seeds": 1},
                     "space": {"method": "scratch"}}, "s.toml")


def test_a_retried_priced_trial_sets_its_constraints_without_optunas_warning(tmp_path):
    import dataclasses
    import warnings
    from types import SimpleNamespace

    import optuna

    from kdbench.search.hardware_aware import Price, price_trial, pricer_for
    from kdbench.search.liveness import queue_retry

    study = optuna.create_study()
    first = study.ask()
    first.set_constraint("min_fps", -5.0)
    study.tell(first, state=optuna.trial.TrialState.FAIL)  # interrupted: queued again with its attributes
    assert queue_retry(study, study.trials[0])
    retry = study.ask()
    assert retry.number == 1 and retry.constraints == {"min_fps": -5.0}
    pricer = pricer_for(tmp_path, "rpi4", "fp32", None)
    pricer._memo[(STUDENT, 32)] = Price(  # a price already known: no export
        target="rpi4", arch=STUDENT, input_size=32, precision="fp32", fps=100.0, fps_low=90.0, fps_high=110.0,
        latency_ms=10.0, model_memory_mb=5.0, model_memory_mb_low=4.0, model_memory_mb_high=6.0, error_band_pct=10.0,
        size_mb=1.0, status="meets", constraint={"min_fps": -5.0, "max_memory_mb": -100.0})
    ctx = SimpleNamespace(space=SimpleNamespace(target="rpi4", precision="fp32"), study_dir=tmp_path,
                          store=SimpleNamespace(size=32))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        price = price_trial(ctx, retry, STUDENT, 32)
    assert not [w for w in caught if "already set" in str(w.message)], [str(w.message) for w in caught]
    assert dataclasses.replace(price, cached=False).feasible
    assert retry.constraints == {"min_fps": -5.0, "max_memory_mb": -100.0}  # the new key is set, the old one kept
