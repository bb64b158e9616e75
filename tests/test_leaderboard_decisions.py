"""The leaderboard's decisions against the best (best / equivalent / worse / undecided at a margin) on constructed
predictions whose answer is known, the recommendation they drive, the margin option, and the per-frame
predictions `kdbench export` saves for them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from kdbench.errors import ConfigError
from kdbench.leaderboard.decisions import ValHits, _halfwidth, compare
from kdbench.manifest import write_json
from kdbench.metrics import paired_interval
from test_leaderboard_board import write_export, write_profiles, write_study

PER_CLIP = 4


def _clips(n_clips: int) -> np.ndarray:
    return np.repeat([f"src/v{i:03d}" for i in range(n_clips)], PER_CLIP)


def _flip(hits: np.ndarray, n: int, to: bool, rng: np.random.Generator, avoid: set[int] | None = None) -> np.ndarray:
    """A copy of 1-D ``hits`` with ``n`` frames that are ``not to`` set to ``to``, each in a different clip."""
    out = hits.copy()
    clips = rng.permutation(len(hits) // PER_CLIP)
    done = 0
    for c in clips:
        if avoid and int(c) in avoid:
            continue
        frames = [f for f in range(c * PER_CLIP, (c + 1) * PER_CLIP) if out[f] != to]
        if frames:
            out[frames[0]] = to
            done += 1
            if avoid is not None:
                avoid.add(int(c))
        if done == n:
            return out
    raise AssertionError(f"could not flip {n} frames")


def _base(n_clips: int, n_wrong: int, seed: int = 0) -> np.ndarray:
    """Hits of the best model: ``n_wrong`` errors, one per clip."""
    return _flip(np.ones(n_clips * PER_CLIP, bool), n_wrong, False, np.random.default_rng(seed))


def _one(hits: np.ndarray, n_clips: int) -> ValHits:
    return ValHits(hits=hits[None], rows=np.arange(len(hits)), clips=_clips(n_clips))


def _moved(best: np.ndarray, n_moved: int, extra_wrong: int, seed: int) -> np.ndarray:
    """``best`` with ``n_moved`` of its errors fixed and ``n_moved + extra_wrong`` new errors elsewhere (other clips)."""
    rng = np.random.default_rng(seed)
    used: set[int] = {int(i) // PER_CLIP for i in np.flatnonzero(~best)}
    fixed = best.copy()
    fixed[rng.choice(np.flatnonzero(~best), n_moved, replace=False)] = True
    return _flip(fixed, n_moved + extra_wrong, False, rng, avoid=used)


# ------------------------------------------------------------------------------------------ the verdicts


def test_a_model_truly_8_points_worse_on_140_clips_is_worse():
    best = _base(140, 84)  # 0.850 on 560 frames
    worse = _flip(best, 45, False, np.random.default_rng(1))  # 45 more errors: 8.0 points below
    d = compare(_one(best, 140), _one(worse, 140), margin=0.01)
    assert d.verdict == "worse" and d.diff == pytest.approx(45 / 560)
    assert 0 < d.ci_low < d.diff < d.ci_high and "above 0" in d.note and "140 clips" in d.note
    ref = paired_interval(best[None], worse[None], _clips(140))
    assert (d.ci_low, d.ci_high) == pytest.approx((ref["ci_low"], ref["ci_high"]))


def test_identical_and_equally_good_models_are_equivalent_with_enough_clips():
    best = _base(140, 84)
    same = compare(_one(best, 140), _one(best.copy(), 140), margin=0.01)
    assert same.verdict == "equivalent" and "same hits" in same.note and (same.ci_low, same.ci_high) == (0.0, 0.0)
    # equally accurate, its errors on other frames: equivalent at a 5-point margin on 140 clips ...
    other = _moved(best, 42, 0, seed=2)
    assert other.sum() == best.sum()
    d = compare(_one(best, 140), _one(other, 140), margin=0.05)
    assert d.verdict == "equivalent" and -0.05 < d.ci_low < 0 < d.ci_high < 0.05
    # ... not on 20 clips (the interval is too wide to say), nor at a 1-point margin: undecided, with what would settle it
    small = _base(20, 12)
    small_other = _moved(small, 6, 0, seed=3)
    few = compare(_one(small, 20), _one(small_other, 20), margin=0.05)
    assert few.verdict == "undecided" and few.ci_high > 0.05
    tight = compare(_one(best, 140), _one(other, 140), margin=0.01)
    assert tight.verdict == "undecided"
    m = re.search(r"about (\d+) validation clips would", tight.note)
    assert m and int(m.group(1)) > 140 and "more validation clips than the store has (140)" in tight.note
    assert "two fixed checkpoints" in tight.note  # one checkpoint each: more seeds would not help


def test_a_tiny_difference_with_two_seeds_is_undecided_with_a_seed_count():
    seed0, seed1 = _base(140, 84, seed=0), _base(140, 112, seed=1)  # the seeds differ: 0.850 and 0.800
    a = np.stack([seed0, seed1])
    b = np.stack([_flip(seed0, 3, False, np.random.default_rng(4)), _flip(seed1, 1, True, np.random.default_rng(5))])
    best, model = (ValHits(hits=h, rows=np.arange(560), clips=_clips(140), seeds=[0, 1]) for h in (a, b))
    d = compare(best, model, margin=0.01)
    assert d.verdict == "undecided" and d.diff == pytest.approx(2 / 1120)
    m = re.search(r"about (\d+) seeds \(now 2\) would settle it", d.note)
    assert m, d.note
    n = int(m.group(1))
    # the count is the first at which the expected half-width drops below the distance that decides
    res = paired_interval(a, b, _clips(140))
    need = max(0.01 - abs(res["diff"]), abs(res["diff"]))
    assert n > 2 and _halfwidth(res["se2_parts"], 2, 140, np.array([n]), np.array([140]), 0.95)[0] < need
    if n > 3:
        assert _halfwidth(res["se2_parts"], 2, 140, np.array([n - 1]), np.array([140]), 0.95)[0] >= need


def test_rows_that_share_no_seed_or_frame_or_predictions_are_undecided_saying_why():
    hits = np.ones((2, 8), bool)
    clips = _clips(2)
    a = ValHits(hits=hits, rows=np.arange(8), clips=clips, seeds=[0, 1])
    assert "shares no seed index" in compare(a, ValHits(hits=hits, rows=np.arange(8), clips=clips, seeds=[5, 6]), 0.01).note
    assert "shares no validation frame" in compare(a, ValHits(hits=hits, rows=np.arange(8, 16), clips=clips,
                                                                seeds=[0, 1]), 0.01).note
    assert "exported checkpoint" in compare(a, ValHits(hits=hits[:1], rows=np.arange(8), clips=clips), 0.01).note
    assert compare(a, ValHits(missing="no predictions.npz"), 0.01).note == "no predictions.npz"
    assert "the best has no per-frame" in compare(ValHits(missing="x"), a, 0.01).note
    # seeds paired by index: only the shared ones count, and the note says so
    part = compare(a, ValHits(hits=hits[:1], rows=np.arange(8), clips=clips, seeds=[1]), 0.01)
    assert "1 shared seed of 2" in part.note


# ------------------------------------------------------------------------------------------ on the leaderboard

N_CLIPS = 140


def _logits(hits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Logits whose argmax is the label where ``hits``, another class elsewhere."""
    pred = np.where(hits, labels, (labels + 1) % 4)
    return (np.eye(4, dtype=np.float32)[pred] * 3.0) + 0.1


def _variant_hits() -> dict[str, np.ndarray]:
    best = _base(N_CLIPS, 84)  # shuffle_kd/fp32: 0.850, the best
    rng = np.random.default_rng(7)
    return {"shuffle_kd/fp32": best,
            "shuffle_kd/int8_openvino": _flip(best, 2, False, rng),  # 0.36 points below: equivalent at 1 point
            "mnv3_kd/fp32": _flip(best, 45, False, rng),  # 8 points below: worse
            "mnv3_kd/int8_ort": _flip(best, 56, False, rng),  # 10 points below: worse
            "mnv3_kd/int8_openvino": _moved(best, 40, 1, seed=8),  # 0.18 below, other errors: undecided at 1 point
            "mnv3_scratch/fp32": _flip(best, 67, False, rng),
            "mnv3_scratch/pruned30": _flip(best, 67, False, rng)}


def _with_predictions(inputs: dict[str, Path]) -> dict[str, np.ndarray]:
    """Save per-frame predictions for every exported variant as `kdbench export` does; the manifest's validation
    accuracies made to match them."""
    export, hits = inputs["export"], _variant_hits()
    labels = np.arange(N_CLIPS * PER_CLIP) // PER_CLIP % 4  # one view per clip
    doc = json.loads((export / "manifest.json").read_text())
    for v in doc["variants"]:
        if v["id"] not in hits:
            continue
        h = hits[v["id"]]
        rel = f"{v['candidate']}/predictions-{v['variant']}.npz"
        (export / rel).parent.mkdir(parents=True, exist_ok=True)
        rows = np.arange(len(h))
        np.savez(export / rel, val_logits=_logits(h, labels), val_rows=rows, val_labels=labels, val_clips=_clips(N_CLIPS),
                 test_logits=_logits(h, labels), test_rows=rows, test_labels=labels, test_clips=_clips(N_CLIPS))
        v["predictions"] = rel
        v["metrics"]["val"].update(accuracy=float(h.mean()), accuracy_ci=[float(h.mean()) - 0.03, float(h.mean()) + 0.03])
    write_json(export / "manifest.json", doc)
    return hits


@pytest.fixture()
def inputs(tmp_path: Path) -> dict[str, Path]:
    study = write_study(tmp_path)
    export = write_export(tmp_path, study)
    out = {"root": tmp_path, "study": study, "export": export, "profiles": write_profiles(tmp_path)}
    _with_predictions(out)
    return out


def _row(board, vid: str, runtime: str | None = None):
    return next(r for r in board.rows if r.variant_id == vid and (runtime is None or r.runtime == runtime))


def test_recommendation_picks_the_faster_equivalent_model_over_a_slower_best(inputs):
    from kdbench.leaderboard.collect import collect

    lb = collect(inputs["study"], inputs["export"], inputs["profiles"])
    x86 = next(b for b in lb.boards if b.name == "x86")
    verdicts = {(r.variant_id, r.runtime): r.decision for r in x86.rows if r.front is not None}
    assert verdicts == {
        ("shuffle_kd/fp32", "openvino"): "best", ("shuffle_kd/fp32", "onnxruntime"): "equivalent",
        ("shuffle_kd/int8_openvino", "openvino"): "equivalent", ("mnv3_kd/fp32", "onnxruntime"): "worse",
        ("mnv3_kd/fp32", "openvino"): "worse", ("mnv3_kd/int8_ort", "onnxruntime"): "worse",
        ("mnv3_kd/int8_openvino", "openvino"): "undecided", ("mnv3_scratch/fp32", "onnxruntime"): "worse",
        ("mnv3_scratch/pruned30", "onnxruntime"): "worse"}
    # the best (0.850, 0.90 ms) loses to its int8 copy: 0.36 points less, the whole interval inside +-1 point, 0.70 ms
    rec = x86.recommended
    assert (rec.variant_id, rec.runtime, rec.decision) == ("shuffle_kd/int8_openvino", "openvino", "equivalent")
    assert rec.decision_ci_high < 0.01 and rec.latency_p50_ms < _row(x86, "shuffle_kd/fp32", "openvino").latency_p50_ms
    assert "the fastest (then smallest) model that is best or equivalent to the best and meets every constraint" in \
        x86.recommendation
    assert "equivalent to the best on validation (margin δ = 0.010 (1 point)" in x86.recommendation
    assert "selection-biased: chosen on these frames" in x86.recommendation
    assert "1 best, 2 equivalent, 5 worse, 1 undecided" in x86.recommendation
    und = _row(x86, "mnv3_kd/int8_openvino")
    assert re.search(r"about \d+ validation clips would.*more validation clips than the store has \(140\)", und.decision_note)
    # the ECE interval comes from the saved test predictions
    assert rec.test_ece_low is not None and rec.test_ece_low <= rec.test_ece_high
    # the CSV keeps one column per field
    import csv
    import io

    from kdbench.leaderboard.render import render_csv

    rows = list(csv.DictReader(io.StringIO(render_csv(lb))))
    one = next(r for r in rows if r["target"] == "x86" and r["variant_id"] == "mnv3_kd/fp32")
    assert one["decision"] == "worse" and float(one["decision_ci_low"]) > 0 and "above 0" in one["decision_note"]
    assert "tied" not in rows[0]


def test_the_margin_changes_a_verdict_and_the_recommendation(inputs):
    from kdbench.cli import app
    from kdbench.leaderboard.collect import collect

    def x86(**kw):
        return next(b for b in collect(inputs["study"], inputs["export"], inputs["profiles"], **kw).boards
                    if b.name == "x86")

    assert _row(x86(), "mnv3_kd/int8_openvino").decision == "undecided"
    wide = x86(margin=0.05)  # 5 points: the interval [-0.03, +0.03] of the fastest model now lies inside
    fast = _row(wide, "mnv3_kd/int8_openvino")
    assert fast.decision == "equivalent" and wide.margin == 0.05
    assert wide.recommended is fast and "δ = 0.050 (5 points)" in wide.recommendation
    # the study's [study] margin is the default of --margin
    info = json.loads((inputs["study"] / "study.json").read_text())
    info["config"]["margin"] = 0.05
    write_json(inputs["study"] / "study.json", info)
    assert _row(x86(), "mnv3_kd/int8_openvino").decision == "equivalent"
    assert _row(x86(margin=0.01), "mnv3_kd/int8_openvino").decision == "undecided"
    # the CLI option, written into the regenerate line; a bad value names the option
    out = inputs["root"] / "board"
    args = ["leaderboard", "--study", str(inputs["study"]), "--export", str(inputs["export"]), "--profiles",
            str(inputs["profiles"]), "--targets", "x86", "--out", str(out), "--no-plots"]
    result = CliRunner().invoke(app, args + ["--margin", "0.01"])
    assert result.exit_code == 0, result.output
    text = (out / "README.md").read_text()
    assert "--margin 0.01" in text and "δ = 0.010 (1 point), set by `--margin`" in text
    doc = json.loads((out / "leaderboard.json").read_text())
    assert doc["margin"] == {"value": 0.01, "source": "--margin"} and doc["targets"][0]["decisions"]["undecided"] == 1
    bad = CliRunner().invoke(app, args + ["--margin", "2"])
    assert isinstance(bad.exception, ConfigError) and "--margin = 2.0" in str(bad.exception)
    # the study's one line on why its margin is printed beside it, where the margin is the study's
    info["config"]["margin_basis"] = "82% power at 2 x margin on the known answer"
    write_json(inputs["study"] / "study.json", info)
    for extra, shown in (([], True), (["--margin", "0.01"], False)):
        assert CliRunner().invoke(app, args + extra).exit_code == 0
        text = (out / "README.md").read_text()
        assert ("the study's `[study] margin` (82% power at 2 x margin on the known answer)" in text) is shown
        assert (json.loads((out / "leaderboard.json").read_text())["margin"].get("basis") is not None) is shown
    del info["config"]["margin_basis"]
    write_json(inputs["study"] / "study.json", info)


def test_a_target_can_have_its_own_margin(inputs):
    """--margin 0.01 --margin x86=0.05: x86 decides at 5 points (its fastest model becomes equivalent), every
    other target at 1 point; the page says so on the x86 section; a target not on the board is one error."""
    from kdbench.cli import app

    out = inputs["root"] / "per_target"
    args = ["leaderboard", "--study", str(inputs["study"]), "--export", str(inputs["export"]), "--profiles",
            str(inputs["profiles"]), "--out", str(out), "--no-plots", "--margin", "0.01"]
    result = CliRunner().invoke(app, args + ["--margin", "x86=0.05"])
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "leaderboard.json").read_text())
    margins = {t["target"]: t["margin"] for t in doc["targets"]}
    assert margins["x86"] == 0.05 and len(margins) > 1 and all(m == 0.01 for t, m in margins.items() if t != "x86")
    fast = next(r for r in doc["rows"] if r["target"] == "x86" and r["variant_id"] == "mnv3_kd/int8_openvino")
    assert fast["decision"] == "equivalent"
    text = (out / "README.md").read_text()
    assert "its own margin δ = 0.050 (5 points) (`--margin x86=0.05`" in text
    assert "--margin 0.01 --margin x86=0.05" in text  # the regenerate line
    bad = CliRunner().invoke(app, args + ["--margin", "rpi5=0.02"])
    assert isinstance(bad.exception, ConfigError) and "no target 'rpi5' on this leaderboard" in str(bad.exception)


def test_study_margin_is_validated_and_recorded():
    from kdbench.search.space import parse_space

    raw = {"study": {"students": ["mobilenet_v3_small"], "margin": 0.02}, "space": {"method": ["scratch"]}}
    space = parse_space(raw, "s.toml", check_students=False)
    assert space.margin == 0.02 and space.to_dict()["margin"] == 0.02
    assert parse_space({**raw, "study": {"students": ["mobilenet_v3_small"]}}, "s.toml", check_students=False).margin == 0.01
    basis = {"students": ["mobilenet_v3_small"], "margin": 0.02, "margin_basis": "the smallest with 80% power"}
    assert parse_space({**raw, "study": basis}, "s.toml", check_students=False).to_dict()["margin_basis"] == basis["margin_basis"]
    with pytest.raises(ConfigError, match=r"s\.toml: study\.margin_basis = .*; expected one line of text"):
        parse_space({**raw, "study": {**basis, "margin_basis": "two\nlines"}}, "s.toml", check_students=False)
    for bad in (0, 1, "1%", True):
        with pytest.raises(ConfigError, match=r"s\.toml: study\.margin = .*; expected an accuracy difference in \(0, 1\)"):
            parse_space({**raw, "study": {"students": ["mobilenet_v3_small"], "margin": bad}}, "s.toml",
                        check_students=False)


def test_seed_mean_rows_are_paired_on_the_same_seeds_from_each_seeds_predictions(tmp_path, tiny_store):
    """Without an export the rows are seed means: [seeds, frames] hits from each seed's predictions.npz."""
    from kdbench.leaderboard.collect import collect
    from kdbench.metrics import clip_ids

    study = write_study(tmp_path)
    info = json.loads((study / "study.json").read_text())
    write_json(study / "study.json", {**info, "store": str(tiny_store.path)})
    rows = tiny_store.indices("val")
    labels = tiny_store.labels[rows]
    rng = np.random.default_rng(0)
    hits = {}
    for student, trial, acc in (("shufflenet_v2_x1_0", 1, 0.9), ("mobilenet_v3_small", 1, 0.5)):
        hits[student] = rng.random((3, len(rows))) < acc
        for seed in range(3):
            path = study / "trials" / student / str(trial) / f"seed_{seed}" / "predictions.npz"
            np.savez(path, val_logits=_logits(hits[student][seed], labels), val_rows=rows)
    board = collect(study).boards[0]
    best = next(r for r in board.rows if r.decision == "best")
    assert (best.student, best.trial) == ("shufflenet_v2_x1_0", 1)
    other = next(r for r in board.rows if (r.student, r.trial) == ("mobilenet_v3_small", 1))
    ref = paired_interval(hits["shufflenet_v2_x1_0"], hits["mobilenet_v3_small"], clip_ids(tiny_store, rows))
    assert (other.decision_ci_low, other.decision_ci_high) == pytest.approx((ref["ci_low"], ref["ci_high"]))
    assert "paired on 3 shared seeds" in other.decision_note
    rest = [r for r in board.rows if r.front is not None and r.trial != 1]
    assert rest and all(r.decision == "undecided" and "predictions.npz" in r.decision_note for r in rest)


# ------------------------------------------------------------------------------------------ export and ECE


def test_export_saves_per_frame_predictions_the_leaderboard_reads_back(tiny_store, tiny_run, tmp_path):
    from kdbench.export.candidates import resolve_candidates
    from kdbench.export.pipeline import ExportOptions, export_candidates
    from kdbench.export_manifest import VariantRecord
    from kdbench.leaderboard.collect import _load_variant_predictions

    manifest = export_candidates(resolve_candidates(run=tiny_run), tiny_store, tmp_path, ExportOptions(int8=()))
    (rec,) = [VariantRecord.from_dict(v) for v in manifest["variants"]]
    assert rec.status == "ok" and rec.predictions == f"{rec.candidate}/predictions-fp32.npz"
    with np.load(tmp_path / rec.predictions) as doc:
        assert sorted(doc.files) == sorted(f"{s}_{k}" for s in ("val", "test") for k in ("logits", "rows", "labels", "clips"))
        for split in ("val", "test"):
            assert np.array_equal(doc[f"{split}_rows"], tiny_store.indices(split))
            acc = (doc[f"{split}_logits"].argmax(1) == doc[f"{split}_labels"]).mean()
            assert acc == pytest.approx(rec.metrics[split]["accuracy"])
    hits, extra = _load_variant_predictions(tmp_path, rec)
    assert hits.missing is None and hits.hits.shape == (1, len(tiny_store.indices("val"))) and hits.seeds is None
    assert 0 <= extra["test_ece_low"] <= extra["test_ece_high"] and rec.metrics["test"]["ece"] < extra["test_ece_high"]
    assert not list(tmp_path.rglob("*.tmp"))  # written atomically
    # a record without predictions (an older export) is redone on the next run, so it gains them
    doc = json.loads((tmp_path / "manifest.json").read_text())
    doc["variants"][0]["predictions"] = None
    write_json(tmp_path / "manifest.json", doc)
    again = export_candidates(resolve_candidates(run=tiny_run), tiny_store, tmp_path, ExportOptions(int8=()))
    assert again["variants"][0]["predictions"] and not again["variants"][0]["resumed"]


def test_ece_noise_floor_and_interval():
    from kdbench.leaderboard.calibration import ece_interval, ece_noise_floor
    from kdbench.metrics import expected_calibration_error

    small, large = ece_noise_floor(64), ece_noise_floor(2000)
    assert ece_noise_floor(64) is small  # simulated once, cached
    assert 0 < large[0] < small[0] and small[0] < small[1]
    rng = np.random.default_rng(0)
    logits, labels = rng.normal(size=(400, 4)) * 2, rng.integers(0, 4, 400)
    low, high = ece_interval([logits], labels, _clips(100))
    assert low < expected_calibration_error(logits, labels) < high
