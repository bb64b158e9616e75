"""The measurement agent: statistics, the stopping rule, memory and its JSON line, run as a script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kdbench.profile import agent
from kdbench.profile.local import AGENT_PATH

from profile_fixtures import tiny_cnn

FAST = ["--warmup-runs", "3", "--warmup-s", "0.05", "--min-queries", "30", "--min-time-s", "0.1",
        "--max-time-s", "3", "--p90-rel-ci", "0.5"]


def run_agent(*args: str) -> tuple[dict, int]:
    proc = subprocess.run([sys.executable, str(AGENT_PATH), *args], capture_output=True, text=True, timeout=120)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, f"agent must print one JSON line, got {proc.stdout!r} {proc.stderr[-500:]}"
    return json.loads(lines[0]), proc.returncode


def test_percentile_matches_numpy():
    rng = np.random.default_rng(1)
    vals = sorted(rng.lognormal(0, 0.5, 501).tolist())
    for q in (50, 90, 99):
        assert agent.percentile(vals, q) == pytest.approx(np.percentile(vals, q))


def test_p90_ci_shrinks_with_more_queries():
    rng = np.random.default_rng(2)
    small = sorted(rng.lognormal(0, 0.3, 100).tolist())
    large = sorted(rng.lognormal(0, 0.3, 10000).tolist())
    assert agent.p90_ci_rel(large) < agent.p90_ci_rel(small) / 4
    assert agent.p90_ci_rel([1.0] * 5) == float("inf")


def test_time_queries_stops_by_the_rule():
    calls = []
    out = agent.time_queries(lambda: calls.append(1), min_queries=50, min_time_s=0.05, max_time_s=5.0,
                             rel_ci=0.5, floor_queries=5)
    assert out["n"] >= 50 and out["n"] == len(calls) and out["stable"]
    assert out["latency_ms"]["p50"] <= out["latency_ms"]["p90"] <= out["latency_ms"]["p99"]


def test_time_queries_gives_up_at_max_time_and_says_unstable():
    import time

    out = agent.time_queries(lambda: time.sleep(0.01), min_queries=10_000, min_time_s=0.0, max_time_s=0.2,
                             rel_ci=0.0001, floor_queries=3)
    assert 3 <= out["n"] < 10_000 and out["stable"] is False


def test_agent_measures_onnxruntime_model(tmp_path: Path):
    model = tmp_path / "tiny.onnx"
    tiny_cnn(model, size=32)
    res, code = run_agent("--model", str(model), "--runtime", "onnxruntime", "--threads", "1",
                          "--batch", "1", "--batch", "4", *FAST)
    assert code == 0 and res["ok"], res
    assert res["runtime_version"] and res["input_size"] == 32 and res["file_size_mb"] == pytest.approx(
        model.stat().st_size / 1e6)
    b1, b4 = res["batches"]
    assert b1["batch"] == 1 and b1["input_shape"] == [1, 1, 32, 32] and b1["n"] >= 30
    assert b4["input_shape"] == [4, 1, 32, 32] and b4["throughput"] > 0
    assert res["runtime_baseline_rss_mb"] > 0 and res["process_peak_rss_mb"] >= res["runtime_baseline_rss_mb"]
    assert res["host"]["hostname"] and res["rule"]["min_queries"] == 30
    assert res["process"]["mode"] == "fresh" and res["process"]["pid"] > 0 and res["agent_version"] == agent.AGENT_VERSION
    cond = res["conditions"]["before"]
    assert len(cond["load_avg"]) == 3 and cond["cpu_mhz"] and "throttled" in cond and "temperature_c" in cond


def test_agent_measures_openvino_on_dynamic_size_model(tmp_path: Path):
    model = tmp_path / "dyn.onnx"
    tiny_cnn(model, size=None)
    res, code = run_agent("--model", str(model), "--runtime", "openvino", "--threads", "1", "--input-size", "24", *FAST)
    assert code == 0 and res["ok"], res
    assert res["batches"][0]["input_shape"] == [1, 1, 24, 24] and res["runtime"] == "openvino"


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_model_memory_is_the_model_not_the_runtime(tmp_path: Path, runtime: str):
    """A 1.8 KB model adds almost nothing over the runtime running a one-op model; 40 MB of weights do."""
    tiny, big = tmp_path / "tiny.onnx", tmp_path / "big.onnx"
    tiny_cnn(tiny, size=16)
    tiny_cnn(big, size=16, big_weight_mb=40)
    small, _ = run_agent("--model", str(tiny), "--runtime", runtime, "--threads", "1", *FAST)
    large, _ = run_agent("--model", str(big), "--runtime", runtime, "--threads", "1", *FAST)
    assert small["peak_reset"] is True and large["peak_reset"] is True
    # before: 20 MB (ORT) and 38 MB (OpenVINO) for this model; what is left is the model's own session
    assert small["model_memory_mb"] < {"onnxruntime": 8, "openvino": 15}[runtime], small["model_memory_mb"]
    assert large["model_memory_mb"] - small["model_memory_mb"] > 35, large["model_memory_mb"]
    assert small["process_peak_rss_mb"] > small["runtime_baseline_rss_mb"] > small["model_memory_mb"]


def test_openvino_precision_is_set_and_read_back(tmp_path: Path):
    model = tmp_path / "t.onnx"
    tiny_cnn(model, size=32)
    res, code = run_agent("--model", str(model), "--runtime", "openvino", "--threads", "1", *FAST)
    assert code == 0 and res["inference_precision"] == "fp32", res.get("inference_precision")
    import openvino as ov

    caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    res, code = run_agent("--model", str(model), "--runtime", "openvino-bf16", "--threads", "1", *FAST)
    assert code == 0 and res["ok"], res
    # what ran, read from the compiled model: bf16 where the CPU has it, else OpenVINO's fallback
    assert res["inference_precision"] == ("bf16" if "BF16" in caps else res["inference_precision"])
    assert res["inference_precision"] in ("bf16", "fp32")


def test_inputs_are_frames_cast_to_the_model_type_never_zeros():
    frames = np.stack([np.full((8, 8), v, np.uint8) for v in (0, 100, 200)])
    frames[0, 2:4, 2:4] = 255
    x = agent.make_input((3, 1, 4, 4), "float32", frames)
    assert x.shape == (3, 1, 4, 4) and x.dtype == np.float32
    assert x[1].max() == pytest.approx(100 / 255) and x[0].max() == pytest.approx(1.0)
    q8 = agent.make_input((2, 1, 4, 4), "int8", frames)
    assert q8.dtype == np.int8 and set(np.unique(q8[1])) == {100 - 128}
    u8 = agent.make_input((2, 1, 4, 4), "uint8", frames)
    assert set(np.unique(u8[1])) == {100}
    ramp = agent.make_input((1, 1, 16, 16), "int8", None)
    assert np.count_nonzero(ramp) > 200 and len(np.unique(ramp)) > 100  # not zeros, not constant


def test_agent_feeds_the_frame_sample_and_times_the_frame_path(tmp_path: Path):
    model = tmp_path / "t.onnx"
    tiny_cnn(model, size=32)
    np.save(tmp_path / "frames.npy", np.random.default_rng(0).integers(0, 255, (5, 112, 112), dtype=np.uint8))
    res, code = run_agent("--model", str(model), "--runtime", "onnxruntime", "--threads", "1", "--frames",
                          str(tmp_path / "frames.npy"), "--raw-frame", "240x320x3", *FAST)
    assert code == 0 and res["ok"], res
    assert res["input_source"].startswith("frames frames.npy (5 x 112x112)")
    pre = res["preprocess"]
    assert pre["raw_shape"] == [240, 320, 3] and pre["size"] == 32 and pre["p50_ms"] > 0
    np.save(tmp_path / "bad.npy", np.zeros((3, 4), np.uint8))
    res, code = run_agent("--model", str(model), "--runtime", "onnxruntime", "--frames", str(tmp_path / "bad.npy"))
    assert code == 3 and res["kind"] == "bad_frames" and "[N, S, S]" in res["error"]


def test_area_resize_matrix_averages_what_each_pixel_covers():
    m = agent.area_matrix(6, 4)
    assert m.shape == (4, 6) and np.allclose(m.sum(axis=1), 1.0)
    assert m[0, 0] == pytest.approx(2 / 3) and m[0, 1] == pytest.approx(1 / 3)
    x = np.arange(6, dtype=np.float32)
    # out i covers input [1.5 i, 1.5 i + 1.5): e.g. out 1 = (0.5 * x1 + 1 * x2) / 1.5
    assert np.allclose(m @ x, [0.5 / 1.5, 2.5 / 1.5, 5.0 / 1.5, 7.0 / 1.5])


def test_missing_runtime_is_a_clear_error(tmp_path: Path):
    model = tmp_path / "tiny.onnx"
    tiny_cnn(model)
    res, code = run_agent("--model", str(model), "--runtime", "onnxruntime-cuda", *FAST)
    assert code == 3 and not res["ok"] and res["kind"] == "missing_runtime"
    assert "CUDAExecutionProvider" in res["error"]


def test_fixed_batch_model_reports_the_batch_it_cannot_run(tmp_path: Path):
    model = tmp_path / "fixed.onnx"
    tiny_cnn(model, batch=1)
    res, code = run_agent("--model", str(model), "--runtime", "onnxruntime", "--batch", "1", "--batch", "2", *FAST)
    assert code == 0 and res["batches"][0]["ok"]
    assert not res["batches"][1]["ok"] and "fixed batch of 1" in res["batches"][1]["error"]


def test_bad_model_file(tmp_path: Path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    res, code = run_agent("--model", str(bad), "--runtime", "onnxruntime")
    assert code == 3 and res["kind"] == "bad_model" and "bad.onnx" in res["error"]


def test_check_mode_reports_versions():
    import onnxruntime

    res, code = run_agent("--check", "--runtime", "onnxruntime")
    assert code == 0 and res["runtime_version"] == onnxruntime.__version__ and res["numpy_version"]


def test_agent_imports_nothing_from_kdbench():
    text = AGENT_PATH.read_text()
    assert "import kdbench" not in text and "from kdbench" not in text.replace(
        "from kdbench.models.checkpoint import load_checkpoint", "")


def test_agent_runs_a_pytorch_exported_program(tmp_path: Path):
    import torch

    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 4)).eval()
    batch = torch.export.Dim("batch", min=1, max=16)
    prog = torch.export.export(net, (torch.rand(2, 1, 24, 24),), dynamic_shapes={"input": {0: batch}})
    torch.export.save(prog, str(tmp_path / "net.pt2"))
    res, code = run_agent("--model", str(tmp_path / "net.pt2"), "--runtime", "pytorch", "--threads", "1",
                          "--input-size", "24", "--batch", "1", "--batch", "2", *FAST)
    assert code == 0 and res["ok"], res
    assert res["runtime_version"] == torch.__version__ and [b["input_shape"] for b in res["batches"]] == [
        [1, 1, 24, 24], [2, 1, 24, 24]]
    res, code = run_agent("--model", str(tmp_path / "net.pt2"), "--runtime", "pytorch", "--precision", "fp16",
                          "--input-size", "24", *FAST)
    assert code == 3 and res["kind"] == "bad_precision"


@pytest.mark.parametrize("size", [32, 64, 112, 224])
def test_the_agents_fan_mask_is_the_harmonisations(size: int) -> None:
    """The agent runs on a target without kdbench, so it carries its own copy of the mask's constants: tied here."""
    from kdbench.data.harmonise import sector_mask

    assert np.array_equal(np.asarray(agent.fan_mask(size)) > 0, sector_mask(size) > 0)
