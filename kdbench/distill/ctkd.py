"""``ctkd``: Li et al., AAAI 2023, "Curriculum Temperature for Knowledge Distillation".

Vanilla KD whose temperature is learned adversarially. A global parameter theta passes through a
gradient-reversal layer (GRL: identity forward, gradient multiplied by -lambda backward) and is
bounded by a sigmoid, as in the authors' global-temperature code:

    T = t_min + (t_max - t_min) * sigmoid(GRL_lambda(theta))          (default range [1, 21])
    loss = alpha * T^2 * KL(p_t(T) || p_s(T)) + (1 - alpha) * CE(y, p_s(1))

The student descends the loss; theta receives ``-lambda * dloss/dtheta`` and so *ascends* it,
making the task harder as lambda grows. lambda follows a curriculum over the 1-based epoch number
n = epoch + 1 (the authors' loop counts from 1), reaching lambda_max at n = e_cap and staying there:

    cosine: lambda_n = lambda_min + 1/2 (lambda_max - lambda_min) (1 + cos((1 + min(n, e_cap)/e_cap) pi))
    linear: lambda_n = lambda_min + (lambda_max - lambda_min) * min(n, e_cap) / e_cap

(The cosine form is the paper's; it equals the magnitude of the official CosineDecay from 0 to -1.
The official LinearDecay stops one step short of its maximum; here the linear ramp reaches
lambda_max at e_cap like the cosine one.) ``temperature`` is the initial T; by default theta
starts at 1 as in the official code, i.e. T0 = 1 + 20 * sigmoid(1) ~ 15.62.

theta's optimizer: by default the student's (``TrainConfig.method_optimizer = "student"``), with
the student's learning rate, schedule and weight decay, as the official code does: its
``train_student.py`` builds ``trainable_list = [model_s, mlp]`` (mlp = the ``Global_T`` temperature
module) and one ``optim.SGD(trainable_list.parameters(), lr, momentum, weight_decay)`` whose
learning rate ``adjust_learning_rate`` decays for both (github.com/zhengli97/CTKD). kdbench's
student optimizer is AdamW with a cosine schedule, so theta takes those. ``method_optimizer =
"sgd"`` instead gives theta its own constant-lr SGD (``TrainConfig.method_lr``, momentum 0.9, no
weight decay), where the lambda scaling of the reversed gradient is not normalised away by Adam.

``standardize=True`` z-scores each sample's student and teacher logits before the KL term, as on
every logit method (``DistillMethod.distill_logits``; Sun et al., CVPR 2024, report CTKD with logit
standardisation among their results); the learned T then divides the z-scores, and the label
cross-entropy keeps the raw logits.

Unlabelled rows (label -1) get only the KL term, as in vanilla KD (``kdbench.distill.base``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from kdbench.distill.base import DistillMethod, check_bool, check_choice, check_int, check_number, kd_term, label_ce
from kdbench.errors import ConfigError

SCHEDULES = ("cosine", "linear")
_OFFICIAL_THETA0 = 1.0


def ctkd_lambda(n: int, schedule: str = "cosine", lambda_min: float = 0.0, lambda_max: float = 1.0,
                e_cap: int = 10) -> float:
    """The GRL scale lambda at 1-based epoch number ``n`` (capped at ``e_cap``)."""
    progress = min(max(n, 0), e_cap) / e_cap
    if schedule == "cosine":
        return lambda_min + 0.5 * (lambda_max - lambda_min) * (1.0 + math.cos((1.0 + progress) * math.pi))
    if schedule == "linear":
        return lambda_min + (lambda_max - lambda_min) * progress
    raise ConfigError(f"method 'ctkd': schedule={schedule!r} is not allowed; expected one of {list(SCHEDULES)}")


class _GradReverse(torch.autograd.Function):
    """Identity forward; multiplies the incoming gradient by ``-lam`` backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, lam: float) -> torch.Tensor:
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float) -> torch.Tensor:
    """Gradient-reversal layer: ``x`` forward, ``-lam * grad`` backward."""
    return _GradReverse.apply(x, lam)


class CTKD(DistillMethod):
    """Vanilla KD with a learnable, sigmoid-bounded global temperature trained through a GRL."""

    name = "ctkd"
    needs_teacher = True

    def __init__(self, temperature: float | None = None, t_min: float = 1.0, t_max: float = 21.0,
                 alpha: float = 0.5, schedule: str = "cosine", lambda_min: float = 0.0,
                 lambda_max: float = 1.0, e_cap: int = 10, standardize: bool = False) -> None:
        super().__init__()
        self.t_min = check_number(self.name, "t_min", t_min, 0.0, None, low_open=True)
        self.t_max = check_number(self.name, "t_max", t_max, self.t_min, None, low_open=True)
        self.alpha = check_number(self.name, "alpha", alpha, 0.0, 1.0)
        self.schedule = check_choice(self.name, "schedule", schedule, SCHEDULES)
        self.lambda_min = check_number(self.name, "lambda_min", lambda_min, 0.0, None)
        self.lambda_max = check_number(self.name, "lambda_max", lambda_max, self.lambda_min, None)
        self.e_cap = check_int(self.name, "e_cap", e_cap, 1)
        self.standardize = check_bool(self.name, "standardize", standardize)
        if temperature is None:
            theta0 = _OFFICIAL_THETA0
        else:
            t0 = check_number(self.name, "temperature", temperature, self.t_min, None, low_open=True)
            if t0 >= self.t_max:
                raise ConfigError(
                    f"method 'ctkd': temperature={temperature!r} (initial T) is out of range; "
                    f"expected strictly inside ({self.t_min:g}, {self.t_max:g})"
                )
            frac = (t0 - self.t_min) / (self.t_max - self.t_min)
            theta0 = math.log(frac / (1.0 - frac))
        self.theta = nn.Parameter(torch.tensor(theta0, dtype=torch.float32))
        self.temperature = self.t_min + (self.t_max - self.t_min) / (1.0 + math.exp(-theta0))
        self._lambda = self.lambda_at(0)

    def lambda_at(self, epoch: int) -> float:
        """lambda used during 0-based ``epoch`` (the schedule at epoch number ``epoch + 1``)."""
        return ctkd_lambda(epoch + 1, self.schedule, self.lambda_min, self.lambda_max, self.e_cap)

    def current_temperature(self, lam: float = 0.0) -> torch.Tensor:
        """The bounded temperature T from theta, with theta's gradient reversed and scaled by ``lam``."""
        theta = grad_reverse(self.theta, lam)
        return self.t_min + (self.t_max - self.t_min) * torch.sigmoid(theta)

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor | None,
                targets: torch.Tensor, epoch: int) -> dict[str, torch.Tensor]:
        """``{"kd": alpha * T^2 * KL at the learned T, "ce": (1 - alpha) * CE}``."""
        teacher = self.check_inputs(student_logits, teacher_logits, targets)
        self._lambda = self.lambda_at(epoch)
        temp = self.current_temperature(self._lambda)
        return {
            "kd": self.alpha * kd_term(*self.distill_logits(student_logits, teacher), temp),
            "ce": (1.0 - self.alpha) * label_ce(student_logits, targets),
        }

    def epoch_log(self) -> dict[str, float]:
        """The current learned temperature and the lambda of the latest epoch seen."""
        with torch.no_grad():
            temp = float(self.current_temperature().detach())
        return {"temperature": temp, "lambda": self._lambda}
