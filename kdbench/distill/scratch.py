"""``scratch``: no teacher, cross-entropy on the labels only (the baseline every method must beat).

With nobody to label them, scratch cannot use unlabelled frames: ``kdbench.train`` never gives it any
(``TrainConfig.unlabelled`` is recorded but unused); a row labelled -1 would take no part in its CE.
"""

from __future__ import annotations

import torch

from kdbench.distill.base import DistillMethod, label_ce


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
        return {"ce": label_ce(student_logits, targets)}
