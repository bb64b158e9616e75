"""`kdbench profile`: measure exported variants on a target (local, over ssh, or estimated)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from kdbench.cli.tables import print_table
from kdbench.cli.options import complete_target, deprecated_option, take_deprecated

app = typer.Typer(
    help=(
        "Measure every variant on a hardware target: locally (each model in a fresh subprocess), on a "
        "remote target over ssh, or -- when the target is absent -- estimated from the model's layers "
        "with calibrated constants (always labelled as estimated, with its error band)."
    ),
    invoke_without_command=True,
    no_args_is_help=False,
)


@app.callback(invoke_without_command=True)
def profile(
    ctx: typer.Context,
    target: Optional[str] = typer.Option(
        None, "--target", "-t", autocompletion=complete_target, help="Hardware profile: a name in hardware_profiles/ (x86, gpu, rpi4) or a path to a .toml file."
    ),
    export: Optional[Path] = typer.Option(
        None, "--export", help="Export folder written by `kdbench export` (with manifest.json), or any folder of "
        "*.onnx / *.xml (+.bin) / *.pt2 files. [default: export]",
    ),
    models: Optional[Path] = deprecated_option("--models", "--export", "-m"),
    out: Path = typer.Option(Path("profiles"), "--out", "-o", help="Results folder: writes <out>/<target>/results.json."),
    remote: Optional[str] = typer.Option(
        None, "--remote", help="Measure on user@host (or an ssh Host alias) over ssh with your ssh config and keys."
    ),
    remote_python: Optional[str] = typer.Option(
        None, "--remote-python", help="Python on the remote target that has numpy and the runtime (default: the profile's, else python3)."
    ),
    ssh_config: Optional[Path] = typer.Option(None, "--ssh-config", help="ssh config file to use instead of ~/.ssh/config."),
    estimate: bool = typer.Option(
        False, "--estimate/--measure", help="Do not measure: estimate latency from the model's layers with the target's calibration (--measure, the default: time the models)."
    ),
    calibration: Optional[str] = typer.Option(
        None, "--calibration", help="Calibration name or JSON path for --estimate (default: the profile's, preferring <out>/calibration/<name>.json)."
    ),
    input_size: Optional[int] = typer.Option(None, "--input-size", help="Input size for models whose spatial size is dynamic."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Override the profile's thread count."),
    min_queries: int = typer.Option(200, "--min-queries", help="Timed batch-1 queries at least (measurement rule)."),
    min_time: float = typer.Option(2.0, "--min-time", help="Timed seconds at least per batch size (measurement rule)."),
    max_time: float = typer.Option(30.0, "--max-time", help="Timed seconds at most per batch size (measurement rule)."),
    p90_ci: float = typer.Option(0.02, "--p90-ci", help="Stop once the p90's 95% CI half-width is below this fraction."),
    warmup: float = typer.Option(1.0, "--warmup", help="Untimed warm-up seconds (and at least 10 queries)."),
    runs: int = typer.Option(3, "--runs", help="Fresh processes per model x runtime (median of their p50s, spread recorded)."),
    frames: Optional[Path] = typer.Option(
        None, "--frames", help="Input frames: a prepared store folder or a uint8 [N,S,S] .npy (default: the export manifest's store)."
    ),
    raw_frame: str = typer.Option(
        "768x1024x3", "--raw-frame", help="HxWxC of the source's raw frames: preprocessing (grey, crop, resize, mask) is timed on one."
    ),
    runtimes: Optional[str] = typer.Option(
        None, "--runtimes", help="Comma-separated runtimes instead of the profile's, e.g. openvino,openvino-bf16."
    ),
    fresh: Optional[bool] = typer.Option(
        None, "--fresh-interpreters/--fork-server",
        help="How each local run's process is made: a new Python interpreter per run, or a child forked from one "
        "server per runtime that imported it once (Linux and macOS; also KDBENCH_PROFILE_FORK=1). Fresh interpreters "
        "are the default: forked runs spread more between runs in the demo. --remote always starts fresh interpreters.",
    ),
) -> None:
    """Profile the models in --export on --target (see `kdbench profile --help`)."""
    if ctx.invoked_subcommand is not None:
        return
    models = take_deprecated(models, export, "--models", "--export") or Path("export")
    if target is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(code=2)
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from kdbench.api import profile_models
    from kdbench.profile.local import MeasureRule
    from kdbench.profile.results import render_table

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    rule = MeasureRule(warmup_s=warmup, min_queries=min_queries, min_time_s=min_time, max_time_s=max_time, p90_rel_ci=p90_ci,
                       runs=runs)
    done: list[dict] = []
    shown: list[bool] = []

    def show(run: Any) -> None:
        print_table(render_table(run.records, run.title), console)
        for line in run.notes:
            console.print(line)
        console.print(f"wrote {run.path}")
        shown.append(True)

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("profiling", total=None)

        def on_records(recs: list) -> None:
            done.extend(recs)
            progress.advance(task)

        try:
            profile_models(target, models, out, remote=remote, remote_python=remote_python, ssh_config=ssh_config,
                           estimate=estimate, calibration=calibration, input_size=input_size, threads=threads,
                           runtimes=runtimes, rule=rule, frames=frames, raw_frame=raw_frame, fresh=fresh,
                           on_inputs=lambda note: console.print(f"inputs: {note}"),
                           on_plan=lambda steps: progress.update(task, total=steps),
                           on_step=lambda desc: progress.update(task, description=desc), on_records=on_records,
                           on_done=lambda run: (progress.stop(), show(run)))
        finally:
            progress.stop()
            if done and not shown:  # stopped part-way: what was measured is written and shown
                print_table(render_table(done, f"{target}: measured before the stop"), console)


@app.command("calibrate")
def calibrate(
    target: str = typer.Option(..., "--target", "-t", autocompletion=complete_target, help="Hardware profile name or path (gives the core's GMAC/s and threads)."),
    results: Optional[Path] = typer.Option(
        None, "--results", "-r", help="Your measurements: a results.json from `kdbench profile`, or a CSV model,input,latency_ms[,threads,precision]."
    ),
    export: Optional[Path] = typer.Option(None, "--export", help="Folder with the measured model files (to read their layers), e.g. the export folder."),
    models: Optional[Path] = deprecated_option("--models", "--export", "-m"),
    out: Path = typer.Option(Path("profiles"), "--out", "-o", help="Writes <out>/calibration/<target>.json, which --estimate then prefers."),
    reference: bool = typer.Option(True, "--reference/--no-reference", help="Also fit on the published reference rows."),
    reference_csv: Optional[Path] = typer.Option(
        None, "--reference-csv", help="Published rows from this CSV (architectures not in the shipped features are exported; slow)."
    ),
) -> None:
    """Fit the latency estimator's constants for a target and report leave-one-architecture-out errors."""
    from rich.console import Console
    from rich.table import Table

    from kdbench.errors import ConfigError
    from kdbench.profile.calibrate import build_calibration, reference_rows, user_rows, write_calibration
    from kdbench.profile.estimate import REFERENCE_CSV, find_calibration
    from kdbench.profile.hardware import load_profile

    models = take_deprecated(models, export, "--models", "--export")
    console = Console()
    prof = load_profile(target)
    if "clock_ghz" not in prof.cpu or "fma_per_cycle" not in prof.cpu:
        raise ConfigError(f"hardware profile {prof.path}: calibrating needs cpu.clock_ghz and cpu.fma_per_cycle")
    core = float(prof.cpu["clock_ghz"]) * float(prof.cpu["fma_per_cycle"])
    threads = prof.threads or int(prof.cpu.get("cores", 1))
    ref_rows, sources, memory = [], [], {}
    shipped = None
    try:
        shipped = find_calibration(prof.calibration or prof.name)
        memory = {rt: m.to_dict() for rt, m in shipped.memory.items()}
    except ConfigError:
        pass
    if reference:
        csv_path = reference_csv or REFERENCE_CSV
        ref_rows = reference_rows(csv_path, (shipped.data or {}).get("reference_features") if shipped else None)
        sources.append(str(csv_path) if reference_csv else shipped.source if shipped else str(csv_path))
    usr = user_rows(results, models, prof.name, threads) if results is not None else []
    if usr:
        sources.append(f"user measurements {results}")
    data = build_calibration(prof.name, core, threads, ref_rows, usr, "; ".join(sources), memory)
    path = write_calibration(Path(out) / "calibration" / f"{prof.name}.json", data)
    table = Table(title=f"{prof.name} calibration: leave-one-architecture-out (fit on the others, predict its rows)")
    for col in ("row", "observed ms", "predicted ms", "error %"):
        table.add_column(col, justify="left" if col == "row" else "right")
    for e in data["leave_one_architecture_out"]:
        table.add_row(e["model"], f"{e['observed_ms']:.2f}", f"{e['predicted_ms']:.2f}", f"{e['error_pct']:+.1f}")
    print_table(table, console)
    for prec, m in data["loao_summary"].items():
        console.print(f"{prec}: n={m['n']} median |error| {m['median_abs_pct']:.1f}%, within ±10% {m['within_10_pct']:.0f}%, "
                      f"within ±25% {m['within_25_pct']:.0f}%, band ±{data['error_band_pct'][prec]:.0f}%")
    console.print("constants: " + ", ".join(f"{k}={v:.4g}" for k, v in data["constants"].items()))
    console.print(f"({data['proxy']['note']})")
    console.print(f"wrote {path}")
