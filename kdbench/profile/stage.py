"""``kdbench profile`` as a library call: the models of an export folder measured on a target (locally, over ssh) or
estimated for it, the records merged into ``<out>/<target>/results.json``. The CLI parses and prints around it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from kdbench.errors import ConfigError
from kdbench.profile.hardware import RUNTIMES, HardwareProfile, load_profile
from kdbench.profile.inputs import frame_sample
from kdbench.profile.local import AgentInputs, MeasureRule, run_local
from kdbench.profile.results import (ModelEntry, ResultsWriter, discover_models, precisions_for, require_ok,
                                     runtimes_for)

Records = Callable[[list[dict[str, Any]]], None]


@dataclass
class ProfileRun:
    """What a profiling run wrote: its new records (results.json form), where, how, and what to tell the user."""

    records: list[dict[str, Any]]
    path: Path
    method: str  # local | remote | estimated
    title: str  # a heading for the records' table
    notes: list[str] = field(default_factory=list)  # what to say after the table (an estimate's error band)
    inputs: str | None = None  # where the measured frames came from


def target_profile(target: str, threads: int | None = None, runtimes: str | tuple[str, ...] | None = None,
                   batch_sizes: str | tuple[int, ...] | None = None) -> HardwareProfile:
    """The hardware profile with the thread count, runtimes and batch sizes overridden where given (ConfigError
    when wrong)."""
    prof = load_profile(target)
    if batch_sizes:
        prof = dataclasses.replace(prof, batch_sizes=parse_batch_sizes(batch_sizes))
    if threads is not None:
        if threads < 0:
            raise ConfigError(f"--threads {threads}: expected >= 0")
        prof = dataclasses.replace(prof, threads=threads)
    if runtimes:
        text = runtimes if isinstance(runtimes, str) else ",".join(runtimes)
        chosen = tuple(r.strip() for r in text.split(",") if r.strip())
        bad = [r for r in chosen if r not in RUNTIMES]
        if bad or not chosen:
            raise ConfigError(f"--runtimes {text!r}: unknown {bad}; expected some of {list(RUNTIMES)}")
        prof = dataclasses.replace(prof, runtimes=chosen)
    return prof


def parse_batch_sizes(value: str | tuple[int, ...]) -> tuple[int, ...]:
    """``--batch-sizes 1,8`` as sorted distinct whole numbers, 1 among them (the single-stream latency every
    verdict reads); ConfigError naming the value."""
    text = value if isinstance(value, str) else ",".join(str(v) for v in value)
    try:
        sizes = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        sizes = []
    if not sizes or sizes[0] != 1:
        raise ConfigError(f"--batch-sizes {text!r}: expected comma-separated whole numbers >= 1 including 1, e.g. 1,8")
    return tuple(sizes)


def planned_steps(entries: list[ModelEntry], prof: HardwareProfile) -> int:
    """How many (model, runtime, precision) measurements a run makes (a progress bar's total)."""
    return sum(len(precisions_for(e, rt, prof)) for e in entries for rt in runtimes_for(e, prof)) or len(entries)


def profile_models(target: str, export: str | Path = "export", out: str | Path = "profiles", *,
                   remote: str | None = None, remote_python: str | None = None, ssh_config: str | Path | None = None,
                   estimate: bool = False, calibration: str | None = None, input_size: int | None = None,
                   threads: int | None = None, runtimes: str | tuple[str, ...] | None = None,
                   batch_sizes: str | tuple[int, ...] | None = None, rule: MeasureRule | None = None, frames: str | Path | None = None, raw_frame: str = "768x1024x3",
                   fresh: bool | None = None, on_plan: Callable[[int], None] | None = None,
                   on_step: Callable[[str], None] | None = None, on_records: Records | None = None,
                   on_inputs: Callable[[str], None] | None = None,
                   on_done: Callable[[ProfileRun], None] | None = None) -> ProfileRun:
    """Profile the models of ``export`` on ``target``; ConfigError when nothing at all could be measured (after
    ``on_done(run)``: the records are written). ``on_inputs(where the frames come from)``, ``on_plan(steps)``,
    ``on_step(description)`` and ``on_records(records)`` report progress."""
    from kdbench.checks import ensure_writable_dir

    prof = target_profile(target, threads, runtimes, batch_sizes)
    rule = rule or MeasureRule()
    if rule.runs < 1:
        raise ConfigError(f"--runs {rule.runs}: expected >= 1")
    entries = discover_models(export)
    for e in entries:
        if e.input_size is None and input_size is not None:
            e.input_size = input_size
    method = "estimated" if estimate else ("remote" if remote else "local")
    ensure_writable_dir(Path(out) / prof.name, "--out")  # before any measurement, not after
    writer = ResultsWriter(out, prof, {"method": method, "models": str(export), "rule": dataclasses.asdict(rule)})
    ssh = (remote, remote_python, ssh_config)
    if estimate:
        run = _estimate(entries, prof, calibration, Path(out), writer)
        if on_records:
            on_records(run.records)
        if remote:  # measure when unsure: the models whose estimate band straddles a constraint
            unsure = unsure_entries(entries, run.records)
            run.notes.append(f"measured on {remote}: {len(unsure)} of {len(entries)} model(s) whose estimated band "
                             "straddles a constraint (the leaderboard uses the measurement)")
            if unsure:
                inputs = _inputs(unsure, prof, frames, export, writer, raw_frame, on_inputs, on_plan)[0]
                _measure(unsure, prof, writer, rule, ssh, inputs, fresh, on_step, on_records)
                run.records = writer.new
    else:
        inputs, note = _inputs(entries, prof, frames, export, writer, raw_frame, on_inputs, on_plan)
        run = ProfileRun(writer.new, writer.path, method, f"{prof.name}: measured ({method})", inputs=note)
        _measure(entries, prof, writer, rule, ssh, inputs, fresh, on_step, on_records)
    if on_done:
        on_done(run)
    require_ok(run.records, f"estimate for {prof.name}" if estimate else f"profile {prof.name} ({method})")
    return run


def unsure_entries(entries: list[ModelEntry], records: list[dict[str, Any]]) -> list[ModelEntry]:
    """The models with an estimated record whose verdict is ``uncertain`` (a band straddles a limit)."""
    unsure = {r.get("variant_id") for r in records if (r.get("constraints") or {}).get("status") == "uncertain"}
    return [e for e in entries if e.variant_id in unsure]


def _inputs(entries: list[ModelEntry], prof: HardwareProfile, frames: str | Path | None, export: str | Path,
            writer: ResultsWriter, raw_frame: str, on_inputs: Callable[[str], None] | None,
            on_plan: Callable[[int], None] | None) -> tuple[AgentInputs, str]:
    """The measurement's input frames (and where they come from), reported with the planned steps."""
    sample, note = frame_sample(Path(frames) if frames else None, Path(export), writer.path.parent)
    for report, value in ((on_inputs, note), (on_plan, planned_steps(entries, prof))):
        if report:
            report(value)
    return AgentInputs(str(sample) if sample else None, raw_frame), note


def _estimate(entries: list[ModelEntry], prof: HardwareProfile, calibration: str | None, out: Path,
              writer: ResultsWriter) -> ProfileRun:
    """Estimated records of every model with the target's (or the given) calibration."""
    from kdbench.profile.estimate import estimate_records, find_calibration

    cal_name = calibration or prof.calibration
    if not cal_name:
        raise ConfigError(f"hardware profile {prof.path}: no [estimate] calibration; pass --calibration NAME|PATH")
    cal = find_calibration(cal_name, out)
    records = estimate_records(entries, prof, cal)
    writer.add(records)
    bands = ", ".join(f"{p} ±{b:.0f}%" for p, b in cal.error_band_pct.items())
    return ProfileRun(records, writer.path, "estimated", f"{prof.name}: ESTIMATED (not measured), calibration {cal.path}",
                      [f"[yellow]estimated[/]: every figure is a model prediction, expected error {bands} ({cal.source})"])


def _measure(entries: list[ModelEntry], prof: HardwareProfile, writer: ResultsWriter, rule: MeasureRule,
             ssh: tuple[str | None, str | None, str | Path | None], inputs: AgentInputs, fresh: bool | None,
             on_step: Callable[[str], None] | None, on_records: Records | None) -> None:
    """Measure every model, locally or over ssh (``(user@host, python, ssh config)``; no host: here); each model's
    records are written as soon as it is done."""
    remote, remote_python, ssh_config = ssh
    def add(recs: list[dict[str, Any]]) -> None:
        writer.add(recs)
        if on_records:
            on_records(recs)

    if remote:
        from kdbench.profile.remote import SshTarget, run_remote

        run_remote(entries, prof, SshTarget(remote, str(ssh_config) if ssh_config else None),
                   python=remote_python or prof.remote_python, rule=rule, on_records=add, on_step=on_step, inputs=inputs)
    else:
        run_local(entries, prof, rule=rule, on_records=add, on_step=on_step, inputs=inputs, fresh=fresh)
