"""Samplers seeded from the study's state: the seed of trial k is ``sampler_seed + k``.

A sampler seeded once per process replays its draws after a restart (the resumed search proposes
the configurations it already trained) and differs between workers only by an index. Re-seeding
for every trial from its number makes a draw depend on the study alone: whichever worker runs
trial 7, and however often the search was resumed, it gets seed ``sampler_seed + 7``.
"""

from __future__ import annotations

from typing import Any, Callable

import optuna
from optuna.samplers import BaseSampler


class TrialSeededSampler(BaseSampler):
    """Delegates to a sampler re-created in ``before_trial`` with seed ``base_seed + trial.number``."""

    def __init__(self, make: Callable[[int | None], BaseSampler], base_seed: int) -> None:
        self._make, self._base = make, base_seed
        self._inner = make(base_seed)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Re-create the inner sampler for this trial's number."""
        self._inner = self._make(self._base + trial.number)
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
        """The inner sampler's relative search space."""
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                        search_space: dict[str, Any]) -> dict[str, Any]:
        """The inner sampler's joint draw."""
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, param_name: str,
                           param_distribution: Any) -> Any:
        """The inner sampler's draw of one param."""
        return self._inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, state: Any,
                    values: Any) -> None:
        """Forwarded to the inner sampler."""
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        """Seeds follow trial numbers; nothing to reseed."""
