"""Remote profiling over ssh against a real sshd on loopback (tests/ssh/start_sshd.sh).

Tests marked ``ssh`` need ``KDBENCH_TEST_SSH_CONFIG`` (an ssh config with a ``kdbench-test`` host,
written by ``eval "$(bash tests/ssh/start_sshd.sh)"``); the quoting tests run everywhere.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.profile.hardware import load_profile
from kdbench.profile.local import MeasureRule
from kdbench.profile.remote import RemoteError, SshTarget, quote_command, run_remote
from kdbench.profile.results import ResultsWriter, discover_models

from profile_fixtures import FAST_CLI, FAST_RULE, tiny_cnn, write_profile

SSH_CONFIG = os.environ.get("KDBENCH_TEST_SSH_CONFIG")
START_SSHD = Path(__file__).parent / "ssh" / "start_sshd.sh"
needs_sshd = pytest.mark.skipif(
    not SSH_CONFIG, reason="KDBENCH_TEST_SSH_CONFIG is unset: start an sshd with tests/ssh/start_sshd.sh (.ci/run does)"
)
EVIL = "x'; touch INJECTED; echo '$(touch INJECTED2)`touch INJECTED3`"


def test_quote_command_keeps_each_word_whole(tmp_path: Path):
    words = ["printf", "%s\\n", EVIL, "a b", "-rf"]
    out = subprocess.run(["sh", "-c", quote_command(words)], capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.splitlines() == [EVIL, "a b", "-rf"]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("host", ["-oProxyCommand=touch /tmp/x", "", "user@host; rm", "a b"])
def test_ssh_destination_cannot_be_an_option_or_a_command(host: str):
    with pytest.raises(RemoteError, match="--remote"):
        SshTarget(host)


def _python_wrapper(path: Path, body: str = "") -> Path:
    """A shell script standing in for the remote python (it runs this venv's python)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\nexec {sys.executable} \"$@\"\n")
    path.chmod(0o755)
    return path


def _agent_dirs() -> set[str]:
    """Remote working folders now on the (loopback) target."""
    out = subprocess.run(["ssh", "-F", SSH_CONFIG, "kdbench-test", "ls -d /tmp/kdbench-agent.* 2>/dev/null"],
                         capture_output=True, text=True)
    return set(out.stdout.split())


def _models(root: Path) -> Path:
    evil_dir = root / EVIL.replace("/", "_")
    tiny_cnn(evil_dir / f"{EVIL.replace('/', '_')}.onnx", size=32)
    tiny_cnn(root / "plain.onnx", size=32)
    return root


@pytest.mark.ssh
@needs_sshd
def test_remote_profile_over_real_ssh(tmp_path: Path):
    models = _models(tmp_path / "models")
    py = _python_wrapper(tmp_path / "dir with space; touch INJECTED" / "py")
    prof = write_profile(tmp_path / "pi.toml", name="pi", runtimes='["onnxruntime"]')
    before = _agent_dirs()
    res = CliRunner().invoke(app, ["profile", "--target", str(prof), "--export", str(models), "--out",
                                   str(tmp_path / "out"), "--remote", "kdbench-test", "--ssh-config", SSH_CONFIG,
                                   "--remote-python", str(py), *FAST_CLI])
    assert res.exit_code == 0, res.output
    recs = json.loads((tmp_path / "out" / "pi" / "results.json").read_text())
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs), recs
    assert all(r["method"] == "remote" and r["measured"] is True and r["host"]["hostname"] for r in recs)
    assert {r["batch"] for r in recs} == {1, 2}
    home = Path(os.path.expanduser("~"))
    for name in ("INJECTED", "INJECTED2", "INJECTED3"):
        assert not (home / name).exists() and not (tmp_path / name).exists()
    assert _agent_dirs() == before  # the remote working folder was removed


@pytest.mark.ssh
@needs_sshd
def test_remote_without_the_runtime_says_so(tmp_path: Path):
    models = _models(tmp_path / "models")
    bare = tmp_path / "bare"
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")  # -S: no site-packages, no onnxruntime
    bare.chmod(0o755)
    prof = write_profile(tmp_path / "pi.toml", name="pi", runtimes='["onnxruntime"]')
    res = CliRunner().invoke(app, ["profile", "--target", str(prof), "--export", str(models), "--out",
                                   str(tmp_path / "out"), "--remote", "kdbench-test", "--ssh-config", SSH_CONFIG,
                                   "--remote-python", str(bare), *FAST_CLI])
    assert res.exit_code != 0
    assert isinstance(res.exception, RemoteError) and "onnxruntime is not installed" in str(res.exception)
    recs = json.loads((tmp_path / "out" / "pi" / "results.json").read_text())
    assert recs and all(r["status"] == "failed" and "onnxruntime is not installed" in r["error"] for r in recs)


@pytest.mark.ssh
@needs_sshd
def test_unreachable_target_is_a_clear_error(tmp_path: Path):
    cfg = tmp_path / "cfg"
    text = Path(SSH_CONFIG).read_text()
    import re

    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    cfg.write_text(re.sub(r"Port \d+", f"Port {port}", text))
    tiny_cnn(tmp_path / "m" / "a.onnx")
    prof = load_profile(str(write_profile(tmp_path / "pi.toml", name="pi")))
    with pytest.raises(RemoteError, match="did not answer"):
        run_remote(discover_models(tmp_path / "m"), prof, SshTarget("kdbench-test", str(cfg), connect_timeout_s=5),
                   python=sys.executable, rule=MeasureRule(**FAST_RULE))


@pytest.mark.ssh
@needs_sshd
def test_target_dying_mid_run_keeps_the_results_measured_before(tmp_path: Path):
    env = subprocess.run(["bash", str(START_SSHD), str(tmp_path / "sshd")], capture_output=True, text=True, timeout=60)
    assert env.returncode == 0, env.stderr
    pid = int((tmp_path / "sshd" / "sshd.pid").read_text())
    before = _agent_dirs()
    try:
        counter = tmp_path / "calls"
        # 1st call: --check, 2nd: first model, 3rd: the target dies (sshd and this session killed).
        body = f"""n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}
if [ "$n" -ge 3 ]; then
  kill -9 {pid}
  p=$PPID
  while [ "$p" -gt 1 ]; do
    if [ "$(cat /proc/$p/comm)" = "sshd" ]; then kill -9 "$p"; fi
    p=$(awk '{{print $4}}' /proc/$p/stat)
  done
  sleep 5
fi"""
        py = _python_wrapper(tmp_path / "py", body)
        root = tmp_path / "m"
        tiny_cnn(root / "a.onnx", size=32)
        tiny_cnn(root / "b.onnx", size=32)
        prof = load_profile(str(write_profile(tmp_path / "pi.toml", name="pi", batches="[1]")))
        writer = ResultsWriter(tmp_path / "out", prof)
        with pytest.raises(RemoteError, match="stopped answering") as info:
            run_remote(discover_models(root), prof, SshTarget("kdbench-test", str(tmp_path / "sshd" / "ssh_config"),
                       connect_timeout_s=3), python=str(py), rule=MeasureRule(**FAST_RULE), on_records=writer.add)
        assert "1 records measured before were saved" in str(info.value)
        recs = {r["variant_id"]: r for r in json.loads(writer.path.read_text())}
        assert recs["a"]["status"] == "ok" and recs["a"]["latency_ms"]["p50"] > 0
        assert recs["b"]["status"] == "failed" and "died mid-run" in recs["b"]["error"]
    finally:
        subprocess.run(["kill", str(pid)], capture_output=True)
        for d in set(Path("/tmp").glob("kdbench-agent.*")) - {Path(p) for p in before}:
            shutil.rmtree(d, ignore_errors=True)  # the dead target could not clean up (loopback: same disk)


def _agents_running() -> set[int]:
    """Pids of agents running from a remote working folder (loopback target: this machine's /proc)."""
    out = set()
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and "/tmp/kdbench-agent." in cmd and "agent.py" in cmd:
            out.add(int(proc.name))
    return out


@pytest.mark.ssh
@needs_sshd
def test_external_data_travels_and_tilde_expands_in_the_remote_python(tmp_path: Path):
    import uuid

    import onnx

    models = tmp_path / "models"
    tiny_cnn(models / "ext.onnx", size=32, big_weight_mb=1)
    model = onnx.load(str(models / "ext.onnx"))
    onnx.save(model, str(models / "ext.onnx"), save_as_external_data=True, location="ext.weights", size_threshold=0)
    assert (models / "ext.weights").stat().st_size > 1e6
    rel = f".kdbench-test-{uuid.uuid4().hex[:8]}"
    _python_wrapper(Path.home() / rel / "py")
    try:
        prof = write_profile(tmp_path / "pi.toml", name="pi", runtimes='["onnxruntime"]', batches="[1]")
        before = _agent_dirs()
        res = CliRunner().invoke(app, ["profile", "--target", str(prof), "--export", str(models), "--out",
                                       str(tmp_path / "out"), "--remote", "kdbench-test", "--ssh-config", SSH_CONFIG,
                                       "--remote-python", f"~/{rel}/py", *FAST_CLI])
        assert res.exit_code == 0, res.output
        (rec,) = json.loads((tmp_path / "out" / "pi" / "results.json").read_text())
        assert rec["status"] == "ok", rec["error"]
        assert rec["model_memory_mb"] > 0.5  # the 1 MB of external weights were loaded on the target
        assert _agent_dirs() == before
    finally:
        shutil.rmtree(Path.home() / rel, ignore_errors=True)


@pytest.mark.ssh
@needs_sshd
def test_a_timeout_stops_the_remote_agent_and_removes_the_folder(tmp_path: Path):
    tiny_cnn(tmp_path / "m" / "a.onnx", size=32)
    prof = load_profile(str(write_profile(tmp_path / "pi.toml", name="pi", batches="[1]")))
    slow = MeasureRule(**{**FAST_RULE, "min_time_s": 120.0, "max_time_s": 120.0, "p90_rel_ci": 0.0})
    before_dirs, before_agents = _agent_dirs(), _agents_running()
    recs = run_remote(discover_models(tmp_path / "m"), prof, SshTarget("kdbench-test", SSH_CONFIG), python=sys.executable,
                      rule=slow, timeout_s=4)
    assert recs[0]["status"] == "failed" and "stopped it on the target" in recs[0]["error"]
    import time

    deadline = time.time() + 10
    while _agents_running() - before_agents and time.time() < deadline:
        time.sleep(0.2)
    assert not (_agents_running() - before_agents)  # the agent no longer runs on the target
    assert _agent_dirs() == before_dirs  # and its folder is gone


@pytest.mark.ssh
@needs_sshd
def test_the_remote_folder_is_removed_when_a_copy_fails(tmp_path: Path):
    tiny_cnn(tmp_path / "m" / "a.onnx", size=32)
    tiny_cnn(tmp_path / "m" / "b.onnx", size=32)
    entries = discover_models(tmp_path / "m")
    (tmp_path / "m" / "b.onnx").unlink()  # vanishes between discovery and the copy
    prof = load_profile(str(write_profile(tmp_path / "pi.toml", name="pi", batches="[1]")))
    before = _agent_dirs()
    with pytest.raises(RemoteError, match="b.onnx is missing"):
        run_remote(entries, prof, SshTarget("kdbench-test", SSH_CONFIG), python=sys.executable,
                   rule=MeasureRule(**FAST_RULE))
    assert _agent_dirs() == before


@pytest.mark.ssh
@needs_sshd
def test_estimate_with_a_remote_measures_only_the_unsure_models(tmp_path: Path):
    tiny_cnn(tmp_path / "models" / "a.onnx", size=32)
    out = tmp_path / "out"
    base = dict(name="pi", runtimes='["onnxruntime"]', batches="[1]")
    prof = write_profile(tmp_path / "pi.toml", **base, extra='\n[estimate]\ncalibration = "rpi4"\n')
    args = ["profile", "--target", str(prof), "--export", str(tmp_path / "models"), "--out", str(out), "--estimate",
            "--remote", "kdbench-test", "--ssh-config", SSH_CONFIG, "--remote-python", sys.executable, *FAST_CLI]
    res = CliRunner().invoke(app, args)  # min_fps 30 against a tiny model's thousands: no doubt, nothing measured
    assert res.exit_code == 0, res.output
    recs = json.loads((out / "pi" / "results.json").read_text())
    assert [r["method"] for r in recs] == ["estimated"] and "0 of 1 model(s)" in res.output
    fps = recs[0]["fps"]  # now a limit inside its band: the estimate cannot say, so the target is asked
    text = prof.read_text().replace("min_fps = 30.0", f"min_fps = {fps:.3f}")
    prof.write_text(text)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    recs = json.loads((out / "pi" / "results.json").read_text())
    assert sorted(r["method"] for r in recs) == ["estimated", "remote"] and "1 of 1 model(s)" in res.output
    est = next(r for r in recs if r["method"] == "estimated")
    assert est["constraints"]["status"] == "uncertain"
    measured = next(r for r in recs if r["method"] == "remote")
    assert measured["measured"] is True and measured["constraints"]["status"] in ("meets", "fails")


@pytest.mark.ssh
@needs_sshd
def test_hardware_aware_search_measures_on_the_target_when_the_estimate_is_unsure(tmp_path: Path):
    from kdbench.search.hardware_aware import Pricer

    extra = '\n[estimate]\ncalibration = "rpi4"\n'
    prof = write_profile(tmp_path / "pi.toml", name="pi", batches="[1]", extra=extra)
    guess = Pricer(str(prof), tmp_path / "cache0").price("mobilenet_v3_small", 32)
    assert guess.method == "estimated"
    remote = f'\n[remote]\nhost = "kdbench-test"\nssh_config = "{SSH_CONFIG}"\npython = "{sys.executable}"\n'
    text = prof.read_text().replace("min_fps = 30.0", f"min_fps = {guess.fps:.3f}")  # inside its band
    prof.write_text(text + remote)
    unsure = Pricer(str(prof), tmp_path / "cache1").price("mobilenet_v3_small", 32)
    assert unsure.method.startswith("measured on the target") and unsure.status in ("meets", "fails")
    assert unsure.fps_low <= unsure.fps <= unsure.fps_high and unsure.fps != guess.fps
    prof.write_text(text.replace(f"min_fps = {guess.fps:.3f}", "min_fps = 0.001") + remote)  # no doubt: estimated
    sure = Pricer(str(prof), tmp_path / "cache2").price("mobilenet_v3_small", 32)
    assert sure.method == "estimated" and sure.status == "meets"
