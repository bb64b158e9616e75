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

    from kdbench.api import export_variants
    from kdbench.export.pipeline import ExportOptions
    from kdbench.export.prune import parse_ratios

    options = ExportOptions(
        int8=tuple(b.strip() for b in int8.split(",") if b.strip()), prune=tuple(parse_ratios(prune)), fp16=fp16,
        finetune_epochs=finetune_epochs, finetune_batch_size=finetune_batch_size,
        calibration_frames=calibration_frames, parity_tol=parity_tol, parity_rtol=parity_rtol, max_drop=max_drop, opset=opset,
    )
    study = take_deprecated(study_dir, study, "--study-dir", "--study")
    folder = None if study is None else Path(*study_location(study, run_dir))
    # Own console: NNCF draws its own rich progress bar on the default console while we run.
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True)) as bar:
        task = bar.add_task("export", total=None)
        ids: set[str] = set()

        def on_plan(candidates: list[Any], plan: list[str]) -> None:
            ids.update(f"{c.id}/{v}" for c in candidates for v in plan)
            console.print(f"exporting {len(candidates)} candidate(s) x {len(plan)} variant(s) ({', '.join(plan)}) "
                          f"into {out}", highlight=False)
            bar.update(task, total=len(candidates) * len(plan))

        manifest = export_variants(store, out, checkpoint=checkpoint, run=run, study=folder, top=top, options=options,
                                   teacher=teacher, force=force, on_plan=on_plan,
                                   on_start=lambda cid, variant: bar.update(task, description=f"{cid}/{variant}"),
                                   on_done=lambda rec: bar.advance(task))
    _report([r for r in manifest.variants if r.id in ids], out)


def _report(records: list[Any], out: Path) -> None:
    """Print this run's variant records, their failures and the totals; exit 1 when every one failed."""
    print_table(variants_table(records))
    for r in records:
        if r.status != "ok":
            console.print(f"[red]{r.id}[/]: {r.reason}", highlight=False)
    n_failed = sum(r.status != "ok" for r in records)
    n_resumed = sum(bool(r.resumed) for r in records)
    console.print(f"{len(records) - n_failed} ok, {n_failed} failed, {n_resumed} resumed from an earlier export",
                  highlight=False)
    console.print(f"wrote {Path(out) / 'manifest.json'}")
    if records and n_failed == len(records):
        console.print(f"[bold red]error:[/] every variant failed ({n_failed}); nothing to profile or rank", highlight=False)
        raise typer.Exit(1)


def variants_table(records: list[Any]):
    """A rich table of exported variants (kdbench.export_manifest.VariantRecord): status, accuracies, size, params,
    MACs, parity."""
    from rich.table import Table

    table = Table(title="exported variants")
    table.add_column("variant", overflow="fold")
    for col in ("status", "val acc", "test acc", "size MB", "params", "MACs", "max abs diff"):
        table.add_column(col, justify="left" if col == "status" else "right")
    for r in records:
        m = r.metrics or {}
        status = ("[green]ok[/]" if r.status == "ok" else "[red]failed[/]") + (" (resumed)" if r.resumed else "")
        table.add_row(
            r.id, status, _pct((m.get("val") or {}).get("accuracy")), _pct((m.get("test") or {}).get("accuracy")),
            _fmt(r.size_mb, "{:.2f}"), _fmt(r.params and r.params / 1e6, "{:.2f}M"), _fmt(r.macs and r.macs / 1e6, "{:.1f}M"),
            _fmt(r.max_abs_diff, "{:.1e}"),
        )
    return table


def _fmt(value: float | None, spec: str) -> str:
    """A number in ``spec``, or '-'."""
    return "-" if value is None else spec.format(value)


def _pct(value: float | None) -> str:
    """An accuracy as a percentage, or '-'."""
    return "-" if value is None else f"{100 * value:.1f}%"
