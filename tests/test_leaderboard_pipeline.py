"""The leaderboard on inputs built by the real stages: a tiny `kdbench search`, `kdbench export` (fp32) and
an estimated `kdbench profile` for the Raspberry Pi 4, all on a 32 px phantom store."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from search_fixtures import tiny_space_toml

pytestmark = pytest.mark.slow

SPACE = tiny_space_toml("lb", ["mobilenet_v3_small"], [0, 1],
                        study={"n_trials": 2, "n_startup_trials": 1, "sampler_seed": 0}, train={"patience": 5},
                        vanilla={"temperature": 4.0, "alpha": 0.5})


def test_leaderboard_from_real_search_export_and_profile(tmp_path):
    from kdbench.data.prepare import prepare_store
    from kdbench.data.store import FrameStore
    from kdbench.data.synth import DYNAMIC_DIR, LVH_DIR, TMED_DIR, synthesize
    from kdbench.export.candidates import from_study_dir
    from kdbench.export.pipeline import ExportOptions, export_candidates
    from kdbench.leaderboard.build import CSV, README, build_leaderboard
    from kdbench.pareto import dominates
    from kdbench.models import create_model
    from kdbench.models.checkpoint import save_checkpoint
    from kdbench.profile.estimate import estimate_records, find_calibration
    from kdbench.profile.hardware import load_profile
    from kdbench.profile.results import ResultsWriter, discover_models
    from kdbench.search.runner import SearchRequest, run_search

    synthesize(tmp_path / "raw", videos_per_view=3, seed=0, frames=4)
    prepare_store({"echonet_dynamic": tmp_path / "raw" / DYNAMIC_DIR, "echonet_lvh": tmp_path / "raw" / LVH_DIR,
                   "tmed2": tmp_path / "raw" / TMED_DIR}, tmp_path / "store", size=32, frames_per_video=2, workers=1)
    store = FrameStore.open(tmp_path / "store")
    teacher = save_checkpoint(create_model("mobilenet_v3_small", num_classes=4), tmp_path / "teacher.pt",
                              arch="mobilenet_v3_small", num_classes=4, input_size=32)
    space = tmp_path / "lb.toml"
    space.write_text(SPACE)
    study = run_search(SearchRequest(config=space, store=tmp_path / "store", teacher=teacher,
                                     run_dir=tmp_path / "runs", device="cpu"))["study_dir"]

    export = tmp_path / "export"
    manifest = export_candidates(from_study_dir(study, top=2), store, export, ExportOptions(int8=()))
    ok = [v for v in manifest["variants"] if v["status"] == "ok"]
    assert ok, manifest["variants"]
    prof = load_profile("rpi4")
    writer = ResultsWriter(tmp_path / "profiles", prof)
    writer.add(estimate_records(discover_models(export), prof, find_calibration("rpi4")))

    lb, written = build_leaderboard(study, tmp_path / "leaderboard", export, tmp_path / "profiles")
    (board,) = lb.boards
    assert board.name == "rpi4" and board.constraints == {"min_fps": 30.0, "max_memory_mb": 50.0}
    by_id = {v["id"]: v for v in ok}
    records = {(r["variant_id"], r["runtime"]): r for r in json.loads((tmp_path / "profiles" / "rpi4" / "results.json").read_text())
               if r["batch"] == 1 and r["status"] == "ok"}
    ranked = [r for r in board.rows if r.front is not None]
    assert len(ranked) == len(records) and {v for v, _ in records} == set(by_id)  # one row per (variant, runtime)
    for r in ranked:
        v, rec = by_id[r.variant_id], records[(r.variant_id, r.runtime)]
        # the variant's own figures: validation ranks, test reports; both with clip-bootstrap intervals
        assert r.val_accuracy == v["metrics"]["val"]["accuracy"] and r.test_accuracy == v["metrics"]["test"]["accuracy"]
        assert [r.test_accuracy_low, r.test_accuracy_high] == v["metrics"]["test"]["accuracy_ci"]
        assert r.test_clip_accuracy == v["metrics"]["test"]["clip_accuracy"] and r.test_ece == v["metrics"]["test"]["ece"]
        assert r.test_clips == v["metrics"]["test"]["n_clips"] < r.test_frames
        assert r.size_mb == v["size_mb"] and r.latency_p50_ms == rec["latency_ms"]["p50"]
        assert r.estimated is True and r.error_band_pct == rec["error_band"]["pct"]
        assert r.n_seeds == 2 and r.trial == v["trial"] is not None and r.seed == v["seed"] and r.seed_test_low is not None
        assert r.seed_interval == "seeds+clips"  # every seed saved its predictions: seeds and clips resampled
        point = (r.val_accuracy, r.latency_p50_ms, r.size_mb)
        others = [(o.val_accuracy, o.latency_p50_ms, o.size_mb) for o in ranked if o is not r]
        assert (r.front == 1) == (not any(dominates(o, point, ["max", "min", "min"]) for o in others))
        # export saved each variant's per-frame predictions: every row is paired with the best, none left unpaired
        assert r.decision in ("best", "equivalent", "worse", "undecided") and "per-frame" not in (r.decision_note or "")
        assert r.decision == "best" or r.decision_note.startswith(("best - this", "the same"))
    assert sum(r.decision == "best" for r in ranked) == 1
    rows = list(csv.DictReader((tmp_path / "leaderboard" / CSV).open()))
    assert {r["variant_id"] for r in rows} == set(by_id)
    assert all(r["estimated"] == "True" and r["pareto"] in ("True", "False") for r in rows)  # flags: real booleans
    assert all((r["temperature"], r["alpha"]) == (("4", "0.5") if r["method"] == "vanilla" else ("", "")) for r in rows)
    assert all(float(r["infer_samples_per_sec"]) * float(r["infer_step_time"]) / 1000 == pytest.approx(1, rel=1e-5)
               for r in rows)
    readme = (tmp_path / "leaderboard" / README).read_text()
    assert "## Target `rpi4`" in readme
    n_test, n_clips = len(store.indices("test")), len({(s, v) for s, v in zip(store.sources[store.indices("test")],
                                                                              store.videos[store.indices("test")])})
    assert f"{n_test} test frames from {n_clips} clips" in readme
    assert all(Path(p).stat().st_size > 0 for p in written)
