"""`kdbench demo`: the whole pipeline on synthetic echo data, sized for a laptop CPU."""

from __future__ import annotations

from pathlib import Path

import typer

from kdbench.cli.console import console


def command(
    out: Path = typer.Option(Path("kdbench-demo"), "--out", "-o", help="Working directory for the phantom data, store, teacher, study, exports and profiles."),
    leaderboard: Path = typer.Option(None, metavar="DIR", help="Where to write the leaderboard (default: OUT/leaderboard)."),
    size: str = typer.Option("default", metavar="default|tiny", help="default (about 15 minutes on 2 CPU cores; each step's time is printed) or tiny (a smoke run of every stage: scratch and vanilla KD only)."),
) -> None:
    """Run everything on a synthetic echo phantom: synthesise the three dataset formats and an unlabelled
    pool, prepare the frame store, train the VGG16 teacher, search 2 students x (scratch, vanilla KD on the
    labelled frames plus half the pool each epoch) over 5 paired seeds, export fp32 and int8 variants, profile
    them on this host, estimate a Raspberry Pi 4, and write the Pareto leaderboard, deciding at a 3-point
    margin (the smallest this phantom's known answer resolves; docs/training.md). Each step is printed as the
    kdbench command it runs; rerunning continues where an interrupted demo stopped."""
    import logging
    import time

    from kdbench.cli.demo_plan import run_demo

    start = time.perf_counter()
    log = logging.getLogger("kdbench.demo")

    def announce(i: int, n: int, line: str) -> None:
        log.info("step %d/%d at %.0f s: $ %s", i, n, time.perf_counter() - start, line)

    board = leaderboard or out / "leaderboard"
    timings = run_demo(out, size, leaderboard, announce=announce)
    for line, seconds in timings.items():
        log.info("%6.0f s  %s", seconds, line.split(" --")[0])
    console.rule(f"[bold green]done in {time.perf_counter() - start:.0f} s[/]")
    console.print(f"leaderboard: {board / 'README.md'}  (CSV: {board / 'leaderboard.csv'}; plots beside them)")
