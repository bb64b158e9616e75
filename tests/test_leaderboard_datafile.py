"""leaderboard.csv and leaderboard.json as data files (pandas, a timm results CSV beside them): one type per column
in every row, flags as real booleans, numbers never text, intervals inside their metric's range, timm's column
names, and kdbench.load_leaderboard giving the same typed rows from either file.

pandas is not a dependency, so the CSV is read with the csv module and the cells are checked as pandas parses them:
a column whose cells are all 'True'/'False' is dtype bool, one whose cells are numbers or empty is float/int.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

import pytest

import kdbench
from kdbench.leaderboard.build import CSV, JSON, build_leaderboard
from kdbench.leaderboard.columns import column_names
from kdbench.leaderboard.row import KINDS, BoardRow, typed_row
from kdbench.manifest import write_json
from test_leaderboard_board import write_export, write_profiles, write_seed_predictions, write_study
from test_leaderboard_decisions import _with_predictions

FLAGS = {"pareto", "recommended", "recommended_uncertain", "estimated", "unstable"}
NUMBERS = {"front", "temperature", "alpha", "kd_vs_scratch_p_holm", "kd_vs_scratch_diff", "infer_samples_per_sec",
           "infer_step_time", "infer_batch_size", "infer_img_size", "param_count", "infer_gmacs", "latency_p50_ms",
           "fps", "decision_ci_low", "val_accuracy_low", "seed_test_high", "error_band_pct"}
TIMM = ("model", "infer_samples_per_sec", "infer_step_time", "infer_batch_size", "infer_img_size", "param_count",
        "infer_gmacs")
ACCURACY_ENDS = [c for c in column_names() if re.fullmatch(r"(val_accuracy|test_accuracy|test_clip_accuracy|seed_test)"
                                                            r"_(low|high)", c)]
WIDE = "mnv3_scratch/pruned30"  # its recorded intervals run past 0 and 1
SPREAD = ("shufflenet_v2_x1_0", 0)  # a trial whose seeds disagree wildly: its t interval runs past 0 and 1


def _spread_seeds(study: Path) -> None:
    """Three seeds at 0.05, 0.95 and 0.5: the t interval of their mean is about [-0.6, 1.6]."""
    path = study / "trials" / SPREAD[0] / str(SPREAD[1]) / "trial.json"
    body = json.loads(path.read_text())
    for seed, acc in zip(body["seeds"].values(), (0.05, 0.95, 0.5)):
        seed.update(val_accuracy=acc, test_accuracy=acc)
    body.update(mean_val_accuracy=0.5, mean_test_accuracy=0.5)
    write_json(path, body)


def _text_p_value(study: Path) -> None:
    """statistics.json with one Holm p written as text (as older or hand-edited files have it)."""
    path = study / "statistics.json"
    stats = json.loads(path.read_text())
    for c in stats["comparisons"]:
        if c["student"] == "mobilenet_v3_small":
            c["p_holm"] = "n/a"
    write_json(path, stats)


def _richer_profiles(profiles: Path) -> None:
    """x86 records with the whole frame path's fps, a memory band and one unstable measurement."""
    path = profiles / "x86" / "results.json"
    records = json.loads(path.read_text())
    for r in records:
        r.update(frame_fps=r["throughput"] * 0.8, model_memory_mb_low=r["rss_increment_mb"] * 0.9,
                 model_memory_mb_high=r["rss_increment_mb"] * 1.1, stable=r["variant_id"] != WIDE)
    write_json(path, records)


def _wide_intervals(export: Path) -> None:
    doc = json.loads((export / "manifest.json").read_text())
    for v in doc["variants"]:
        if v["id"] == WIDE:
            v["metrics"]["val"]["accuracy_ci"] = [-0.698, 1.420]
            v["metrics"]["test"]["accuracy_ci"] = [-0.5, 1.3]
    write_json(export / "manifest.json", doc)


@pytest.fixture()
def boards(tmp_path: Path, tiny_store) -> dict[str, Path]:
    """Two leaderboards from inputs that fill every column: with export and profiles ('full'), and study-only."""
    study = write_study(tmp_path)
    inputs = {"root": tmp_path, "study": study, "export": write_export(tmp_path, study),
              "profiles": write_profiles(tmp_path)}
    _with_predictions(inputs)  # decisions with intervals, test ECE intervals
    write_seed_predictions(study, tiny_store)  # seed+clip intervals, relative to the teacher
    _spread_seeds(study)
    _text_p_value(study)
    _richer_profiles(inputs["profiles"])
    _wide_intervals(inputs["export"])
    build_leaderboard(study, tmp_path / "full", inputs["export"], inputs["profiles"], plots=False)
    build_leaderboard(study, tmp_path / "study", plots=False)
    return {"full": tmp_path / "full", "study": tmp_path / "study"}


def _read(out: Path) -> tuple[list[dict[str, str]], list[dict]]:
    """(CSV rows as text, JSON rows)."""
    rows = list(csv.DictReader(io.StringIO((out / CSV).read_text())))
    doc = json.loads((out / JSON).read_text())
    assert doc["format_version"] == 2 and len(doc["rows"]) == len(rows) and rows
    return rows, doc["rows"]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_types(rows: list[dict[str, str]], docs: list[dict]) -> None:
    """Each column one type in every row of both files: bool never empty, numbers or empty, text."""
    for name in column_names():
        cells, values = [r[name] for r in rows], [d[name] for d in docs]
        kind = KINDS[name]
        if kind == "bool":
            assert set(cells) <= {"True", "False"} and all(isinstance(v, bool) for v in values), (name, set(cells))
        elif kind in ("int", "float"):
            assert all(c == "" or math.isfinite(float(c)) for c in cells), (name, set(cells))
            assert all(v is None or _is_number(v) for v in values), (name, values)
        else:
            assert all(v is None or isinstance(v, str) for v in values), name
            texts = set(cells) - {""}
            assert not texts or not texts <= {"yes", "no", "True", "False"}, f"{name} is a flag written as text"


def _check_ranges(rows: list[dict[str, str]]) -> None:
    for r in rows:
        for name in ACCURACY_ENDS + ["test_ece_low", "test_ece_high"]:
            assert r[name] == "" or 0.0 <= float(r[name]) <= 1.0, (r["model"], name, r[name])
        for name in ("decision_ci_low", "decision_ci_high"):
            assert r[name] == "" or -1.0 <= float(r[name]) <= 1.0, (r["model"], name, r[name])
        for low, high in zip(ACCURACY_ENDS[::2], ACCURACY_ENDS[1::2]):
            assert r[low] == r[high] == "" or float(r[low]) <= float(r[high]), (r["model"], low)


def test_the_columns_have_one_type_and_are_filled(boards):
    assert len(ACCURACY_ENDS) == 8 and FLAGS <= {c for c, k in KINDS.items() if k == "bool"}
    assert NUMBERS <= {c for c, k in KINDS.items() if k in ("int", "float")}
    assert not {"note", "measured", "stable"} & set(column_names())
    rows, docs = _read(boards["full"])
    for name in column_names():
        assert any(r[name] for r in rows), f"{name} is empty in every row"
    for out in boards.values():
        _check_types(*_read(out))
    # a p-value the statistics wrote as text is empty, never text: the column stays numeric
    assert {r["kd_vs_scratch_p_holm"] == "" for r in rows} == {True, False}
    assert all(d["kd_vs_scratch_p_holm"] is None for d in docs if d["student"] == "mobilenet_v3_small")
    assert any(d["unstable"] for d in docs) and any(d["estimated"] for d in docs) and any(d["pareto"] for d in docs)
    for target in {d["target"] for d in docs}:
        assert sum(d["recommended"] for d in docs if d["target"] == target) == 1
        assert not any(d["recommended_uncertain"] and not d["recommended"] for d in docs)


def test_intervals_are_cut_to_their_metric_range(boards):
    rows, docs = _read(boards["full"])
    _check_ranges(rows)
    wide = [d for d in docs if d["variant_id"] == WIDE]
    assert wide and all((d["val_accuracy_low"], d["val_accuracy_high"], d["test_accuracy_low"], d["test_accuracy_high"])
                        == (0.0, 1.0, 0.0, 1.0) for d in wide)
    rows, docs = _read(boards["study"])
    _check_ranges(rows)
    (spread,) = [d for d in docs if (d["student"], d["trial"]) == SPREAD]
    assert (spread["val_accuracy_low"], spread["val_accuracy_high"]) == (0.0, 1.0)  # mean_ci alone: about [-0.6, 1.6]
    assert (spread["seed_test_low"], spread["seed_test_high"]) == (0.0, 1.0)


def test_timm_columns_merge_and_agree(boards):
    rows, docs = _read(boards["full"])
    assert set(TIMM) <= set(column_names())
    timed = [d for d in docs if d["infer_step_time"] is not None]
    assert timed and all(d["latency_p50_ms"] is None for d in docs if d["infer_step_time"] is None)
    for d in timed:
        assert d["infer_samples_per_sec"] * d["infer_step_time"] / 1000 == pytest.approx(d["infer_batch_size"])
        assert d["infer_step_time"] == d["latency_p50_ms"] and d["infer_batch_size"] == 1
    for r in rows:
        if r["infer_step_time"]:
            assert float(r["infer_samples_per_sec"]) * float(r["infer_step_time"]) / 1000 == pytest.approx(
                int(r["infer_batch_size"]), rel=1e-5)
    # model: '<architecture>.<tag>' (a timm results CSV joins on the architecture part); the same file in two
    # runtimes keeps its name, so (target, model, runtime) is a key
    for d in docs:
        arch, _, tag = d["model"].partition(".")
        assert arch == d["student"] and tag == f"{d['method']}_trial{d['trial']}_{d['variant']}"
    keys = [(d["target"], d["model"], d["runtime"]) for d in docs]
    assert len(set(keys)) == len(keys)


def test_temperature_and_alpha_are_the_resolved_settings(boards):
    for out in boards.values():
        _, docs = _read(out)
        for d in docs:
            if d["method"] == "scratch":
                assert (d["temperature"], d["alpha"]) == (None, None)
            elif d["method"] == "vanilla":
                expected = {("mobilenet_v3_small", 1): 4.0, ("shufflenet_v2_x1_0", 1): 2.0}[(d["student"], d["trial"])]
                assert (d["temperature"], d["alpha"]) == (expected, 0.5)
            else:  # ctkd learns T; its alpha is set
                assert (d["method"], d["temperature"], d["alpha"]) == ("ctkd", None, 0.5)


def test_load_leaderboard_gives_the_same_typed_rows_from_csv_and_json(boards):
    out = boards["full"]
    from_json, from_csv = kdbench.load_leaderboard(out / JSON), kdbench.load_leaderboard(out / CSV)
    assert kdbench.load_leaderboard(out) == from_json and len(from_csv) == len(from_json)
    for j, c in zip(from_json, from_csv):
        assert list(j) == list(c) == column_names()
        for name in column_names():
            assert type(j[name]) is type(c[name]), (name, j[name], c[name])
            assert c[name] == (pytest.approx(j[name], rel=1e-5) if isinstance(j[name], float) else j[name]), name
        assert all(isinstance(j[f], bool) for f in FLAGS)


def test_a_row_holds_its_declared_types():
    row = BoardRow(kd_vs_scratch_p_holm="n/a", front="2", pareto="yes", temperature=float("nan"), runtime_version=1.17,
                   val_accuracy_low=-0.698, val_accuracy_high=1.42, decision_ci_low=-1.3, seed_relative_low=-0.2)
    assert (row.kd_vs_scratch_p_holm, row.front, row.pareto, row.temperature) == (None, 2, True, None)
    assert (row.val_accuracy_low, row.val_accuracy_high, row.decision_ci_low, row.seed_relative_low) == (0.0, 1.0, -1.0, 0.0)
    assert row.runtime_version == "1.17" and row.recommended is False and row.replace(unstable=None).unstable is False
    row.kd_vs_scratch_p_holm = "-"
    assert row.kd_vs_scratch_p_holm is None
    row.kd_vs_scratch_p_holm = "0.03"
    assert row.kd_vs_scratch_p_holm == 0.03
    # a leaderboard written before format 2 reads back with booleans too; columns this version lacks as numbers/text
    old = typed_row({"pareto": "yes", "recommended": "uncertain", "unstable": "no", "front": "1", "note": "x", "n": "3"})
    assert old == {"pareto": True, "recommended": True, "unstable": False, "front": 1, "note": "x", "n": 3}
