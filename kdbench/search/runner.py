"""Running a search: prepare the study, run workers until every student's quota is used, report.

``prepare_study`` checks the inputs, writes ``study.json``, builds the teacher-logit cache once and
creates one Optuna study per student (``<study>.<student>``). ``run_worker`` is one worker: it
loops, each time recovering abandoned trials, then running one trial of the student with the most
trials left. ``run_search`` runs one worker in this process or N worker processes, shows progress
read from the storage and the workers' status files, then writes ``summary.csv`` and
``statistics.json``. Many machines: run ``run_search`` (``kdbench search``) on each with the same
``--storage`` URL, ``--study`` name and shared run directory; the quotas are global.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from kdbench.distill.feed import TeacherFeed
from kdbench.errors import ConfigError, KdbenchError
from kdbench.layout import seed_runs
from kdbench.manifest import config_hash, file_hash, write_json
from kdbench.search.baselines import add_waiting, queue_matched_baselines
from kdbench.search.hardware_aware import budget_used, check_input_sizes
from kdbench.search.interrupts import (RESUME_HINT, Interrupted, interrupt_on_sigterm, released, signals_held,  # noqa: F401
                                       signals_deferred)
from kdbench.search.journal_lock import note_held_lock, remove_stale_lock
from kdbench.search.liveness import (DEFAULT_GRACE_S, SLOT_ATTR, Heartbeat, live_workers, one_at_a_time, recover_stale_trials,
                                     retried_numbers, superseded)
from kdbench.search.pins import Pins, current_pins
from kdbench.search.results import check_study_identity, read_study_json, storage_rows, write_statistics, write_summary
from kdbench.search.space import SearchSpace, check_unlabelled, grid_id, load_space, parse_space
from kdbench.search.storage import (check_same_storage, claim_optuna_study, journal_file, open_storage, redact,
                                    storage_id, storage_kind)

STORAGE_ENV = "KDBENCH_STORAGE_URL"


class SearchAborted(KdbenchError):
    """A trial stopped on a fault (full disk, read-only folder, a killed worker); the study is resumable."""


@dataclass
class SearchRequest:
    """The arguments of one `kdbench search` invocation."""

    config: Path
    store: Path
    teacher: Path | None = None
    run_dir: Path = Path("runs")
    storage: str | None = None
    study: str | None = None
    n_trials: int | None = None
    workers: int = 1
    device: str = "auto"
    no_cache: bool = False
    grace_s: float = DEFAULT_GRACE_S


def optuna_study_name(study: str, student: str) -> str:
    """The Optuna study of one student inside a kdbench study."""
    return f"{study}.{student}"


def make_sampler(space: SearchSpace) -> Any:
    """The Optuna sampler the space asks for, seeded per trial from ``sampler_seed`` (see kdbench.search.sampler).

    A grid's cells are queued as trials with fixed params (``queue_planned``), so its sampler never draws.
    """
    import warnings

    import optuna

    from kdbench.search.sampler import TrialSeededSampler

    def make(seed: int | None) -> Any:
        if space.sampler in ("random", "grid"):
            return optuna.samplers.RandomSampler(seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(space.n_startup_trials, 1),
                                              constant_liar=True, constraints_func=constraints)

    constraints = None  # Optuna >= 5: trial.set_constraint in kdbench.search.hardware_aware; before: a constraints_func
    if space.target and not hasattr(optuna.Trial, "set_constraint"):
        from kdbench.search.hardware_aware import constraint_values as constraints

    return make(None) if space.sampler_seed is None else TrialSeededSampler(make, space.sampler_seed)


def make_pruner(space: SearchSpace) -> Any:
    """The Optuna pruner the space asks for."""
    import optuna

    if space.pruner == "first_seed_median":
        return optuna.pruners.MedianPruner(n_startup_trials=space.n_startup_trials, n_warmup_steps=space.n_warmup_epochs)
    if space.pruner == "wilcoxon":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.pruners.WilcoxonPruner(p_threshold=space.p_threshold, n_startup_steps=2)
    return optuna.pruners.NopPruner()


def prepare_study(req: SearchRequest, progress: Callable[[int, int], None] | None = None,
                  announce: Callable[[], None] | None = None) -> Path:
    """Check every input and output before any long work, write study.json, build the teacher cache,
    create the Optuna studies, clean what an interrupted run left; the study dir. ``announce`` is called
    once every check has passed (the command line's start line and warnings: bad input gets only its error)."""
    import warnings

    import optuna

    from kdbench.checks import ensure_device
    from kdbench.data.store import FrameStore

    if req.workers < 1:
        raise ConfigError(f"--workers {req.workers}; expected at least 1")
    if req.n_trials is not None and req.n_trials < 1:
        raise ConfigError(f"--n-trials {req.n_trials}; expected at least 1")
    space = load_space(req.config)
    if space.pretrained:  # offline: one clear error before any work
        from kdbench.models.registry import ensure_pretrained_weights

        for student in space.students:
            ensure_pretrained_weights(student)
    name = req.study or space.name
    if not name or any(c in name for c in "/\\ \t"):
        raise ConfigError(f"--study {name!r}; expected a name without spaces or slashes")
    storage_kind(req.storage)
    if req.device != "auto":
        ensure_device(req.device)
    store = FrameStore.open(req.store)
    check_input_sizes(space, store, str(req.config))
    check_unlabelled(space, store, str(req.config))
    if space.needs_teacher() and req.teacher is None:
        raise ConfigError(f"{req.config}: methods {space.method_names} include distillation: pass --teacher PATH (.pt or .onnx)")
    if req.teacher is not None and not Path(req.teacher).is_file():
        raise ConfigError(f"--teacher {req.teacher} does not exist; expected a teacher checkpoint (.pt) or ONNX file")
    teacher_hash = file_hash(req.teacher) if req.teacher is not None else None
    study_dir = Path(req.run_dir).resolve() / name
    identity = {"config_hash": config_hash(space.raw), "store_hash": store.store_hash, "teacher_hash": teacher_hash}
    check_study_identity(study_dir, identity)
    quota = space.trials_per_student(req.n_trials)
    check_run_dir(req.run_dir, study_dir, space, quota)
    old = read_study_json(study_dir) if (study_dir / "study.json").is_file() else {}
    check_same_storage(old, req.storage, study_dir)
    pins = study_pins(old, req)
    if announce is not None:
        announce()
    from kdbench import __version__

    write_json(study_dir / "study.json", {
        "stage": "search", "study": name, "study_id": old.get("study_id") or uuid.uuid4().hex,
        "created": old.get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "kdbench_version": __version__,
        "config": space.to_dict(), **identity, "store": str(Path(req.store).resolve()),
        "teacher": str(Path(req.teacher).resolve()) if req.teacher else None, "seeds": space.seeds,
        "storage": redact(req.storage) if req.storage else str(study_dir / "optuna.journal"),
        "storage_kind": storage_kind(req.storage), "storage_id": storage_id(req.storage), "pins": pins.to_dict(),
        "n_trials": req.n_trials,  # the last run's --n-trials (None: the space's); confirm checks this budget
        "optuna_studies": {s: optuna_study_name(name, s) for s in space.students},
        "warnings": space.warnings,
    })
    live = live_workers(study_dir, req.grace_s)
    if not live:
        clean_leftovers(study_dir, req.storage)
    else:
        note_held_lock(study_dir, req.storage, live)
    if req.teacher is not None and not req.no_cache:  # built once here, before the workers open it
        TeacherFeed.open(store, req.teacher, progress=progress)
    storage = open_storage(req.storage, study_dir)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for student in space.students:
        study = optuna.create_study(study_name=optuna_study_name(name, student), storage=storage,
                                    directions=study_directions(space), load_if_exists=True)
        claim_optuna_study(study, read_study_json(study_dir)["study_id"], study_dir,
                           any(seed_runs(study_dir, student)))
        if study.user_attrs.get("kdbench_study_dir") != str(study_dir):
            study.set_user_attr("kdbench_study_dir", str(study_dir))
        queue_planned(study, space, quota[student])  # before any worker starts: workers find every cell queued
        names = metric_names(space)
        if study.metric_names != names:  # also an older study's names (the bare objectives): renamed
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(names)  # optuna-dashboard shows the objectives by name
    return study_dir


def study_pins(old: dict[str, Any], req: SearchRequest) -> Pins:
    """The study's pinned arithmetic: as recorded (a resume), else this machine's now; differences logged."""
    here = current_pins(worker_threads(req.workers), req.device)
    if not old.get("pins"):
        return here
    pins = Pins.from_dict(old["pins"])
    for line in pins.differences(here):
        logging.getLogger("kdbench.search").warning(
            "this run cannot pin what the study recorded (%s): seeds trained now will not be bitwise equal to "
            "the study's earlier ones", line)
    return pins


def study_directions(space: SearchSpace) -> list[str]:
    """Optuna directions: maximise the accuracy objective; minimise the latency of a multi-objective study."""
    return ["maximize"] + ["minimize"] * (len(space.objectives) - 1)


def metric_names(space: SearchSpace) -> list[str]:
    """The objectives' names in Optuna (optuna-dashboard): the accuracy is the mean over the trial's seeds, e.g.
    'val_accuracy_seed_mean' (whatever their number, so a race adding seeds keeps it); a latency keeps its name."""
    return [f"{space.objectives[0]}_seed_mean", *space.objectives[1:]]


def checkpoint_mb(space: SearchSpace, quota: dict[str, int]) -> float:
    """Estimated MiB of the best.pt files the study keeps (float32 weights of each student, +10%)."""
    from kdbench.data.views import VIEWS
    from kdbench.models import create_model

    kept = len(space.seeds) if space.keep_checkpoints == "all" else 1
    total = 0.0
    for student in space.students:
        try:
            import torch

            with torch.device("meta"):
                model = create_model(student, num_classes=len(VIEWS))
        except Exception:  # a model that cannot be built on the meta device: the CPU, once
            model = create_model(student, num_classes=len(VIEWS))
        n = sum(t.numel() for t in [*model.parameters(), *model.buffers()])
        total += 4 * n * 1.1 * kept * quota.get(student, 0)
    return total / 2**20


def check_run_dir(run_dir: Path, study_dir: Path, space: SearchSpace, quota: dict[str, int]) -> None:
    """--run-dir writable with room for the checkpoints the study still has to write."""
    from kdbench.checks import ensure_writable_dir

    ensure_writable_dir(run_dir, "--run-dir")
    have = sum(p.stat().st_size for p in study_dir.glob("trials/*/*/seed_*/best.pt")) / 2**20
    need = max(0.0, checkpoint_mb(space, quota) - have)
    ensure_writable_dir(study_dir, "--run-dir", need_mb=need)


def clean_leftovers(study_dir: Path, storage_url: str | None) -> list[Path]:
    """With no live worker: delete stray *.tmp files, remove a stale journal lock (one line says so) and cut
    a torn last line off the journal."""
    removed = []
    for tmp in Path(study_dir).rglob("*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    journal = journal_file(storage_url, study_dir)
    if storage_kind(storage_url) == "journal":
        lock = remove_stale_lock(journal)
        if lock is not None:
            removed.append(lock)
    if storage_kind(storage_url) == "journal" and journal.is_file():
        data = journal.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(journal, "r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)
    return removed


def load_studies(study_dir: Path, storage_url: str | None, space: SearchSpace | None = None) -> dict[str, Any]:
    """The Optuna study of every student, with the space's sampler and pruner when given."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # a failed trial is reported by kdbench, in one line
    info = read_study_json(study_dir)
    storage = open_storage(storage_url, study_dir)
    out = {}
    for student, name in info["optuna_studies"].items():
        kwargs = {"sampler": make_sampler(space), "pruner": make_pruner(space)} if space else {}
        out[student] = optuna.load_study(study_name=name, storage=storage, **kwargs)
    return out


def study_space(study_dir: Path) -> SearchSpace:
    """The search space a study was created with (from study.json, not the possibly edited file)."""
    info = read_study_json(study_dir)
    space = parse_space(info["config"]["raw"], info["config"]["file"], check_students=False)
    space.name = info["study"]
    return space


def used_trials(study: Any, quota: int = 0, grid: bool = False) -> int:
    """Trials that count against a quota: all but retried failures and duplicates (their retry counts instead)
    and, up to ``quota``, trials priced infeasible and never trained (kdbench.search.hardware_aware.budget_used)."""
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    return budget_used([t for t in trials if not superseded(t, retried)], quota, grid)


def waiting_trials(study: Any) -> int:
    """Trials queued (WAITING): the baseline, grid cells, retries of interrupted trials."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def queue_planned(study: Any, space: SearchSpace, quota: int) -> int:
    """Queue the trials a study plans before sampling: its baseline, or a grid's missing cells; how many."""
    if space.sampler == "grid":
        plan = [(f"grid:{grid_id(c)}", c) for c in space.grid()[:quota]]
    elif space.baseline:
        plan = [("baseline", {"method": space.baseline, "hparams": {}, "train": {}})]
    else:
        return 0
    have = {t.system_attrs.get(SLOT_ATTR) for t in study.get_trials(deepcopy=False)}
    queued = 0
    for slot, cell in plan:
        if slot in have:
            continue
        add_waiting(study, space.cell_params(cell), SLOT_ATTR, slot, baseline=cell["method"] == space.baseline)
        queued += 1
    return queued


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


def _set_parent_death_signal() -> None:
    """Linux: let the kernel SIGKILL this worker when the process that started it dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def worker_threads(workers: int) -> int:
    """Torch threads per worker: OMP_NUM_THREADS when set (the user's choice), else the cores split evenly."""
    given = os.environ.get("OMP_NUM_THREADS", "")
    return int(given) if given.isdigit() and int(given) > 0 else max(1, (os.cpu_count() or 1) // workers)


def spawn_workers(study_dir: Path, req: SearchRequest) -> list[subprocess.Popen]:
    """Start req.workers worker processes (their logs in workers/worker-<i>.log)."""
    env = dict(os.environ)
    if req.storage:
        env[STORAGE_ENV] = req.storage  # not on the command line: `ps` would show the password
    logs = Path(study_dir) / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(req.workers):
        cmd = [sys.executable, "-m", "kdbench.search.worker", "--study-dir", str(study_dir), "--device", req.device,
               "--index", str(i), "--grace", str(req.grace_s), "--parent", str(os.getpid()),
               "--threads", str(read_study_json(study_dir).get("pins", {}).get("threads") or worker_threads(req.workers))]
        if req.n_trials is not None:
            cmd += ["--n-trials", str(req.n_trials)]
        if req.no_cache:
            cmd.append("--no-cache")
        with open(logs / f"worker-{i}.log", "ab") as log:
            procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def stop_workers(procs: list[subprocess.Popen], timeout_s: float = 60.0) -> None:
    """Ask every running worker to stop (SIGINT: it queues its trial again), then wait; SIGKILL stragglers."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(OSError):
                p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_workers(study_dir: Path, procs: list[subprocess.Popen]) -> None:
    """Wait for the workers; an interrupt stops them all, a worker that failed is reported in one line."""
    try:
        codes = [p.wait() for p in procs]
    except BaseException:
        with signals_deferred():
            stop_workers(procs)
        raise
    interrupted = {130: signal.SIGINT, 143: signal.SIGTERM, -signal.SIGINT: signal.SIGINT, -signal.SIGTERM: signal.SIGTERM}
    if any(c in interrupted for c in codes):
        raise Interrupted(next(interrupted[c] for c in codes if c in interrupted))
    bad = [(i, c) for i, c in enumerate(codes) if c != 0]
    if bad:
        log = Path(study_dir) / "workers" / f"worker-{bad[0][0]}.log"
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.is_file() else []
        last = f": {lines[-1].strip()}" if lines else ""
        raise SearchAborted(f"worker(s) {[i for i, _ in bad]} exited with {[c for _, c in bad]} (worker {bad[0][0]}"
                            f"{last}; see {log}); their trials are queued again: {RESUME_HINT}")


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
