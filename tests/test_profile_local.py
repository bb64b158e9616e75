"""`kdbench profile --target ... --models ...` measured locally, end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.errors import ConfigError, DataError
from kdbench.profile.local import use_fork_server
from kdbench.profile.results import discover_models

from profile_fixtures import FAST_CLI, tiny_cnn, write_profile

REQUIRED = ("variant_id", "target", "runtime", "runtime_version", "threads", "precision", "batch", "input_size",
            "measured", "method", "host", "latency_ms", "fps", "throughput", "model_memory_mb", "process_peak_rss_mb",
            "file_size_mb", "conditions", "runs", "p50_runs_ms", "p50_spread_pct", "stable", "inference_precision",
            "input_source", "preprocess_ms", "frame_fps", "process")


def export_mobilenet(path: Path, size: int = 64) -> None:
    """torchvision mobilenet_v3_small on a 1-channel input, dynamic batch, one ONNX file."""
    import torch

    from kdbench.compat import torchvision

    class Grey(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = torchvision.models.mobilenet_v3_small(num_classes=4)

        def forward(self, x):
            return self.net(x.repeat(1, 3, 1, 1))

    torch.onnx.export(Grey().eval(), (torch.rand(1, 1, size, size),), str(path), dynamo=True, external_data=False,
                      dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=64)}}, verbose=False)


def test_profile_local_measures_every_model_and_runtime(tmp_path: Path):
    models = tmp_path / "models"
    models.mkdir()
    export_mobilenet(models / "mnv3s.onnx", 64)
    tiny_cnn(models / "sub" / "tiny.onnx", size=32)
    prof = write_profile(tmp_path / "box.toml", name="box", runtimes='["onnxruntime", "openvino"]')
    result = CliRunner().invoke(app, ["profile", "--target", str(prof), "--export", str(models),
                                      "--out", str(tmp_path / "out"), *FAST_CLI])
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "out" / "box" / "results.json").read_text())
    assert len(records) == 2 * 2 * 2  # models x runtimes x batches
    for r in records:
        assert all(k in r for k in REQUIRED), set(REQUIRED) - set(r)
        assert r["status"] == "ok" and r["measured"] is True and r["method"] == "local" and r["threads"] == 1
        assert r["latency_ms"]["p50"] <= r["latency_ms"]["p90"] <= r["latency_ms"]["p99"]
        assert r["process"] == ("fork-server" if use_fork_server() else "fresh")  # each run its own process either way
    by = {(r["variant_id"], r["runtime"], r["batch"]): r for r in records}
    mn = by[("mnv3s", "onnxruntime", 1)]
    assert mn["input_size"] == 64 and mn["fps"] == pytest.approx(1000 / mn["latency_ms"]["p50"], rel=1e-4)
    assert mn["constraints"]["limits"]["min_fps"] == 30.0 and mn["constraints"]["status"] in ("meets", "fails", "uncertain")
    assert by[("mnv3s", "openvino", 1)]["inference_precision"] == "fp32"  # set explicitly, read back
    assert by[("sub/tiny", "openvino", 2)]["throughput"] > 0 and by[("sub/tiny", "openvino", 2)]["fps"] is None
    assert by[("mnv3s", "onnxruntime", 1)]["file_size_mb"] > by[("sub/tiny", "onnxruntime", 1)]["file_size_mb"]
    manifest = json.loads((tmp_path / "out" / "box" / "manifest.json").read_text())
    assert manifest["stage"] == "profile" and manifest["target"]["name"] == "box"
    assert "mnv3s" in result.output and str(tmp_path / "out" / "box" / "results.json") in result.output


@pytest.mark.parametrize("value", ["8", "1,x", "0,1", ""])
def test_batch_sizes_without_1_or_not_numbers_are_one_line_before_any_measurement(tmp_path: Path, value: str):
    models = tmp_path / "models"
    tiny_cnn(models / "tiny.onnx", size=32)
    prof = write_profile(tmp_path / "box.toml", name="box")
    result = CliRunner().invoke(app, ["profile", "--target", str(prof), "--export", str(models),
                                      "--out", str(tmp_path / "out"), "--batch-sizes", value, *FAST_CLI])
    if value == "":  # empty: the profile's own batch sizes
        assert result.exit_code == 0, result.output
        return
    assert isinstance(result.exception, ConfigError) and f"--batch-sizes {value!r}" in str(result.exception)
    assert not (tmp_path / "out" / "box" / "results.json").exists()
    if value == "8":  # through the console script: one line, exit 2
        import subprocess
        import sys

        proc = subprocess.run([sys.executable, "-c", "from kdbench.cli import main; main()", "profile", "--target",
                               str(prof), "--export", str(models), "--out", str(tmp_path / "out"), "--batch-sizes", "8"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "--batch-sizes '8'" in proc.stderr + proc.stdout
        assert len((proc.stderr + proc.stdout).strip().splitlines()) == 1


def test_batch_sizes_replace_the_profiles(tmp_path: Path):
    """``--batch-sizes 1`` (the demo's: the leaderboard reads batch 1 only) measures batch 1 alone."""
    models = tmp_path / "models"
    tiny_cnn(models / "tiny.onnx", size=32)
    prof = write_profile(tmp_path / "box.toml", name="box", batches="[1, 2, 4]")
    result = CliRunner().invoke(app, ["profile", "--target", str(prof), "--export", str(models),
                                      "--out", str(tmp_path / "out"), "--batch-sizes", "1", *FAST_CLI])
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "out" / "box" / "results.json").read_text())
    assert [r["batch"] for r in records] == [1] and records[0]["status"] == "ok"


def test_each_model_is_measured_in_fresh_processes_on_real_frames(tmp_path: Path):
    import numpy as np

    models = tmp_path / "m"
    tiny_cnn(models / "a.onnx", size=32)
    frames = np.random.default_rng(0).integers(1, 255, (6, 64, 64), dtype=np.uint8)
    np.save(tmp_path / "frames.npy", frames)
    prof = write_profile(tmp_path / "box.toml", name="box", batches="[1]")
    args = FAST_CLI[:-1] + ["3", "--frames", str(tmp_path / "frames.npy"), "--raw-frame", "120x160x3"]
    result = CliRunner().invoke(app, ["profile", "--target", str(prof), "--export", str(models),
                                      "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 0, result.output
    (rec,) = json.loads((tmp_path / "out" / "box" / "results.json").read_text())
    assert rec["runs"] == 3 and len(rec["p50_runs_ms"]) == 3 and len(rec["conditions"]) == 3
    assert rec["latency_ms"]["p50"] == pytest.approx(sorted(rec["p50_runs_ms"])[1], rel=1e-4)  # median of the p50s
    spread = 100 * (max(rec["p50_runs_ms"]) - min(rec["p50_runs_ms"])) / rec["latency_ms"]["p50"]
    assert rec["p50_spread_pct"] == pytest.approx(spread, abs=0.01)
    assert rec["fps_low"] <= rec["fps"] <= rec["fps_high"]
    assert "frames_sample.npy (6 x 64x64)" in rec["input_source"]
    assert np.array_equal(np.load(tmp_path / "out" / "box" / "frames_sample.npy"), frames)
    assert rec["raw_frame_shape"] == [120, 160, 3] and rec["frame_fps"] < rec["fps"]
    assert all(c["before"]["load_avg"] is not None for c in rec["conditions"])


def test_export_manifest_drives_discovery_and_a_broken_model_fails_alone(tmp_path: Path):
    exp = tmp_path / "export"
    tiny_cnn(exp / "cand0" / "fp32.onnx", size=32)
    (exp / "cand0" / "int8_ort.onnx").write_bytes(b"garbage")
    (exp / "manifest.json").write_text(json.dumps({"stage": "export", "variants": [
        {"id": "cand0-fp32", "candidate": "cand0", "variant": "fp32", "runtime": "onnxruntime", "file": "cand0/fp32.onnx", "input_size": 32,
         "status": "ok"},
        {"id": "cand0-int8", "candidate": "cand0", "variant": "int8_ort", "runtime": "onnxruntime", "file": "cand0/int8_ort.onnx",
         "input_size": 32, "status": "ok"},
        {"id": "cand0-pruned", "candidate": "cand0", "variant": "pruned30", "file": "cand0/none.onnx", "status": "failed", "reason": "x"},
    ]}))
    prof = write_profile(tmp_path / "box.toml", batches="[1]")
    result = CliRunner().invoke(app, ["profile", "--target", str(prof), "--export", str(exp),
                                      "--out", str(tmp_path / "out"), *FAST_CLI])
    assert result.exit_code == 0, result.output
    records = {r["variant_id"]: r for r in json.loads((tmp_path / "out" / "tiny" / "results.json").read_text())}
    assert set(records) == {"cand0-fp32", "cand0-int8"}
    assert records["cand0-fp32"]["status"] == "ok"
    assert records["cand0-int8"]["status"] == "failed" and "int8_ort.onnx" in records["cand0-int8"]["error"]
    assert records["cand0-int8"]["precision"] == "int8"


def test_nothing_measurable_exits_with_an_error(tmp_path: Path):
    models = tmp_path / "m"
    tiny_cnn(models / "a.onnx")
    prof = write_profile(tmp_path / "cuda.toml", name="cuda", runtimes='["onnxruntime-cuda"]', batches="[1]")
    result = CliRunner().invoke(app, ["profile", "--target", str(prof), "--export", str(models),
                                      "--out", str(tmp_path / "out"), *FAST_CLI])
    assert result.exit_code != 0
    assert "CUDAExecutionProvider" in str(result.exception) or "CUDAExecutionProvider" in result.output
    rec = json.loads((tmp_path / "out" / "cuda" / "results.json").read_text())[0]
    assert rec["status"] == "failed" and rec["runtime"] == "onnxruntime-cuda"


def test_discover_models_errors(tmp_path: Path):
    with pytest.raises(DataError, match="not found"):
        discover_models(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no model files"):
        discover_models(tmp_path / "empty")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text(json.dumps({"variants": [{"id": "a", "candidate": "a", "variant": "fp32",
                                                                      "status": "ok", "file": "missing.onnx"}]}))
    with pytest.raises(DataError, match=r"variants\[0\]\.file"):
        discover_models(bad)


def _run(p50: float, stable: bool = True) -> dict:
    lat = {"p50": p50, "p90": p50 * 1.1, "p99": p50 * 1.2, "mean": p50 * 1.05}
    return {"ok": True, "batches": [{"batch": 1, "ok": True, "latency_ms": lat, "stable": stable, "n": 100,
                                     "throughput": 1000 / p50}], "model_memory_mb": 5.0, "process_peak_rss_mb": 80.0,
            "runtime_baseline_rss_mb": 75.0, "conditions": {"before": {}, "after": {}}}


@pytest.mark.parametrize("p50s, each_stable, stable", [
    ((1.00, 1.01, 1.02), True, True),
    ((1.00, 1.02, 1.30), True, False),   # one process 30% slower: the spread flags it
    ((1.00, 1.01, 1.02), False, False),  # a run that missed its confidence target
])
def test_runs_merge_into_a_median_with_their_spread(tmp_path: Path, p50s: tuple, each_stable: bool, stable: bool):
    from kdbench.profile.hardware import load_profile
    from kdbench.profile.results import ModelEntry, records_from_runs

    tiny_cnn(tmp_path / "a.onnx", size=16)
    entry = ModelEntry("a", tmp_path / "a.onnx")
    (rec,) = records_from_runs([_run(v, each_stable) for v in p50s], entry, load_profile("rpi4"), "onnxruntime",
                               "fp32", "local")
    assert rec["latency_ms"]["p50"] == pytest.approx(1.01 if p50s[1] == 1.01 else 1.02)
    assert rec["stable"] is stable and rec["runs"] == 3
    assert rec["fps_low"] == pytest.approx(1000 / max(p50s)) and rec["fps_high"] == pytest.approx(1000 / min(p50s))


def test_profile_record_round_trips_and_rejects_unknown_keys():
    from kdbench.profile.results import ProfileRecord

    rec = ProfileRecord(variant_id="v", file="v.onnx", target="rpi4", runtime="openvino", method="estimated",
                        fps=31.0, fps_low=20.0, fps_high=45.0, model_memory_mb=12.5, notes=["n"])
    d = rec.to_dict()
    assert ProfileRecord.from_dict(d) == rec and d["memory_definition"].startswith("model_memory_mb:")
    with pytest.raises(DataError, match="rss_increment_mb"):
        ProfileRecord.from_dict({**d, "rss_increment_mb": 3.0})


def test_preprocessing_is_timed_once_per_input_size_in_a_command() -> None:
    from kdbench.profile.local import AgentInputs, SharedPreprocess

    shared = SharedPreprocess(AgentInputs(frames="f.npy", raw_frame="768x1024x3"))
    assert shared.inputs_for(64).raw_frame == "768x1024x3"  # nothing timed yet at 64 px: this run times it
    timed = shared.fill({"input_size": 64, "preprocess": {"p50_ms": 1.5, "raw_shape": [768, 1024, 3]}})
    assert timed["preprocess"] == {"p50_ms": 1.5, "raw_shape": [768, 1024, 3]}
    later = shared.inputs_for(64)
    assert later.raw_frame is None and later.frames == "f.npy"  # the model is still fed the same frames
    assert shared.fill({"input_size": 64})["preprocess"] == {"p50_ms": 1.5, "raw_shape": [768, 1024, 3], "shared": True}
    assert shared.inputs_for(112).raw_frame == "768x1024x3"  # another size is timed on its own
    assert SharedPreprocess(None).inputs_for(64) is None
