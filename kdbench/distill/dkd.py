"""``dkd``: Zhao et al., CVPR 2022, "Decoupled Knowledge Distillation".

KD's KL splits into a target-class part (TCKD) and a non-target part (NCKD), re-weighted freely.
With p = softmax(z / T), target class g:

    b = [p_g, 1 - p_g]                                  (binary target / non-target distribution)
    q = softmax of z / T over the non-target classes   (classes != g only)
    TCKD = T^2 * mean_i KL(b_t,i || b_s,i)
    NCKD = T^2 * mean_i KL(q_t,i || q_s,i)
    loss = ce_weight * CE(y, p_s(1)) + min(n / warmup, 1) * (alpha * TCKD + beta * NCKD)

where n = epoch + 1 is the 1-based epoch number (mdistiller's loop counts from 1), so the KD part
ramps in linearly over the first ``warmup`` epochs. These are the formulas of mdistiller's
``dkd_loss``; here NCKD is computed exactly on the C - 1 non-target logits instead of masking the
target with -1000. Defaults follow mdistiller's CIFAR settings (alpha 1, beta 8, T 4, CE weight 1)
except the warm-up: 5 epochs for kdbench's 20-epoch runs instead of 20 of 240. With
``standardize=true`` TCKD and NCKD compare z-scored logits (Sun et al. 2024 report DKD with it).

Unlabelled rows (label -1): the target/non-target split needs a class, so on them g is the
teacher's argmax (``distill_targets``); they get TCKD and NCKD but no CE, which is averaged over
the labelled rows (``kdbench.distill.base``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdbench.distill.base import (DistillMethod, check_ce_and_standardize, check_int, check_number, distill_targets,
                                  label_ce)


def _kl_rows(log_p_t: torch.Tensor, log_p_s: torch.Tensor) -> torch.Tensor:
    """Row-wise KL(p_t || p_s) from log-probabilities, shape [B]."""
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=1)


def _binary_log_probs(z: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """log [p_target, p_rest] per row from scaled logits ``z``, computed stably, shape [B, 2]."""
    log_all = torch.logsumexp(z, dim=1)
    log_target = z[target_mask] - log_all
    log_rest = torch.logsumexp(z.masked_fill(target_mask, float("-inf")), dim=1) - log_all
    return torch.stack([log_target, log_rest], dim=1)


def _non_target(z: torch.Tensor, target_mask: torch.Tensor) -> torch.Tensor:
    """The C - 1 non-target entries of each row, shape [B, C - 1]."""
    return z[~target_mask].view(z.shape[0], z.shape[1] - 1)


def dkd_terms(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
              temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(TCKD, NCKD)``, each already multiplied by T^2 and averaged over the batch."""
    mask = F.one_hot(targets, student_logits.shape[1]).bool()
    zs, zt = student_logits / temperature, teacher_logits / temperature
    tckd = _kl_rows(_binary_log_probs(zt, mask), _binary_log_probs(zs, mask)).mean()
    nt_s, nt_t = _non_target(zs, mask), _non_target(zt, mask)
    nckd = _kl_rows(F.log_softmax(nt_t, dim=1), F.log_softmax(nt_s, dim=1)).mean()
    return tckd * temperature**2, nckd * temperature**2


class DKD(DistillMethod):
    """Decoupled KD: separately weighted target-class and non-target-class distillation."""

    name = "dkd"
    needs_teacher = True

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0,
                 warmup: int = 5, ce_weight: float = 1.0, standardize: bool = False) -> None:
        super().__init__()
        self.alpha = check_number(self.name, "alpha", alpha, 0.0, None)
        self.beta = check_number(self.name, "beta", beta, 0.0, None)
        self.temperature = check_number(self.name, "temperature", temperature, 0.0, None, low_open=True)
        self.warmup = check_int(self.name, "warmup", warmup, 0)
        self.ce_weight, self.standardize = check_ce_and_standardize(self.name, ce_weight, standardize)

    def warmup_factor(self, epoch: int) -> float:
        """``min((epoch + 1) / warmup, 1)`` for 0-based ``epoch``; 1 when warmup is 0."""
        return 1.0 if self.warmup == 0 else min((epoch + 1) / self.warmup, 1.0)

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor | None,
                targets: torch.Tensor, epoch: int) -> dict[str, torch.Tensor]:
        """``{"ce": ce_weight * CE, "kd": warm-up * (alpha * TCKD + beta * NCKD)}``."""
        teacher = self.check_inputs(student_logits, teacher_logits, targets)
        self.check_classes(student_logits, 3, "NCKD")
        classes = distill_targets(targets, teacher)  # the teacher's argmax on unlabelled rows
        tckd, nckd = dkd_terms(*self.distill_logits(student_logits, teacher), classes, self.temperature)
        return {
            "ce": self.ce_weight * label_ce(student_logits, targets),
            "kd": self.warmup_factor(epoch) * (self.alpha * tckd + self.beta * nckd),
        }
