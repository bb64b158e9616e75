"""The one selection rule: which trial of a set is the best on an objective (the statistics, the baselines, the
best trials, the confirmation and the leaderboard all choose with it)."""

from __future__ import annotations

from typing import Any

from kdbench.search.trial_record import TrialRecord


def best_trial(trials: list[Any], objective: str) -> Any:
    """The trial with the highest mean ``objective`` (ties: the earlier trial); None if none is scored.

    ``trials``: TrialRecords, or trial.json dicts (what the statistics themselves still take). In a raced study
    (kdbench.search.seed_race) the race's best configuration comes first where it is among ``trials``: a
    configuration the race stopped early keeps a mean over fewer seeds, which must not outrank the one the race
    ran to the end."""
    keys = [(t, _selection_key(t, objective)) for t in trials]
    scored = [(t, k) for t, k in keys if k[1] is not None]
    # ties go to the earliest configuration: its first trial number, which a retry after a fault keeps
    return max(scored, key=lambda tk: tk[1])[0] if scored else None


def _selection_key(t: Any, objective: str) -> tuple[bool, float | None, int]:
    """(won the race, mean objective, -first trial of its retry chain) of a TrialRecord or a trial.json dict."""
    r = t if isinstance(t, TrialRecord) else None
    verdict = r.race_verdict if r else (t.get("race") or {}).get("verdict")
    mean = r.mean(objective) if r else t.get(f"mean_{objective}")
    first = (r.trial if r.first_trial is None else r.first_trial) if r else t.get("first_trial", t["trial"])
    return verdict == "best", mean, -first
