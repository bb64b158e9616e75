"""Preparing a study before any long work: check every input and output, write study.json, build the
teacher-logit cache once and create one Optuna study per student (``<study>.<student>``)."""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from kdbench.distill.feed import TeacherFeed
from kdbench.errors import ConfigError
from kdbench.layout import seed_runs
from kdbench.manifest import config_hash, file_hash, write_json
from kdbench.search.disk import check_run_dir, clean_leftovers
from kdbench.search.factories import metric_names, optuna_study_name, study_directions
from kdbench.search.hardware_aware import check_input_sizes
from kdbench.search.journal_lock import note_held_lock
from kdbench.search.liveness import DEFAULT_GRACE_S, live_workers
from kdbench.search.pins import Pins, current_pins
from kdbench.search.results import check_study_identity, read_study_json
from kdbench.search.space import SearchSpace, check_unlabelled, load_space
from kdbench.search.storage import check_same_storage, claim_optuna_study, open_storage, redact, storage_id, storage_kind
from kdbench.search.studies import queue_planned


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


def prepare_study(req: SearchRequest, progress: Callable[[int, int], None] | None = None,
                  announce: Callable[[], None] | None = None) -> Path:
    """Check every input and output before any long work, write study.json, build the teacher cache,
    create the Optuna studies, clean what an interrupted run left; the study dir. ``announce`` is called
    once every check has passed (the command line's start line and warnings: bad input gets only its error)."""
    space, store, name = check_request(req)
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
    write_study_json(study_dir, req, space, name, {**identity, "pins": pins.to_dict()}, old)
    live = live_workers(study_dir, req.grace_s)
    if not live:
        clean_leftovers(study_dir, req.storage)
    else:
        note_held_lock(study_dir, req.storage, live)
    if req.teacher is not None and not req.no_cache:  # built once here, before the workers open it
        TeacherFeed.open(store, req.teacher, progress=progress)
    create_studies(study_dir, req.storage, space, name, quota)
    return study_dir


def check_request(req: SearchRequest) -> tuple[SearchSpace, Any, str]:
    """(space, opened FrameStore, study name) once the request's own inputs check out (ConfigError, DataError)."""
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
    return space, store, name


def write_study_json(study_dir: Path, req: SearchRequest, space: SearchSpace, name: str, fixed: dict[str, Any],
                     old: dict[str, Any]) -> None:
    """study.json: the resolved space, inputs and storage; ``fixed`` the identity hashes and pins; ``old`` a
    resumed study's (its study_id and creation time are kept)."""
    from kdbench import __version__

    write_json(study_dir / "study.json", {
        "stage": "search", "study": name, "study_id": old.get("study_id") or uuid.uuid4().hex,
        "created": old.get("created") or datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "kdbench_version": __version__,
        "config": space.to_dict(), **fixed, "store": str(Path(req.store).resolve()),
        "teacher": str(Path(req.teacher).resolve()) if req.teacher else None, "seeds": space.seeds,
        "storage": redact(req.storage) if req.storage else str(study_dir / "optuna.journal"),
        "storage_kind": storage_kind(req.storage), "storage_id": storage_id(req.storage),
        "n_trials": req.n_trials,  # the last run's --n-trials (None: the space's); confirm checks this budget
        "optuna_studies": {s: optuna_study_name(name, s) for s in space.students},
        "warnings": space.warnings,
    })


def create_studies(study_dir: Path, storage_url: str | None, space: SearchSpace, name: str,
                   quota: dict[str, int]) -> None:
    """Create (or load) each student's Optuna study, claim it for this study and queue its planned trials."""
    import warnings

    import optuna

    storage = open_storage(storage_url, study_dir)
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


def worker_threads(workers: int) -> int:
    """Torch threads per worker: OMP_NUM_THREADS when set (the user's choice), else the cores split evenly."""
    given = os.environ.get("OMP_NUM_THREADS", "")
    return int(given) if given.isdigit() and int(given) > 0 else max(1, (os.cpu_count() or 1) // workers)
