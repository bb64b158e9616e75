"""The base class of every distillation method, and the loss pieces the methods share.

A method works on logits (the teacher's come from the cache), in the shape of mdistiller's
distillers: ``forward(student_logits, teacher_logits, targets, epoch)`` returns named loss terms
and the training loss is their sum. Hyperparameters are the keyword arguments of the method's
``__init__`` (each with a default); ``hparams()`` reports their values. ``epoch`` is the 0-based
index of the current training epoch (0 = the first), as ``kdbench.train.fit`` passes it; methods
whose published schedules count epochs from 1 (DKD's warm-up, CTKD's lambda) use ``epoch + 1``.
Teacher logits are always detached: no gradient reaches the teacher.

Logit standardisation (Sun et al., CVPR 2024, "Logit Standardization in Knowledge Distillation") is
a switch on every logit method: a method that takes ``standardize`` (default False) passes its
logits through ``distill_logits`` before its distillation term, which z-scores each sample's
student and teacher logits when the switch is on. Cross-entropy on the labels always uses the raw
student logits. ``logit_std`` is vanilla KD with the switch on.

Unlabelled rows (``TrainConfig.unlabelled``): a row whose target is ``NO_LABEL`` (-1) is a frame
nobody labelled, which the teacher labels. The rule, the same for every method: the label term
(cross-entropy on the labels, ``label_ce`` / ``label_mean``) is averaged over the batch's labelled
rows only (0 when it has none); the distillation term is averaged over every row, as before. So a
batch of L labelled and U unlabelled rows gives, for vanilla KD,

    loss = (1 - alpha) * (1/L) sum_{labelled} CE  +  alpha * T^2 * (1/(L+U)) sum_{all} KL

and a batch without unlabelled rows gives exactly (bit for bit) the loss it gave before. A
distillation term that itself needs a class (DKD's target/non-target split, NKD's target term,
conditional KD's "teacher right?" test) takes ``distill_targets``: the label where there is one,
the teacher's argmax on unlabelled rows.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from kdbench.data.views import NO_LABEL
from kdbench.errors import ConfigError


class DistillMethod(nn.Module):
    """A distillation loss on logits: named loss terms per batch, per-epoch log values."""

    name: ClassVar[str] = ""
    needs_teacher: ClassVar[bool] = True
    standardize: bool = False  # methods taking a ``standardize`` hparam set it per instance

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The method's hyperparameters and their defaults, read from ``__init__``'s signature."""
        sig = inspect.signature(cls.__init__)
        return {
            p.name: p.default
            for p in sig.parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }

    def hparams(self) -> dict[str, Any]:
        """The hyperparameter values this instance uses (same keys as ``defaults()``)."""
        return {key: getattr(self, key) for key in self.defaults()}

    def forward(
        self,
        student_logits: torch.Tensor,
        teacher_logits: torch.Tensor | None,
        targets: torch.Tensor,
        epoch: int,
    ) -> dict[str, torch.Tensor]:
        """Named loss terms for one batch; their sum is the training loss."""
        raise NotImplementedError

    def epoch_log(self) -> dict[str, float]:
        """Values worth logging once per epoch (e.g. CTKD's temperature); empty by default."""
        return {}

    def distill_logits(self, student_logits: torch.Tensor,
                       teacher_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The logits a distillation term compares: per-sample z-scored when ``standardize`` is on."""
        if self.standardize:
            return standardize(student_logits), standardize(teacher_logits)
        return student_logits, teacher_logits

    def check_inputs(
        self, student_logits: torch.Tensor, teacher_logits: torch.Tensor | None, targets: torch.Tensor
    ) -> torch.Tensor | None:
        """Validate shapes; returns the detached teacher logits (None for teacher-free methods)."""
        if student_logits.dim() != 2:
            raise ConfigError(
                f"method {self.name!r}: student logits have shape {tuple(student_logits.shape)}; expected [B, C]"
            )
        if targets.shape != student_logits.shape[:1]:
            raise ConfigError(
                f"method {self.name!r}: targets have shape {tuple(targets.shape)}; expected "
                f"[{student_logits.shape[0]}] (one class index per row of the logits)"
            )
        if not self.needs_teacher:
            return None
        if teacher_logits is None:
            raise ConfigError(f"method {self.name!r} distils from a teacher but got teacher_logits=None")
        if teacher_logits.shape != student_logits.shape:
            raise ConfigError(
                f"method {self.name!r}: teacher logits have shape {tuple(teacher_logits.shape)}, student "
                f"logits {tuple(student_logits.shape)}; expected the same [B, C]"
            )
        return teacher_logits.detach().to(student_logits.dtype)

    def check_classes(self, logits: torch.Tensor, minimum: int, term: str) -> None:
        """ConfigError unless ``logits`` have at least ``minimum`` classes (``term`` names what needs them)."""
        if logits.shape[1] < minimum:
            raise ConfigError(f"method {self.name!r} needs at least {minimum} classes for {term}; got {logits.shape[1]}")


# ---- validation helpers for method constructors -------------------------------------------------


def check_number(method: str, key: str, value: Any, low: float | None = None, high: float | None = None,
                 low_open: bool = False) -> float:
    """``value`` as a float within ``[low, high]`` (``(low, high]`` if ``low_open``), else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"method {method!r}: {key}={value!r} is not a finite number")
    number = float(value)
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and number > high
    if too_low or too_high:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        bracket = "(" if low_open else "["
        raise ConfigError(f"method {method!r}: {key}={value!r} is out of range; expected {bracket}{lo}, {hi}]")
    return number


def check_int(method: str, key: str, value: Any, low: int = 0) -> int:
    """``value`` as a whole number ``>= low`` (an integral float such as 10.0 is accepted), else ConfigError."""
    number = check_number(method, key, value, float(low), None)
    if number != int(number):
        raise ConfigError(f"method {method!r}: {key}={value!r} is not a whole number; expected an integer >= {low}")
    return int(number)


def check_choice(method: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices``, else ConfigError listing them."""
    if value not in choices:
        raise ConfigError(f"method {method!r}: {key}={value!r} is not allowed; expected one of {list(choices)}")
    return str(value)


def check_ce_and_standardize(method: str, ce_weight: Any, standardize: Any) -> tuple[float, bool]:
    """The two hparams the weighted-CE methods share: ``ce_weight >= 0`` and the ``standardize`` switch."""
    return check_number(method, "ce_weight", ce_weight, 0.0, None), check_bool(method, "standardize", standardize)


def check_bool(method: str, key: str, value: Any) -> bool:
    """``value`` as a bool (accepting true/false/1/0 strings from command lines), else ConfigError."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ConfigError(f"method {method!r}: {key}={value!r} is not a boolean (true/false)")


# ---- shared loss pieces -------------------------------------------------------------------------


def standardize(logits: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Per-row z-score ``(z - mean) / (std + eps)`` with the unbiased (n-1) std, as Sun et al.'s code."""
    mean = logits.mean(dim=1, keepdim=True)
    std = logits.std(dim=1, keepdim=True)
    return (logits - mean) / (std + eps)


def kl_per_sample(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                  temperature: float | torch.Tensor) -> torch.Tensor:
    """``KL(softmax(t/T) || softmax(s/T))`` for each row, shape ``[B]`` (not scaled by T^2)."""
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=1)
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)


def kd_term(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
            temperature: float | torch.Tensor) -> torch.Tensor:
    """Hinton's distillation term ``T^2 * KL(p_t(T) || p_s(T))`` averaged over the batch."""
    return kl_per_sample(student_logits, teacher_logits, temperature).mean() * temperature**2


def distill_targets(targets: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """The class a distillation term works with: the label, or the teacher's argmax on unlabelled (``NO_LABEL``) rows."""
    return torch.where(targets == NO_LABEL, teacher_logits.argmax(dim=1), targets)


def label_mean(per_row: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """A per-row label term averaged over the labelled rows: ``per_row.mean()`` when every row has a label,
    0 (in the graph) when none has."""
    labelled = targets != NO_LABEL
    if bool(labelled.all()):
        return per_row.mean()
    return per_row[labelled].mean() if bool(labelled.any()) else per_row.sum() * 0.0


def label_ce(student_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the labels averaged over the labelled rows (``NO_LABEL`` rows take no part); a batch whose
    every row has a label gets ``F.cross_entropy(student_logits, targets)`` itself, bit for bit."""
    if bool((targets != NO_LABEL).all()):
        return F.cross_entropy(student_logits, targets)
    return label_mean(F.cross_entropy(student_logits, targets, ignore_index=NO_LABEL, reduction="none"), targets)
