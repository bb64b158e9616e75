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
    out: Path = typer.Option(..., "-o", "--out", metavar="DIR",
                             help="Folder to write EchoNet-Dynamic/, EchoNet-LVH/ and TMED2/ (and Own/, Unlabelled/) into."),
    videos_per_view: int = typer.Option(
        50, "--videos-per-view", min=1, metavar="N",
        help="Clips per view and source (a TMED-2 clip is one study's stills of that view)."),
    seed: int = typer.Option(0, "--seed", min=0, metavar="N", help="Random seed; the same seed writes the same data."),
    frames: int = typer.Option(32, "--frames", min=2, metavar="N",
                               help="Frames per video (TMED-2: max(4, frames//4) stills per view and study)."),
    difficulty: float = typer.Option(
        0.5, "--difficulty", min=0.0, max=1.0, metavar="X",
        help="0..1: noise, probe-pose spread, A2C/A4C confusability and ambiguous-clip fraction."),
    holdout: float = typer.Option(
        None, "--holdout", min=0.01, max=0.49, metavar="FRACTION",
        help="Fraction of each source's clips (TMED-2: patients) put in validation, and the same in test "
             "(default: each source's usual 10-15%). Evaluation is cheap: a larger holdout gives tighter "
             "intervals without slowing training."),
    manifest: int = typer.Option(
        0, "--manifest", min=0, metavar="N",
        help="Also write Own/: a labels.csv + view_map.csv with N clips per view as AVI, PNG/JPG stills and "
             "DICOM (multi-frame, single-frame, grey, RGB, YBR), for `data prepare --manifest Own/labels.csv "
             "--view-map Own/view_map.csv`."),
    unlabelled: int = typer.Option(
        0, "--unlabelled", min=0, metavar="N",
        help="Also write Unlabelled/: N unlabelled files (AVI, PNG, DICOM) in study folders, for "
             "`data prepare --unlabelled Unlabelled`."),
) -> None:
    """Write procedural echo phantom data in the EchoNet-Dynamic, EchoNet-LVH and TMED-2 formats."""
    import time

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from kdbench.cli.tables import print_table
    from kdbench.data.synth import synthesize

    console = Console()
    start = time.perf_counter()
    with Progress(TextColumn("[bold]synth[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:
        task = bar.add_task("synth", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = synthesize(out, videos_per_view=videos_per_view, seed=seed, frames=frames, difficulty=difficulty,
                             progress=progress, holdout=holdout, unlabelled=unlabelled, manifest=manifest)
    elapsed = time.perf_counter() - start

    table = Table(title=f"Phantom data in {summary['root']} (seed {seed}, difficulty {difficulty:g})")
    table.caption = "view columns count videos (EchoNet), still images (TMED-2) or kept clips (Own)"
    table.add_column("source")
    table.add_column("folder")
    for view in ("A2C", "A4C", "PLAX", "PSAX"):
        table.add_column(view, justify="right")
    table.add_column("items", justify="right")
    for name, src in summary["sources"].items():
        unit = next(k for k in ("videos", "images", "files") if k in src)
        table.add_row(name, Path(src["path"]).name,
                      *(str(src.get("views", {}).get(v, "")) for v in ("A2C", "A4C", "PLAX", "PSAX")),
                      f"{src[unit]} {unit}")
    print_table(table, console)
    console.print(f"written in {elapsed:.1f} s")


def prepare(
    out: Path = typer.Option(..., "-o", "--out", metavar="DIR",
                             help="Frame store folder to write (frames.npy, index.csv, manifest.json)."),
    size: int = typer.Option(112, "--size", min=16, metavar="N", help="Side of the square harmonised frames, in pixels."),
    frames_per_video: int = typer.Option(
        16, "--frames-per-video", min=1, metavar="N",
        help="Frames sampled evenly over each clip; shorter clips keep all their frames once."),
    tmed_fold: int = typer.Option(0, "--tmed-fold", min=0, max=2, metavar="N",
                                  help="TMED-2 fold (0, 1 or 2) whose view_classifier_split is used."),
    view_map: Path = typer.Option(
        None, "--view-map", metavar="FILE",
        help="CSV with columns name,view renaming the --manifest view names (any case) to A2C/A4C/PLAX/PSAX; "
             "a name with an empty view is dropped and counted."),
    workers: int = typer.Option(2, "--workers", min=1, metavar="N", help="Decoding processes."),
    strict: bool = typer.Option(
        False, "--strict/--no-strict",
        help="Stop on a corrupt/truncated video, an unreadable image or DICOM (or one compressed in a way pydicom "
             "cannot decode here) or a listed-but-missing file, instead of skipping and counting it."),
    force: bool = typer.Option(False, "--force/--no-force",
                               help="Rebuild from scratch even if the store is up to date."),
    **folders: Path | None,
) -> None:
    """Build the harmonised frame store from any of the supported datasets (resumable; skips if up to date)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kdbench.data.prepare import prepare_store

    sources = {name: path for name, path in folders.items() if path is not None}
    console = Console()
    with Progress(TextColumn("[bold]prepare[/] decoding clips"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task("prepare", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = prepare_store(sources, out, size=size, frames_per_video=frames_per_video, tmed_fold=tmed_fold,
                               workers=workers, strict=strict, force=force, progress=progress, view_map=view_map)
    manifest = result.manifest
    if result.status == "up_to_date":
        console.print(f"{result.path} is up to date ({manifest['n_frames']} frames, store_hash "
                      f"{manifest['store_hash']}); use --force to rebuild")
        return
    _print_problems(console, manifest)
    resumed = f", {result.reused} clips resumed from an interrupted run" if result.reused else ""
    console.print(f"wrote {manifest['n_frames']} frames of {manifest['n_clips']} clips to {result.path} in "
                  f"{result.seconds:.1f} s{resumed}; store_hash {manifest['store_hash']}")
    _print_store_table(console, manifest)


_METAVAR = {"folder": "DIR", "file": "FILE"}  # what a source's flag takes (Source.takes)


def _with_source_flags(func):
    """Give ``func`` one ``--flag DIR`` (or ``FILE``) option per registered source (kdbench/data/sources.py), first."""
    import inspect

    from kdbench.data.sources import registered

    signature = inspect.signature(func)
    fixed = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values()
             if p.kind is not inspect.Parameter.VAR_KEYWORD]
    flags = [inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY, annotation=Path,
                               default=typer.Option(None, s.flag, help=s.help, metavar=_METAVAR[s.takes]))
             for s in registered()]
    func.__signature__ = signature.replace(parameters=[*flags, *fixed])
    return func


app.command("prepare")(_with_source_flags(prepare))


def _print_problems(console, manifest: dict) -> None:
    """The first skipped and missing clips, with a count of the rest."""
    for key, label in (("skipped", "skipped"), ("missing", "missing")):
        items = manifest.get(key, [])
        for item in items[:10]:
            text = item["reason"] if key == "missing" else f"{item['file']}: {item['reason']}"
            console.print(f"[yellow]{label}[/] {text}", highlight=False)
        if len(items) > 10:
            console.print(f"[yellow]... and {len(items) - 10} more {label} (see manifest.json)[/]")


@app.command("info")
def info(store: Path = typer.Argument(..., help="Frame store folder written by `kdbench data prepare`.")) -> None:
    """Show frame and clip counts per view x split x source of a frame store."""
    from rich.console import Console

    from kdbench.data.store import FrameStore

    opened = FrameStore.open(store)
    console = Console()
    cfg = opened.manifest["config"]
    console.print(f"{opened.path}: {len(opened)} frames, {cfg['size']} px, {cfg['frames_per_video']} frames per "
                  f"video, store_hash {opened.store_hash}")
    _print_store_table(console, opened.manifest)


def _print_store_table(console, manifest: dict) -> None:
    """Rich table of frames (clips) per view x split x source, totals, skipped and dropped counts."""
    from rich.table import Table

    from kdbench.cli.tables import print_table
    from kdbench.data.prepare import describe_counts
    from kdbench.data.sources import source_rank
    from kdbench.data.views import SPLITS, UNLABELLED, VIEWS

    rows = describe_counts(manifest)
    sources = sorted({r[2] for r in rows}, key=source_rank)
    cell = {(v, sp, src): (f, c) for v, sp, src, f, c in rows}
    table = Table(title="frames (clips) per view x split x source")
    table.add_column("view")
    table.add_column("split")
    for src in sources:
        table.add_column(src, justify="right")
    table.add_column("total", justify="right", style="bold")

    def fmt(pairs: list[tuple[int, int]]) -> str:
        return f"{sum(p[0] for p in pairs)} ({sum(p[1] for p in pairs)})"

    for view in VIEWS:
        for split in SPLITS:
            pairs = [cell.get((view, split, s), (0, 0)) for s in sources]
            table.add_row(view, split, *(fmt([p]) for p in pairs), fmt(pairs))
        table.add_section()
    for split in SPLITS:
        per = [[cell.get((v, split, s), (0, 0)) for v in VIEWS] for s in sources]
        table.add_row("all", split, *(fmt(p) for p in per), fmt([x for p in per for x in p]), style="bold")
    per = [[c for k, c in cell.items() if k[2] == s and k[1] != UNLABELLED] for s in sources]
    table.add_row("all", "all", *(fmt(p) for p in per), fmt([x for p in per for x in p]), style="bold")
    pool = [cell.get(("", UNLABELLED, s), (0, 0)) for s in sources]
    if any(k[1] == UNLABELLED for k in cell):  # frames without a label: never in train/val/test
        table.add_section()
        table.add_row("none", UNLABELLED, *(fmt([p]) for p in pool), fmt(pool))
    print_table(table, console)
    skipped = manifest.get("skipped", [])
    missing = manifest.get("missing", [])
    dropped = manifest.get("dropped_labels", {})
    short = manifest.get("short_clips", [])
    console.print(f"skipped (unreadable): {len(skipped)}; missing (listed but absent): {len(missing)}; clips "
                  f"shorter than frames_per_video (all frames kept once): {len(short)}; dropped labels: "
                  f"{dropped or 'none'}", highlight=False)


@app.command("verify")
def verify(store: Path = typer.Argument(..., help="Frame store folder written by `kdbench data prepare`.")) -> None:
    """Rehash every frame and the index against the store's hash; exit 2 naming what changed."""
    from rich.console import Console

    from kdbench.data.store import verify_store

    report = verify_store(store)
    note = "" if report["integrity_recorded"] else " (written before sampled checks existed: checked against store_hash)"
    Console().print(f"{report['path']}: ok, {report['n_frames']} frames, {report['bytes'] / 2**20:.1f} MiB rehashed, "
                    f"store_hash {report['store_hash']}{note}", highlight=False)
