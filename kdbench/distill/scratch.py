"""``scratch``: no teacher, cross-entropy on the labels only (the baseline every method must beat)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdbench.distill.base import DistillMethod


class Scratch(DistillMethod):
    """Train from the labels alone: ``CE(y, softmax(z_s))``."""

    name = "scratch"
    needs_teacher = False

    def __init__(self) -> None:
        super().__init__()

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor | None,
                targets: torch.Tensor, epoch: int) -> dict[str, torch.Tensor]:
        """``{"ce": mean cross-entropy}``; ``teacher_logits`` is ignored."""
        self.check_inputs(student_logits, None, targets)
        return {"ce": F.cross_entropy(student_logits, targets)}
