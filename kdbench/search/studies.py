"""A study's Optuna studies as the workers use them: loading, the space it was made with, quotas, planned trials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdbench.search.baselines import add_waiting
from kdbench.search.factories import make_pruner, make_sampler
from kdbench.search.hardware_aware import budget_used
from kdbench.search.liveness import SLOT_ATTR, retried_numbers, superseded
from kdbench.search.results import read_study_json
from kdbench.search.space import SearchSpace, grid_id, parse_space
from kdbench.search.storage import open_storage


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
