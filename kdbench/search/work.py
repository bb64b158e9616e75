"""The worker loop: run trials until every student's quota is used, then the seed race.

``run_worker`` is one worker: it loops, each time recovering abandoned trials, then running one trial of the
student with the most trials left; ``run_race`` races a finished study's seeds (kdbench.search.seed_race).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

from kdbench.distill.feed import TeacherFeed
from kdbench.search.baselines import queue_matched_baselines
from kdbench.search.interrupts import RESUME_HINT, SearchAborted, released, signals_held
from kdbench.search.liveness import (DEFAULT_GRACE_S, SLOT_ATTR, Heartbeat, live_workers, one_at_a_time,
                                     recover_stale_trials)
from kdbench.search.pins import Pins
from kdbench.search.results import read_study_json
from kdbench.search.space import SearchSpace
from kdbench.search.studies import load_studies, queue_planned, study_space, used_trials, waiting_trials


def run_worker(study_dir: Path, storage_url: str | None, n_trials: int | None = None, device: str = "auto",
               no_cache: bool = False, worker_index: int = 0, grace_s: float = DEFAULT_GRACE_S,
               on_event: Callable[..., None] | None = None, threads: int | None = None) -> int:
    """One worker: run trials until every student's quota is used; returns the trials it ran (see worker_setup)."""
    space, info, teacher = worker_setup(study_dir, device, no_cache, threads)
    from kdbench.search.objective import SearchContext, TrialFailed, make_objective

    studies = load_studies(study_dir, storage_url, space)
    quota = space.trials_per_student(n_trials)
    ran = 0
    with Heartbeat(study_dir) as beat:
        ctx = SearchContext(space=space, study_dir=Path(study_dir), teacher_path=info.get("teacher"),
                            study_id=info.get("study_id"), device=device, heartbeat=beat, on_event=on_event,
                            quota=quota, **teacher)
        objectives = {s: released(make_objective(ctx, s)) for s in studies}
        while True:
            others = bool(live_workers(study_dir, grace_s, include_self=False))
            for s, study in studies.items():
                recover_stale_trials(study, study_dir, grace_s, others_alive=others)
                queue_planned(study, space, quota[s])
            # queued trials (WAITING) count as used but still need a worker: optimize() pops them first
            grid = space.sampler == "grid"
            left = {s: max(quota[s] - used_trials(studies[s], quota[s], grid), waiting_trials(studies[s]))
                    for s in space.students}
            todo = [s for s in space.students if left[s] > 0]
            if not todo:
                # the budget is spent: a best KD configuration at an input size with no baseline gets one
                if sum(queue_matched_baselines(studies[s], space, SLOT_ATTR) for s in space.students):
                    continue
                break
            student = max(todo, key=lambda s: left[s])
            beat.update(state="trial", student=student)
            # a signal raises inside the objective (the trial is queued again); during Optuna's ask and tell
            # it is held and raised once optimize() returns, so a finished trial is recorded COMPLETE
            with signals_held():
                try:
                    studies[student].optimize(objectives[student], n_trials=1, catch=(TrialFailed,),
                                              gc_after_trial=True, show_progress_bar=False)
                except Exception as err:
                    from kdbench.search.objective import describe_stop

                    raise SearchAborted(f"a trial of {student} stopped on {describe_stop(err)}; it is queued again "
                                        f"with its finished seeds: fix the cause and {RESUME_HINT}") from err
            ran += 1
    return ran


def worker_setup(study_dir: Path, device: str, no_cache: bool, threads: int | None = None,
                 ) -> tuple[SearchSpace, dict[str, Any], dict[str, Any]]:
    """(space, study.json, the SearchContext's store and teacher fields) of a process that trains the study.

    The study's pins (threads, format request, deterministic algorithms) are applied first; a study
    from before pins existed uses ``threads`` (N workers on C cores: C // N each)."""
    info = read_study_json(study_dir)
    if info.get("pins"):
        Pins.from_dict(info["pins"]).apply()
    elif threads:
        import torch

        torch.set_num_threads(threads)
    from kdbench.data.store import FrameStore

    store = FrameStore.open(info["store"])
    teacher = (TeacherFeed.open(store, info["teacher"], cache=not no_cache, device="cpu" if device == "auto" else device)
               if info.get("teacher") else None)
    return study_space(study_dir), info, {"store": store, "teacher": teacher}


RACE_LOCK = "race.lock"

RACE_WAIT_S = 2.0  # how often a race waiting for the other workers looks again


def run_race(study_dir: Path, device: str = "auto", no_cache: bool = False, grace_s: float = DEFAULT_GRACE_S,
             on_event: Callable[..., None] | None = None) -> dict[str, Any] | None:
    """After the budget: a race study's seeds where decisions are open (kdbench.search.seed_race).

    One process races a study at a time (``race.lock``); it waits until no other worker still trains
    trials (a Slurm array: every task runs this after its trials; the first to get the lock races once
    the others are done, the others leave it). None when the study does not race or another process does."""
    if study_space(study_dir).race is None:
        return None
    from kdbench.search.objective import SearchContext
    from kdbench.search.seed_race import race_study

    log = logging.getLogger("kdbench.search")
    with Heartbeat(study_dir) as beat, one_at_a_time(study_dir, RACE_LOCK, grace_s) as mine:
        beat.update(state="race")
        if not mine:
            log.info("another process races study %s (%s): this one leaves it", Path(study_dir).name,
                     Path(study_dir) / RACE_LOCK)
            return None
        told = False
        while others := live_workers(study_dir, grace_s, include_self=False):
            if not told:
                log.info("the race waits for %d worker(s) still training trials", len(others))
                told = True
            beat.update(state="race", waiting=len(others))
            time.sleep(RACE_WAIT_S)
        space, info, fields = worker_setup(study_dir, device, no_cache)
        ctx = SearchContext(space=space, study_dir=Path(study_dir), teacher_path=info.get("teacher"),
                            study_id=info.get("study_id"), device=device, heartbeat=beat, on_event=on_event, **fields)
        return race_study(ctx)
