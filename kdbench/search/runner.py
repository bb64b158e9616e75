"""Running a search: prepare the study, run workers until every student's quota is used, report.

``run_search`` prepares the study (``kdbench.search.prepare``), runs one worker in this process
(``kdbench.search.work``) or N worker processes (``kdbench.search.processes``), shows progress read from
the storage and the workers' status files, then writes ``summary.csv`` and ``statistics.json``
(``finish_study``). Many machines: run ``run_search`` (``kdbench search``) on each with the same
``--storage`` URL, ``--study`` name and shared run directory; the quotas are global.

The pieces live in their own modules: sampler and pruner (``factories``), disk checks (``disk``), the
Optuna studies and quotas (``studies``), signals (``interrupts``). Their public names stay importable from
here, where the command line and the tests have always found them.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable

from kdbench.search.disk import check_run_dir, checkpoint_mb, clean_leftovers
from kdbench.search.factories import make_pruner, make_sampler, metric_names, optuna_study_name, study_directions
from kdbench.search.interrupts import SearchAborted, interrupt_on_sigterm, signals_deferred
from kdbench.search.prepare import SearchRequest, prepare_study, study_pins, worker_threads
from kdbench.search.processes import STORAGE_ENV, spawn_workers, stop_workers, wait_workers
from kdbench.search.results import read_study_json, storage_rows, write_statistics, write_summary
from kdbench.search.studies import load_studies, queue_planned, study_space, used_trials, waiting_trials
from kdbench.search.work import RACE_LOCK, run_race, run_worker, worker_setup

__all__ = ["RACE_LOCK", "STORAGE_ENV", "SearchAborted", "SearchRequest", "check_run_dir", "checkpoint_mb",
           "clean_leftovers", "finish_study", "load_studies", "make_pruner", "make_sampler", "metric_names",
           "optuna_study_name", "prepare_study", "queue_planned", "run_race", "run_search", "run_worker",
           "spawn_workers", "stop_workers", "study_directions", "study_pins", "study_space", "used_trials",
           "wait_workers", "waiting_trials", "worker_setup", "worker_threads"]


def finish_study(study_dir: Path, storage_url: str | None) -> dict[str, Any]:
    """Write summary.csv and statistics.json (from trials complete in the storage and on disk); the statistics."""
    studies = load_studies(study_dir, storage_url)
    rows = storage_rows(studies)
    write_summary(study_dir, rows)
    extra = {}
    config = read_study_json(study_dir)["config"] or {}
    if config.get("target"):
        from kdbench.search.hardware_aware import pricing_summary

        trials = [t for s in studies.values() for t in s.get_trials(deepcopy=False)]
        extra["pricing"] = {**pricing_summary(trials), "grid": config.get("sampler") == "grid"}  # the CLI prints its line
    return write_statistics(study_dir, rows, extra)


def run_search(req: SearchRequest, display: Callable[[Path, Callable[[], None]], None] | None = None,
               announce: Callable[[], None] | None = None) -> dict[str, Any]:
    """Prepare the study, run the workers (showing progress through ``display``), write the reports.

    Interrupted (SIGINT, SIGTERM) or aborted by a fault, it still writes summary.csv and
    statistics.json for what finished, then re-raises; the same request resumes the study.
    """
    start = time.perf_counter()
    with interrupt_on_sigterm():
        study_dir = prepare_study(req, announce=announce)

        def work() -> None:
            if req.workers == 1:
                run_worker(study_dir, req.storage, req.n_trials, req.device, req.no_cache, 0, req.grace_s)
            else:
                wait_workers(study_dir, spawn_workers(study_dir, req))
            run_race(study_dir, req.device, req.no_cache, req.grace_s)
        try:
            if display is None:
                work()
            else:
                display(study_dir, work)
        except (KeyboardInterrupt, SearchAborted):
            with signals_deferred(), contextlib.suppress(Exception):
                finish_study(study_dir, req.storage)
            raise
        stats = finish_study(study_dir, req.storage)
    return {"study_dir": study_dir, "wall_time_s": time.perf_counter() - start, "statistics": stats}
