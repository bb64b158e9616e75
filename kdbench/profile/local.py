"""Local measurement: every model x runtime in ``runs`` (3) fresh Python subprocesses running the agent.

The record is the median of the runs' p50s with their spread (``results.records_from_runs``): one
process can land on a bad core placement, a busy neighbour or a cold cache, and a single run cannot
show it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    runs: int = 3  # fresh processes per model x runtime x precision

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


def _run_agent(cmd: list[str], timeout_s: float) -> dict[str, Any]:
    """One fresh agent process; its JSON or an error dict."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        result = parse_agent_output(proc.stdout, proc.stderr, proc.returncode)
    except subprocess.TimeoutExpired:
        result = {"ok": False, "error": f"agent did not finish within {timeout_s:.0f} s"}
    if not result.get("ok") and not result.get("host"):
        result["host"] = local_host()
    return result


def run_local(
    entries: list[ModelEntry],
    profile: HardwareProfile,
    rule: MeasureRule | None = None,
    python: str | None = None,
    on_records: Callable[[list[dict[str, Any]]], None] | None = None,
    on_step: Callable[[str], None] | None = None,
    timeout_s: float = 600.0,
    inputs: AgentInputs | None = None,
) -> list[dict[str, Any]]:
    """Measure every model with every applicable runtime of the profile on this machine, ``rule.runs`` times each."""
    rule = rule or MeasureRule()
    python = python or sys.executable
    out: list[dict[str, Any]] = []
    for entry in entries:
        runtimes = runtimes_for(entry, profile)
        if not runtimes:
            recs = [failed_record(entry, profile, "-", entry.precision, "local",
                                  f"no runtime of profile {profile.name} {list(profile.runtimes)} reads {entry.fmt} files",
                                  local_host())]
            out.extend(recs)
            if on_records:
                on_records(recs)
            continue
        for runtime in runtimes:
            for precision in precisions_for(entry, runtime, profile):
                if on_step:
                    on_step(f"{entry.variant_id} / {runtime} / {precision}")
                cmd = [python, str(AGENT_PATH)] + agent_args(
                    str(entry.path), runtime, profile, precision, entry.input_size, rule, inputs
                )
                results = [_run_agent(cmd, timeout_s) for _ in range(max(1, rule.runs))]
                recs = records_from_runs(results, entry, profile, runtime, precision, "local")
                out.extend(recs)
                if on_records:
                    on_records(recs)
    return out
