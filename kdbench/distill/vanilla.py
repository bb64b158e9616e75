"""``vanilla``: Hinton et al. 2015, "Distilling the Knowledge in a Neural Network".

    loss = alpha * T^2 * KL(p_t(T) || p_s(T)) + (1 - alpha) * CE(y, p_s(1))

with ``p(T) = softmax(z / T)`` and the KL averaged over the batch ("batchmean"). The T^2 factor
keeps the soft term's gradients on the scale of the hard term's as T changes. With
``standardize=True`` both logit vectors are z-scored per sample first (Sun et al. 2024, see
``logit_std``).

Unlabelled rows (label -1) get only the distillation term: CE is averaged over the labelled rows,
the KL over every row (``kdbench.distill.base``); the KL needs no label.
"""

from __future__ import annotations

import torch

from kdbench.distill.base import DistillMethod, check_bool, check_number, kd_term, label_ce


class Vanilla(DistillMethod):
    """Soft teacher targets at temperature T mixed with the hard-label cross-entropy."""

    name = "vanilla"
    needs_teacher = True

    def __init__(self, temperature: float = 4.0, alpha: float = 0.5, standardize: bool = False) -> None:
        super().__init__()
        self.temperature = check_number(self.name, "temperature", temperature, 0.0, None, low_open=True)
        self.alpha = check_number(self.name, "alpha", alpha, 0.0, 1.0)
        self.standardize = check_bool(self.name, "standardize", standardize)

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor | None,
                targets: torch.Tensor, epoch: int) -> dict[str, torch.Tensor]:
        """``{"kd": alpha * T^2 * KL, "ce": (1 - alpha) * CE}``."""
        teacher = self.check_inputs(student_logits, teacher_logits, targets)
        return {
            "kd": self.alpha * kd_term(*self.distill_logits(student_logits, teacher), self.temperature),
            "ce": (1.0 - self.alpha) * label_ce(student_logits, targets),
        }
