"""The profiling fork server: one agent process per runtime imports it once, each run is a forked child.

Real processes throughout: ``agent.py --serve`` started by ``kdbench.profile.local.ForkServer``, children
forked by it, compared with fresh ``python agent.py`` interpreters.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.profile.hardware import load_profile
from kdbench.profile.local import (AGENT_PATH, FORK_ENV, ForkServer, MeasureRule, Measurer, agent_args, forkable,
                                   run_local, use_fork_server)
from kdbench.profile.results import discover_models

from profile_fixtures import FAST_CLI, FAST_RULE, tiny_cnn, write_profile

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the fork server needs os.fork")
FAST = ["--warmup-runs", "3", "--warmup-s", "0.05", "--min-queries", "30", "--min-time-s", "0.1",
        "--max-time-s", "3", "--p90-rel-ci", "0.5"]
RECORD_ONLY = {"process", "memory_definition", "timestamp"}  # differ by design between the two ways


def _args(model: Path, runtime: str = "onnxruntime", *extra: str) -> list[str]:
    return ["--model", str(model), "--runtime", runtime, "--threads", "1", *FAST, *extra]


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    tiny_cnn(tmp_path / "tiny.onnx", size=32)
    return tmp_path / "tiny.onnx"


@pytest.fixture
def server():
    servers: list[ForkServer] = []

    def make(runtime: str = "onnxruntime") -> ForkServer:
        servers.append(ForkServer(sys.executable, runtime))
        return servers[-1]

    yield make
    for s in servers:
        s.close(kill=True)


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_fork_server_records_match_fresh_interpreters(tmp_path: Path, runtime: str):
    tiny_cnn(tmp_path / "m" / "a.onnx", size=32)
    prof = load_profile(str(write_profile(tmp_path / "box.toml", name="box", runtimes=f'["{runtime}"]')))
    rule = MeasureRule(**{**FAST_RULE, "runs": 2})
    entries = discover_models(tmp_path / "m")
    forked = run_local(entries, prof, rule=rule, fresh=False)
    fresh = run_local(entries, prof, rule=rule, fresh=True)
    assert [r["batch"] for r in forked] == [r["batch"] for r in fresh] == [1, 2]
    for f, n in zip(forked, fresh):
        assert f["status"] == n["status"] == "ok", (f["error"], n["error"])
        assert set(f) == set(n) and f["process"] == "fork-server" and n["process"] == "fresh"
        same = {k for k in f if k not in RECORD_ONLY and f[k] == n[k]}
        assert {"variant_id", "runtime", "runtime_version", "threads", "input_size", "inference_precision", "runs",
                "input_source", "file_size_mb", "rule", "host"} <= same
        assert f["runs"] == 2 and len(f["conditions"]) == 2 and f["n_queries"] >= 30
        assert 0.2 < f["latency_ms"]["p50"] / n["latency_ms"]["p50"] < 5  # same model, same rule (a shared CPU)
        assert f["throughput"] > 0 and f["p50_spread_pct"] is not None
    f1, n1 = forked[0], fresh[0]
    assert abs(f1["model_memory_mb"] - n1["model_memory_mb"]) < 4, (f1["model_memory_mb"], n1["model_memory_mb"])
    assert f1["process_peak_rss_mb"] > f1["runtime_baseline_rss_mb"] > f1["model_memory_mb"] > 0
    assert "fork server" in f1["memory_definition"] and "fork server" not in n1["memory_definition"]


def test_fork_server_result_has_the_fresh_agents_keys(tiny: Path, server):
    forked = server().measure(_args(tiny, "onnxruntime", "--batch", "1", "--batch", "4"), 120)
    proc = subprocess.run([sys.executable, str(AGENT_PATH), *_args(tiny, "onnxruntime", "--batch", "1", "--batch", "4")],
                          capture_output=True, text=True, timeout=120)
    fresh = json.loads(proc.stdout)
    assert forked["ok"] and fresh["ok"]
    assert set(forked) - {"request_id"} == set(fresh)
    assert [set(b) for b in forked["batches"]] == [set(b) for b in fresh["batches"]]
    assert forked["process"]["mode"] == "fork-server" and forked["process"]["fork_rss_mb"] > 0
    assert fresh["process"] == {"mode": "fresh", "pid": fresh["process"]["pid"]}


def test_a_crashing_child_is_one_failed_measurement_and_the_server_carries_on(tiny: Path, tmp_path: Path, server):
    srv = server()
    first = srv.measure(_args(tiny), 120)
    crashed = srv.measure(_args(tiny), 120, test_signal=int(signal.SIGSEGV))
    assert first["ok"] and not crashed["ok"] and crashed["kind"] == "died"
    assert "SIGSEGV" in crashed["error"] and "without a result" in crashed["error"]
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file")
    refused = srv.measure(_args(bad), 120)
    assert not refused["ok"] and refused["kind"] == "bad_model" and "bad.onnx" in refused["error"]
    after = srv.measure(_args(tiny), 120)
    assert after["ok"], after
    assert len({first["process"]["server_pid"], crashed["process"]["server_pid"], after["process"]["server_pid"]}) == 1


def test_a_hung_child_is_killed_at_the_timeout(tiny: Path, server):
    srv = server()
    slow = ["--model", str(tiny), "--runtime", "onnxruntime", "--threads", "1", "--min-time-s", "120",
            "--max-time-s", "120", "--p90-rel-ci", "0"]
    hung = srv.measure(slow, 3)
    assert not hung["ok"] and hung["kind"] == "timeout" and "did not finish within 3 s" in hung["error"]
    assert not Path(f"/proc/{hung['process']['pid']}").exists()  # killed and reaped
    assert srv.measure(_args(tiny), 120)["ok"]


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_a_bigger_model_has_a_bigger_memory_increment_in_a_child(tmp_path: Path, server, runtime: str):
    tiny_cnn(tmp_path / "tiny.onnx", size=16)
    tiny_cnn(tmp_path / "big.onnx", size=16, big_weight_mb=40)
    srv = server(runtime)
    small, large = (srv.measure(_args(tmp_path / name, runtime), 120) for name in ("tiny.onnx", "big.onnx"))
    assert small["peak_reset"] is True and large["peak_reset"] is True
    assert small["model_memory_mb"] < {"onnxruntime": 8, "openvino": 15}[runtime], small["model_memory_mb"]
    assert large["model_memory_mb"] - small["model_memory_mb"] > 35, large["model_memory_mb"]
    assert small["process_peak_rss_mb"] > small["runtime_baseline_rss_mb"] > small["model_memory_mb"]


def test_the_runs_are_separate_children_of_one_server(tiny: Path, tmp_path: Path):
    prof = load_profile(str(write_profile(tmp_path / "box.toml", name="box", batches="[1]")))
    (entry,) = discover_models(tiny.parent)
    args = agent_args(str(entry.path), "onnxruntime", prof, "fp32", None, MeasureRule(**FAST_RULE))
    with Measurer(fresh=False) as measurer:
        runs = [measurer("onnxruntime", args, 120) for _ in range(3)]
        server = measurer.servers["onnxruntime"].proc
    assert all(r["ok"] for r in runs)
    pids = {r["process"]["pid"] for r in runs}
    assert len(pids) == 3 and server.pid not in pids
    assert {r["process"]["server_pid"] for r in runs} == {server.pid}
    assert server.poll() is not None  # closing the measurer ended the server


def test_a_changed_environment_gets_a_new_server(tiny: Path, server, monkeypatch: pytest.MonkeyPatch):
    srv = server()
    before = srv.measure(_args(tiny), 120)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    after = srv.measure(_args(tiny), 120)
    assert before["ok"] and after["ok"]
    assert before["process"]["server_pid"] != after["process"]["server_pid"]  # children inherit the new environment


def test_fresh_interpreters_by_default_and_the_switches_pick_the_fork_server(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    prof = write_profile(tmp_path / "box.toml", name="box", batches="[1]")

    def process(*flags: str) -> str:
        res = CliRunner().invoke(app, ["profile", "--target", str(prof), "--export", str(tiny.parent),
                                       "--out", str(tmp_path / "out"), *FAST_CLI, *flags])
        assert res.exit_code == 0, res.output
        (rec,) = json.loads((tmp_path / "out" / "box" / "results.json").read_text())
        return rec["process"]

    monkeypatch.delenv(FORK_ENV, raising=False)
    assert process() == "fresh" and process("--fork-server") == "fork-server"  # fresh interpreters by default
    monkeypatch.setenv(FORK_ENV, "1")
    assert use_fork_server() and not use_fork_server(True)
    assert forkable("onnxruntime") and forkable("openvino-bf16") and not forkable("openvino-gpu")
    assert not forkable("onnxruntime-cuda") and not forkable("pytorch-cuda")  # GPU runtimes: fresh interpreters
    assert process() == "fork-server" and process("--fresh-interpreters") == "fresh"


def test_a_bad_request_line_is_answered_and_the_server_carries_on(tiny: Path):
    proc = subprocess.Popen([sys.executable, str(AGENT_PATH), "--serve", "--runtime", "onnxruntime"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    request = json.dumps({"id": 7, "args": _args(tiny)})
    out, _ = proc.communicate("not json\n" + request + "\n", timeout=120)
    hello, bad, good = (json.loads(line) for line in out.strip().splitlines())
    assert hello["ready"] and hello["runtime_module"] == "onnxruntime" and hello["import_error"] is None
    assert not bad["ok"] and bad["kind"] == "usage"
    assert good["ok"] and good["request_id"] == 7 and proc.returncode == 0
