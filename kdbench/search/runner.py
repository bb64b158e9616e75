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

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from kdbench.errors import ConfigError
from kdbench.manifest import config_hash, file_hash, write_json
from kdbench.search.liveness import DEFAULT_GRACE_S, STALE_ATTR, Heartbeat, recover_stale_trials
from kdbench.search.results import check_study_identity, read_study_json, storage_rows, write_statistics, write_summary
from kdbench.search.space import SearchSpace, load_space, parse_space
from kdbench.search.storage import open_storage, redact, storage_kind

STORAGE_ENV = "KDBENCH_STORAGE_URL"


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


def make_sampler(space: SearchSpace, worker_index: int = 0) -> Any:
    """The Optuna sampler the space asks for (seeded per worker so workers do not propose the same point)."""
    import optuna

    from kdbench.search.space import grid_id

    seed = None if space.sampler_seed is None else space.sampler_seed + worker_index
    if space.sampler == "grid":
        return optuna.samplers.GridSampler({"config": [grid_id(c) for c in space.grid()]}, seed=seed)
    if space.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(space.n_startup_trials, 1), constant_liar=True)


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


def prepare_study(req: SearchRequest, progress: Callable[[int, int], None] | None = None) -> Path:
    """Validate inputs, write study.json, build the teacher cache, create the Optuna studies; the study dir."""
    import optuna

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
    store = FrameStore.open(req.store)
    if space.needs_teacher() and req.teacher is None:
        raise ConfigError(f"{req.config}: methods {space.method_names} include distillation: pass --teacher PATH (.pt or .onnx)")
    teacher_hash = file_hash(req.teacher) if req.teacher is not None else None
    if req.teacher is not None and not Path(req.teacher).is_file():
        raise ConfigError(f"--teacher {req.teacher} does not exist")
    study_dir = Path(req.run_dir).resolve() / name
    identity = {"config_hash": config_hash(space.raw), "store_hash": store.store_hash, "teacher_hash": teacher_hash}
    check_study_identity(study_dir, identity)
    study_dir.mkdir(parents=True, exist_ok=True)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if (study_dir / "study.json").is_file():
        created = read_study_json(study_dir).get("created", created)
    from kdbench import __version__

    write_json(study_dir / "study.json", {
        "stage": "search", "study": name, "created": created, "kdbench_version": __version__,
        "config": space.to_dict(), **identity, "store": str(Path(req.store).resolve()),
        "teacher": str(Path(req.teacher).resolve()) if req.teacher else None, "seeds": space.seeds,
        "storage": redact(req.storage) if req.storage else str(study_dir / "optuna.journal"),
        "storage_kind": storage_kind(req.storage),
        "optuna_studies": {s: optuna_study_name(name, s) for s in space.students},
        "warnings": space.warnings,
    })
    if req.teacher is not None and not req.no_cache:
        from kdbench.distill.cache import load_or_build_teacher_logits

        load_or_build_teacher_logits(store, req.teacher, progress=progress)
    storage = open_storage(req.storage, study_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for student in space.students:
        study = optuna.create_study(study_name=optuna_study_name(name, student), storage=storage, direction="maximize",
                                    load_if_exists=True)
        study.set_user_attr("kdbench_study_dir", str(study_dir))
    return study_dir


def load_studies(study_dir: Path, storage_url: str | None, space: SearchSpace | None = None, worker_index: int = 0) -> dict[str, Any]:
    """The Optuna study of every student, with the space's sampler and pruner when given."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    info = read_study_json(study_dir)
    storage = open_storage(storage_url, study_dir)
    out = {}
    for student, name in info["optuna_studies"].items():
        kwargs = {"sampler": make_sampler(space, worker_index), "pruner": make_pruner(space)} if space else {}
        out[student] = optuna.load_study(study_name=name, storage=storage, **kwargs)
    return out


def study_space(study_dir: Path) -> SearchSpace:
    """The search space a study was created with (from study.json, not the possibly edited file)."""
    info = read_study_json(study_dir)
    space = parse_space(info["config"]["raw"], info["config"]["file"], check_students=False)
    space.name = info["study"]
    return space


def used_trials(study: Any) -> int:
    """Trials that count against a quota: all but failed ones that were queued again (their retry counts)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    return sum(1 for t in trials if not (t.state == TrialState.FAIL and (t.number in retried or STALE_ATTR in t.system_attrs)))


def waiting_trials(study: Any) -> int:
    """Trials queued (WAITING), e.g. retries of abandoned trials."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))


def run_worker(study_dir: Path, storage_url: str | None, n_trials: int | None = None, device: str = "auto",
               no_cache: bool = False, worker_index: int = 0, grace_s: float = DEFAULT_GRACE_S,
               on_event: Callable[..., None] | None = None, threads: int | None = None) -> int:
    """One worker: run trials until every student's quota is used; returns the trials it ran."""
    if threads:
        import torch

        torch.set_num_threads(threads)  # N workers on C cores: C // N threads each, no oversubscription
    from kdbench.data.store import FrameStore
    from kdbench.search.objective import SearchContext, TrialFailed, make_objective

    info = read_study_json(study_dir)
    space = study_space(study_dir)
    store = FrameStore.open(info["store"])
    teacher_logits = teacher_model = None
    if info.get("teacher"):
        if no_cache:
            from kdbench.teacher import live_teacher

            teacher_model = live_teacher(info["teacher"], "cpu" if device == "auto" else device)
        else:
            from kdbench.distill.cache import load_or_build_teacher_logits

            teacher_logits = load_or_build_teacher_logits(store, info["teacher"])
    studies = load_studies(study_dir, storage_url, space, worker_index)
    quota = space.trials_per_student(n_trials)
    ran = 0
    with Heartbeat(study_dir) as beat:
        ctx = SearchContext(space=space, study_dir=Path(study_dir), store=store, teacher_path=info.get("teacher"),
                            teacher_logits=teacher_logits, teacher_model=teacher_model, device=device,
                            heartbeat=beat, on_event=on_event)
        objectives = {s: make_objective(ctx, s) for s in studies}
        while True:
            for study in studies.values():
                recover_stale_trials(study, study_dir, grace_s)
            # queued retries (WAITING) count as used but still need a worker: optimize() pops them first
            left = {s: max(quota[s] - used_trials(studies[s]), waiting_trials(studies[s])) for s in space.students}
            todo = [s for s in space.students if left[s] > 0]
            if not todo:
                break
            student = max(todo, key=lambda s: left[s])
            beat.update(state="trial", student=student)
            studies[student].optimize(objectives[student], n_trials=1, catch=(TrialFailed,), gc_after_trial=True,
                                      show_progress_bar=False)
            ran += 1
    return ran


def _set_parent_death_signal() -> None:
    """Linux: let the kernel SIGKILL this worker when the process that started it dies."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


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
               "--threads", str(max(1, (os.cpu_count() or 1) // req.workers))]
        if req.n_trials is not None:
            cmd += ["--n-trials", str(req.n_trials)]
        if req.no_cache:
            cmd.append("--no-cache")
        with open(logs / f"worker-{i}.log", "ab") as log:
            procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def finish_study(study_dir: Path, storage_url: str | None) -> dict[str, Any]:
    """Write summary.csv and statistics.json; return the statistics."""
    rows = storage_rows(load_studies(study_dir, storage_url))
    write_summary(study_dir, rows)
    return write_statistics(study_dir)


def run_search(req: SearchRequest, display: Callable[[Path, Callable[[], None]], None] | None = None) -> dict[str, Any]:
    """Prepare the study, run the workers (showing progress through ``display``), write the reports."""
    start = time.perf_counter()
    study_dir = prepare_study(req)
    if req.workers == 1:
        def work() -> None:
            run_worker(study_dir, req.storage, req.n_trials, req.device, req.no_cache, 0, req.grace_s)
    else:
        def work() -> None:
            procs = spawn_workers(study_dir, req)
            try:
                codes = [p.wait() for p in procs]
            except BaseException:
                for p in procs:
                    p.terminate()
                raise
            bad = [(i, c) for i, c in enumerate(codes) if c != 0]
            if bad:
                logs = ", ".join(str(Path(study_dir) / "workers" / f"worker-{i}.log") for i, _ in bad)
                raise ConfigError(f"worker(s) {[i for i, _ in bad]} exited with {[c for _, c in bad]}; see {logs}")
    if display is None:
        work()
    else:
        display(study_dir, work)
    stats = finish_study(study_dir, req.storage)
    return {"study_dir": study_dir, "wall_time_s": time.perf_counter() - start, "statistics": stats}
