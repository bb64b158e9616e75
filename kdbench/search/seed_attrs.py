"""A trial's per-seed figures as flat Optuna user attributes (``seed_<s>_<key>``), and the dict rebuilt from them.

Flat scalars keep optuna-dashboard's trial page narrow; the full per-seed record (epochs, messages)
is the study folder's ``trial.json``. Studies written before this carry one wide user attribute,
``seed_results`` ({seed: {key: value}}), which ``seed_results_of`` still reads.
"""

from __future__ import annotations

import re
from typing import Any

METRICS = ("val_accuracy", "test_accuracy", "val_macro_f1", "test_macro_f1", "val_clip_accuracy", "test_clip_accuracy")
SEED_KEYS = ("status", *METRICS, "wall_time_s")  # stored per seed on the trial
LEGACY_ATTR = "seed_results"  # older studies' per-seed dict (one user attribute); no longer written
_FLAT = re.compile(r"seed_(-?\d+)_(" + "|".join(SEED_KEYS) + ")")


def seed_attrs(seed: int | str, summary: dict[str, Any]) -> dict[str, Any]:
    """The flat user attributes of one seed's summary, e.g. ``seed_0_val_accuracy`` (None values left out)."""
    return {f"seed_{seed}_{key}": summary[key] for key in SEED_KEYS if summary.get(key) is not None}


def seed_results_of(trial: Any) -> dict[str, dict[str, Any]]:
    """A trial's per-seed figures {seed: {key: value}}, seeds in order, from its flat attributes (merged over
    the legacy ``seed_results`` attribute of older studies, whose flat ones lack status and wall time)."""
    out = {str(s): dict(v) for s, v in (trial.user_attrs.get(LEGACY_ATTR) or {}).items()}
    for name, value in trial.user_attrs.items():
        match = _FLAT.fullmatch(name)
        if match:
            out.setdefault(match[1], {})[match[2]] = value
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))
