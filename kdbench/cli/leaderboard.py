"""`kdbench leaderboard`: rank every exported variant per target (Pareto fronts) and write README.md, CSV and plots."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kdbench.cli.console import console
from kdbench.cli.tables import print_table


def command(
    study: Path = typer.Option(..., "--study", help="Study directory written by `kdbench search` (RUN_DIR/<study>, with study.json)."),
    export: Optional[Path] = typer.Option(None, "--export", help="Export directory written by `kdbench export` (with manifest.json). Without it: the study's best trial per student and method, accuracy only."),
    profiles: Optional[Path] = typer.Option(None, "--profiles", help="Profile directory written by `kdbench profile` (<target>/results.json). Without it: an accuracy-only board."),
    targets: Optional[str] = typer.Option(None, "--targets", help="Comma-separated targets to include, e.g. x86,rpi4 (default: every target under --profiles)."),
    out: Path = typer.Option(Path("leaderboard"), "--out", "-o", help="Output directory: README.md, leaderboard.csv and PNG plots."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Draw the PNG plots (accuracy vs latency per target, accuracy per method)."),
) -> None:
    """Rank every (student configuration x variant) per target by Pareto fronts over accuracy, latency and size."""
    from rich.table import Table

    from kdbench.leaderboard.build import build_leaderboard
    from kdbench.leaderboard.render import fmt_num

    names = [t.strip() for t in targets.split(",") if t.strip()] if targets else None
    parts = [f"kdbench leaderboard --study {study}"]
    if export is not None:
        parts.append(f"--export {export}")
    if profiles is not None:
        parts.append(f"--profiles {profiles}")
    if names:
        parts.append(f"--targets {','.join(names)}")
    parts.append(f"--out {out}")
    if not plots:
        parts.append("--no-plots")
    with console.status("collecting study, export and profile results"):
        lb, written = build_leaderboard(study, out, export, profiles, names, " ".join(parts), plots)
    for note in lb.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    table = Table(title=f"leaderboard of study {lb.study}")
    for col, justify in (("target", "left"), ("models", "right"), ("Pareto-optimal", "right"), ("meet constraints", "right"),
                         ("recommended", "left"), ("test acc", "right")):
        table.add_column(col, justify=justify, overflow="fold")
    for b in lb.boards:
        ranked = [r for r in b.rows if r.get("front") is not None]
        rec = b.recommended
        table.add_row(b.name, str(len(b.rows)), str(sum(r["front"] == 1 for r in ranked)),
                      str(sum(r.get("meets_constraints") == "yes" for r in b.rows)) if b.constraints else "n/a",
                      b.recommendation if rec is None else b.recommendation.split(":")[0],
                      fmt_num(rec.get("accuracy")) if rec else "-")
    print_table(table)
    for path in written:
        console.print(f"wrote {path}", highlight=False)
