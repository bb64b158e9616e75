"""The leaderboard built from small hand-written input directories in the stages' documented formats.

The study directory, export manifest and profile results below are written exactly as `kdbench
search`, `kdbench export` and `kdbench profile` write them (docs/ARCHITECTURE.md); statistics.json
is computed by the search stage's own code from the trial files.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kdbench.errors import ConfigError, DataError
from kdbench.leaderboard.build import CSV, METHODS_PNG, README, build_leaderboard
from kdbench.leaderboard.collect import collect
from kdbench.leaderboard.columns import COLUMNS, column_names
from kdbench.leaderboard.pareto import dominates
from kdbench.manifest import write_json

SEEDS = [0, 1, 2]
STUDENTS = ("mobilenet_v3_small", "shufflenet_v2_x1_0")
# (student, trial, method, hparams, per-seed test accuracies, per-seed val accuracies)
TRIALS = [
    ("mobilenet_v3_small", 0, "scratch", {}, [0.70, 0.72, 0.71], [0.69, 0.71, 0.70]),
    ("mobilenet_v3_small", 1, "vanilla", {"temperature": 4.0, "alpha": 0.5}, [0.80, 0.78, 0.82], [0.79, 0.80, 0.81]),
    ("mobilenet_v3_small", 2, "vanilla", {"temperature": 8.0, "alpha": 0.5}, [0.74, 0.75, 0.73], [0.72, 0.73, 0.74]),
    ("mobilenet_v3_small", 3, "ctkd", {"temperature": None, "alpha": 0.5, "schedule": "cosine"}, [0.77, 0.79, 0.76],
     [0.76, 0.77, 0.78]),
    ("shufflenet_v2_x1_0", 0, "scratch", {}, [0.75, 0.74, 0.76], [0.74, 0.75, 0.76]),
    ("shufflenet_v2_x1_0", 1, "vanilla", {"temperature": 2.0, "alpha": 0.5}, [0.83, 0.85, 0.84], [0.82, 0.84, 0.83]),
]
TEACHER_TEST_ACC = 0.9
# candidate id -> (student, trial, seed)
CANDIDATES = {
    "trials_mobilenet_v3_small_1_seed_2": ("mobilenet_v3_small", 1, 2),
    "trials_shufflenet_v2_x1_0_1_seed_1": ("shufflenet_v2_x1_0", 1, 1),
    "trials_mobilenet_v3_small_0_seed_1": ("mobilenet_v3_small", 0, 1),
}
# (candidate, variant, runtime, precision, test acc, size MB, params, macs, status)
VARIANTS = [
    ("trials_mobilenet_v3_small_1_seed_2", "fp32", "onnxruntime", "fp32", 0.820, 6.1, 1.52e6, 14.0e6, "ok"),
    ("trials_mobilenet_v3_small_1_seed_2", "int8_ort", "onnxruntime", "int8", 0.810, 1.7, 1.52e6, 14.0e6, "ok"),
    ("trials_mobilenet_v3_small_1_seed_2", "int8_openvino", "openvino", "int8", 0.815, 1.9, 1.52e6, 14.0e6, "ok"),
    ("trials_shufflenet_v2_x1_0_1_seed_1", "fp32", "onnxruntime", "fp32", 0.850, 5.0, 1.26e6, 37.0e6, "ok"),
    ("trials_shufflenet_v2_x1_0_1_seed_1", "int8_ort", "onnxruntime", "int8", 0.600, 1.4, 1.26e6, 37.0e6, "failed"),
    ("trials_shufflenet_v2_x1_0_1_seed_1", "int8_openvino", "openvino", "int8", 0.845, 1.5, 1.26e6, 37.0e6, "ok"),
    ("trials_mobilenet_v3_small_0_seed_1", "fp32", "onnxruntime", "fp32", 0.720, 6.1, 1.52e6, 14.0e6, "ok"),
    # the same file size and accuracy as the one above: an exact duplicate point once profiled alike
    ("trials_mobilenet_v3_small_0_seed_1", "pruned30", "onnxruntime", "fp32", 0.720, 6.1, 1.0e6, 9.0e6, "ok"),
    ("teacher", "fp32", "onnxruntime", "fp32", 0.900, 537.0, 134.3e6, 7.6e9, "ok"),
]
# x86, measured: variant id -> (runtime, p50 ms, rss MB); fps = 1000 / mean (mean = p50 * 1.05)
X86 = {
    "trials_mobilenet_v3_small_1_seed_2/fp32": [("onnxruntime", 0.45, 20.0), ("openvino", 0.40, 25.0)],
    "trials_mobilenet_v3_small_1_seed_2/int8_ort": [("onnxruntime", 0.60, 12.0)],
    "trials_mobilenet_v3_small_1_seed_2/int8_openvino": [("openvino", 0.30, 14.0)],
    "trials_shufflenet_v2_x1_0_1_seed_1/fp32": [("onnxruntime", 1.20, 18.0), ("openvino", 0.90, 22.0)],
    "trials_shufflenet_v2_x1_0_1_seed_1/int8_openvino": [("openvino", 0.70, 15.0)],
    "trials_mobilenet_v3_small_0_seed_1/fp32": [("onnxruntime", 0.45, 20.0)],
    "trials_mobilenet_v3_small_0_seed_1/pruned30": [("onnxruntime", 0.45, 20.0)],
    "teacher/fp32": [("onnxruntime", 48.0, 600.0)],
}
# rpi4, estimated: variant id -> (p50 ms, memory MB); int8_openvino has no ONNX graph -> failed estimate
RPI4 = {
    "trials_mobilenet_v3_small_1_seed_2/fp32": (12.0, 30.0),
    "trials_mobilenet_v3_small_1_seed_2/int8_ort": (20.0, 14.0),
    "trials_shufflenet_v2_x1_0_1_seed_1/fp32": (40.0, 28.0),
    "trials_mobilenet_v3_small_0_seed_1/fp32": (12.0, 60.0),
    "trials_mobilenet_v3_small_0_seed_1/pruned30": (9.0, 45.0),
    "teacher/fp32": (2400.0, 700.0),
}


def _metrics(acc: float, worst_offset: float = 0.08) -> dict:
    return {"accuracy": acc, "macro_f1": acc - 0.01, "worst_source_accuracy": acc - worst_offset,
            "per_source_accuracy": {"echonet_dynamic": acc + 0.02, "echonet_lvh": acc, "tmed2": acc - worst_offset},
            "n": 100}


def write_study(root: Path) -> Path:
    """RUN_DIR/quick as `kdbench search` leaves it: study.json, trial.json + seed metrics.json, statistics.json."""
    from kdbench.search.results import read_trials
    from kdbench.search.statistics import study_statistics

    study = root / "runs" / "quick"
    teacher = root / "teacher.pt"
    teacher.write_bytes(b"not a real checkpoint")
    write_json(root / "teacher.json", {"arch": "vgg16", "checkpoint": str(teacher),
                                       "metrics": {"val": _metrics(0.91), "test": _metrics(TEACHER_TEST_ACC, 0.05)}})
    write_json(study / "study.json", {"stage": "search", "study": "quick", "seeds": SEEDS, "teacher": str(teacher),
                                      "config": {"objective": "val_accuracy", "baseline": "scratch"},
                                      "optuna_studies": {s: f"quick.{s}" for s in STUDENTS}})
    for student, number, method, hp, tests, vals in TRIALS:
        tdir = study / "trials" / student / str(number)
        seeds = {}
        for seed, t_acc, v_acc in zip(SEEDS, tests, vals):
            test = {**_metrics(t_acc), "teacher_accuracy": TEACHER_TEST_ACC, "relative_accuracy": t_acc / TEACHER_TEST_ACC}
            write_json(tdir / f"seed_{seed}" / "metrics.json", {
                "student": student, "method": method, "hparams": hp, "config": {"seed": seed, "batch_size": 64},
                "status": "ok", "metrics": {"val": _metrics(v_acc), "test": test}})
            seeds[str(seed)] = {"status": "ok", "val_accuracy": v_acc, "val_macro_f1": v_acc - 0.01,
                                "test_accuracy": t_acc, "test_macro_f1": t_acc - 0.01}
        body = {"trial": number, "student": student, "method": method, "hparams": hp,
                "train": {"epochs": 3, "batch_size": 64, "lr": 2e-3}, "config_id": f"{method}-{number}",
                "state": "complete", "reason": "", "seeds": seeds, "study_seeds": SEEDS}
        for metric in ("val_accuracy", "test_accuracy", "val_macro_f1", "test_macro_f1"):
            values = [s[metric] for s in seeds.values()]
            body[f"mean_{metric}"] = sum(values) / len(values)
        write_json(tdir / "trial.json", body)
    # A failed trial: must be ignored.
    write_json(study / "trials" / "mobilenet_v3_small" / "4" / "trial.json", {
        "trial": 4, "student": "mobilenet_v3_small", "method": "vanilla", "hparams": {"temperature": 1.0, "alpha": 0.5},
        "train": {"batch_size": 64}, "config_id": "x", "state": "failed", "reason": "seed 0: non_finite_loss",
        "seeds": {}, "mean_val_accuracy": None})
    write_json(study / "statistics.json", study_statistics(read_trials(study), SEEDS))
    return study


def write_export(root: Path, study: Path) -> Path:
    """EXPORT/manifest.json as `kdbench export --study-dir` leaves it."""
    export = root / "export"
    candidates = []
    for cid, (student, number, seed) in CANDIDATES.items():
        run = study / "trials" / student / str(number) / f"seed_{seed}"
        method = next(m for s, n, m, *_ in TRIALS if s == student and n == number)
        candidates.append({"id": cid, "checkpoint": str(run / "best.pt"), "student": student, "method": method,
                           "hparams": {}, "teacher": str(root / "teacher.pt"), "source": str(run)})
    candidates.append({"id": "teacher", "checkpoint": str(root / "teacher.pt"), "student": "vgg16", "method": "scratch",
                       "hparams": {}, "teacher": None, "source": str(root / "teacher.pt")})
    variants = []
    for cid, variant, runtime, precision, acc, size, params, macs, status in VARIANTS:
        student = "vgg16" if cid == "teacher" else CANDIDATES[cid][0]
        ext = ".xml" if runtime == "openvino" else ".onnx"
        variants.append({
            "id": f"{cid}/{variant}", "candidate": cid, "student": student,
            "method": next((c["method"] for c in candidates if c["id"] == cid), None), "variant": variant,
            "runtime": runtime, "precision": precision, "file": f"{cid}/{variant}{ext}", "files": [], "size_mb": size,
            "params": int(params), "macs": int(macs), "input_size": 64, "status": status,
            "reason": None if status == "ok" else "accuracy collapsed: val accuracy 0.6000 vs fp32 0.8500",
            "metrics": {"val": _metrics(acc + 0.005), "test": _metrics(acc)}, "details": {}})
    write_json(export / "manifest.json", {"stage": "export", "format_version": 1, "candidates": candidates,
                                          "variants": variants})
    return export


def _record(vid: str, target: str, runtime: str, p50: float, mem: float, measured: bool, batch: int = 1) -> dict:
    mean = p50 * 1.05
    rec = {"variant_id": vid, "file": vid.split("/")[1], "target": target, "runtime": runtime,
           "runtime_version": "1.0", "threads": 2, "precision": "int8" if "int8" in vid else "fp32", "batch": batch,
           "input_size": 64, "measured": measured, "method": "local" if measured else "estimated",
           "host": {"hostname": "h"}, "latency_ms": {"p50": p50, "p90": p50 * 1.2, "p99": p50 * 1.5, "mean": mean},
           "fps": 1000.0 / mean if batch == 1 else None, "throughput": 1000.0 * batch / mean,
           "peak_rss_mb": mem + 40.0, "rss_increment_mb": mem, "file_size_mb": 1.0, "status": "ok", "error": None,
           "timestamp": "2026-01-01T00:00:00+0000"}
    if not measured:
        rec["error_band"] = {"pct": 35.0, "kind": "+-, about one standard deviation"}
    return rec


def write_profiles(root: Path) -> Path:
    """PROFILE/x86 (measured) and PROFILE/rpi4 (estimated) results.json as `kdbench profile` writes them."""
    prof = root / "profiles"
    x86 = []
    for vid, runs in X86.items():
        for runtime, p50, mem in runs:
            x86.append(_record(vid, "x86", runtime, p50, mem, True))
            x86.append(_record(vid, "x86", runtime, p50 * 3, mem * 2, True, batch=8))  # ignored: batch 8
    write_json(prof / "x86" / "results.json", x86)
    rpi = [_record(vid, "rpi4", "onnxruntime", p50, mem, False) for vid, (p50, mem) in RPI4.items()]
    failed = _record("trials_shufflenet_v2_x1_0_1_seed_1/int8_openvino", "rpi4", "openvino", 1.0, 1.0, False)
    failed.update(status="failed", error="the estimator reads ONNX graphs; int8_openvino.xml is openvino",
                  latency_ms=None, fps=None, rss_increment_mb=None)
    rpi.append(failed)
    write_json(prof / "rpi4" / "results.json", rpi)
    return prof


@pytest.fixture()
def inputs(tmp_path: Path) -> dict[str, Path]:
    """A study, an export and two targets' profile results in tmp_path."""
    study = write_study(tmp_path)
    export = write_export(tmp_path, study)
    return {"root": tmp_path, "study": study, "export": export, "profiles": write_profiles(tmp_path)}


# ---------------------------------------------------------------------------------------------- tests


def _read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_pareto_flags_are_consistent_with_the_numbers(inputs):
    lb = collect(inputs["study"], inputs["export"], inputs["profiles"])
    assert [b.name for b in lb.boards] == ["rpi4", "x86"]
    senses = ["max", "min", "min"]
    for board in lb.boards:
        ranked = [r for r in board.rows if r.get("front") is not None]
        assert len(ranked) >= 4, board.name
        point = {id(r): (r["accuracy"], r["latency_p50_ms"], r["size_mb"]) for r in ranked}
        for r in ranked:
            dominators = [o for o in ranked if dominates(point[id(o)], point[id(r)], senses)]
            if r["front"] == 1:
                assert not dominators, (board.name, r["variant_id"], r["runtime"])
                assert r["pareto"] == "yes"
            else:
                assert r["pareto"] == "no"
                assert any(o["front"] == r["front"] - 1 for o in dominators), (board.name, r["variant_id"])
                assert all(o["front"] < r["front"] for o in dominators)
        # rows come out front by front
        fronts = [r["front"] for r in ranked]
        assert fronts == sorted(fronts)
    x86 = next(b for b in lb.boards if b.name == "x86")
    # the scratch fp32 and its pruned copy measured alike: the same point, so the same front
    dup = [r for r in x86.rows if r["variant_id"].startswith("trials_mobilenet_v3_small_0_seed_1/")]
    assert len(dup) == 2 and dup[0]["front"] == dup[1]["front"]
    # the openvino int8 mobilenet (0.815, 0.30 ms, 1.9 MB) is dominated by nothing: fastest
    ov = next(r for r in x86.rows if r["variant_id"] == "trials_mobilenet_v3_small_1_seed_2/int8_openvino")
    assert ov["front"] == 1


def test_rows_join_variant_accuracy_seed_ci_and_statistics(inputs):
    from kdbench.search.statistics import mean_ci

    lb = collect(inputs["study"], inputs["export"], inputs["profiles"])
    x86 = next(b for b in lb.boards if b.name == "x86")
    row = next(r for r in x86.rows if r["variant_id"] == "trials_mobilenet_v3_small_1_seed_2/int8_ort")
    assert row["accuracy"] == pytest.approx(0.810)  # the variant's own re-measured accuracy
    assert row["seed_mean_accuracy"] == pytest.approx((0.80 + 0.78 + 0.82) / 3)
    assert (row["seed_ci_low"], row["seed_ci_high"]) == pytest.approx(mean_ci([0.80, 0.78, 0.82]))
    assert row["n_seeds"] == 3
    assert (row["method"], row["temperature"], row["alpha"], row["batch_size"], row["trial"]) == ("vanilla", 4.0, 0.5, 64, 1)
    assert row["relative_accuracy"] == pytest.approx(0.810 / TEACHER_TEST_ACC)
    assert row["worst_source_accuracy"] == pytest.approx(0.810 - 0.08)
    stats = json.loads((inputs["study"] / "statistics.json").read_text())
    comp = next(c for c in stats["comparisons"] if c["student"] == "mobilenet_v3_small"
                and c["comparison"] == "best distillation vs scratch" and c["metric"] == "test_accuracy")
    assert row["kd_vs_scratch_p_holm"] == comp["p_holm"] and row["kd_vs_scratch_p_a_gt_b"] == comp["p_a_gt_b"]
    # the failed variant is left out, with its reason; the teacher is a reference row, never ranked
    assert [v["variant_id"] for v in lb.left_out] == ["trials_shufflenet_v2_x1_0_1_seed_1/int8_ort"]
    assert all(r["student"] != "vgg16" for b in lb.boards for r in b.rows)
    teacher = x86.teacher_rows[0]
    assert teacher["latency_p50_ms"] == 48.0 and teacher["meets_constraints"] == "no"  # 1000/50.4 ms < 30 fps
    # batch-8 records are not batch-1 latency
    fp32 = [r for r in x86.rows if r["variant_id"] == "trials_mobilenet_v3_small_1_seed_2/fp32"]
    assert sorted((r["runtime"], r["latency_p50_ms"]) for r in fp32) == [("onnxruntime", 0.45), ("openvino", 0.40)]


def test_constraints_are_evaluated_from_the_hardware_profiles(inputs):
    from kdbench.profile.hardware import load_profile

    lb = collect(inputs["study"], inputs["export"], inputs["profiles"])
    for board in lb.boards:
        cons = load_profile(board.name).constraints
        assert board.constraints == cons
        for r in board.rows:
            if r.get("fps") is None:
                assert r["meets_constraints"] == "unknown"
                continue
            ok = r["fps"] >= cons["min_fps"] and ("max_memory_mb" not in cons or r["memory_mb"] < cons["max_memory_mb"])
            assert r["meets_constraints"] == ("yes" if ok else "no"), (board.name, r["variant_id"], r["fps"], r["memory_mb"])
    rpi = next(b for b in lb.boards if b.name == "rpi4")
    verdicts = {(r["variant_id"], r["runtime"]): r["meets_constraints"] for r in rpi.rows}
    assert verdicts[("trials_shufflenet_v2_x1_0_1_seed_1/fp32", "onnxruntime")] == "no"  # 1000/42 ms < 30 fps
    assert verdicts[("trials_mobilenet_v3_small_0_seed_1/fp32", "onnxruntime")] == "no"  # 60 MB >= 50 MB
    assert verdicts[("trials_mobilenet_v3_small_1_seed_2/fp32", "onnxruntime")] == "yes"
    # recommended: the most accurate row that meets them (0.820 fp32 beats 0.810 int8)
    assert rpi.recommended["variant_id"] == "trials_mobilenet_v3_small_1_seed_2/fp32"
    meeting = [r for r in rpi.rows if r["meets_constraints"] == "yes"]
    assert rpi.recommended["accuracy"] == max(r["accuracy"] for r in meeting)
    x86 = next(b for b in lb.boards if b.name == "x86")
    assert x86.recommended["variant_id"] == "trials_shufflenet_v2_x1_0_1_seed_1/fp32"
    assert x86.recommended["runtime"] == "openvino"  # same accuracy, the faster runtime


def test_a_target_nobody_meets_says_so(inputs):
    prof = inputs["profiles"]
    records = json.loads((prof / "x86" / "results.json").read_text())
    for r in records:
        r["target"] = "tinyboard"
    write_json(prof / "tinyboard" / "results.json", records)
    # not a shipped profile: the constraints come from the profile run's manifest
    write_json(prof / "tinyboard" / "manifest.json", {"stage": "profile", "target": {
        "name": "tinyboard", "constraints": {"min_fps": 100000.0}}})
    lb = collect(inputs["study"], inputs["export"], prof, ["tinyboard"])
    board = lb.boards[0]
    assert board.constraints == {"min_fps": 100000.0}
    assert board.recommended is None
    assert board.recommendation.startswith("no model meets the constraints on tinyboard")
    assert all(r["meets_constraints"] == "no" for r in board.rows if r.get("fps") is not None)


def test_outputs_are_byte_identical_when_regenerated(inputs):
    root = inputs["root"]
    args = dict(study=inputs["study"], export=inputs["export"], profiles=inputs["profiles"])
    _, first = build_leaderboard(out=root / "lb1", **args)
    _, second = build_leaderboard(out=root / "lb2", **args)
    names = sorted(p.name for p in first)
    assert names == sorted(p.name for p in second)
    assert {README, CSV, METHODS_PNG, "accuracy_vs_latency_x86.png", "accuracy_vs_latency_rpi4.png"} <= set(names)
    for name in names:
        assert (root / "lb1" / name).read_bytes() == (root / "lb2" / name).read_bytes(), name
    png = (root / "lb1" / "accuracy_vs_latency_x86.png").read_bytes()
    assert png.startswith(b"\x89PNG") and b"Software" not in png and len(png) > 10_000


def test_csv_has_the_fixed_documented_columns(inputs):
    out = inputs["root"] / "lb"
    lb, _ = build_leaderboard(inputs["study"], out, inputs["export"], inputs["profiles"], plots=False)
    rows = _read_csv(out / CSV)
    header = (out / CSV).read_text().splitlines()[0].split(",")
    assert header == column_names()
    assert len(rows) == sum(len(b.rows) for b in lb.boards)
    readme = (out / README).read_text()
    for name in COLUMNS:
        assert f"`{name}`" in readme, name
    for r in rows:
        if r["front"]:
            assert r["pareto"] == ("yes" if r["front"] == "1" else "no")
        if r["target"] == "rpi4" and r["latency_p50_ms"]:
            assert r["measured"] == "estimated" and r["error_band_pct"] == "35"
        if r["target"] == "x86" and r["latency_p50_ms"]:
            assert r["measured"] == "measured" and r["error_band_pct"] == ""
    no_result = [r for r in rows if r["target"] == "rpi4" and r["variant_id"].endswith("int8_openvino")]
    assert {r["front"] for r in no_result} == {""} and all(r["note"] for r in no_result)


def _tables(markdown: str) -> list[list[list[str]]]:
    """Every Markdown table as rows of cells (escaped pipes kept inside cells)."""
    tables, current = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            current.append(cells)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def test_readme_tables_are_well_formed_and_estimates_labelled(inputs):
    out = inputs["root"] / "lb"
    lb, _ = build_leaderboard(inputs["study"], out, inputs["export"], inputs["profiles"], plots=False)
    text = (out / README).read_text()
    tables = _tables(text)
    assert len(tables) >= 8
    for t in tables:
        assert len(t) >= 3, t  # header, separator, at least one row
        assert all(re.fullmatch(r"-{3}:?", c) or re.fullmatch(r"---:", c) for c in t[1]), t[1]
        assert all(len(row) == len(t[0]) for row in t), t[0]
    board_tables = [t for t in tables if t[0][0] == "front"]
    assert board_tables and all(t[0][7] == "test acc" for t in board_tables)
    rpi = text.split("## Target `rpi4`")[1].split("## Target `x86`")[0]
    x86 = text.split("## Target `x86`")[1].split("## Accuracy per method")[0]
    rpi_rows = [r for t in _tables(rpi) if t[0][0] == "front" for r in t[2:]]
    assert rpi_rows and all(r[12].startswith("≈") and r[19] == "estimated ±35%" for r in rpi_rows)
    x86_rows = [r for t in _tables(x86) if t[0][0] == "front" for r in t[2:]]
    assert x86_rows and not any("≈" in c for r in x86_rows for c in r) and all(r[19] == "measured" for r in x86_rows)
    # the CI format, and the recommended model in the summary
    assert re.search(r"0\.800 \[0\.\d{3}, 0\.\d{3}\] \(n=3\)", text)
    summary = _tables(text.split("## Summary")[1])[0]
    assert [r[0] for r in summary[2:]] == ["rpi4", "x86"]
    assert "trials_" not in summary[2][2] and "mobilenet_v3_small / vanilla / fp32 @ onnxruntime" in summary[2][2]
    assert "vgg16: test accuracy 0.900" in text


def test_without_profiles_the_board_is_accuracy_only(inputs):
    lb = collect(inputs["study"], inputs["export"], None)
    assert [b.name for b in lb.boards] == ["none"]
    board = lb.boards[0]
    assert [c for c, _ in board.objectives] == ["accuracy", "size_mb"]
    assert any("accuracy-only" in n for n in lb.notes)
    assert all(r.get("latency_p50_ms") is None for r in board.rows)
    lb3 = collect(inputs["study"], None, inputs["profiles"])  # profiles are keyed by variant: useless without export
    assert [b.name for b in lb3.boards] == ["none"] and any("need --export" in n for n in lb3.notes)
    lb2 = collect(inputs["study"], None, None)
    rows = lb2.boards[0].rows
    # one row per (student, method): the best trial by validation accuracy
    assert sorted((r["student"], r["method"], r["trial"]) for r in rows) == [
        ("mobilenet_v3_small", "ctkd", 3), ("mobilenet_v3_small", "scratch", 0), ("mobilenet_v3_small", "vanilla", 1),
        ("shufflenet_v2_x1_0", "scratch", 0), ("shufflenet_v2_x1_0", "vanilla", 1)]
    assert rows[0]["accuracy"] == pytest.approx((0.83 + 0.85 + 0.84) / 3) and rows[0]["front"] == 1
    assert [r["front"] for r in rows] == sorted(r["front"] for r in rows)


def test_missing_inputs_are_clear_errors(inputs, tmp_path):
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "nope"))):
        collect(tmp_path / "nope")
    with pytest.raises(DataError, match=r"manifest\.json does not exist"):
        collect(inputs["study"], tmp_path / "no_export")
    with pytest.raises(DataError, match=r"gpu.*results\.json does not exist.*\['rpi4', 'x86'\]"):
        collect(inputs["study"], inputs["export"], inputs["profiles"], ["gpu"])
    with pytest.raises(ConfigError, match="--targets x86 needs --profiles"):
        collect(inputs["study"], inputs["export"], None, ["x86"])
    (inputs["export"] / "manifest.json").write_text('{"stage": "export", "variants": [{"id": "a/fp32"}]}')
    with pytest.raises(DataError, match=r"variants\[0\] has no key 'variant'"):
        collect(inputs["study"], inputs["export"])


def test_cli_writes_the_leaderboard(inputs):
    from kdbench.cli import app

    out = inputs["root"] / "board"
    result = CliRunner().invoke(app, ["leaderboard", "--study", str(inputs["study"]), "--export", str(inputs["export"]),
                                      "--profiles", str(inputs["profiles"]), "--targets", "rpi4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / README).is_file() and (out / "accuracy_vs_latency_rpi4.png").is_file()
    assert not (out / "accuracy_vs_latency_x86.png").exists()
    assert {r["target"] for r in _read_csv(out / CSV)} == {"rpi4"}
    assert "Regenerate: `kdbench leaderboard --study" in (out / README).read_text()
    bad = CliRunner().invoke(app, ["leaderboard", "--study", str(inputs["root"] / "missing"), "--out", str(out)])
    assert isinstance(bad.exception, DataError) and "missing" in str(bad.exception)
