"""`kdbench search`: Optuna over students and distillation settings, every configuration on paired seeds."""

from __future__ import annotations

from pathlib import Path

import typer

from kdbench.cli.console import console, err_console, warn
from kdbench.cli.options import (RUN_DIR_HELP, STUDY_HELP, complete_space, deprecated_option, study_folder,
                                 study_location, take_deprecated)
from kdbench.cli.tables import print_table

app = typer.Typer(
    help=(
        "Search students and distillation settings with Optuna: every configuration trains on the same seeds, "
        "studies resume after a crash, workers scale out over a shared storage. "
        "Run `kdbench search --config search_spaces/quick.toml --store STORE --teacher T`; "
        "`kdbench search status` and `kdbench search stats` summarise a study."
    ),
    invoke_without_command=True,
    no_args_is_help=False,
)

_STORAGE_HELP = ("Optuna storage URL, e.g. postgresql://user:pw@host/db (default: the embedded journal file "
                 "RUN_DIR/STUDY/optuna.journal, no server needed).")


@app.callback()
def search(
    ctx: typer.Context,
    config: Path = typer.Option(None, "--config", autocompletion=complete_space, help="Search space: a TOML file, or the name of a shipped one (quick, paper, wide)."),
    store: Path = typer.Option(None, "--store", help="Frame store written by `kdbench data prepare`."),
    teacher: Path = typer.Option(None, "--teacher", help="Teacher checkpoint (.pt) or ONNX file (needed unless the space is scratch only)."),
    storage: str = typer.Option(None, "--storage", envvar="KDBENCH_STORAGE", help=_STORAGE_HELP),
    study: str = typer.Option(None, "--study", help="The study: a name under --run-dir (default: study.name in the space file) or a folder (e.g. runs/demo); rerun the same study to resume."),
    n_trials: int = typer.Option(None, "--n-trials", help="Total trials over all students, split evenly (default: study.n_trials in the space file)."),
    workers: int = typer.Option(1, "--workers", help="Worker processes on this machine (each trains one trial at a time)."),
    run_dir: Path = typer.Option(Path("runs"), "--run-dir", help=RUN_DIR_HELP),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, or cuda[:N]."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Read the teacher's cached logits (--no-cache: call the teacher on every batch; slow, for comparison)."),
    grace: float = typer.Option(120.0, "--grace", help="Seconds without a heartbeat before another machine's running trial is taken as abandoned."),
) -> None:
    """Run (or resume) a search; see the subcommands for status and statistics."""
    if ctx.invoked_subcommand is not None:
        return
    from kdbench.errors import ConfigError

    if config is None or store is None:
        missing = [o for o, v in (("--config", config), ("--store", store)) if v is None]
        raise ConfigError(f"kdbench search needs {' and '.join(missing)} (or a subcommand: status, stats); "
                          "see `kdbench search --help`")
    from kdbench.search.runner import SearchRequest, run_search
    from kdbench.search.space import load_space

    space = load_space(config)
    if study is not None:
        run_dir, study = study_location(study, run_dir)
    req = SearchRequest(config=config, store=store, teacher=teacher, run_dir=run_dir, storage=storage, study=study,
                        n_trials=n_trials, workers=workers, device=device, no_cache=not cache, grace_s=grace)
    quota = space.trials_per_student(n_trials)

    def announce() -> None:  # once every input is checked: bad input gets only its error line
        for warning in space.warnings:
            warn(warning)
        seeds = (f"{len(space.seeds)} seed(s)" if space.race is None else
                 f"seeds raced {space.race['min_seeds']}-{space.race['max_seeds']}")
        err_console.print(f"search [bold]{study or space.name}[/]: {len(space.students)} student(s) x {seeds}, "
                          f"{sum(quota.values())} trial(s), sampler {space.sampler}, pruner {space.pruner}, "
                          f"{workers} worker(s)")

    result = _resumable(lambda: run_search(req, display=_live_display(storage, quota, sum(quota.values()) * len(space.seeds)),
                                           announce=announce))
    _print_report(result["study_dir"], storage, quota, result["statistics"], result["wall_time_s"])


def _resumable(run):
    """run(); SIGINT/SIGTERM end it in the interrupt line (exit 130/143; a second one ends the cleanup at
    once), a fault in one error line (exit 1); both say how to resume."""
    import sys

    from kdbench.search.interrupts import interrupt_on_sigterm, report_interrupted
    from kdbench.search.interrupts import SearchAborted

    try:
        with interrupt_on_sigterm(second_exits=True):
            return run()
    except KeyboardInterrupt as err:
        signum = getattr(err, "signum", 2)
        report_interrupted()
        raise typer.Exit(128 + int(signum)) from None
    except SearchAborted as err:
        print(f"error: {err}", file=sys.stderr)
        raise typer.Exit(1) from None


def _live_display(storage: str | None, quota: dict[str, int], planned: int):
    """A display function for run_search: a rich Live view of the study while work() runs in a terminal; in a
    log file one line per finished seed run with the study's ETA (``planned`` seed runs)."""
    def display(study_dir: Path, work) -> None:
        if not err_console.is_terminal:  # a log file: one line per finished seed run instead
            return _log_lines(study_dir, planned, work)
        from rich.live import Live

        from kdbench.search.status import StudyMonitor

        monitor = StudyMonitor(study_dir, storage, quota, planned=planned)
        with Live(monitor, console=err_console, refresh_per_second=1, transient=True):
            work()
    return display


def _log_lines(study_dir: Path, planned: int, work) -> None:
    """work() with a thread that logs each finished seed run (kdbench.search.progress) every second."""
    import logging
    import threading

    from kdbench.search.progress import SeedProgress

    log, progress, stop = logging.getLogger("kdbench.search.progress"), SeedProgress(study_dir, planned), threading.Event()

    def follow() -> None:
        while not stop.wait(1.0):
            for line in progress.poll():
                log.info("%s", line)

    thread = threading.Thread(target=follow, name="kdbench-progress", daemon=True)
    thread.start()
    try:
        work()
    finally:
        stop.set()
        thread.join(timeout=2)
        for line in progress.poll():
            log.info("%s", line)


def _print_report(study_dir: Path, storage: str | None, quota: dict[str, int] | None, stats: dict, wall_s: float | None) -> None:
    """The final tables: status per student and the paired statistics."""
    from kdbench.search.studies import load_studies
    from kdbench.search.status import statistics_table, status_table, study_status

    st = study_status(load_studies(study_dir, storage), study_dir, quota)
    title = f"study {study_dir.name}" + (f" (wall time {wall_s:.0f} s)" if wall_s is not None else "")
    print_table(status_table(st, title))
    print_table(statistics_table(stats, "test_accuracy"))
    for warning in stats.get("warnings", []):
        warn(warning)
    if stats.get("pricing"):  # hardware-aware study: what the target's constraints saved from training
        from kdbench.search.hardware_aware import pricing_line

        console.print(pricing_line(stats["pricing"]))
    console.print(f"wrote {study_dir / 'summary.csv'} and {study_dir / 'statistics.json'}")


@app.command("status")
def status(
    study: str = typer.Option(..., "--study", help=STUDY_HELP),
    storage: str = typer.Option(None, "--storage", envvar="KDBENCH_STORAGE", help=_STORAGE_HELP),
    run_dir: Path = typer.Option(Path("runs"), "--run-dir", help=RUN_DIR_HELP),
) -> None:
    """Summarise a study: trials per state, best configuration so far per student, live workers."""
    from kdbench.search.studies import load_studies
    from kdbench.search.status import status_table, study_status

    path = study_folder(study, run_dir)
    st = study_status(load_studies(path, storage), path)
    print_table(status_table(st, f"study {path.name}"))
    console.print(f"seeds trained {st['seeds_done']}, reused after a restart {st['seeds_reused']}")
    for w in st["workers"]:
        console.print(f"worker {w['worker']['host']}:{w['worker']['pid']}: {w.get('state')} {w.get('student', '')} "
                      f"trial {w.get('trial', '-')} seed {w.get('seed', '-')} epoch {w.get('epoch', '-')} "
                      f"(beat {w['age_s']:.0f} s ago)")
    if not st["workers"]:
        console.print("no worker is running")
    if st["abandoned"]:
        console.print(f"{st['abandoned']} trial(s) left running by a worker that is gone: rerun the search to resume them")


@app.command("stats")
def stats(
    study: str = typer.Option(..., "--study", help=STUDY_HELP),
    storage: str = typer.Option(None, "--storage", envvar="KDBENCH_STORAGE", help=_STORAGE_HELP),
    run_dir: Path = typer.Option(Path("runs"), "--run-dir", help=RUN_DIR_HELP),
    metric: str = typer.Option("test_accuracy", "--metric", help="test_accuracy (not used for selection) or val_accuracy."),
) -> None:
    """Recompute summary.csv and statistics.json of a study and print the paired comparisons."""
    from kdbench.errors import ConfigError
    from kdbench.search.runner import finish_study
    from kdbench.search.status import statistics_table

    if metric not in ("test_accuracy", "val_accuracy"):
        raise ConfigError(f"--metric {metric!r}; expected test_accuracy or val_accuracy")
    path = study_folder(study, run_dir)
    result = finish_study(path, storage)
    print_table(statistics_table(result, metric))
    for warning in result.get("warnings", []):
        warn(warning)
    if result.get("pricing"):  # as at the end of the search (the one place that line is printed)
        from kdbench.search.hardware_aware import pricing_line

        console.print(pricing_line(result["pricing"]))
    console.print(f"wrote {path / 'summary.csv'} and {path / 'statistics.json'}")


@app.command("confirm")
def confirm(
    study: str = typer.Option(None, "--study", help=STUDY_HELP),
    run_dir: Path = typer.Option(Path("runs"), "--run-dir", help=RUN_DIR_HELP),
    study_dir: str = deprecated_option("--study-dir", "--study DIR"),
    seeds: int = typer.Option(None, "--seeds", help="Fresh seeds (not used by the study) to retrain each choice on (default 5; with --max-seeds: the race's first seeds, default 3). A study that raced (study.seeds = {min, max}) is confirmed by the same race unless --seeds is given."),
    max_seeds: int = typer.Option(None, "--max-seeds", help="Race the choices on fresh seeds: start at --seeds, add a seed per look to the comparisons still undecided at the study's margin, up to this many (see docs/search.md, racing)."),
    store: Path = typer.Option(None, "--store", help="Frame store (default: the study's, from study.json)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, or cuda[:N]."),
    storage: str = typer.Option(None, "--storage", envvar="KDBENCH_STORAGE", help=_STORAGE_HELP),
    n_trials: int = typer.Option(None, "--n-trials", help="The budget the study must have used to count as finished (default: the --n-trials its last search ran with, recorded in study.json, else study.n_trials of the space)."),
    allow_unfinished: bool = typer.Option(False, "--allow-unfinished/--no-allow-unfinished", help="Confirm a study that is not finished (trials running or queued, a live worker, quotas not used): its choices so far, recorded as unfinished; the leaderboard does not use such a confirmation."),
) -> None:
    """Retrain each student's chosen configuration and its scratch baseline on fresh seeds; compare them there.

    The study must be finished (else one error line, exit 2), so the confirmed choice is the final one."""
    from rich.markup import escape

    from kdbench.errors import ConfigError
    from kdbench.search.confirm import ConfirmRequest, run_confirm
    from kdbench.search.status import statistics_table

    study = take_deprecated(study_dir, study, "--study-dir", "--study")
    if study is None:
        raise ConfigError("kdbench search confirm needs --study NAME (with --run-dir) or --study FOLDER")
    path = study_folder(study, run_dir)
    out = _resumable(lambda: run_confirm(
        ConfirmRequest(study_dir=path, n_seeds=seeds, max_seeds=max_seeds, device=device, store=store, storage=storage, n_trials=n_trials,
                       allow_unfinished=allow_unfinished),
        on_event=lambda **e: err_console.print(f"training {e['student']} {e['method']} (trial {e['trial']}) seed {e['seed']}"),
        on_note=lambda line: warn(escape(line)) if "not finished" in line else err_console.print(escape(line))))
    print_table(statistics_table(out["statistics"], "test_accuracy"))
    for warning in out["statistics"].get("warnings", []):
        warn(warning)
    console.print(f"seeds {out['seeds']}: trained {out['trained']}, reused {out['reused']}; "
                  f"wrote {path / 'confirm' / 'statistics.json'}")
