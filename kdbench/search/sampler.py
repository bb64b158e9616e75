"""Samplers seeded from the study's state: the k-th fresh draw gets seed ``sampler_seed + k``.

A sampler seeded once per process replays its draws after a restart (the resumed search proposes
the configurations it already trained) and differs between workers only by an index. Re-seeding
for every trial from the study makes a draw depend on the study alone. The seed follows the
configuration's *slot*, not the trial number: a retried trial (queued again after a fault, with
its parameters) takes a new number but draws nothing, so numbering by trial would shift every
later draw. Here the k-th freshly sampled trial (counting neither retries nor queued baselines
and grid cells) gets ``sampler_seed + k`` whichever worker runs it and however often the search
was interrupted; a queued trial (baseline, grid cell) gets a seed from its slot's name, and a
retry the seed of the trial it retries.
"""

from __future__ import annotations

from typing import Any, Callable

import hashlib

import optuna
from optuna.samplers import BaseSampler

from kdbench.search.liveness import SLOT_ATTR

QUEUED_SEED_OFFSET = 1_000_003  # queued slots' seeds live apart from the fresh draws' sampler_seed + k


def is_fresh(trial: optuna.trial.FrozenTrial) -> bool:
    """A trial the sampler proposed (not queued with fixed parameters, not a retry)."""
    return "fixed_params" not in trial.system_attrs and "retry_history" not in trial.system_attrs


def slot_seed(study: optuna.Study, trial: optuna.trial.FrozenTrial, base: int) -> int:
    """The seed of a trial's draws: ``base + k`` for the k-th fresh trial; a queued slot's own; a retry's original's."""
    trials = study.get_trials(deepcopy=False)
    first = trial.system_attrs.get("failed_trial")
    if first is not None:  # a retry draws as the trial it retries did
        trial = next((t for t in trials if t.number == first), trial)
    if "fixed_params" in trial.system_attrs:
        slot = str(trial.system_attrs.get(SLOT_ATTR, trial.system_attrs["fixed_params"]))
        return base + QUEUED_SEED_OFFSET + int(hashlib.sha256(slot.encode()).hexdigest()[:7], 16)
    return base + sum(1 for t in trials if t.number < trial.number and is_fresh(t))


class TrialSeededSampler(BaseSampler):
    """Delegates to a sampler re-created in ``before_trial`` with the trial's slot seed (``slot_seed``)."""

    def __init__(self, make: Callable[[int | None], BaseSampler], base_seed: int) -> None:
        self._make, self._base = make, base_seed
        self._inner = make(base_seed)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Re-create the inner sampler for this trial's slot."""
        self._inner = self._make(slot_seed(study, trial, self._base))
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
        """Seeds follow the trials' slots; nothing to reseed."""
