"""``logit_std``: Sun et al., CVPR 2024, "Logit Standardization in Knowledge Distillation".

Vanilla KD on z-scored logits: each sample's student and teacher logits become
``(z - mean(z)) / (std(z) + 1e-7)`` (std with n-1, as the authors' code uses ``torch.std``), then

    loss = alpha * T^2 * KL(softmax(zs_t / T) || softmax(zs_s / T)) + (1 - alpha) * CE(y, softmax(z_s))

The CE uses the raw student logits. The student then matches the teacher's logit *relations*
rather than their range. T is the "base temperature" (the authors use 2 on CIFAR-100 with a KD
to CE weight ratio of 9 : 0.1; defaults here: T = 2, alpha = 0.9). The same z-scoring is
available on plain vanilla KD as ``vanilla`` with ``standardize=true``.
"""

from __future__ import annotations

from kdbench.distill.vanilla import Vanilla


class LogitStd(Vanilla):
    """Vanilla KD with per-sample logit standardisation of student and teacher."""

    name = "logit_std"
    needs_teacher = True

    def __init__(self, temperature: float = 2.0, alpha: float = 0.9) -> None:
        super().__init__(temperature=temperature, alpha=alpha, standardize=True)
