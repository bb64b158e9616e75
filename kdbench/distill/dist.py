"""``dist``: Huang et al., NeurIPS 2022, "Knowledge Distillation from A Stronger Teacher" (DIST).

KL asks the student to match the teacher's probabilities exactly; DIST asks only for the same
*relations*, measured by Pearson correlation, so a student that cannot reach a much stronger
teacher's confidence is not pushed to. With Y = softmax(Z / tau) over a batch ([B, C]):

    inter = 1 - mean_i pearson(Y_s[i, :], Y_t[i, :])      (per sample, across classes)
    intra = 1 - mean_c pearson(Y_s[:, c], Y_t[:, c])      (per class, across the batch)
    loss  = ce_weight * CE(y, softmax(z_s)) + tau^2 * (beta * inter + gamma * intra)

pearson(a, b) = <a - mean(a), b - mean(b)> / (||a - mean(a)|| * ||b - mean(b)|| + 1e-8), as the
authors' ``pearson_correlation``. Defaults are the official code's (hunto/image_classification_sota,
``lib/models/losses/dist_kd.py`` and its ``KDLoss``: method ``dist`` = DIST(beta=1, gamma=1, tau=1),
with the cross-entropy kept at weight 1 beside it); ``dist_t<tau>`` there selects another tau.
The intra-class term needs a batch of at least 2 samples (a batch of 1 contributes 1, no gradient).
Unlabelled rows (label -1) take part in both relation terms (they need no label) and not in the CE
(``kdbench.distill.base``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdbench.distill.base import DistillMethod, check_ce_and_standardize, check_number, label_ce

_EPS = 1e-8


def pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b``, shape [rows]."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + _EPS)


def dist_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
               tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inter, intra)`` relation losses of softmax(z / tau), not yet scaled by tau^2."""
    y_s = F.softmax(student_logits / tau, dim=1)
    y_t = F.softmax(teacher_logits / tau, dim=1)
    inter = 1.0 - pearson_rows(y_s, y_t).mean()
    intra = 1.0 - pearson_rows(y_s.t(), y_t.t()).mean()
    return inter, intra


class DIST(DistillMethod):
    """Match the teacher's inter-class and intra-class relations (Pearson correlation)."""

    name = "dist"
    needs_teacher = True

    def __init__(self, beta: float = 1.0, gamma: float = 1.0, temperature: float = 1.0,
                 ce_weight: float = 1.0, standardize: bool = False) -> None:
        super().__init__()
        self.beta = check_number(self.name, "beta", beta, 0.0, None)
        self.gamma = check_number(self.name, "gamma", gamma, 0.0, None)
        self.temperature = check_number(self.name, "temperature", temperature, 0.0, None, low_open=True)
        self.ce_weight, self.standardize = check_ce_and_standardize(self.name, ce_weight, standardize)

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor | None,
                targets: torch.Tensor, epoch: int) -> dict[str, torch.Tensor]:
        """``{"ce": ce_weight * CE, "kd": tau^2 * (beta * inter + gamma * intra)}``."""
        teacher = self.check_inputs(student_logits, teacher_logits, targets)
        inter, intra = dist_terms(*self.distill_logits(student_logits, teacher), self.temperature)
        return {
            "ce": self.ce_weight * label_ce(student_logits, targets),
            "kd": self.temperature**2 * (self.beta * inter + self.gamma * intra),
        }
