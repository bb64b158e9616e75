"""`kdbench search confirm` on a tiny phantom study: fresh seeds, files in place, a rerun trains nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdbench.manifest import write_json

pytestmark = pytest.mark.slow  # trains 4 tiny runs (~15 s of CPU)

STUDENT = "mobilenet_v3_small"
TRAIN = {"epochs": 1, "patience": 5, "batch_size": 8, "lr": 1e-3, "weight_decay": 1e-4, "max_batches_per_epoch": 1}


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory, phantom_32px):
    """The shared 32 px phantom store and stand-in teacher, and a study dir with 3 finished trials (no training):
    its quota of 3 used in its Optuna journal, so confirm takes it as finished."""
    import optuna

    from kdbench.search.space import parse_space
    from kdbench.search.storage import open_storage

    store, teacher = phantom_32px
    root = tmp_path_factory.mktemp("confirm")
    study = root / "runs" / "tiny"
    space = parse_space({"study": {"name": "tiny", "students": [STUDENT], "seeds": [0, 1], "n_trials": 3},
                         "train": TRAIN, "space": {"method": ["scratch", "vanilla"]}}, root / "tiny.toml")
    journal = optuna.create_study(study_name=f"tiny.{STUDENT}", storage=open_storage(None, study), direction="maximize")
    for val in (0.50, 0.70, 0.60):
        journal.add_trial(optuna.trial.create_trial(value=val))
    write_json(study / "study.json", {"stage": "search", "study": "tiny", "seeds": [0, 1], "config": space.to_dict(),
                                      "store": str(store), "teacher": str(teacher),
                                      "optuna_studies": {STUDENT: f"tiny.{STUDENT}"}})
    for number, method, hparams, val in ((0, "scratch", {}, 0.50), (1, "vanilla", {"temperature": 4.0, "alpha": 0.5}, 0.70),
                                         (2, "vanilla", {"temperature": 2.0, "alpha": 0.9}, 0.60)):
        seeds = {str(s): {"status": "ok", "val_accuracy": val, "test_accuracy": 0.5} for s in (0, 1)}
        write_json(study / "trials" / STUDENT / str(number) / "trial.json", {
            "trial": number, "student": STUDENT, "method": method, "hparams": hparams, "train": TRAIN,
            "config_id": f"{method}-{number}", "state": "complete", "reason": "", "seeds": seeds,
            "study_seeds": [0, 1], "mean_val_accuracy": val, "std_val_accuracy": 0.0, "mean_test_accuracy": 0.5,
            "std_test_accuracy": 0.0})
    return study


def test_confirm_trains_fresh_seeds_once_and_writes_statistics(tiny_study):
    from typer.testing import CliRunner

    from kdbench.cli import app
    from kdbench.search.confirm import ConfirmRequest, confirm_seeds, run_confirm

    assert confirm_seeds([0, 1, 1000, 1002], 3) == [1001, 1003, 1004]
    out = run_confirm(ConfirmRequest(study_dir=tiny_study, n_seeds=2, device="cpu"))
    assert out["seeds"] == [1000, 1001] and out["trained"] == 4 and out["reused"] == 0
    confirm = tiny_study / "confirm"
    # the chosen configuration (trial 1, best validation) and the baseline; trial 2 is not retrained
    assert sorted(p.name for p in (confirm / STUDENT).iterdir()) == ["scratch-trial0", "vanilla-trial1"]
    for name, method in (("scratch-trial0", "scratch"), ("vanilla-trial1", "vanilla")):
        for seed in (1000, 1001):
            metrics = json.loads((confirm / STUDENT / name / f"seed_{seed}" / "metrics.json").read_text())
            assert metrics["method"] == method and metrics["config"]["seed"] == seed
            assert metrics["config"]["epochs"] == 1 and metrics["config"]["batch_size"] == 8
        record = json.loads((confirm / STUDENT / name / "trial.json").read_text())
        assert sorted(record["seeds"]) == ["1000", "1001"] and record["study_seeds"] == [1000, 1001]
    stats = json.loads((confirm / "statistics.json").read_text())
    assert stats["stage"] == "confirm" and stats["seeds"] == [1000, 1001] and stats["study_seeds"] == [0, 1]
    assert stats["study_finished"] is True and stats["unfinished"] == []
    rows = [c for c in stats["comparisons"] if c["metric"] == "test_accuracy"]
    assert len(rows) == 1 and rows[0]["comparison"] == "vanilla vs scratch" and rows[0]["best_distillation"]
    assert rows[0]["a"]["trial"] == 1 and rows[0]["seeds"] == [1000, 1001] and rows[0]["n"] == 2
    assert {c["trial"]: c["roles"] for c in stats["candidates"]} == {1: ["chosen", "best distillation"], 0: ["baseline"]}
    vanilla = json.loads((confirm / STUDENT / "vanilla-trial1" / "trial.json").read_text())
    assert rows[0]["mean_a"] == pytest.approx(vanilla["mean_test_accuracy"])
    # the same command again (through the CLI): every seed is read back, nothing is trained
    before = {p: p.stat().st_mtime_ns for p in confirm.rglob("metrics.json")}
    result = CliRunner().invoke(app, ["search", "confirm", "--study-dir", str(tiny_study), "--seeds", "2",
                                      "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "trained 0, reused 4" in result.output
    # the old spelling still works for a release, with one deprecation line
    assert "--study-dir is deprecated and will be removed in the next release; use --study" in result.output
    assert {p: p.stat().st_mtime_ns for p in confirm.rglob("metrics.json")} == before


def test_confirm_needs_two_seeds(tiny_study):
    from kdbench.errors import ConfigError
    from kdbench.search.confirm import ConfirmRequest, run_confirm

    with pytest.raises(ConfigError, match="--seeds 1"):
        run_confirm(ConfirmRequest(study_dir=tiny_study, n_seeds=1))
