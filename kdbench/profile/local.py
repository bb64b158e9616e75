"""Local measurement: every model x runtime in ``runs`` (3) fresh processes running the agent.

The record is the median of the runs' p50s with their spread (``results.records_from_runs``): one
process can land on a bad core placement, a busy neighbour or a cold cache, and a single run cannot
show it.

Each run is a process of its own, made one of two ways (``Measurer``):

- fresh interpreters (the default; always without ``os.fork``, for GPU runtimes and over ssh):
  ``python agent.py ...`` per run.
- fork server (opt-in: ``fresh=False``, ``--fork-server``, ``KDBENCH_PROFILE_FORK=1``; CPU runtimes on Linux and
  macOS): one ``agent.py --serve`` per runtime imports numpy and the runtime once; every run is a child forked from
  it (``ForkServer``), so a run pays no interpreter start or runtime import. Its memory is its own (see the agent's
  docstring). Not the default: in the demo (2 cores, load 1.8) it flagged 19 of 20 x86 models unstable (p50
  spread over the 3 runs) where fresh interpreters flag 13, and it saved only 1.1-1.24x of the profiling time.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdbench.convert.runtimes import RUNTIMES
from kdbench.profile.hardware import HardwareProfile
from kdbench.profile.results import ModelEntry, failed_record, local_host, precisions_for, records_from_runs, runtimes_for

AGENT_PATH = Path(__file__).with_name("agent.py")


@dataclass
class MeasureRule:
    """The agent's stopping rule (see agent.py's docstring); defaults follow the documented rule."""

    warmup_runs: int = 10
    warmup_s: float = 1.0
    warmup_max_s: float = 10.0
    min_queries: int = 200
    min_time_s: float = 2.0
    max_time_s: float = 30.0
    p90_rel_ci: float = 0.02
    floor_queries: int = 10
    runs: int = 3  # processes (fresh or forked) per model x runtime x precision

    def args(self) -> list[str]:
        """The rule as agent command-line arguments."""
        return [
            "--warmup-runs", str(self.warmup_runs), "--warmup-s", str(self.warmup_s),
            "--warmup-max-s", str(self.warmup_max_s), "--min-queries", str(self.min_queries),
            "--min-time-s", str(self.min_time_s), "--max-time-s", str(self.max_time_s),
            "--p90-rel-ci", str(self.p90_rel_ci), "--floor-queries", str(self.floor_queries),
        ]


@dataclass
class AgentInputs:
    """What the agent is fed besides the model: the saved frame sample and the raw frame size to preprocess."""

    frames: str | None = None
    raw_frame: str | None = None

    def args(self) -> list[str]:
        """As agent arguments."""
        return (["--frames", self.frames] if self.frames else []) + (["--raw-frame", self.raw_frame] if self.raw_frame else [])


def agent_args(
    model: str, runtime: str, profile: HardwareProfile, precision: str, input_size: int | None, rule: MeasureRule,
    inputs: AgentInputs | None = None,
) -> list[str]:
    """Arguments after ``agent.py`` for one measurement (a list: never joined into a shell string here)."""
    args = ["--model", model, "--runtime", runtime, "--threads", str(profile.threads), "--precision", precision]
    for b in profile.batch_sizes:
        args += ["--batch", str(b)]
    if input_size:
        args += ["--input-size", str(int(input_size))]
    return args + rule.args() + (inputs.args() if inputs else [])


def parse_agent_output(stdout: str, stderr: str, returncode: int) -> dict[str, Any]:
    """The agent's JSON line, or an error dict explaining what the process did instead."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    tail = (stderr.strip().splitlines() or ["(no stderr)"])[-1]
    return {"ok": False, "kind": "died", "error": f"agent exited with status {returncode} without a result: {tail}"}


def run_agent(cmd: list[str], timeout_s: float) -> dict[str, Any]:
    """One fresh agent process; its JSON or an error dict."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        result = parse_agent_output(proc.stdout, proc.stderr, proc.returncode)
    except subprocess.TimeoutExpired:
        result = {"ok": False, "error": f"agent did not finish within {timeout_s:.0f} s"}
    if not result.get("ok") and not result.get("host"):
        result["host"] = local_host()
    return result


FORK_ENV = "KDBENCH_PROFILE_FORK"
SERVER_START_S = 120.0  # for the server to import its runtime and say it is ready
SERVER_GRACE_S = 30.0  # beyond a request's timeout (the server kills the child at the timeout itself)


def fork_available() -> bool:
    """True where the agent can fork measurement children (Linux, macOS)."""
    return hasattr(os, "fork") and sys.platform.startswith(("linux", "darwin"))


def use_fork_server(fresh: bool | None = None) -> bool:
    """Fresh interpreters unless ``fresh`` is False (None: the environment's ``KDBENCH_PROFILE_FORK=1`` asks for the
    fork server)."""
    if fresh is None:
        fresh = os.environ.get(FORK_ENV, "").strip().lower() in ("", "0", "false", "no")
    return not fresh and fork_available()


def forkable(runtime: str) -> bool:
    """CPU runtimes only: a GPU context does not survive a fork, and some drivers start with the import."""
    return runtime in RUNTIMES and RUNTIMES[runtime].device.lower() == "cpu"


class ForkServer:
    """Client of one ``agent.py --serve`` process (one runtime): a JSON request line in, a result line out.

    Started on the first request, and again after it died or when the environment changed (the
    children inherit the server's, as fresh processes inherit kdbench's); its process group is
    killed on ``close``."""

    def __init__(self, python: str, runtime: str) -> None:
        self.python, self.runtime = python, runtime
        self.proc: subprocess.Popen | None = None
        self.env: dict[str, str] = {}
        self.log: Any = None
        self.buf = b""
        self.requests = 0

    def measure(self, args: list[str], timeout_s: float, test_signal: int | None = None) -> dict[str, Any]:
        """One measurement in a fresh child of the server; its JSON or an error dict."""
        if self.proc is None or self.proc.poll() is not None or self.env != dict(os.environ):
            started = self.start()
            if started is not None:
                return started
        self.requests += 1
        request = {"id": self.requests, "args": args, "timeout_s": timeout_s, "test_signal": test_signal}
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:
            pass  # a dead server: reported below
        return self._read(timeout_s + SERVER_GRACE_S) or self._died("stopped answering")

    def start(self) -> dict[str, Any] | None:
        """Start the server and wait for its ready line; None when ready, else an error dict."""
        self.close()
        self.env, self.log, self.buf = dict(os.environ), tempfile.TemporaryFile(), b""
        try:
            self.proc = subprocess.Popen([self.python, str(AGENT_PATH), "--serve", "--runtime", self.runtime],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=self.env,
                                         start_new_session=True)
        except OSError as err:
            return self._died(f"could not start ({err})")
        hello = self._read(SERVER_START_S)
        return None if hello and hello.get("ready") else self._died(f"did not start ({hello})" if hello else "did not start")

    def _read(self, timeout_s: float) -> dict[str, Any] | None:
        """The server's next JSON line, or None at its end or the timeout."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout_s
            while b"\n" not in self.buf:
                left = deadline - time.monotonic()
                chunk = os.read(fd, 65536) if left > 0 and sel.select(left) else b""
                if not chunk:
                    return None
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            return None  # not the protocol: treated as a server that stopped answering

    def _died(self, what: str) -> dict[str, Any]:
        """Stop the server; an error dict with what it said last."""
        tail = "(no stderr)"
        if self.log is not None:
            self.log.seek(0)
            tail = (self.log.read().decode(errors="replace").strip().splitlines() or [tail])[-1]
        self.close(kill=True)
        return {"ok": False, "kind": "died", "error": f"fork server for {self.runtime} {what}: {tail}"}

    def close(self, kill: bool = False) -> None:
        """End the server (closing its input ends it; ``kill`` or a server that lingers: its process group)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                _close_quietly(self.proc.stdin)
                try:
                    self.proc.wait(timeout=0 if kill else 5)
                except subprocess.TimeoutExpired:
                    _kill_group(self.proc)
            _close_quietly(self.proc.stdout)
            _close_quietly(self.proc.stdin)
            self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None


def _close_quietly(stream: Any) -> None:
    """Close a pipe; a broken one is already closed enough."""
    try:
        if stream is not None:
            stream.close()
    except OSError:
        pass


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL a server started in its own session, with its children, and reap it."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


class Measurer:
    """Runs one measurement the configured way: a fork server per runtime, or a fresh interpreter."""

    def __init__(self, python: str | None = None, fresh: bool | None = None) -> None:
        self.python = python or sys.executable
        self.fork = use_fork_server(fresh)
        self.servers: dict[str, ForkServer] = {}

    def __call__(self, runtime: str, args: list[str], timeout_s: float) -> dict[str, Any]:
        """The agent's result for one run (``args`` as ``agent_args`` builds them)."""
        if not (self.fork and forkable(runtime)):
            return run_agent([self.python, str(AGENT_PATH), *args], timeout_s)
        result = self.servers.setdefault(runtime, ForkServer(self.python, runtime)).measure(args, timeout_s)
        if not result.get("ok") and not result.get("host"):
            result["host"] = local_host()
        return result

    def close(self) -> None:
        """Stop every server."""
        for server in self.servers.values():
            server.close()
        self.servers.clear()

    def __enter__(self) -> "Measurer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_local(
    entries: list[ModelEntry],
    profile: HardwareProfile,
    rule: MeasureRule | None = None,
    python: str | None = None,
    on_records: Callable[[list[dict[str, Any]]], None] | None = None,
    on_step: Callable[[str], None] | None = None,
    timeout_s: float = 600.0,
    inputs: AgentInputs | None = None,
    fresh: bool | None = None,
) -> list[dict[str, Any]]:
    """Measure every model with every applicable runtime of the profile on this machine, ``rule.runs`` times each.

    ``fresh``: True runs each in a new interpreter, False through a fork server, None as ``KDBENCH_PROFILE_FORK``
    says (fresh interpreters unless set)."""
    rule = rule or MeasureRule()
    with Measurer(python, fresh) as measurer:
        out: list[dict[str, Any]] = []
        shared = SharedPreprocess(inputs)
        for entry in entries:
            for recs in _entry_records(entry, profile, rule, measurer, on_step, timeout_s, shared):
                out.extend(recs)
                if on_records:
                    on_records(recs)
        return out


class SharedPreprocess:
    """The raw frame's preprocessing (numpy only: it depends on the input size, not on the model or runtime) timed
    once per input size in a command and given to every later run at that size, instead of 0.5 s again per run."""

    def __init__(self, inputs: AgentInputs | None) -> None:
        self.inputs, self.timed = inputs, {}

    def inputs_for(self, input_size: int | None) -> AgentInputs | None:
        """The agent's inputs for a run at ``input_size``: without the raw frame once that size was timed."""
        if self.inputs is None or input_size is None or int(input_size) not in self.timed:
            return self.inputs
        return AgentInputs(frames=self.inputs.frames, raw_frame=None)

    def fill(self, result: dict[str, Any]) -> dict[str, Any]:
        """Remember a run's own timing, or give the run the one of its size (marked ``shared``)."""
        size = result.get("input_size")
        if size is None or self.inputs is None or not self.inputs.raw_frame:
            return result
        if result.get("preprocess"):
            self.timed.setdefault(int(size), result["preprocess"])
        elif int(size) in self.timed:
            result["preprocess"] = {**self.timed[int(size)], "shared": True}
        return result


def _entry_records(
    entry: ModelEntry, profile: HardwareProfile, rule: MeasureRule, measurer: Measurer,
    on_step: Callable[[str], None] | None, timeout_s: float, shared: SharedPreprocess,
):
    """Yield one model's records, runtime x precision by runtime x precision: ``rule.runs`` runs each."""
    runtimes = runtimes_for(entry, profile)
    if not runtimes:
        yield [failed_record(
            entry, profile, "-", entry.precision, "local",
            f"no runtime of profile {profile.name} {list(profile.runtimes)} reads {entry.fmt} files", local_host())]
        return
    for runtime in runtimes:
        for precision in precisions_for(entry, runtime, profile):
            if on_step:
                on_step(f"{entry.variant_id} / {runtime} / {precision}")
            results = []
            for _ in range(max(1, rule.runs)):
                args = agent_args(str(entry.path), runtime, profile, precision, entry.input_size, rule,
                                  shared.inputs_for(entry.input_size))
                results.append(shared.fill(measurer(runtime, args, timeout_s)))
            yield records_from_runs(results, entry, profile, runtime, precision, "local")
