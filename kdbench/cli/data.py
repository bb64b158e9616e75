"""``kdbench data ...``: commands that write, prepare and inspect datasets."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="Datasets: write phantom data in the official layouts, build the frame store, inspect it.",
    no_args_is_help=True,
)


@app.command("synth")
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write EchoNet-Dynamic/, EchoNet-LVH/ and TMED2/ into."),
    videos_per_view: int = typer.Option(
        50, "--videos-per-view", min=1,
        help="Clips per view and source (a TMED-2 clip is one study's stills of that view)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed; the same seed writes the same data."),
    frames: int = typer.Option(32, "--frames", min=2, help="Frames per video (TMED-2: max(4, frames//4) stills per view and study)."),
    difficulty: float = typer.Option(
        0.5, "--difficulty", min=0.0, max=1.0,
        help="0..1: noise, probe-pose spread, A2C/A4C confusability and ambiguous-clip fraction."),
) -> None:
    """Write procedural echo phantom data in the EchoNet-Dynamic, EchoNet-LVH and TMED-2 formats."""
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from kdbench.data.synth import synthesize

    console = Console()
    start = time.perf_counter()
    with Progress(TextColumn("[bold]synth[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        task = bar.add_task("synth", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = synthesize(out, videos_per_view=videos_per_view, seed=seed, frames=frames,
                             difficulty=difficulty, progress=progress)
    elapsed = time.perf_counter() - start

    table = Table(title=f"Phantom data in {summary['root']} (seed {seed}, difficulty {difficulty:g})")
    table.caption = "view columns count videos (EchoNet) or still images (TMED-2)"
    table.add_column("source")
    table.add_column("folder")
    for view in ("A2C", "A4C", "PLAX", "PSAX"):
        table.add_column(view, justify="right")
    table.add_column("items", justify="right")
    for name, src in summary["sources"].items():
        items = f"{src['videos']} videos" if "videos" in src else f"{src['images']} images"
        table.add_row(name, Path(src["path"]).name,
                      *(str(src["views"].get(v, "")) for v in ("A2C", "A4C", "PLAX", "PSAX")), items)
    console.print(table)
    console.print(f"written in {elapsed:.1f} s")
