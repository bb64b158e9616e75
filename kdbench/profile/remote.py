"""Remote measurement over ssh: copy the agent and the models, run the agent there, bring back JSON.

Uses the system ``ssh`` client, so the user's ``~/.ssh/config``, keys and agent apply
(``--ssh-config`` points at another config file). Every remote command is built from a list of
words, each passed through ``shlex.quote``: model names, paths and the remote Python never reach
the remote shell unquoted. Model files are copied as ``m<N>.<ext>`` into a fresh ``mktemp -d``
folder (contents streamed through ``cat > file``, no scp path parsing) and removed afterwards.

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
from kdbench.profile.local import AGENT_PATH, MeasureRule, agent_args, parse_agent_output
from kdbench.profile.results import ModelEntry, failed_record, precisions_for, records_from_agent, runtimes_for

SSH_UNREACHABLE = 255  # ssh's own exit status for connection and authentication failures


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
            return subprocess.CompletedProcess(cmd, SSH_UNREACHABLE, "", f"no answer within {timeout_s:.0f} s")
        except FileNotFoundError:
            raise RemoteError(f"ssh client {self.ssh_binary!r} not found; install OpenSSH") from None

    def reachable(self) -> tuple[bool, str]:
        """True when a trivial command runs on the target."""
        proc = self.run(["true"], timeout_s=self.connect_timeout_s + 10)
        return proc.returncode == 0, proc.stderr.strip()


class RemoteSession:
    """A working folder on the target holding the agent and the copied models."""

    def __init__(self, target: SshTarget, python: str = "python3") -> None:
        self.target = target
        self.python = python
        self.workdir: str | None = None
        self.copied: dict[Path, str] = {}

    def open(self) -> None:
        """Check the target answers, make the working folder and copy the agent."""
        proc = self.target.run(["mktemp", "-d", "/tmp/kdbench-agent.XXXXXX"], timeout_s=self.target.connect_timeout_s + 20)
        if proc.returncode != 0:
            raise RemoteError(
                f"remote target {self.target.host} did not answer (ssh exit {proc.returncode}): "
                f"{proc.stderr.strip() or proc.stdout.strip()}"
            )
        self.workdir = proc.stdout.strip().splitlines()[-1]
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
        """Copy a model's files as ``m<N>.<ext>``; returns the remote path of the main file."""
        if entry.path in self.copied:
            return self.copied[entry.path]
        stem = f"m{len(self.copied)}"
        main = ""
        for f in entry.files():
            if not f.is_file():
                raise RemoteError(f"model file {f} is missing (needed by {entry.variant_id})")
            remote = self.upload(f, stem + f.suffix)
            if f == entry.path:
                main = remote
        self.copied[entry.path] = main
        return main

    def agent(self, args: list[str], timeout_s: float) -> tuple[dict[str, Any], int]:
        """Run the agent with arguments; returns its JSON (or an error dict) and ssh's exit status."""
        assert self.workdir is not None
        proc = self.target.run([self.python, f"{self.workdir}/agent.py", *args], timeout_s=timeout_s)
        return parse_agent_output(proc.stdout, proc.stderr, proc.returncode), proc.returncode

    def close(self) -> None:
        """Remove the working folder (best effort)."""
        if self.workdir:
            self.target.run(["rm", "-rf", "--", self.workdir], timeout_s=self.target.connect_timeout_s + 20)
            self.workdir = None


def run_remote(
    entries: list[ModelEntry],
    profile: HardwareProfile,
    target: SshTarget,
    python: str = "python3",
    rule: MeasureRule | None = None,
    on_records: Callable[[list[dict[str, Any]]], None] | None = None,
    on_step: Callable[[str], None] | None = None,
    timeout_s: float = 900.0,
) -> list[dict[str, Any]]:
    """Measure every model on the remote target; raises RemoteError if the target stops answering."""
    rule = rule or MeasureRule()
    out: list[dict[str, Any]] = []

    def emit(recs: list[dict[str, Any]]) -> None:
        out.extend(recs)
        if on_records:
            on_records(recs)

    session = RemoteSession(target, python)
    session.open()
    try:
        available: dict[str, dict[str, Any]] = {}
        needed = sorted({rt for e in entries for rt in runtimes_for(e, profile)}, key=list(profile.runtimes).index)
        for runtime in needed:
            result, code = session.agent(["--check", "--runtime", runtime], timeout_s=120)
            if code == SSH_UNREACHABLE:
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
                    args = agent_args(remote_model, runtime, profile, precision, entry.input_size, rule)
                    result, code = session.agent(args, timeout_s=timeout_s)
                    if not result.get("ok"):
                        alive, why = target.reachable()
                        if not alive:
                            emit([failed_record(entry, profile, runtime, precision, "remote",
                                                f"target {target.host} died mid-run: {result.get('error')}", host)])
                            raise RemoteError(
                                f"remote target {target.host} stopped answering while measuring "
                                f"{entry.variant_id} ({why or result.get('error')}); the "
                                f"{sum(r.get('status') == 'ok' for r in out)} records measured before were saved"
                            )
                        result.setdefault("host", host)
                        result["error"] = f"on {target.host}: {result.get('error')}"
                    emit(records_from_agent(result, entry, profile, runtime, precision, "remote"))
    finally:
        try:
            session.close()
        except Exception:  # noqa: BLE001 - the target may be gone; nothing more to clean
            pass
    return out
