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
    assert res["baseline_rss_mb"] > 0 and res["peak_rss_mb"] >= res["baseline_rss_mb"]
    assert res["host"]["hostname"] and res["rule"]["min_queries"] == 30


def test_agent_measures_openvino_on_dynamic_size_model(tmp_path: Path):
    model = tmp_path / "dyn.onnx"
    tiny_cnn(model, size=None)
    res, code = run_agent("--model", str(model), "--runtime", "openvino", "--threads", "1", "--input-size", "24", *FAST)
    assert code == 0 and res["ok"], res
    assert res["batches"][0]["input_shape"] == [1, 1, 24, 24] and res["runtime"] == "openvino"


def test_rss_increment_sees_the_weights(tmp_path: Path):
    model = tmp_path / "big.onnx"
    tiny_cnn(model, size=16, big_weight_mb=40)
    res, code = run_agent("--model", str(model), "--runtime", "onnxruntime", "--threads", "1", *FAST)
    assert code == 0 and res["ok"], res
    assert res["peak_reset"] is True
    assert res["rss_increment_mb"] > 30, res["rss_increment_mb"]


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
