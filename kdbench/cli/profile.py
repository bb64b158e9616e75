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
        False, "--estimate/--measure", help="Do not measure: estimate latency from the model's layers with the target's calibration (--measure, the default: time the models). With --remote: estimate all, then measure on the target only the models whose estimated band straddles a constraint."
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
    batch_sizes: Optional[str] = typer.Option(
        None, "--batch-sizes", help="Comma-separated batch sizes instead of the profile's, e.g. 1 (the leaderboard "
        "reads batch 1 only; larger batches give the throughput column of this command's table).",
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
                           runtimes=runtimes, batch_sizes=batch_sizes, rule=rule, frames=frames, raw_frame=raw_frame, fresh=fresh,
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
    kernels: bool = typer.Option(
        False, "--kernels/--no-kernels",
        help="Time a micro-benchmark suite of the students' kernels (conv, depthwise, pointwise, SE, activations, "
             "pooling, fc at 32-224 px shapes) and 16 calibration models on the device (this host, or --remote), "
             "then price fp32 ONNX graphs kernel by kernel. About 1-3 minutes here, longer on a Pi.",
    ),
    remote: Optional[str] = typer.Option(None, "--remote", help="--kernels: time the suite on user@host over ssh (the profile agent's path)."),
    remote_python: Optional[str] = typer.Option(None, "--remote-python", help="--kernels --remote: Python on the target with numpy and onnxruntime."),
    ssh_config: Optional[Path] = typer.Option(None, "--ssh-config", help="--remote: ssh config file to use."),
) -> None:
    """Fit the latency estimator for a target and report its leave-one-architecture-out errors.

    Without --kernels: the per-class constants from published rows and/or your measurements. With --kernels:
    a kernel-level model measured on the device (nn-Meter's approach), which --estimate then uses for fp32
    ONNX Runtime graphs; the per-class constants are refitted on the same measured models for the rest."""
    from rich.console import Console
    from rich.table import Table

    from kdbench.profile.calibrate import calibrate_target
    from kdbench.profile.kernel_memory import MemoryModel

    console = Console()
    models = take_deprecated(models, export, "--models", "--export")
    data, path = calibrate_target(target, results, models, out, reference, reference_csv, kernels=kernels,
                                  remote=remote, remote_python=remote_python, ssh_config=ssh_config,
                                  on_step=lambda msg: console.print(msg))
    for title, key in (("leave-one-architecture-out (fit on the others, predict its rows)", "leave_one_architecture_out"),
                       ("kernel level, whole models measured beside the suite (not fitted on)", None)):
        rows = data["leave_one_architecture_out"] if key else (data.get("kernels") or {}).get("validation") or []
        if not rows:
            continue
        table = Table(title=f"{data['target']} calibration: {title}")
        for col in ("row", "observed ms", "predicted ms", "error %"):
            table.add_column(col, justify="left" if col == "row" else "right")
        for e in rows:
            table.add_row(e["model"], f"{e['observed_ms']:.3f}", f"{e['predicted_ms']:.3f}", f"{e['error_pct']:+.1f}")
        print_table(table, console)
    for prec, m in data["loao_summary"].items():
        console.print(f"per-class {prec}: n={m['n']} median |error| {m['median_abs_pct']:.1f}%, within ±10% {m['within_10_pct']:.0f}%, "
                      f"within ±25% {m['within_25_pct']:.0f}%, band ±{data['error_band_pct'][prec]:.0f}%")
    if data.get("kernels"):
        k = data["kernels"]
        console.print(f"kernel level: {k['suite']['kernels']} kernels and {len(k['suite']['calibration_models'])} models "
                      f"timed in {k['suite']['timing_wall_s']} s; band ±{k['band_pct']:.0f}% (fp32 ONNX Runtime, batch 1)")
        if k["model"].get("node_us"):
            console.print(f"kernel level, dispatch: each further kernel {k['model']['node_us']:.2f} us")
        if k["model"].get("memory"):
            console.print(f"kernel level, memory: {MemoryModel.from_dict(k['model']['memory']).describe()}")
    console.print("constants: " + ", ".join(f"{k}={v:.4g}" for k, v in data["constants"].items()))
    console.print(f"({data['proxy']['note']})")
    console.print(f"wrote {path}")
