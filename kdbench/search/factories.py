"""The Optuna pieces a study's space asks for: sampler, pruner, directions, metric and study names."""

from __future__ import annotations

from typing import Any

from kdbench.search.space import SearchSpace


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


def study_directions(space: SearchSpace) -> list[str]:
    """Optuna directions: maximise the accuracy objective; minimise the latency of a multi-objective study."""
    return ["maximize"] + ["minimize"] * (len(space.objectives) - 1)


def metric_names(space: SearchSpace) -> list[str]:
    """The objectives' names in Optuna (optuna-dashboard): the accuracy is the mean over the trial's seeds, e.g.
    'val_accuracy_seed_mean' (whatever their number, so a race adding seeds keeps it); a latency keeps its name."""
    return [f"{space.objectives[0]}_seed_mean", *space.objectives[1:]]
