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

import numpy as np
import pytest
from typer.testing import CliRunner

from kdbench.errors import ConfigError, DataError
from kdbench.export_manifest import VariantRecord
from kdbench.leaderboard.build import CSV, JSON, METHODS_PNG, README, build_leaderboard
from kdbench.leaderboard.collect import collect
from kdbench.leaderboard.columns import COLUMNS, column_names
from kdbench.pareto import dominates
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
    "mnv3_kd": ("mobilenet_v3_small", 1, 2),
    "shuffle_kd": ("shufflenet_v2_x1_0", 1, 1),
    "mnv3_scratch": ("mobilenet_v3_small", 0, 1),
}
# (candidate, variant, runtime, precision, test acc, size MB, params, macs, status)
VARIANTS = [
    ("mnv3_kd", "fp32", "onnxruntime", "fp32", 0.820, 6.1, 1.52e6, 14.0e6, "ok"),
    ("mnv3_kd", "int8_ort", "onnxruntime", "int8", 0.810, 1.7, 1.52e6, 14.0e6, "ok"),
    ("mnv3_kd", "int8_openvino", "openvino", "int8", 0.815, 1.9, 1.52e6, 14.0e6, "ok"),
    ("shuffle_kd", "fp32", "onnxruntime", "fp32", 0.850, 5.0, 1.26e6, 37.0e6, "ok"),
    ("shuffle_kd", "int8_ort", "onnxruntime", "int8", 0.600, 1.4, 1.26e6, 37.0e6, "failed"),
    ("shuffle_kd", "int8_openvino", "openvino", "int8", 0.845, 1.5, 1.26e6, 37.0e6, "ok"),
    ("mnv3_scratch", "fp32", "onnxruntime", "fp32", 0.720, 6.1, 1.52e6, 14.0e6, "ok"),
    # the same file size and accuracy as the one above: an exact duplicate point once profiled alike
    ("mnv3_scratch", "pruned30", "onnxruntime", "fp32", 0.720, 6.1, 1.0e6, 9.0e6, "ok"),
    ("teacher", "fp32", "onnxruntime", "fp32", 0.900, 537.0, 134.3e6, 7.6e9, "ok"),
]
# x86, measured: variant id -> (runtime, p50 ms, rss MB); fps = 1000 / mean (mean = p50 * 1.05)
X86 = {
    "mnv3_kd/fp32": [("onnxruntime", 0.45, 20.0), ("openvino", 0.40, 25.0)],
    "mnv3_kd/int8_ort": [("onnxruntime", 0.60, 12.0)],
    "mnv3_kd/int8_openvino": [("openvino", 0.30, 14.0)],
    "shuffle_kd/fp32": [("onnxruntime", 1.20, 18.0), ("openvino", 0.90, 22.0)],
    "shuffle_kd/int8_openvino": [("openvino", 0.70, 15.0)],
    "mnv3_scratch/fp32": [("onnxruntime", 0.45, 20.0)],
    "mnv3_scratch/pruned30": [("onnxruntime", 0.45, 20.0)],
    "teacher/fp32": [("onnxruntime", 48.0, 600.0)],
}
# rpi4, estimated: variant id -> (p50 ms, memory MB); int8_openvino has no ONNX graph -> failed estimate
RPI4 = {
    "mnv3_kd/fp32": (12.0, 30.0),
    "mnv3_kd/int8_ort": (20.0, 14.0),
    "shuffle_kd/fp32": (40.0, 28.0),
    "mnv3_scratch/fp32": (12.0, 60.0),
    "mnv3_scratch/pruned30": (9.0, 45.0),
    "teacher/fp32": (2400.0, 700.0),
}


def _metrics(acc: float, worst_offset: float = 0.08) -> dict:
    """A metrics dict with every key of kdbench.metrics.classification_metrics (clips, intervals, ECE, shortcut)."""
    return {"accuracy": acc, "macro_f1": acc - 0.01, "worst_source_accuracy": acc - worst_offset,
            "per_source_accuracy": {"echonet_dynamic": acc + 0.02, "echonet_lvh": acc, "tmed2": acc - worst_offset},
            "n": 64, "n_clips": 16, "accuracy_ci": [acc - 0.04, acc + 0.04], "clip_accuracy": acc + 0.01,
            "clip_macro_f1": acc, "clip_accuracy_ci": [acc - 0.07, acc + 0.06], "ece": 0.05,
            "shortcut_gap": {"view": "A4C", "sources": ["echonet_dynamic", "tmed2"], "gap": 0.1}}


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
    """EXPORT/manifest.json as `kdbench export --study` leaves it."""
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
        student, trial, seed = ("vgg16", None, None) if cid == "teacher" else CANDIDATES[cid]
        ext = ".xml" if runtime == "openvino" else ".onnx"
        variants.append(VariantRecord(
            id=f"{cid}/{variant}", candidate=cid, student=student, trial=trial, seed=seed,
            method=next((c["method"] for c in candidates if c["id"] == cid), None), variant=variant,
            runtime=runtime, precision=precision, file=f"{cid}/{variant}{ext}", size_mb=size,
            params=int(params), macs=int(macs), input_size=64, status=status,
            reason=None if status == "ok" else "accuracy collapsed: val accuracy 0.6000 vs fp32 0.8500",
            metrics={"val": _metrics(acc + 0.005), "test": _metrics(acc)}).to_dict())
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
    failed = _record("shuffle_kd/int8_openvino", "rpi4", "openvino", 1.0, 1.0, False)
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


def _board(lb, name: str):
    return next(b for b in lb.boards if b.name == name)


def _row(board, vid: str, runtime: str | None = None):
    return next(r for r in board.rows if r.variant_id == vid and (runtime is None or r.runtime == runtime))


def _edit_variants(export: Path, change) -> None:
    """Rewrite the export manifest with ``change(variant dict)`` applied to every variant."""
    doc = json.loads((export / "manifest.json").read_text())
    for v in doc["variants"]:
        change(v)
    write_json(export / "manifest.json", doc)


def test_pareto_flags_are_consistent_with_the_numbers(inputs):
    lb = collect(inputs["study"], inputs["export"], inputs["profiles"])
    assert [b.name for b in lb.boards] == ["rpi4", "x86"]
    senses = ["max", "min", "min"]
    for board in lb.boards:
        ranked = [r for r in board.rows if r.front is not None]
        assert len(ranked) >= 4, board.name
        point = {id(r): (r.val_accuracy, r.latency_p50_ms, r.size_mb) for r in ranked}
        for r in ranked:
            dominators = [o for o in ranked if dominates(point[id(o)], point[id(r)], senses)]
            if r.front == 1:
                assert not dominators, (board.name, r.variant_id, r.runtime)
                assert r.pareto is True
            else:
                assert r.pareto is False
                assert any(o.front == r.front - 1 for o in dominators), (board.name, r.variant_id)
                assert all(o.front < r.front for o in dominators)
        fronts = [r.front for r in ranked]
        assert fronts == sorted(fronts)  # rows come out front by front
    x86 = _board(lb, "x86")
    # the scratch fp32 and its pruned copy measured alike: the same point, so the same front
    dup = [r for r in x86.rows if r.variant_id.startswith("mnv3_scratch/")]
    assert len(dup) == 2 and dup[0].front == dup[1].front
    assert _row(x86, "mnv3_kd/int8_openvino").front == 1  # (0.820, 0.30 ms, 1.9 MB): fastest


def test_rows_join_variant_figures_seed_means_and_statistics(inputs):
    from kdbench.search.statistics import mean_ci

    lb = collect(inputs["study"], inputs["export"], inputs["profiles"])
    x86 = _board(lb, "x86")
    row = _row(x86, "mnv3_kd/int8_ort")
    # the variant's own figures, re-measured on the exported file: validation (ranking) and test (reported)
    assert (row.val_accuracy, row.val_accuracy_low, row.val_accuracy_high) == pytest.approx((0.815, 0.775, 0.855))
    assert (row.test_accuracy, row.test_accuracy_low, row.test_accuracy_high) == pytest.approx((0.810, 0.770, 0.850))
    assert (row.test_clip_accuracy, row.test_clip_accuracy_low, row.test_clip_accuracy_high) == pytest.approx((0.82, 0.74, 0.87))
    assert (row.test_ece, row.test_frames, row.test_clips) == (0.05, 64, 16)
    assert (row.shortcut_view, row.shortcut_sources, row.shortcut_gap) == ("A4C", "echonet_dynamic > tmed2", 0.1)
    # the trial and seed come from the manifest's record (its candidate id names neither)
    assert (row.method, row.temperature, row.alpha, row.train_batch_size, row.trial, row.seed) == ("vanilla", 4.0, 0.5, 64, 1, 2)
    assert row.seed_mean_test_accuracy == pytest.approx((0.80 + 0.78 + 0.82) / 3)
    assert row.seed_mean_val_accuracy == pytest.approx((0.79 + 0.80 + 0.81) / 3)
    assert (row.seed_test_low, row.seed_test_high) == pytest.approx(mean_ci([0.80, 0.78, 0.82]))
    assert (row.n_seeds, row.seed_interval) == (3, "seeds")  # no predictions.npz: seeds only, and it says so
    assert row.relative_accuracy == pytest.approx(0.810 / TEACHER_TEST_ACC)
    assert row.test_worst_source_accuracy == pytest.approx(0.810 - 0.08)
    # timm-style and profile columns
    assert (row.param_count, row.infer_gmacs, row.infer_img_size, row.infer_batch_size) == pytest.approx((1.52, 0.014, 64, 1))
    assert (row.runtime_version, row.threads, row.model_memory_mb, row.peak_rss_mb) == ("1.0", 2, 12.0, 52.0)
    stats = json.loads((inputs["study"] / "statistics.json").read_text())
    comp = next(c for c in stats["comparisons"] if c["student"] == "mobilenet_v3_small"
                and c["best_distillation"] and c["metric"] == "test_accuracy")
    assert (row.kd_vs_scratch_p_holm, row.kd_vs_scratch_verdict) == (comp["p_holm"], comp["verdict"])
    assert row.kd_vs_scratch_source == "search" and any("search confirm" in n for n in lb.notes)
    # the failed variant is left out, with its reason; the teacher is a reference row, never ranked
    assert [v["variant_id"] for v in lb.left_out] == ["shuffle_kd/int8_ort"]
    assert all(r.student != "vgg16" for b in lb.boards for r in b.rows)
    teacher = x86.teacher_rows[0]
    assert teacher.latency_p50_ms == 48.0 and teacher.verdict == "fails"  # 1000/50.4 ms < 30 fps
    fp32 = [r for r in x86.rows if r.variant_id == "mnv3_kd/fp32"]  # batch-8 records are not batch-1 latency
    assert sorted((r.runtime, r.latency_p50_ms) for r in fp32) == [("onnxruntime", 0.45), ("openvino", 0.40)]
    assert lb.split_sizes["test"] == (64, 16)


def test_ranking_and_recommendation_use_validation_not_test(inputs):
    # a variant with the best TEST accuracy but a poor validation accuracy is neither promoted nor recommended
    def best_on_test(v):
        if v["id"] == "mnv3_scratch/fp32":
            v["metrics"]["test"] = _metrics(0.99)
    _edit_variants(inputs["export"], best_on_test)
    x86 = _board(collect(inputs["study"], inputs["export"], inputs["profiles"]), "x86")
    row = _row(x86, "mnv3_scratch/fp32")
    assert row.test_accuracy == 0.99 and row.front > 1 and row.recommended is False
    assert (x86.recommended.variant_id, x86.recommended.runtime) == ("shuffle_kd/fp32", "openvino")
    # the same variant best on VALIDATION: now it leads the front and is recommended
    def best_on_val(v):
        if v["id"] == "mnv3_scratch/fp32":
            v["metrics"]["val"] = _metrics(0.99)
    _edit_variants(inputs["export"], best_on_val)
    x86 = _board(collect(inputs["study"], inputs["export"], inputs["profiles"]), "x86")
    assert x86.recommended.variant_id == "mnv3_scratch/fp32" and x86.recommended.front == 1
    assert x86.recommended.recommended is True and x86.recommended.recommended_uncertain is False
    assert "validation accuracy 0.990 [0.950, 1.000]" in x86.recommendation  # the interval cut to [0, 1]
    assert sum(r.recommended for r in x86.rows) == 1


def test_every_ranked_row_has_a_decision_against_the_best(inputs):
    # this export saved no per-frame predictions (an older export): only the best and its own file in another
    # runtime are decided; every other model is undecided, saying why (tests/test_leaderboard_decisions.py pairs them)
    lb = collect(inputs["study"], inputs["export"], inputs["profiles"])
    for board in lb.boards:
        ranked = [r for r in board.rows if r.front is not None]
        best = [r for r in ranked if r.decision == "best"]
        assert len(best) == 1 and best[0].val_accuracy == max(r.val_accuracy for r in ranked)
        for r in ranked:
            if r is best[0]:
                continue
            if r.variant_id == best[0].variant_id:
                assert r.decision == "equivalent" and "same exported file" in r.decision_note
            else:
                assert r.decision == "undecided" and "per-frame" in r.decision_note, r.decision_note
                assert r.decision_ci_low is None and r.decision_ci_high is None
        assert all(r.decision is None for r in board.rows if r.front is None)
    x86 = _board(lb, "x86")
    assert (_row(x86, "shuffle_kd/fp32", "openvino").decision, _row(x86, "shuffle_kd/fp32", "onnxruntime").decision) == (
        "best", "equivalent")  # the same file: the faster runtime is the best
    assert "decisions against the best: 1 best, 1 equivalent, 0 worse, 7 undecided" in x86.recommendation
    assert "tied" not in x86.recommendation and "margin δ = 0.010 (1 point)" in x86.recommendation


def test_constraints_are_evaluated_from_the_hardware_profiles(inputs):
    from kdbench.profile.hardware import load_profile

    lb = collect(inputs["study"], inputs["export"], inputs["profiles"])
    for board in lb.boards:
        cons = load_profile(board.name).constraints
        assert board.constraints == cons
        for r in board.rows:
            if r.fps is None:
                assert r.verdict == "unknown"
            elif not r.estimated:
                ok = r.fps >= cons["min_fps"] and ("max_memory_mb" not in cons or r.model_memory_mb < cons["max_memory_mb"])
                assert r.verdict == ("meets" if ok else "fails"), (board.name, r.variant_id, r.fps)
    rpi = _board(lb, "rpi4")
    kd = _row(rpi, "mnv3_kd/fp32")
    # an estimate carries its band: p50 12 ms +-35%, fps = 1000 / 12.6 ms
    assert (kd.latency_p50_low_ms, kd.latency_p50_high_ms) == pytest.approx((12.0 * 0.65, 12.0 * 1.35))
    assert (kd.fps_low, kd.fps_high) == pytest.approx((kd.fps / 1.35, kd.fps / 0.65))
    assert kd.verdict == "meets" and kd.estimated and not kd.unstable  # even its low end (58 fps) meets 30 fps
    assert _row(rpi, "shuffle_kd/fp32").verdict in ("fails", "uncertain")  # 23.8 fps, band 17.6-36.6
    # recommended: the most accurate on validation that meets them (0.825 fp32 beats 0.815 int8)
    assert rpi.recommended.variant_id == "mnv3_kd/fp32"
    x86 = _board(lb, "x86")
    assert (x86.recommended.variant_id, x86.recommended.runtime) == ("shuffle_kd/fp32", "openvino")  # same accuracy, faster


def test_unstable_measurements_are_left_out_unless_asked(inputs):
    path = inputs["profiles"] / "x86" / "results.json"
    records = json.loads(path.read_text())
    for r in records:
        r["stable"] = not r["variant_id"].startswith("shuffle_kd/fp32")
    write_json(path, records)
    x86 = _board(collect(inputs["study"], inputs["export"], inputs["profiles"]), "x86")
    assert x86.recommended.variant_id == "shuffle_kd/int8_openvino" and x86.left_out_unstable == 2
    assert _row(x86, "shuffle_kd/fp32", "openvino").unstable is True
    x86 = _board(collect(inputs["study"], inputs["export"], inputs["profiles"], include_unstable=True), "x86")
    assert x86.recommended.variant_id == "shuffle_kd/fp32" and x86.left_out_unstable == 0
    out = inputs["root"] / "lb"
    build_leaderboard(inputs["study"], out, inputs["export"], inputs["profiles"], plots=False)
    text = (out / README).read_text()
    assert "2 ranked model(s) with an unstable measurement were left out" in text and "measured, UNSTABLE" in text
    for r in records:  # every measurement unstable: nothing recommended, and the page says why (not "none meets")
        r["stable"] = False
    write_json(path, records)
    x86 = _board(collect(inputs["study"], inputs["export"], inputs["profiles"]), "x86")
    assert x86.recommended is None and x86.left_out_unstable == len([r for r in x86.rows if r.front is not None])
    assert x86.recommendation.startswith("no model is recommended on x86: the ") and "measured unstably" in \
        x86.recommendation and "no model meets" not in x86.recommendation


def test_uncertain_models_are_recommended_only_with_a_flag():
    from kdbench.leaderboard.collect import TargetBoard
    from kdbench.leaderboard.rank import rank_rows, recommend
    from kdbench.leaderboard.row import BoardRow

    def row(vid: str, acc: float, verdict: str) -> BoardRow:
        return BoardRow(variant_id=vid, student="s", method="m", variant=vid, val_accuracy=acc, val_accuracy_low=acc - 0.01,
                        val_accuracy_high=acc + 0.01, latency_p50_ms=10.0, size_mb=1.0, verdict=verdict,
                        verdict_reasons="fps band 20-40 straddles 30" if verdict == "uncertain" else None)

    objectives = [("val_accuracy", "max"), ("latency_p50_ms", "min"), ("size_mb", "min")]
    board = TargetBoard("t", objectives, {"min_fps": 30.0}, rows=rank_rows([row("a", 0.9, "uncertain"), row("b", 0.8, "meets"),
                                                                            row("c", 0.95, "fails")], objectives))
    recommend(board)
    assert board.recommended.variant_id == "b" and (board.recommended.recommended, board.recommended.recommended_uncertain) == (
        True, False)
    assert "1 more accurate model(s) are uncertain on the constraints (not recommended)" in board.recommendation
    only = TargetBoard("t", objectives, {"min_fps": 30.0}, rows=rank_rows([row("a", 0.9, "uncertain"), row("c", 0.95, "fails")],
                                                                           objectives))
    recommend(only)
    assert only.recommended.variant_id == "a" and only.recommended.recommended and only.recommended.recommended_uncertain
    assert [r.recommended for r in only.rows] == [r is only.recommended for r in only.rows]
    assert only.recommendation.startswith("UNCERTAIN: s / m / a") and "straddles" in only.recommendation


def test_kd_vs_scratch_prefers_confirmation_seeds(inputs):
    from kdbench.search.confirm import candidates

    stats = json.loads((inputs["study"] / "statistics.json").read_text())
    for c in stats["comparisons"]:
        c["p_holm"], c["verdict"] = 0.5, "undecided at this budget: about 9 seeds would detect 0.01"
    # a confirmation of a finished study, of the configurations it chooses (else the leaderboard does not use it)
    stats["study_finished"], stats["candidates"] = True, [
        {k: c[k] for k in ("student", "trial", "method", "config_id", "roles")} for c in candidates(inputs["study"])]
    write_json(inputs["study"] / "confirm" / "statistics.json", stats)
    out = inputs["root"] / "lb"
    lb, _ = build_leaderboard(inputs["study"], out, inputs["export"], inputs["profiles"], plots=False)
    row = _row(_board(lb, "x86"), "mnv3_kd/fp32", "onnxruntime")
    assert (row.kd_vs_scratch_p_holm, row.kd_vs_scratch_source) == (0.5, "confirm")
    assert row.kd_vs_scratch_verdict == "undecided at this budget: about 9 seeds would detect 0.01"
    assert not any("search confirm" in n for n in lb.notes)
    assert "on fresh confirmation seeds" in (out / README).read_text()


def write_seed_predictions(study: Path, store) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """The study on ``store``, with per-frame predictions (and the teacher's) saved by every seed of
    mobilenet_v3_small trial 1, as training saves them; (per split: seed hits [S, N] and clip ids; teacher test hits)."""
    from kdbench.metrics import clip_ids

    info = json.loads((study / "study.json").read_text())
    write_json(study / "study.json", {**info, "store": str(store.path)})
    rng = np.random.default_rng(0)
    trial_dir = study / "trials" / "mobilenet_v3_small" / "1"
    hits = {}
    for split in ("val", "test"):
        rows = store.indices(split)
        logits = [rng.normal(size=(len(rows), 4)).astype(np.float32) for _ in SEEDS]
        for seed, lg in zip(SEEDS, logits):
            lg[np.arange(len(rows)), store.labels[rows]] += 1.0  # better than chance
        hits[split] = (np.stack([lg.argmax(1) == store.labels[rows] for lg in logits]), clip_ids(store, rows))
        teacher = rng.normal(size=(len(rows), 4)).astype(np.float32)
        teacher[np.arange(len(rows)), store.labels[rows]] += 2.0  # the teacher is better
        teacher_hits = teacher.argmax(1) == store.labels[rows]
        for seed, lg in zip(SEEDS, logits):
            path = trial_dir / f"seed_{seed}" / "predictions.npz"
            old = dict(np.load(path)) if path.is_file() else {}
            np.savez(path, **old, **{f"{split}_logits": lg, f"{split}_rows": rows, f"{split}_teacher_logits": teacher})
    return hits, teacher_hits


def test_seed_means_resample_seeds_and_clips_from_saved_predictions(inputs, tiny_store):
    from kdbench.metrics import relative_interval, seed_clip_interval

    study = inputs["study"]
    trial_dir = study / "trials" / "mobilenet_v3_small" / "1"
    hits, teacher_hits = write_seed_predictions(study, tiny_store)
    lb = collect(study, inputs["export"], None)
    row = _row(lb.boards[0], "mnv3_kd/fp32")
    assert row.seed_interval == "seeds+clips"
    assert (row.seed_test_low, row.seed_test_high) == pytest.approx(seed_clip_interval(*hits["test"]))
    # relative to the teacher: the seed-mean accuracy over the teacher's on the same frames, paired interval
    ratio, low, high = relative_interval(hits["test"][0], teacher_hits, hits["test"][1])
    assert ratio == pytest.approx(hits["test"][0].mean() / teacher_hits.mean())
    assert (row.seed_relative_accuracy, row.seed_relative_low, row.seed_relative_high) == pytest.approx((ratio, low, high))
    assert low < ratio < high
    assert _row(lb.boards[0], "shuffle_kd/fp32").seed_relative_accuracy is None  # no predictions saved
    other = _row(lb.boards[0], "shuffle_kd/fp32")
    assert other.seed_interval == "seeds"  # that trial saved no predictions
    # without an export the seed mean is the ranking figure: its validation interval resamples seeds and clips too
    (study_row,) = [r for r in collect(study).boards[0].rows if (r.student, r.trial) == ("mobilenet_v3_small", 1)]
    assert (study_row.val_accuracy_low, study_row.val_accuracy_high) == pytest.approx(seed_clip_interval(*hits["val"]))
    # clip accuracy: one prediction per clip from its frames' mean logits, each clip its own cluster
    rows = tiny_store.indices("test")
    keys, inverse = np.unique(hits["test"][1], return_inverse=True)
    clip_label = np.zeros(len(keys), int)
    clip_label[inverse] = tiny_store.labels[rows]
    clip_hits = []
    for seed in SEEDS:
        lg = np.load(trial_dir / f"seed_{seed}" / "predictions.npz")["test_logits"]
        mean = np.stack([lg[inverse == k].mean(axis=0) for k in range(len(keys))])
        clip_hits.append(mean.argmax(axis=1) == clip_label)
    expected = seed_clip_interval(np.stack(clip_hits), keys)
    assert (study_row.test_clip_accuracy_low, study_row.test_clip_accuracy_high) == pytest.approx(expected)


def test_outputs_are_byte_identical_when_regenerated(inputs):
    root = inputs["root"]
    args = dict(study=inputs["study"], export=inputs["export"], profiles=inputs["profiles"])
    _, first = build_leaderboard(out=root / "lb1", **args)
    _, second = build_leaderboard(out=root / "lb2", **args)
    names = sorted(p.name for p in first)
    assert names == sorted(p.name for p in second)
    assert {README, CSV, JSON, METHODS_PNG, "accuracy_vs_latency_x86.png", "accuracy_vs_latency_rpi4.png"} <= set(names)
    for name in names:
        assert (root / "lb1" / name).read_bytes() == (root / "lb2" / name).read_bytes(), name
    png = (root / "lb1" / "accuracy_vs_latency_x86.png").read_bytes()
    assert png.startswith(b"\x89PNG") and b"Software" not in png and len(png) > 10_000


def test_csv_and_json_hold_the_same_rows_with_the_documented_columns(inputs):
    import dataclasses

    from kdbench.leaderboard.row import BoardRow

    out = inputs["root"] / "lb"
    lb, _ = build_leaderboard(inputs["study"], out, inputs["export"], inputs["profiles"], plots=False)
    assert [f.name for f in dataclasses.fields(BoardRow)] == column_names()
    assert {"infer_img_size", "infer_batch_size", "param_count", "infer_gmacs", "runtime", "runtime_version", "threads",
            "train_batch_size"} <= set(column_names()) and "batch_size" not in column_names()
    rows = _read_csv(out / CSV)
    assert (out / CSV).read_text().splitlines()[0].split(",") == column_names()
    doc = json.loads((out / JSON).read_text())
    assert doc["columns"] == column_names() and len(doc["rows"]) == len(rows) == sum(len(b.rows) for b in lb.boards)
    for c, j in zip(rows, doc["rows"]):
        assert list(j) == column_names()
        for name in column_names():
            value = j[name]
            text = "" if value is None else format(value, ".6g") if isinstance(value, float) else str(value)
            assert c[name] == text, (j["variant_id"], name)
    assert [t["target"] for t in doc["targets"]] == ["rpi4", "x86"]
    assert doc["targets"][1]["recommended"] == {"variant_id": "shuffle_kd/fp32", "runtime": "openvino",
                                                "model": "shufflenet_v2_x1_0.vanilla_trial1_fp32", "uncertain": False}
    readme = (out / README).read_text()
    for name in COLUMNS:
        assert f"`{name}`" in readme, name
    for r in rows:
        assert r["pareto"] == str(r["front"] == "1")
        if r["target"] == "rpi4" and r["latency_p50_ms"]:
            assert r["estimated"] == "True" and r["error_band_pct"] == "35" and r["fps_low"]
        if r["target"] == "x86" and r["latency_p50_ms"]:
            assert r["estimated"] == "False" and r["error_band_pct"] == "" and r["fps_low"] == ""
    no_result = [r for r in rows if r["target"] == "rpi4" and r["variant_id"].endswith("int8_openvino")]
    assert {r["front"] for r in no_result} == {""} and {r["pareto"] for r in no_result} == {"False"}
    assert all(r["decision_note"].startswith("not ranked: ") and r["decision"] == "" for r in no_result)


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


def _rows_under(markdown: str, headers: tuple[str, ...]) -> list[list[str]]:
    return [r for t in _tables(markdown) if t[0] == list(headers) for r in t[2:]]


def test_readme_tables_are_well_formed_and_estimates_labelled(inputs):
    from kdbench.leaderboard.render import DETAIL_HEADERS, MAIN_HEADERS

    out = inputs["root"] / "lb"
    build_leaderboard(inputs["study"], out, inputs["export"], inputs["profiles"], plots=False)
    text = (out / README).read_text()
    tables = _tables(text)
    assert len(tables) >= 10
    for t in tables:
        assert len(t) >= 3, t  # header, separator, at least one row
        assert all(re.fullmatch(r"-{3}:?", c) or re.fullmatch(r"---:", c) for c in t[1]), t[1]
        assert all(len(row) == len(t[0]) for row in t), t[0]
    main = {h: i for i, h in enumerate(MAIN_HEADERS)}
    col = {h: i for i, h in enumerate(DETAIL_HEADERS)}
    # per target: a main table of at most 9 columns for the Pareto-optimal models and one for the rest; every other
    # figure of the same rows in a collapsed "All figures" table
    assert len(MAIN_HEADERS) <= 9 and sum(t[0] == list(MAIN_HEADERS) for t in tables) == 4
    assert sum(t[0] == list(DETAIL_HEADERS) for t in tables) == 2
    rpi = text.split("## Target `rpi4`")[1].split("## Target `x86`")[0]
    x86 = text.split("## Target `x86`")[1].split("## Accuracy per method")[0]
    assert "<details><summary>All figures for target x86</summary>\n\n| model | front |" in x86
    rpi_main, rpi_all = _rows_under(rpi, MAIN_HEADERS), _rows_under(rpi, DETAIL_HEADERS)
    assert rpi_main and len(rpi_all) == len(rpi_main)
    assert all(r[main["p50<br>ms"]].startswith("≈") and r[main["model<br>MB"]].startswith("≈") for r in rpi_main)
    assert all(r[col["figures"]] == "estimated ±35%" for r in rpi_all)
    assert any(re.fullmatch(r"≈12\.00 \(7\.80-16\.20\)", r[col["p50 ms (band)"]]) for r in rpi_all)  # the band
    x86_main, x86_all = _rows_under(x86, MAIN_HEADERS), _rows_under(x86, DETAIL_HEADERS)
    assert x86_main and len(x86_all) == len(x86_main)
    assert not any("≈" in c for r in x86_main + x86_all for c in r) and all(r[col["figures"]] == "measured" for r in x86_all)
    # the same models in the same order in both tables: 'student<br>method · variant @ runtime' in the main one
    for short, full in zip(x86_main, x86_all):
        student, rest = short[main["model"]].split("<br>")
        assert full[col["model"]].startswith(f"{student} / {rest.split(' · ')[0]} / "), (short, full)
    assert "shufflenet_v2_x1_0<br>vanilla · fp32 @ ORT" in [r[main["model"]] for r in x86_main]
    assert "mobilenet_v3_small<br>vanilla · int8_openvino" in [r[main["model"]] for r in x86_main]
    # every accuracy with its interval, one compact form: the value, then (low–high) beneath it in the main table
    for name in ("val acc<br>(95% CI)", "test acc<br>(95% CI)"):
        assert all(re.fullmatch(r"0\.\d{3}†?<br>\(0\.\d{3}–[01]\.\d{3}\)", r[main[name]]) for r in x86_main)
    # the best's and the recommended model's validation figures are marked selection-biased (chosen on these frames)
    assert ["†" in r[main["val acc<br>(95% CI)"]] for r in x86_main].count(True) == 1  # best = recommended here
    assert not any("†" in r[main["test acc<br>(95% CI)"]] for r in x86_main)
    assert {r[main["decision"]] for r in x86_main} <= {"best", "equivalent", "worse", "undecided"}
    assert {r[main["verdict"]] for r in x86_main} <= {"meets", "fails", "uncertain", "unknown", "n/a"}
    assert "selection-biased" in text and "statistically tied" not in text and "tied" not in text
    assert all(re.fullmatch(r"0\.\d{3} \(0\.\d{3}–0\.\d{3}\)", r[col["test clip acc (95% CI)"]]) for r in x86_all)
    assert all(r[col["ECE"]] == "0.050" and r[col["shortcut gap"]] == "A4C 0.10" for r in x86_all)
    assert any(re.fullmatch(r"0\.800 \(0\.\d{3}–0\.\d{3}\) \(n=3, seeds\)", r[col["seed-mean test acc (95% CI) (n)"]])
               for r in x86_all)
    verdicts = [r[col["verdict"]] for r in rpi_all]  # with their reasons, the main table's without
    assert "fails: memory 60.0 MB >= 50 MB" in verdicts and any(v.startswith("uncertain: fps ") for v in verdicts)
    assert {r[main["verdict"]] for r in rpi_main} == {"meets", "fails", "uncertain"}
    assert re.search(r"\| 0\.800<br>\(0\.\d{3}–0\.\d{3}\) \| 3 \|", text)  # the per-method table: seed mean, 3 seeds
    # what to ship comes first: one sentence per target, then the method, collapsed, then the targets
    assert text.index("**What to ship, per target**") < text.index("<summary>How to read this page</summary>") \
        < text.index("## Target `rpi4`")
    recs = [line for line in text.split("<details>")[0].splitlines() if line.startswith("- **")]
    assert [line.split("**")[1] for line in recs] == ["rpi4", "x86"]
    assert "ship **mobilenet_v3_small / vanilla / fp32 @ onnxruntime**" in recs[0]
    assert "validation accuracy 0.825 (0.785–0.865)† (undecided against the best), test accuracy 0.820 " in recs[0]
    assert "≈12.00 ms p50 / ≈79.4 fps on rpi4 (estimated), model memory ≈30.0 MB" in recs[0]
    assert "why: no model that meets every constraint is best or equivalent to the most accurate one" in recs[0]
    assert "ship **shufflenet_v2_x1_0 / vanilla / fp32 @ openvino**" in recs[1] and "(best on validation)" in recs[1]
    assert "0.90 ms p50 / 1058.2 fps on x86, model memory 22.0 MB" in recs[1] and "≈" not in recs[1]
    assert "The figures rest on 64 test frames from 16 clips" in text
    assert "vgg16: test accuracy 0.900" in text and "<summary>All figures for the teacher</summary>" in text


def test_without_profiles_the_board_is_accuracy_only(inputs):
    lb = collect(inputs["study"], inputs["export"], None)
    assert [b.name for b in lb.boards] == ["none"]
    board = lb.boards[0]
    assert [c for c, _ in board.objectives] == ["val_accuracy", "size_mb"]
    assert any("accuracy-only" in n for n in lb.notes)
    assert all(r.latency_p50_ms is None for r in board.rows)
    lb3 = collect(inputs["study"], None, inputs["profiles"])  # profiles are keyed by variant: useless without export
    assert [b.name for b in lb3.boards] == ["none"] and any("need --export" in n for n in lb3.notes)
    rows = collect(inputs["study"], None, None).boards[0].rows
    # one row per (student, method): the best trial by validation accuracy, ranked on its seed-mean validation accuracy
    assert sorted((r.student, r.method, r.trial) for r in rows) == [
        ("mobilenet_v3_small", "ctkd", 3), ("mobilenet_v3_small", "scratch", 0), ("mobilenet_v3_small", "vanilla", 1),
        ("shufflenet_v2_x1_0", "scratch", 0), ("shufflenet_v2_x1_0", "vanilla", 1)]
    assert rows[0].val_accuracy == pytest.approx((0.82 + 0.84 + 0.83) / 3) and rows[0].front == 1
    assert rows[0].test_accuracy == pytest.approx((0.83 + 0.85 + 0.84) / 3)
    assert rows[0].test_clip_accuracy == pytest.approx(rows[0].test_accuracy + 0.01)  # seed mean of clip accuracy
    assert [r.front for r in rows] == sorted(r.front for r in rows)


def test_missing_inputs_are_clear_errors(inputs, tmp_path):
    with pytest.raises(DataError, match=re.escape(str(tmp_path / "nope"))):
        collect(tmp_path / "nope")
    with pytest.raises(DataError, match=r"manifest\.json does not exist"):
        collect(inputs["study"], tmp_path / "no_export")
    with pytest.raises(DataError, match=r"gpu.*results\.json does not exist.*\['rpi4', 'x86'\]"):
        collect(inputs["study"], inputs["export"], inputs["profiles"], ["gpu"])
    with pytest.raises(ConfigError, match="--targets x86 needs --profiles"):
        collect(inputs["study"], inputs["export"], None, ["x86"])
    (inputs["export"] / "manifest.json").write_text('{"stage": "export", "variants": [{"id": "a/fp32", "candidate": "a"}]}')
    with pytest.raises(DataError, match=r"variants\[0\] has no key 'variant'"):
        collect(inputs["study"], inputs["export"])
    (inputs["export"] / "manifest.json").write_text(
        '{"stage": "export", "variants": [{"id": "a/fp32", "candidate": "a", "variant": "fp32", "status": "ok", "trial": "3"}]}')
    with pytest.raises(DataError, match=r"variants\[0\]: trial = '3'; expected an integer"):
        collect(inputs["study"], inputs["export"])


def test_cli_writes_the_leaderboard(inputs):
    from kdbench.cli import app

    out = inputs["root"] / "board"
    result = CliRunner().invoke(app, ["leaderboard", "--study", str(inputs["study"]), "--export", str(inputs["export"]),
                                      "--profiles", str(inputs["profiles"]), "--targets", "rpi4", "--out", str(out),
                                      "--include-unstable"])
    assert result.exit_code == 0, result.output
    assert (out / README).is_file() and (out / JSON).is_file() and (out / "accuracy_vs_latency_rpi4.png").is_file()
    assert not (out / "accuracy_vs_latency_x86.png").exists()
    assert {r["target"] for r in _read_csv(out / CSV)} == {"rpi4"}
    assert "--include-unstable" in (out / README).read_text().split("Regenerate: `")[1].split("`")[0]
    assert "64 test frames from 16 clips" in result.output
    bad = CliRunner().invoke(app, ["leaderboard", "--study", str(inputs["root"] / "missing"), "--out", str(out)])
    assert isinstance(bad.exception, DataError) and "missing" in str(bad.exception)


def test_point_labels_never_overlap(tmp_path):
    import matplotlib
    from matplotlib.text import Text

    from kdbench.leaderboard.plots import RC, _figure, place_labels

    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot(1, 1, 1)
        rng = np.random.default_rng(0)
        xs, ys = rng.uniform(1, 2, 40), rng.uniform(0.80, 0.82, 40)  # 40 points in a crowd
        ax.scatter(xs, ys)
        ax.set_xlim(0, 3)
        ax.set_ylim(0.7, 0.9)
        fig.tight_layout()
        labels = [(x, y, f"mobilenet_v3_small vanilla/int8_ort @ort #{i}", "0.2") for i, (x, y) in enumerate(zip(xs, ys))]
        omitted = place_labels(ax, labels)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        boxes = [Text.get_window_extent(t, renderer) for t in ax.texts]  # the text itself, without its leader line
        assert len(boxes) + omitted == 40 and len(boxes) >= 5 and omitted > 0
        axes_box = ax.get_window_extent(renderer)
        for i, a in enumerate(boxes):
            assert axes_box.x0 - 1 <= a.x0 and a.x1 <= axes_box.x1 + 1
            for b in boxes[i + 1:]:
                assert not a.overlaps(b), (a, b)


def test_a_method_run_on_its_defaults_shows_its_t_and_alpha():
    """A trial of vanilla KD on its defaults records hparams {}: the row still shows T = 4 and alpha = 0.5."""
    from kdbench.leaderboard.collect import config_columns
    from kdbench.search.trial_record import TrialRecord

    def trial(method, hparams, **more):
        return TrialRecord(trial=0, student="s", method=method, state="complete", seeds={}, hparams=hparams, **more)

    cols = config_columns(trial("vanilla", {}, train={"batch_size": 8}), None)
    assert (cols["temperature"], cols["alpha"], cols["train_batch_size"]) == (4.0, 0.5, 8)
    assert config_columns(trial("vanilla", {"temperature": 2.0}), None)["temperature"] == 2.0
    assert config_columns(trial("scratch", {}), None)["temperature"] is None
    assert config_columns(trial("ctkd", {"temperature": None}), None)["temperature"] is None
    # the settings the search recorded win (trial.json method_settings: resolved when the trial ran)
    recorded = trial("vanilla", {}, method_settings={"temperature": 3.0, "alpha": 0.7})
    assert (config_columns(recorded, None)["temperature"], config_columns(recorded, None)["alpha"]) == (3.0, 0.7)
    # an exported candidate outside the study: its own hparams over the method's defaults, not the defaults alone
    assert (config_columns(None, "vanilla", {"temperature": 8.0})["temperature"],
            config_columns(None, "vanilla", {"temperature": 8.0})["alpha"]) == (8.0, 0.5)
    assert config_columns(None, "dkd", None)["alpha"] == 1.0 and config_columns(None, "wttm")["temperature"] is None
