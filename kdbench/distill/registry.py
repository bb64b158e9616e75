"""The distillation methods by name. Adding a method: one module in this package, one line here."""

from __future__ import annotations

from typing import Any

from kdbench.distill.base import DistillMethod
from kdbench.distill.conditional import Conditional
from kdbench.distill.ctkd import CTKD
from kdbench.distill.dist import DIST
from kdbench.distill.dkd import DKD
from kdbench.distill.logit_std import LogitStd
from kdbench.distill.nkd import NKD
from kdbench.distill.scratch import Scratch
from kdbench.distill.vanilla import Vanilla
from kdbench.distill.wttm import WTTM
from kdbench.errors import ConfigError

METHODS: dict[str, type[DistillMethod]] = {
    Scratch.name: Scratch,
    Vanilla.name: Vanilla,
    Conditional.name: Conditional,
    CTKD.name: CTKD,
    DKD.name: DKD,
    LogitStd.name: LogitStd,  # alias: vanilla KD with standardize=True
    DIST.name: DIST,
    WTTM.name: WTTM,
    NKD.name: NKD,
}


def method_defaults(name: str) -> dict[str, Any]:
    """The hyperparameters of method ``name`` with their default values."""
    return _method_class(name).defaults()


def resolved_hparams(name: str | None, hparams: dict[str, Any] | None) -> dict[str, Any]:
    """The settings method ``name`` runs with: its defaults overridden by ``hparams`` (a trial that runs a
    method on its defaults records ``{}``; T = 4, alpha = 0.5 must still show). Unknown method: ``hparams``."""
    cls = METHODS.get(name or "")
    return {**(cls.defaults() if cls is not None else {}), **(hparams or {})}


def _method_class(name: str) -> type[DistillMethod]:
    if name not in METHODS:
        raise ConfigError(f"unknown distillation method {name!r}; expected one of {list(METHODS)}")
    return METHODS[name]


def create_method(name: str, **hparams: Any) -> DistillMethod:
    """Build distillation method ``name`` with the given hyperparameters (the rest default)."""
    cls = _method_class(name)
    allowed = cls.defaults()
    unknown = sorted(set(hparams) - set(allowed))
    if unknown:
        listed = ", ".join(f"{k} (default {v!r})" for k, v in allowed.items()) or "none"
        raise ConfigError(f"method {name!r} has no hyperparameter(s) {unknown}; allowed: {listed}")
    return cls(**hparams)
