"""The public Python API on a tiny real study: kdbench.run_search, best_trials, load_study, leaderboards."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

import kdbench

SPACE = """
[study]
name = "api"
students = ["mobilenet_v3_small"]
seeds = [0, 1]
n_trials = 2
sampler = "grid"
pruner = "none"

[train]
epochs = 1
patience = 1
batch_size = 8
max_batches_per_epoch = 1

[space]
method = ["scratch", "vanilla"]
"""


def test_import_kdbench_stays_light():
    code = "import sys, kdbench; print(sorted(m for m in ('torch', 'optuna', 'numpy', 'rich', 'kdbench.api') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert set(kdbench.__all__) <= set(dir(kdbench))
    with pytest.raises(AttributeError, match="no attribute 'serach'"):
        kdbench.serach  # noqa: B018


@pytest.fixture(scope="module")
def study(phantom_32px, tmp_path_factory):
    """kdbench.run_search on a 32 px phantom store: 1 student x (scratch, vanilla) x 2 seeds, one batch per epoch."""
    store, teacher = phantom_32px
    root = tmp_path_factory.mktemp("api")
    (root / "space.toml").write_text(SPACE)
    result = kdbench.run_search(root / "space.toml", store=store, teacher=teacher, run_dir=root / "runs", device="cpu")
    return root, result


@pytest.mark.slow
def test_search_returns_the_study_and_its_statistics(study):
    root, result = study
    assert result.study_dir == (root / "runs" / "api").resolve()
    assert result.wall_time_s > 0
    trials = result.trials()
    assert sorted(t["method"] for t in trials) == ["scratch", "vanilla"]
    (cmp,) = result.comparisons("val_accuracy")
    vanilla = next(t for t in trials if t["method"] == "vanilla")
    scratch = next(t for t in trials if t["method"] == "scratch")
    assert cmp["comparison"] == "vanilla vs scratch" and cmp["n"] == 2
    assert cmp["diff"] == pytest.approx(vanilla["mean_val_accuracy"] - scratch["mean_val_accuracy"], abs=1e-12)
    assert result.statistics == json.loads((result.study_dir / "statistics.json").read_text())


@pytest.mark.slow
def test_best_trials_and_load_study_read_the_same_files(study):
    _, result = study
    (best,) = kdbench.best_trials(result.study_dir)
    top = max(result.trials(), key=lambda t: (t["mean_val_accuracy"], -t["trial"]))
    assert (best["student"], best["method"]) == ("mobilenet_v3_small", top["method"])
    assert best["mean_val_accuracy"] == pytest.approx(top["mean_val_accuracy"])
    assert result.best_trials() == kdbench.best_trials(result.study_dir)
    again = kdbench.load_study(result.study_dir)
    assert again.statistics == result.statistics
    assert kdbench.StudyResult.from_dict(json.loads(json.dumps(again.to_dict()))) == again


@pytest.mark.slow
def test_leaderboard_rows_match_its_csv(study, tmp_path):
    _, result = study
    rows = kdbench.build_leaderboard(result.study_dir, tmp_path / "board", plots=False)
    with open(tmp_path / "board" / "leaderboard.csv", newline="") as fh:
        raw = list(csv.DictReader(fh))
    assert rows and len(rows) == len(raw)
    assert {r["student"] for r in rows} == {"mobilenet_v3_small"}
    csv_rows = kdbench.load_leaderboard(tmp_path / "board" / "leaderboard.csv")
    for got, text in zip(csv_rows, raw):
        for key, value in text.items():
            assert (got[key] is None) if value == "" else str(got[key]) == value or float(got[key]) == float(value)
    # the same types from the CSV as from the JSON: flags bool (never empty), numbers float/int or None
    for got, again in zip(csv_rows, rows):
        assert {k: type(v) for k, v in got.items()} == {k: type(v) for k, v in again.items()}
    assert all(isinstance(r[k], bool) for r in rows for k in ("pareto", "recommended", "recommended_uncertain",
                                                                "estimated", "unstable"))
    assert sum(r["recommended"] for r in rows) == 1 and {t["pareto"] for t in raw} <= {"True", "False"}
    # vanilla ran on its defaults (the space sets none): the row shows the settings it ran with
    vanilla = next(r for r in rows if r["method"] == "vanilla")
    assert (vanilla["temperature"], vanilla["alpha"]) == (4.0, 0.5)
    assert vanilla["model"] == f"mobilenet_v3_small.vanilla_trial{vanilla['trial']}_checkpoint"


@pytest.mark.slow
def test_build_leaderboard_takes_the_margin_like_the_cli(study, tmp_path):
    from kdbench.errors import ConfigError

    _, result = study
    kdbench.build_leaderboard(result.study_dir, tmp_path / "wide", plots=False, margin=0.3)
    doc = json.loads((tmp_path / "wide" / "leaderboard.json").read_text())
    assert doc["margin"] == {"value": 0.3, "source": "--margin"}
    assert all(t["margin"] == 0.3 for t in doc["targets"])
    with pytest.raises(ConfigError, match=r"margin = 1\.5; expected an accuracy difference in \(0, 1\)"):
        kdbench.build_leaderboard(result.study_dir, tmp_path / "bad", plots=False, margin=1.5)


def test_missing_leaderboard_is_a_clear_error(tmp_path):
    from kdbench.errors import DataError

    with pytest.raises(DataError, match=r"leaderboard .*leaderboard\.csv does not exist"):
        kdbench.load_leaderboard(tmp_path)
