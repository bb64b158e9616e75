"""CTKD's logit-standardisation switch, pinned to a golden value computed by hand in plain Python.

With ``standardize=true`` CTKD compares per-sample z-scored logits (unbiased std, eps 1e-7, as Sun
et al.'s code) at its learned temperature; the label cross-entropy keeps the raw logits. The
initial temperature is set to 2.5 exactly (theta = logit((2.5 - 1) / 20)), so the reference needs
only ``math``.
"""

from __future__ import annotations

import math

import pytest
import torch

from kdbench.distill import create_method
from kdbench.errors import ConfigError

# the same logits and plain-Python references as the other logit methods' golden tests
from test_distill_new_methods import S, T, Y, kl, mean, softmax, zscore  # noqa: E402

TEMP, ALPHA = 2.5, 0.7


def kd_ref(s: list[list[float]], t: list[list[float]]) -> float:
    return ALPHA * TEMP**2 * mean([kl(softmax(b, TEMP), softmax(a, TEMP)) for a, b in zip(s, t)])


def run(**hparams) -> dict[str, float]:
    method = create_method("ctkd", temperature=TEMP, alpha=ALPHA, **hparams)
    terms = method(torch.tensor(S), torch.tensor(T), torch.tensor(Y), 0)
    return {k: float(v.detach()) for k, v in terms.items()}


def test_ctkd_standardize_golden() -> None:
    golden = kd_ref([zscore(r) for r in S], [zscore(r) for r in T])
    assert golden == pytest.approx(0.08114354170758789, abs=1e-12)
    ce = (1 - ALPHA) * mean([-math.log(softmax(r)[g]) for r, g in zip(S, Y)])
    assert ce == pytest.approx(0.14792941327526518, abs=1e-12)
    terms = run(standardize=True)
    assert terms["kd"] == pytest.approx(golden, abs=1e-5)  # float32 and the temperature through a sigmoid
    assert terms["ce"] == pytest.approx(ce, abs=1e-6)  # the label term keeps the raw logits
    off = run()
    assert off["kd"] == pytest.approx(kd_ref(S, T), abs=1e-5) and kd_ref(S, T) == pytest.approx(0.27160814688373525)


def test_ctkd_standardize_still_learns_its_temperature_adversarially() -> None:
    """The switch changes the compared logits, not the GRL: theta's gradient is minus lambda times the loss's."""
    grads = {}
    for lam_max in (0.0, 1.0):
        method = create_method("ctkd", temperature=TEMP, alpha=ALPHA, standardize=True, lambda_min=lam_max,
                               lambda_max=lam_max)
        sum(method(torch.tensor(S), torch.tensor(T), torch.tensor(Y), 0).values()).backward()
        grads[lam_max] = float(method.theta.grad)
    assert grads[0.0] == 0.0 and grads[1.0] != 0.0
    method = create_method("ctkd", temperature=TEMP, alpha=ALPHA, standardize=True)
    theta = method.theta.detach().clone().requires_grad_(True)
    temp = 1.0 + 20.0 * torch.sigmoid(theta)
    zs, zt = torch.tensor([zscore(r) for r in S]), torch.tensor([zscore(r) for r in T])
    direct = ALPHA * temp**2 * (torch.softmax(zt / temp, 1) * (torch.log_softmax(zt / temp, 1)
                                                               - torch.log_softmax(zs / temp, 1))).sum(1).mean()
    direct.backward()
    assert grads[1.0] == pytest.approx(-float(theta.grad), rel=1e-4)  # lambda = 1: the reversed gradient


def test_ctkd_standardize_is_a_checked_hparam() -> None:
    assert create_method("ctkd").hparams()["standardize"] is False
    assert create_method("ctkd", standardize="true").standardize is True
    with pytest.raises(ConfigError, match="method 'ctkd': standardize='maybe' is not a boolean"):
        create_method("ctkd", standardize="maybe")
