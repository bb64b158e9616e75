"""The teacher and distill commands through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys


def _kdbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from kdbench.cli import main; main()", *args],
                          capture_output=True, text=True)


def test_teacher_train_cache_and_distill(tiny_store, tmp_path):
    teacher = tmp_path / "teacher.pt"
    r = _kdbench("teacher", "train", "--store", str(tiny_store.path), "--out", str(teacher), "--arch",
                 "mobilenet_v3_small", "--epochs", "1", "--batch-size", "16", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert teacher.is_file()
    summary = json.loads(teacher.with_suffix(".json").read_text())
    assert summary["arch"] == "mobilenet_v3_small" and "test" in summary["metrics"]

    r = _kdbench("teacher", "cache", "--store", str(tiny_store.path), "--teacher", str(teacher))
    assert r.returncode == 0 and "wrote" in r.stdout, r.stdout + r.stderr
    r = _kdbench("teacher", "cache", "--store", str(tiny_store.path), "--teacher", str(teacher))
    assert "up to date" in r.stdout

    run = tmp_path / "run"
    r = _kdbench("distill", "--store", str(tiny_store.path), "--teacher", str(teacher), "--student",
                 "shufflenet_v2_x1_0", "--method", "ctkd", "--param", "schedule=linear", "--epochs", "2",
                 "--batch-size", "16", "--device", "cpu", "--out", str(run))
    assert r.returncode == 0, r.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["method"] == "ctkd" and metrics["hparams"]["schedule"] == "linear"
    assert len(metrics["history"]) == 2
    temps = [h["method_temperature"] for h in metrics["history"]]
    assert all(1.0 <= t <= 21.0 for t in temps)
    assert "teacher_agreement" in metrics["metrics"]["test"]
    assert (run / "best.pt").is_file()


def test_distill_errors_are_clear(tiny_store, tmp_path):
    r = _kdbench("distill", "--store", str(tiny_store.path), "--method", "vanilla", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "--teacher" in r.stderr
    r = _kdbench("distill", "--store", str(tiny_store.path), "--method", "vanila", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "vanila" in r.stderr and "vanilla" in r.stderr
    r = _kdbench("distill", "--store", str(tmp_path / "missing"), "--method", "scratch", "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "missing" in r.stderr
    r = _kdbench("distill", "--store", str(tiny_store.path), "--method", "vanilla", "--teacher",
                 str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x"))
    assert r.returncode == 2 and "nope.pt" in r.stderr
