"""``wttm``: Zheng & Yang, ICLR 2024, "Knowledge Distillation Based on Transformed Teacher Matching".

Temperature scaling is dropped on the student side: the student's plain softmax q = softmax(z_s)
matches the teacher's *power-transformed* distribution. For gamma in (0, 1] and p_t = softmax(z_t),

    U_gamma(p_t) = sum_c p_t(c)^gamma              (>= 1; large when the teacher is unsure)
    p_t^(gamma)  = p_t^gamma / U_gamma(p_t)         (= softmax(z_t * gamma): temperature 1 / gamma)
    loss = ce_weight * CE(y, q) + beta * mean_i U_gamma(p_t,i) * KL(p_t,i^(gamma) || q_i)

TTM (no weight U) equals KD plus a Renyi-entropy regulariser on the student; WTTM's
sample-adaptive weight U makes the student match smoother teacher outputs harder. The formula is
the official code's (zkxufo/TTM, ``distiller_zoo/wttm.py``: ``loss = mean(norm * KL)`` with
``norm = sum(softmax(y_t) ** l)``; CE weight ``-r`` defaults to 1 there). The weights are tuned per
teacher-student pair in the paper; the defaults here, gamma = 0.2 with beta = 4, are the only WTTM
setting the official README shows (``--distill crd --add wttm --ttm_l 0.2 -a 4``, where WTTM is
added to CRD), so treat them as a starting point to search around. With 4 classes U_gamma is at
most 4^(1 - gamma) ~ 3.03. The matching term needs no label: unlabelled rows (label -1) take part in it
and not in the CE (``kdbench.distill.base``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdbench.distill.base import DistillMethod, check_ce_and_standardize, check_number, label_ce


def wttm_per_sample(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                    gamma: float) -> torch.Tensor:
    """``U_gamma(p_t) * KL(p_t^(gamma) || softmax(z_s))`` for each row, shape [B]."""
    log_p_t = F.log_softmax(teacher_logits, dim=1)
    log_u = torch.logsumexp(gamma * log_p_t, dim=1)  # log sum_c p_t^gamma, computed stably
    log_target = gamma * log_p_t - log_u.unsqueeze(1)  # log of the transformed teacher
    log_q = F.log_softmax(student_logits, dim=1)
    kl = (log_target.exp() * (log_target - log_q)).sum(dim=1)
    return log_u.exp() * kl


class WTTM(DistillMethod):
    """Weighted transformed-teacher matching: power-transformed teacher, sample-adaptive weight."""

    name = "wttm"
    needs_teacher = True

    def __init__(self, gamma: float = 0.2, beta: float = 4.0, ce_weight: float = 1.0,
                 standardize: bool = False) -> None:
        super().__init__()
        self.gamma = check_number(self.name, "gamma", gamma, 0.0, 1.0, low_open=True)
        self.beta = check_number(self.name, "beta", beta, 0.0, None)
        self.ce_weight, self.standardize = check_ce_and_standardize(self.name, ce_weight, standardize)

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor | None,
                targets: torch.Tensor, epoch: int) -> dict[str, torch.Tensor]:
        """``{"ce": ce_weight * CE, "kd": beta * mean(U_gamma * KL)}``."""
        teacher = self.check_inputs(student_logits, teacher_logits, targets)
        per_sample = wttm_per_sample(*self.distill_logits(student_logits, teacher), self.gamma)
        return {
            "ce": self.ce_weight * label_ce(student_logits, targets),
            "kd": self.beta * per_sample.mean(),
        }
