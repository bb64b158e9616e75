"""`kdbench leaderboard`: rank every exported variant per target (Pareto fronts) and write README.md, CSV and plots."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from kdbench.cli.console import console
from kdbench.cli.options import RUN_DIR_HELP, STUDY_HELP, study_folder
from kdbench.cli.tables import print_table


def command(
    study: str = typer.Option(..., "--study", help=STUDY_HELP),
    run_dir: Path = typer.Option(Path("runs"), "--run-dir", help=RUN_DIR_HELP),
    export: Optional[Path] = typer.Option(None, "--export", help="Export directory written by `kdbench export` (with manifest.json). Without it: the study's best trial per student and method, accuracy only."),
    profiles: Optional[Path] = typer.Option(None, "--profiles", help="Profile directory written by `kdbench profile` (<target>/results.json). Without it: an accuracy-only board."),
    targets: Optional[str] = typer.Option(None, "--targets", help="Comma-separated targets to include, e.g. x86,rpi4 (default: every target under --profiles)."),
    out: Path = typer.Option(Path("leaderboard"), "--out", "-o", help="Output directory: README.md, leaderboard.csv and PNG plots."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Draw the PNG plots (accuracy vs latency per target, accuracy per method)."),
    include_unstable: bool = typer.Option(False, "--include-unstable/--no-include-unstable", help="Let models whose measurement was flagged unstable be recommended (left out by default)."),
    margin: Optional[List[str]] = typer.Option(None, "--margin", metavar="DELTA|TARGET=DELTA", help="Equivalence margin of the decisions against the best, an accuracy difference (0.01 = 1 point): a model is 'equivalent' when the 95% interval of best minus it lies inside +-margin. Default: the study's [study] margin, else 0.01. Repeat as TARGET=DELTA for a target's own margin (--margin 0.01 --margin rpi4=0.02). Fix it before looking at the results."),
) -> None:
    """Rank every (student configuration x variant) per target on validation accuracy, latency and size; report test figures."""
    from rich.markup import escape
    from rich.table import Table

    from kdbench.leaderboard.build import build_leaderboard, parse_margins
    from kdbench.leaderboard.rank import row_label
    from kdbench.leaderboard.render import fmt_ci, fmt_num, margin_text, split_size_text

    names = [t.strip() for t in targets.split(",") if t.strip()] if targets else None
    parts = [f"kdbench leaderboard --study {study}" + ("" if run_dir == Path("runs") or "/" in study else f" --run-dir {run_dir}")]
    found = study_folder(study, run_dir)  # checked; the page names it as the user did when given as a folder
    study = Path(study) if "/" in study else found
    if export is not None:
        parts.append(f"--export {export}")
    if profiles is not None:
        parts.append(f"--profiles {profiles}")
    if names:
        parts.append(f"--targets {','.join(names)}")
    parts.append(f"--out {out}")
    if not plots:
        parts.append("--no-plots")
    if include_unstable:
        parts.append("--include-unstable")
    margins = parse_margins(margin or [])
    parts += [f"--margin {m}" for m in margin or []]
    with console.status("collecting study, export and profile results"):
        lb, written = build_leaderboard(study, out, export, profiles, names, " ".join(parts), plots, include_unstable,
                                        margins)
    for note in lb.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    table = Table(title=f"leaderboard of study {lb.study}")
    for col, justify in (("target", "left"), ("models", "right"), ("Pareto-optimal", "right"), ("meet constraints", "right"),
                         ("best / equivalent / worse / undecided", "right"), ("recommended (chosen on validation)", "left"),
                         ("val acc (selection-biased)", "right"), ("test acc [95% CI]", "right")):
        table.add_column(col, justify=justify, overflow="fold")
    for b in lb.boards:
        ranked = [r for r in b.rows if r.front is not None]
        rec = b.recommended
        label = "-" if rec is None else ("UNCERTAIN: " if rec.recommended_uncertain else "") + row_label(rec)
        table.add_row(b.name, str(len(b.rows)), str(sum(r.front == 1 for r in ranked)),
                      str(sum(r.verdict == "meets" for r in b.rows)) if b.constraints else "n/a",
                      " / ".join(str(sum(r.decision == v for r in ranked)) for v in ("best", "equivalent", "worse", "undecided")),
                      b.recommendation if rec is None else label, fmt_num(rec.val_accuracy) if rec else "-",
                      fmt_ci(rec.test_accuracy, rec.test_accuracy_low, rec.test_accuracy_high) if rec else "-")
    console.print(escape(split_size_text(lb)), highlight=False)
    console.print(escape(f"decisions against each target's best on validation: {margin_text(lb)}"), highlight=False)
    print_table(table)
    for path in written:
        console.print(f"wrote {path}", highlight=False)
