"""`kdbench export`: turn candidate students into the files they ship as, each re-evaluated in its runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from kdbench.cli.console import console
from kdbench.cli.options import RUN_DIR_HELP, STUDY_HELP, deprecated_option, study_location, take_deprecated
from kdbench.cli.tables import print_table


def command(
    store: Path = typer.Option(..., help="Frame store (from `kdbench data prepare`): calibration frames and the val/test splits every variant is scored on."),
    checkpoint: Path = typer.Option(None, help="Export one checkpoint (.pt); its run directory's metrics.json is used when beside it."),
    run: Path = typer.Option(None, help="Export one training run directory (best.pt + metrics.json)."),
    study: str = typer.Option(None, "--study", help="Export a study's best configurations (its best trial per student and method, ranked on validation): " + STUDY_HELP),
    run_dir: Path = typer.Option(Path("runs"), "--run-dir", help=RUN_DIR_HELP),
    study_dir: str = deprecated_option("--study-dir", "--study DIR"),
    top: int = typer.Option(3, help="With --study naming a plain folder of training runs (no study.json): how many of the best (on validation) to export."),
    teacher: Path = typer.Option(None, help="Teacher (.pt or .onnx) whose cached logits the pruning fine-tune distils from; default: the one in the run's metrics.json."),
    out: Path = typer.Option(..., "--out", "-o", help="Export directory: <candidate>/<variant> files and manifest.json."),
    int8: str = typer.Option("ort,openvino", help="int8 backends, comma-separated: ort (ONNX Runtime QDQ), openvino (NNCF, OpenVINO IR); '' for none."),
    prune: str = typer.Option("", help="Structured pruning ratios of channels, comma-separated, e.g. 0.3,0.5; '' for none."),
    fp16: bool = typer.Option(False, "--fp16/--no-fp16", help="Also write an fp16 ONNX model (for GPU targets)."),
    finetune_epochs: int = typer.Option(2, help="Fine-tune epochs after pruning (same method and teacher logits as the candidate)."),
    finetune_batch_size: int = typer.Option(None, help="Fine-tune batch size; default: the candidate's training batch size."),
    calibration_frames: int = typer.Option(256, help="Training frames used to calibrate int8 quantisation."),
    parity_tol: float = typer.Option(1e-4, help="Absolute part of the PyTorch/ONNX fp32 logit difference allowed."),
    parity_rtol: float = typer.Option(1e-3, help="Relative part: allowed = parity-tol + parity-rtol x the largest |logit|."),
    max_drop: float = typer.Option(0.10, help="A variant losing more validation accuracy than this vs fp32 (0.10 = 10 points) is marked failed."),
    opset: int = typer.Option(18, help="ONNX opset (17 or newer)."),
    force: bool = typer.Option(False, "--force/--no-force", help="Redo every variant, even those already in the manifest with the same inputs."),
) -> None:
    """Export candidates as ONNX fp32, int8 (ONNX Runtime, OpenVINO), fp16 and pruned variants, each scored in its runtime."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kdbench.checks import ensure_writable_dir
    from kdbench.models.checkpoint import verify_checkpoint
    from kdbench.data.store import FrameStore
    from kdbench.errors import ConfigError
    from kdbench.export.candidates import resolve_candidates
    from kdbench.export.pipeline import ExportOptions, export_candidates
    from kdbench.export.prune import parse_ratios

    if opset < 17:
        raise ConfigError(f"--opset {opset}: expected 17 or newer")
    frames = FrameStore.open(store)
    study = take_deprecated(study_dir, study, "--study-dir", "--study")
    folder = None if study is None else Path(*study_location(study, run_dir))
    candidates = resolve_candidates(checkpoint, run, folder, top=top)
    for cand in candidates:  # a damaged checkpoint is bad input, not a failed variant
        verify_checkpoint(cand.checkpoint)
    ensure_writable_dir(out, "--out", need_mb=20)
    options = ExportOptions(
        int8=tuple(b.strip() for b in int8.split(",") if b.strip()), prune=tuple(parse_ratios(prune)), fp16=fp16,
        finetune_epochs=finetune_epochs, finetune_batch_size=finetune_batch_size,
        calibration_frames=calibration_frames, parity_tol=parity_tol, parity_rtol=parity_rtol, max_drop=max_drop, opset=opset,
    )
    plan = options.variants()
    console.print(f"exporting {len(candidates)} candidate(s) x {len(plan)} variant(s) ({', '.join(plan)}) "
                  f"into {out}", highlight=False)
    # Own console: NNCF draws its own rich progress bar on the default console while we run.
    bar_console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=bar_console) as bar:
        task = bar.add_task("export", total=len(candidates) * len(plan))

        def on_start(cid: str, variant: str) -> None:
            bar.update(task, description=f"{cid}/{variant}")

        def on_done(rec: dict[str, Any]) -> None:
            bar.advance(task)

        manifest = export_candidates(candidates, frames, out, options, teacher=teacher, force=force,
                                     on_start=on_start, on_done=on_done)
    ids = {f"{c.id}/{v}" for c in candidates for v in plan}
    records = [r for r in manifest["variants"] if r["id"] in ids]
    print_table(variants_table(records))
    for r in records:
        if r["status"] != "ok":
            console.print(f"[red]{r['id']}[/]: {r['reason']}", highlight=False)
    n_failed = sum(r["status"] != "ok" for r in records)
    n_resumed = sum(bool(r.get("resumed")) for r in records)
    console.print(f"{len(records) - n_failed} ok, {n_failed} failed, {n_resumed} resumed from an earlier export",
                  highlight=False)
    console.print(f"wrote {Path(out) / 'manifest.json'}")
    if records and n_failed == len(records):
        console.print(f"[bold red]error:[/] every variant failed ({n_failed}); nothing to profile or rank", highlight=False)
        raise typer.Exit(1)


def variants_table(records: list[dict[str, Any]]):
    """A rich table of exported variants: status, accuracies, size, params, MACs, parity."""
    from rich.table import Table

    table = Table(title="exported variants")
    table.add_column("variant", overflow="fold")
    for col in ("status", "val acc", "test acc", "size MB", "params", "MACs", "max abs diff"):
        table.add_column(col, justify="left" if col == "status" else "right")
    for r in records:
        m = r.get("metrics") or {}
        status = "[green]ok[/]" if r["status"] == "ok" else "[red]failed[/]"
        if r.get("resumed"):
            status += " (resumed)"
        table.add_row(
            r["id"], status, _pct((m.get("val") or {}).get("accuracy")), _pct((m.get("test") or {}).get("accuracy")),
            "-" if r.get("size_mb") is None else f"{r['size_mb']:.2f}",
            "-" if r.get("params") is None else f"{r['params'] / 1e6:.2f}M",
            "-" if r.get("macs") is None else f"{r['macs'] / 1e6:.1f}M",
            "-" if r.get("max_abs_diff") is None else f"{r['max_abs_diff']:.1e}",
        )
    return table


def _pct(value: float | None) -> str:
    """An accuracy as a percentage, or '-'."""
    return "-" if value is None else f"{100 * value:.1f}%"
