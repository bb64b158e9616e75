"""``nkd``: Yang et al., ICCV 2023, "From Knowledge Distillation to Self-Knowledge Distillation:
A Unified Approach with Normalized Loss and Customized Soft Labels" (normalized KD, NKD).

KD's loss splits into a target part and a non-target part whose scale shrinks with the teacher's
target probability; NKD normalises the non-target distributions so that part keeps its weight.
With target class g, p = softmax(z) and, over the C - 1 non-target classes only,
n(z) = softmax(z[c != g] / T):

    target     = -mean_i p_t,i(g) * log p_s,i(g)
    non_target = -gamma * T^2 * mean_i sum_{c != g} n(z_t,i)(c) * log n(z_s,i)(c)
    loss = ce_weight * CE(y, p_s) + target + non_target

These are the formulas of the official ``NKDLoss`` (yzd-v/cls_KD, ``mmcls/models/dis_losses/nkd.py``),
which the distiller adds to the student's own cross-entropy. Defaults are its defaults and the
ImageNet ResNet-50 -> MobileNetV1 config (``res50_distill_mv1_img.py``): T = 1, gamma = 1.5.

Unlabelled rows (label -1): the target and non-target parts need a class, so on them g is the
teacher's argmax (``distill_targets``); the target part then weighs the student's log-probability of
the teacher's class by the teacher's confidence in it. They get no CE, which is averaged over the
labelled rows (``kdbench.distill.base``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdbench.distill.base import DistillMethod, check_ce_and_standardize, check_number, distill_targets, label_ce


def nkd_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
              temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(target, non_target)``: NKD's two parts, non_target not yet scaled by gamma * T^2."""
    mask = F.one_hot(targets, student_logits.shape[1]).bool()
    log_p_s = F.log_softmax(student_logits, dim=1)
    p_t = F.softmax(teacher_logits, dim=1)
    target = -(p_t[mask] * log_p_s[mask]).mean()
    rows, cols = student_logits.shape[0], student_logits.shape[1] - 1
    nt_s = student_logits[~mask].view(rows, cols) / temperature
    nt_t = teacher_logits[~mask].view(rows, cols) / temperature
    non_target = -(F.softmax(nt_t, dim=1) * F.log_softmax(nt_s, dim=1)).sum(dim=1).mean()
    return target, non_target


class NKD(DistillMethod):
    """Normalized KD: teacher-weighted target term plus a normalised non-target term."""

    name = "nkd"
    needs_teacher = True

    def __init__(self, temperature: float = 1.0, gamma: float = 1.5, ce_weight: float = 1.0,
                 standardize: bool = False) -> None:
        super().__init__()
        self.temperature = check_number(self.name, "temperature", temperature, 0.0, None, low_open=True)
        self.gamma = check_number(self.name, "gamma", gamma, 0.0, None)
        self.ce_weight, self.standardize = check_ce_and_standardize(self.name, ce_weight, standardize)

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor | None,
                targets: torch.Tensor, epoch: int) -> dict[str, torch.Tensor]:
        """``{"ce": ce_weight * CE, "kd": target + gamma * T^2 * non_target}``."""
        teacher = self.check_inputs(student_logits, teacher_logits, targets)
        self.check_classes(student_logits, 3, "its non-target term")
        classes = distill_targets(targets, teacher)  # the teacher's argmax on unlabelled rows
        target, non_target = nkd_terms(*self.distill_logits(student_logits, teacher), classes, self.temperature)
        return {
            "ce": self.ce_weight * label_ce(student_logits, targets),
            "kd": target + self.gamma * self.temperature**2 * non_target,
        }
