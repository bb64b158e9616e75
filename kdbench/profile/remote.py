"""Remote measurement over ssh: copy the agent and the models, run the agent there, bring back JSON.

Uses the system ``ssh`` client, so the user's ``~/.ssh/config``, keys and agent apply
(``--ssh-config`` points at another config file). Every remote command is built from a list of
words, each passed through ``shlex.quote``: model names, paths and the remote Python never reach
the remote shell unquoted (a leading ``~/`` of ``--remote-python`` is expanded to the target's
``$HOME`` first). Each model's files -- an OpenVINO ``.bin``, an ONNX file's external-data files --
are copied under their own names into ``m<N>/`` of a fresh ``mktemp -d`` folder (contents streamed
through ``cat > file``, no scp path parsing), with the frame sample; the folder is removed at the
end whatever failed. An agent that outlives its timeout is killed on the target by its pid file.

Failure handling: a target that does not answer raises ``RemoteError`` before anything runs; a
runtime missing on the target gives failed records naming it (other runtimes still run); an agent
that dies gives a failed record, and if the target itself stopped answering the run stops with
``RemoteError`` -- in every case the records measured before are already saved by the caller's
``on_records`` callback.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdbench.errors import KdbenchError
from kdbench.profile.hardware import HardwareProfile
from kdbench.profile.local import AGENT_PATH, AgentInputs, MeasureRule, agent_args, parse_agent_output
from kdbench.profile.results import ModelEntry, failed_record, precisions_for, records_from_runs, runtimes_for

SSH_UNREACHABLE = 255  # ssh's own exit status for connection and authentication failures
TIMED_OUT = 124  # our status for a local timeout (as coreutils timeout)


class RemoteError(KdbenchError):
    """The remote target could not be reached or stopped answering."""


def quote_command(words: list[str]) -> str:
    """One remote shell command line from words, each quoted (no injection from names or paths)."""
    return " ".join(shlex.quote(str(w)) for w in words)


@dataclass
class SshTarget:
    """How to reach a target: ``user@host`` (or a Host alias), an optional config file, options."""

    host: str
    ssh_config: str | None = None
    connect_timeout_s: int = 10
    ssh_binary: str = "ssh"

    def __post_init__(self) -> None:
        if not self.host or self.host.startswith("-") or any(c.isspace() for c in self.host):
            raise RemoteError(f"--remote {self.host!r}: expected user@host or an ssh Host alias")

    def base(self) -> list[str]:
        """The ssh command up to and including the destination."""
        cmd = [self.ssh_binary]
        if self.ssh_config:
            cmd += ["-F", str(self.ssh_config)]
        cmd += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout_s}",
                "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3", "--", self.host]
        return cmd

    def run(self, words: list[str], stdin_path: Path | None = None, timeout_s: float = 600.0) -> subprocess.CompletedProcess:
        """Run a quoted command on the target; stdin from a file when given."""
        cmd = self.base() + [quote_command(words)]
        try:
            if stdin_path is not None:
                with open(stdin_path, "rb") as fh:
                    proc = subprocess.run(cmd, stdin=fh, capture_output=True, timeout=timeout_s)
                return subprocess.CompletedProcess(cmd, proc.returncode, proc.stdout.decode(errors="replace"),
                                                   proc.stderr.decode(errors="replace"))
            return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(cmd, TIMED_OUT, "", f"no answer within {timeout_s:.0f} s")
        except FileNotFoundError:
            raise RemoteError(f"ssh client {self.ssh_binary!r} not found; install OpenSSH") from None

    def reachable(self) -> tuple[bool, str]:
        """True when a trivial command runs on the target."""
        proc = self.run(["true"], timeout_s=self.connect_timeout_s + 10)
        return proc.returncode == 0, proc.stderr.strip()


def expand_home(path: str, home: str) -> str:
    """``~`` or ``~/...`` with the target's home folder; other paths unchanged."""
    if path == "~":
        return home
    return home.rstrip("/") + path[1:] if path.startswith("~/") else path


class RemoteSession:
    """A working folder on the target holding the agent and the copied models."""

    def __init__(self, target: SshTarget, python: str = "python3") -> None:
        self.target = target
        self.python = python
        self.workdir: str | None = None
        self.home: str | None = None
        self.copied: dict[Path, str] = {}

    def open(self) -> None:
        """Check the target answers, make the working folder, copy the agent, expand ``~`` in the Python."""
        proc = self.target.run(["sh", "-c", 'printf "%s\n" "$HOME"; mktemp -d /tmp/kdbench-agent.XXXXXX'],
                               timeout_s=self.target.connect_timeout_s + 20)
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or len(lines) < 2:
            raise RemoteError(
                f"remote target {self.target.host} did not answer (ssh exit {proc.returncode}): "
                f"{proc.stderr.strip() or proc.stdout.strip()}"
            )
        self.home, self.workdir = lines[-2], lines[-1]
        self.python = expand_home(self.python, self.home)
        self.upload(AGENT_PATH, "agent.py")

    def upload(self, local: Path, name: str) -> str:
        """Copy one file into the working folder; returns its remote path."""
        assert self.workdir is not None
        remote = f"{self.workdir}/{name}"
        proc = self.target.run(["sh", "-c", 'cat > "$1"', "sh", remote], stdin_path=local)
        if proc.returncode != 0:
            raise RemoteError(f"copying {local.name} to {self.target.host}:{remote} failed: {proc.stderr.strip()}")
        return remote

    def upload_model(self, entry: ModelEntry) -> str:
        """Copy a model's files under their own names into ``m<N>/``; returns the remote path of the main file."""
        if entry.path in self.copied:
            return self.copied[entry.path]
        assert self.workdir is not None
        folder = f"m{len(self.copied)}"
        files = entry.files()
        subdirs = sorted({str(Path(folder) / f.relative_to(entry.path.parent).parent) for f in files})
        self.target.run(["mkdir", "-p", "--", *[f"{self.workdir}/{d}" for d in subdirs]])
        for f in files:
            if not f.is_file():
                raise RemoteError(f"model file {f} is missing (needed by {entry.variant_id})")
            self.upload(f, f"{folder}/{f.relative_to(entry.path.parent).as_posix()}")
        self.copied[entry.path] = f"{self.workdir}/{folder}/{entry.path.name}"
        return self.copied[entry.path]

    def agent(self, args: list[str], timeout_s: float) -> tuple[dict[str, Any], int]:
        """Run the agent; on a timeout stop it on the target. Returns its JSON (or an error dict) and the status."""
        assert self.workdir is not None
        pid_file = f"{self.workdir}/agent.pid"
        proc = self.target.run([self.python, f"{self.workdir}/agent.py", *args, "--pid-file", pid_file],
                               timeout_s=timeout_s)
        if proc.returncode == TIMED_OUT:
            self.target.run(["sh", "-c", 'kill -KILL "$(cat "$1")" 2>/dev/null; rm -f "$1"', "sh", pid_file],
                            timeout_s=self.target.connect_timeout_s + 20)
            return {"ok": False, "kind": "timeout",
                    "error": f"agent did not finish within {timeout_s:.0f} s; stopped it on the target"}, TIMED_OUT
        return parse_agent_output(proc.stdout, proc.stderr, proc.returncode), proc.returncode

    def close(self) -> None:
        """Remove the working folder (best effort)."""
        if self.workdir:
            self.target.run(["rm", "-rf", "--", self.workdir], timeout_s=self.target.connect_timeout_s + 20)
            self.workdir = None


def _check_alive(target: SshTarget, entry: ModelEntry, result: dict[str, Any], out: list[dict[str, Any]],
                 emit: Callable[[list[dict[str, Any]]], None], profile: HardwareProfile, runtime: str, precision: str,
                 host: Any) -> None:
    """After a failed run: RemoteError (with a failed record saved) when the target no longer answers."""
    alive, why = target.reachable()
    if alive:
        return
    emit([failed_record(entry, profile, runtime, precision, "remote",
                        f"target {target.host} died mid-run: {result.get('error')}", host)])
    raise RemoteError(
        f"remote target {target.host} stopped answering while measuring {entry.variant_id} "
        f"({why or result.get('error')}); the {sum(r.get('status') == 'ok' for r in out)} records measured before were saved"
    )


def run_remote(
    entries: list[ModelEntry],
    profile: HardwareProfile,
    target: SshTarget,
    python: str = "python3",
    rule: MeasureRule | None = None,
    on_records: Callable[[list[dict[str, Any]]], None] | None = None,
    on_step: Callable[[str], None] | None = None,
    timeout_s: float = 900.0,
    inputs: AgentInputs | None = None,
) -> list[dict[str, Any]]:
    """Measure every model on the remote target ``rule.runs`` times; RemoteError if the target stops answering."""
    rule = rule or MeasureRule()
    out: list[dict[str, Any]] = []

    def emit(recs: list[dict[str, Any]]) -> None:
        out.extend(recs)
        if on_records:
            on_records(recs)

    session = RemoteSession(target, python)
    try:
        session.open()
        remote_inputs = AgentInputs(session.upload(Path(inputs.frames), "frames.npy") if inputs and inputs.frames else None,
                                    inputs.raw_frame if inputs else None)
        available: dict[str, dict[str, Any]] = {}
        needed = sorted({rt for e in entries for rt in runtimes_for(e, profile)}, key=list(profile.runtimes).index)
        for runtime in needed:
            result, code = session.agent(["--check", "--runtime", runtime], timeout_s=120)
            if code in (SSH_UNREACHABLE, TIMED_OUT):
                raise RemoteError(f"remote target {target.host} stopped answering: {result.get('error')}")
            available[runtime] = result
        host = next((r.get("host") for r in available.values() if r.get("host")), {"hostname": target.host})
        if not any(r.get("ok") for r in available.values()):
            for entry in entries:
                for runtime in runtimes_for(entry, profile):
                    emit([failed_record(entry, profile, runtime, entry.precision, "remote",
                                        f"on {target.host}: {available[runtime].get('error')}", host)])
            reasons = "; ".join(f"{rt}: {r.get('error')}" for rt, r in available.items())
            raise RemoteError(f"remote target {target.host} has none of the profile's runtimes ({reasons})")
        for entry in entries:
            for runtime in runtimes_for(entry, profile):
                for precision in precisions_for(entry, runtime, profile):
                    if on_step:
                        on_step(f"{entry.variant_id} / {runtime} / {precision} @ {target.host}")
                    if not available[runtime].get("ok"):
                        emit([failed_record(entry, profile, runtime, precision, "remote",
                                            f"on {target.host}: {available[runtime].get('error')}", host)])
                        continue
                    remote_model = session.upload_model(entry)
                    args = agent_args(remote_model, runtime, profile, precision, entry.input_size, rule, remote_inputs)
                    results = []
                    for _ in range(max(1, rule.runs)):
                        result, _code = session.agent(args, timeout_s=timeout_s)
                        if not result.get("ok"):
                            _check_alive(target, entry, result, out, emit, profile, runtime, precision, host)
                            result.setdefault("host", host)
                            result["error"] = f"on {target.host}: {result.get('error')}"
                        results.append(result)
                    emit(records_from_runs(results, entry, profile, runtime, precision, "remote"))
    finally:
        try:
            session.close()
        except Exception:  # noqa: BLE001 - the target may be gone; nothing more to clean
            pass
    return out
