"""The baseline a distilled configuration is compared with: the scratch run at the same input size.

When ``input_size`` is searched, KD at 24 px against scratch at 32 px would compare resolutions, not
methods. So each method's best configuration is paired with the best baseline trial *at its input
size* (``matched_baseline``; one rule for the statistics and the search). A search whose best KD
configuration sits at a size no baseline trial was trained at queues that baseline once, after the
budget is spent (``queue_matched_baselines``): it is trained when it is needed, on the same seeds, and
a resumed search queues nothing twice (one slot per size).
"""

from __future__ import annotations

from typing import Any

from kdbench.search.selection import best_trial

SLOT_PREFIX = "baseline@input_size="


def input_size_of(trial: dict[str, Any]) -> int | None:
    """The trial's training input size (None: the store's own size)."""
    return (trial.get("train") or {}).get("input_size")


def matched_baseline(mine: list[dict[str, Any]], kd: dict[str, Any], baseline: str,
                     objective: str) -> dict[str, Any] | None:
    """The best ``baseline`` trial of the same student at ``kd``'s input size (None when there is none)."""
    size = input_size_of(kd)
    return best_trial([t for t in mine if t["method"] == baseline and input_size_of(t) == size], objective)


def best_kd_and_baseline(mine: list[dict[str, Any]], baseline: str,
                         objective: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the student's best distilled trial, the best baseline trial at its input size); either may be None."""
    kd = best_trial([t for t in mine if t["method"] != baseline], objective)
    return kd, matched_baseline(mine, kd, baseline, objective) if kd is not None else None


def missing_baselines(mine: list[dict[str, Any]], baseline: str, objective: str) -> list[int | None]:
    """Input sizes of the methods' best configurations that have no scored baseline trial, in order."""
    kd = [t for t in mine if t["method"] != baseline]
    out: list[int | None] = []
    for method in sorted({t["method"] for t in kd}):
        best = best_trial([t for t in kd if t["method"] == method], objective)
        if best is not None and matched_baseline(mine, best, baseline, objective) is None:
            size = input_size_of(best)
            if size not in out:
                out.append(size)
    return out


def _as_record(t: Any, objective: str) -> dict[str, Any]:
    """The fields the rules above read, from an Optuna FrozenTrial of a search."""
    method = t.params.get("method", t.user_attrs.get("method"))
    size = t.params.get("input_size", (t.user_attrs.get("train") or {}).get("input_size"))
    return {"trial": t.number, "method": method, "train": {"input_size": size},
            f"mean_{objective}": t.user_attrs.get(f"mean_{objective}")}


def queue_matched_baselines(study: Any, space: Any, slot_attr: str) -> int:
    """Queue (once per size) the baseline trials the best KD configurations lack; how many were queued."""
    from optuna.trial import TrialState

    if not space.baseline or space.sampler == "grid" or "input_size" not in space.shared \
            or len(study.directions) != 1:
        return 0
    trials = study.get_trials(deepcopy=False)
    done = [_as_record(t, space.objective) for t in trials if t.state == TrialState.COMPLETE]
    live = [_as_record(t, space.objective) for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    busy = {(r["method"], input_size_of(r)) for r in live}
    slots = {t.system_attrs.get(slot_attr) for t in trials}
    queued = 0
    for size in missing_baselines(done, space.baseline, space.objective):
        slot = f"{SLOT_PREFIX}{size}"
        if size is None or slot in slots or (space.baseline, size) in busy:
            continue
        add_waiting(study, space.cell_params({"method": space.baseline, "hparams": {}, "train": {"input_size": size}}),
                    slot_attr, slot, baseline=True)
        queued += 1
    return queued


def add_waiting(study: Any, params: dict[str, Any], slot_attr: str, slot: str, baseline: bool) -> None:
    """Queue a trial with fixed params in a named slot (the next worker pops it before sampling)."""
    import optuna
    from optuna.trial import TrialState

    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING,
                                              system_attrs={"fixed_params": params, slot_attr: slot},
                                              user_attrs={"baseline": baseline}))
