"""``conditional``: Meng et al., ICASSP 2019, "Conditional Teacher-Student Learning".

The student learns from the teacher only where the teacher is right. For sample i with label
y_i, let c_i = 1 if argmax(z_t,i) == y_i else 0. Then, over a batch of B samples,

    loss = (1/B) * sum_i [ c_i * T^2 * KL(p_t,i(T) || p_s,i(T))  +  (1 - c_i) * CE(y_i, p_s,i(1)) ]

with p(T) = softmax(z / T). Where the teacher is wrong its soft targets are replaced by the one-hot
label. There is no alpha: each sample gets exactly one target. The paper states the soft target
as a cross-entropy ``-sum_c p_t(c) log p_s(c)``; the KL used here differs from it only by the
teacher's entropy, a constant that has the same gradient (zero) for the student. T^2 scales only
the soft term, so its gradients keep the magnitude of the CE term's as T varies (Hinton's
correction); at T = 1 the two terms are on the same footing, as in the paper.
Both terms are divided by the full batch size, so ``kd + ce`` is the per-sample mean.
With ``standardize=true`` the soft term compares z-scored logits (Sun et al. 2024, see ``base``);
whether the teacher is right does not change (z-scoring keeps the argmax).

Unlabelled rows (label -1): "is the teacher right?" needs a label, so on them the target is the
teacher's argmax (``distill_targets``): c_i = 1, they always get the soft term. Following the rule of
``kdbench.distill.base``, the soft term is divided by the full batch size and the hard term by the
number of labelled rows L (= B on a labelled batch, so the formula above is unchanged):

    loss = (1/B) * sum_i c_i * T^2 * KL_i  +  (1/L) * sum_{i labelled} (1 - c_i) * CE_i

``teacher_correct`` (the epoch log) counts labelled rows only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kdbench.data.views import NO_LABEL
from kdbench.distill.base import DistillMethod, check_bool, check_number, distill_targets, kl_per_sample, label_mean


class Conditional(DistillMethod):
    """Teacher soft targets where the teacher's prediction is correct, hard labels elsewhere."""

    name = "conditional"
    needs_teacher = True

    def __init__(self, temperature: float = 4.0, standardize: bool = False) -> None:
        super().__init__()
        self.temperature = check_number(self.name, "temperature", temperature, 0.0, None, low_open=True)
        self.standardize = check_bool(self.name, "standardize", standardize)
        self._epoch = -1
        self._seen = 0
        self._correct = 0

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor | None,
                targets: torch.Tensor, epoch: int) -> dict[str, torch.Tensor]:
        """``{"kd": soft term over teacher-correct samples, "ce": hard term over the rest}``."""
        teacher = self.check_inputs(student_logits, teacher_logits, targets)
        classes = distill_targets(targets, teacher)  # the teacher's argmax on unlabelled rows: always "right"
        correct = (teacher.argmax(dim=1) == classes).to(student_logits.dtype)
        kl = kl_per_sample(*self.distill_logits(student_logits, teacher), self.temperature)
        ce = F.cross_entropy(student_logits, classes, reduction="none")
        if self.training:
            self._count(epoch, targets, correct)
        return {
            "kd": (correct * kl).mean() * self.temperature**2,
            "ce": label_mean((1.0 - correct) * ce, targets),
        }

    def _count(self, epoch: int, targets: torch.Tensor, correct: torch.Tensor) -> None:
        """Add a training batch's labelled rows to the epoch's teacher-accuracy count."""
        if epoch != self._epoch:
            self._epoch, self._seen, self._correct = epoch, 0, 0
        labelled = targets != NO_LABEL
        self._seen += int(labelled.sum().item())
        self._correct += int(correct[labelled].sum().item())

    def epoch_log(self) -> dict[str, float]:
        """Fraction of the current epoch's training samples on which the teacher was right."""
        return {"teacher_correct": self._correct / self._seen} if self._seen else {}
