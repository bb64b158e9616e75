"""One memory definition: the estimate of a demo student's model memory is within 1.5x of the measurement,
whether the measurement ran in a fresh interpreter or in a child forked from a fork server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kdbench.profile.estimate import CALIBRATION_DIR, Calibration
from kdbench.profile.features import graph_features
from kdbench.profile.local import AGENT_PATH, ForkServer

DEMO_STUDENTS = ("mobilenet_v3_small", "mobilenet_v3_large", "shufflenet_v2_x1_0", "ghostnet_100")
QUICK = ["--min-queries", "10", "--min-time-s", "0.1", "--max-time-s", "1", "--p90-rel-ci", "0.9", "--warmup-s", "0.02"]
RUNTIMES = ("onnxruntime", "openvino")


def _fresh(args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, str(AGENT_PATH), *args], capture_output=True, text=True, timeout=300)
    return json.loads(proc.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("student", DEMO_STUDENTS)
def test_estimated_model_memory_is_within_1_5x_of_the_measurement(tmp_path: Path, student: str):
    from kdbench.convert.onnx_export import export_onnx
    from kdbench.models.registry import create_model

    cal = Calibration.load(CALIBRATION_DIR / "rpi4.json")
    servers = {rt: ForkServer(sys.executable, rt) for rt in RUNTIMES} if hasattr(os, "fork") else {}
    try:
        for size in (32, 112):  # the demo's size and the stores' native size
            path = tmp_path / f"{student}_{size}.onnx"
            export_onnx(create_model(student, num_classes=4).eval(), path, size)
            f = graph_features(path)
            for runtime in RUNTIMES:
                args = ["--model", str(path), "--runtime", runtime, "--threads", "1", *QUICK]
                ways = [_fresh(args)] + ([servers[runtime].measure(args, 300)] if servers else [])
                for res in ways:
                    assert res["ok"], res
                    measured, estimated = res["model_memory_mb"], cal.memory_for(runtime).predict_mb(f)
                    assert measured is not None and res["process_peak_rss_mb"] > res["runtime_baseline_rss_mb"]
                    ratio = estimated / measured
                    assert 1 / 1.5 <= ratio <= 1.5, (student, size, runtime, res["process"], measured, estimated)
    finally:
        for server in servers.values():
            server.close()
