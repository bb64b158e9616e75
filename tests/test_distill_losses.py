"""Golden-value tests of every distillation loss, against formulas evaluated by hand with numpy.

The expected values never call torch's KL or cross-entropy: they come from numpy softmax/log on the
fixed logits below, following each method's published formula.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kdbench.distill import METHODS, DistillMethod, create_method, method_defaults
from kdbench.distill.ctkd import ctkd_lambda
from kdbench.errors import ConfigError

# 3 samples x 4 classes. Teacher argmax per row: 0, 1, 3; labels 0, 3, 2 -> teacher right on row 0 only.
STUDENT = np.array([[2.0, -1.0, 0.5, 0.0], [0.3, 1.2, -0.7, 2.5], [-1.5, 0.4, 1.1, 0.2]])
TEACHER = np.array([[3.0, 0.5, -1.0, 0.2], [0.1, 2.2, -0.3, 1.0], [0.5, -0.8, 0.3, 2.0]])
LABELS = np.array([0, 3, 2])
TOL = 1e-6


# ---- numpy references -----------------------------------------------------------------------------


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise KL(p || q)."""
    return np.sum(p * (np.log(p) - np.log(q)), axis=-1)


def ce_rows(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    return -np.log(softmax(z)[np.arange(len(y)), y])


def kd_rows(s: np.ndarray, t: np.ndarray, temp: float) -> np.ndarray:
    return kl(softmax(t / temp), softmax(s / temp))


def zscore(z: np.ndarray) -> np.ndarray:
    return (z - z.mean(axis=1, keepdims=True)) / (z.std(axis=1, ddof=1, keepdims=True) + 1e-7)


def tensors(requires_grad: bool = False):
    s = torch.tensor(STUDENT, dtype=torch.float64, requires_grad=requires_grad)
    t = torch.tensor(TEACHER, dtype=torch.float64, requires_grad=requires_grad)
    return s, t, torch.tensor(LABELS)


def run(method: DistillMethod, epoch: int = 0, s=None, t=None, y=None) -> dict[str, float]:
    if s is None:
        s, t, y = tensors()
    return {k: float(v.detach()) for k, v in method(s, t, y, epoch).items()}


# ---- golden values --------------------------------------------------------------------------------


def test_scratch_is_mean_cross_entropy() -> None:
    terms = run(create_method("scratch"))
    assert set(terms) == {"ce"}
    assert terms["ce"] == pytest.approx(ce_rows(STUDENT, LABELS).mean(), abs=TOL)


@pytest.mark.parametrize("temp,alpha", [(4.0, 0.5), (2.0, 0.3), (1.0, 1.0)])
def test_vanilla_matches_hinton_formula(temp: float, alpha: float) -> None:
    terms = run(create_method("vanilla", temperature=temp, alpha=alpha))
    assert terms["kd"] == pytest.approx(alpha * temp**2 * kd_rows(STUDENT, TEACHER, temp).mean(), abs=TOL)
    assert terms["ce"] == pytest.approx((1 - alpha) * ce_rows(STUDENT, LABELS).mean(), abs=TOL)


def test_vanilla_defaults_are_t4_alpha_half() -> None:
    assert method_defaults("vanilla") == {"temperature": 4.0, "alpha": 0.5, "standardize": False}
    total = sum(run(create_method("vanilla")).values())
    expected = 0.5 * 16 * kd_rows(STUDENT, TEACHER, 4.0).mean() + 0.5 * ce_rows(STUDENT, LABELS).mean()
    assert total == pytest.approx(expected, abs=TOL)


def test_logit_std_standardises_both_logits_before_the_softmax() -> None:
    terms = run(create_method("logit_std"))  # defaults: the paper's T=2 and KD:CE = 9:0.1, i.e. alpha = 9/9.1
    kd = (9 / 9.1) * 4.0 * kd_rows(zscore(STUDENT), zscore(TEACHER), 2.0).mean()
    assert terms["kd"] == pytest.approx(kd, abs=TOL)
    assert terms["ce"] == pytest.approx((0.1 / 9.1) * ce_rows(STUDENT, LABELS).mean(), abs=TOL)  # CE on raw logits
    assert terms["kd"] / terms["ce"] == pytest.approx(90 * kd_rows(zscore(STUDENT), zscore(TEACHER), 2.0).mean() * 4.0
                                                      / ce_rows(STUDENT, LABELS).mean(), rel=1e-6)
    # invariant to a per-sample shift and positive scale of either model's logits
    s, t, y = tensors()
    shifted = run(create_method("logit_std"), s=s * 3.0 + 7.0, t=t * 0.5 - 2.0, y=y)
    assert shifted["kd"] == pytest.approx(kd, abs=1e-5)


def test_vanilla_standardize_option_equals_logit_std() -> None:
    a = run(create_method("vanilla", temperature=3.0, alpha=0.7, standardize=True))
    b = run(create_method("logit_std", temperature=3.0, alpha=0.7))
    assert a["kd"] == pytest.approx(0.7 * 9.0 * kd_rows(zscore(STUDENT), zscore(TEACHER), 3.0).mean(), abs=TOL)
    assert a == pytest.approx(b, abs=1e-12)


def test_conditional_uses_soft_targets_only_where_teacher_is_right() -> None:
    temp = 4.0
    right = (TEACHER.argmax(1) == LABELS).astype(float)
    assert right.tolist() == [1.0, 0.0, 0.0]
    terms = run(create_method("conditional", temperature=temp))
    kd = np.sum(right * temp**2 * kd_rows(STUDENT, TEACHER, temp)) / 3
    ce = np.sum((1 - right) * ce_rows(STUDENT, LABELS)) / 3
    assert terms["kd"] == pytest.approx(kd, abs=TOL)
    assert terms["ce"] == pytest.approx(ce, abs=TOL)


def test_conditional_extremes_reduce_to_pure_kd_and_pure_ce() -> None:
    s, t, _ = tensors()
    teacher_labels = torch.tensor(TEACHER.argmax(1))  # teacher right everywhere
    all_right = run(create_method("conditional", temperature=2.0), s=s, t=t, y=teacher_labels)
    assert all_right["ce"] == 0.0
    assert all_right["kd"] == pytest.approx(4.0 * kd_rows(STUDENT, TEACHER, 2.0).mean(), abs=TOL)
    wrong = torch.tensor([(int(c) + 1) % 4 for c in TEACHER.argmax(1)])  # teacher wrong everywhere
    all_wrong = run(create_method("conditional", temperature=2.0), s=s, t=t, y=wrong)
    assert all_wrong["kd"] == 0.0
    assert all_wrong["ce"] == pytest.approx(ce_rows(STUDENT, wrong.numpy()).mean(), abs=TOL)


def test_conditional_epoch_log_counts_teacher_accuracy_per_epoch() -> None:
    method = create_method("conditional").train()
    s, t, y = tensors()
    method(s, t, y, 0)
    method(s, t, torch.tensor(TEACHER.argmax(1)), 0)  # 3 more, all right
    assert method.epoch_log() == {"teacher_correct": pytest.approx(4 / 6)}
    method(s, t, y, 1)  # a new epoch starts a new count
    assert method.epoch_log() == {"teacher_correct": pytest.approx(1 / 3)}


def dkd_reference(s: np.ndarray, t: np.ndarray, y: np.ndarray, temp: float) -> tuple[float, float]:
    """TCKD and NCKD by hand: binary target/rest KL and KL over the non-target classes."""
    ps, pt = softmax(s / temp), softmax(t / temp)
    tckd, nckd = [], []
    for i, g in enumerate(y):
        bs = np.array([ps[i, g], 1 - ps[i, g]])
        bt = np.array([pt[i, g], 1 - pt[i, g]])
        tckd.append(kl(bt, bs))
        others = [c for c in range(s.shape[1]) if c != g]
        nckd.append(kl(softmax(t[i, others] / temp), softmax(s[i, others] / temp)))
    return temp**2 * float(np.mean(tckd)), temp**2 * float(np.mean(nckd))


@pytest.mark.parametrize("epoch,warm", [(0, 0.2), (2, 0.6), (4, 1.0), (30, 1.0)])
def test_dkd_matches_decoupled_formula_with_warmup(epoch: int, warm: float) -> None:
    tckd, nckd = dkd_reference(STUDENT, TEACHER, LABELS, 4.0)
    terms = run(create_method("dkd", alpha=1.0, beta=8.0, temperature=4.0, warmup=5, ce_weight=1.0), epoch=epoch)
    assert terms["kd"] == pytest.approx(warm * (1.0 * tckd + 8.0 * nckd), abs=TOL)
    assert terms["ce"] == pytest.approx(ce_rows(STUDENT, LABELS).mean(), abs=TOL)


def test_dkd_other_weights_and_temperature() -> None:
    tckd, nckd = dkd_reference(STUDENT, TEACHER, LABELS, 2.0)
    terms = run(create_method("dkd", alpha=0.5, beta=2.0, temperature=2.0, warmup=0, ce_weight=0.3))
    assert terms["kd"] == pytest.approx(0.5 * tckd + 2.0 * nckd, abs=TOL)
    assert terms["ce"] == pytest.approx(0.3 * ce_rows(STUDENT, LABELS).mean(), abs=TOL)


def test_dkd_decomposes_classical_kd() -> None:
    """Zhao et al.'s identity: KD = TCKD + (1 - p_t[target]) * NCKD, per sample."""
    temp = 3.0
    for i in range(3):
        s, t = torch.tensor(STUDENT[i : i + 1]), torch.tensor(TEACHER[i : i + 1])
        y = torch.tensor(LABELS[i : i + 1])
        beta = 1.0 - softmax(TEACHER[i] / temp)[LABELS[i]]
        dkd = run(create_method("dkd", alpha=1.0, beta=beta, temperature=temp, warmup=0), s=s, t=t, y=y)
        kd = run(create_method("vanilla", temperature=temp, alpha=1.0), s=s, t=t, y=y)
        assert dkd["kd"] == pytest.approx(kd["kd"], abs=TOL)


# ---- CTKD -----------------------------------------------------------------------------------------


def ctkd_loss_np(theta: float, alpha: float = 0.5, t_min: float = 1.0, t_max: float = 21.0) -> float:
    temp = t_min + (t_max - t_min) / (1 + math.exp(-theta))
    return alpha * temp**2 * kd_rows(STUDENT, TEACHER, temp).mean() + (1 - alpha) * ce_rows(STUDENT, LABELS).mean()


def test_ctkd_lambda_schedules() -> None:
    cos = [ctkd_lambda(n, "cosine", 0.0, 1.0, 10) for n in (0, 1, 3, 5, 10, 11, 50)]
    assert cos == pytest.approx([0.0, (1 - math.cos(math.pi / 10)) / 2, (1 - math.cos(0.3 * math.pi)) / 2,
                                 0.5, 1.0, 1.0, 1.0], abs=1e-12)
    lin = [ctkd_lambda(n, "linear", 0.0, 1.0, 10) for n in (0, 1, 3, 5, 10, 11, 50)]
    assert lin == pytest.approx([0.0, 0.1, 0.3, 0.5, 1.0, 1.0, 1.0], abs=1e-12)
    assert ctkd_lambda(2, "linear", 0.2, 0.6, 4) == pytest.approx(0.4, abs=1e-12)
    assert ctkd_lambda(2, "cosine", 0.2, 0.6, 4) == pytest.approx(0.4, abs=1e-12)
    # the method uses the 1-based epoch number: 0-based epoch 9 is the 10th epoch -> lambda_max
    method = create_method("ctkd", schedule="linear", e_cap=10)
    assert [method.lambda_at(e) for e in (0, 4, 9, 15)] == pytest.approx([0.1, 0.5, 1.0, 1.0])


def test_ctkd_loss_at_initial_temperature() -> None:
    method = create_method("ctkd").double()
    theta0 = 1.0  # the authors' initial parameter value
    assert method.hparams()["temperature"] == pytest.approx(1 + 20 / (1 + math.exp(-1)), abs=1e-12)
    assert sum(run(method).values()) == pytest.approx(ctkd_loss_np(theta0), abs=TOL)
    custom = create_method("ctkd", temperature=4.0, alpha=0.7).double()
    assert float(custom.current_temperature().detach()) == pytest.approx(4.0, abs=1e-6)  # theta is stored in fp32
    expected = 0.7 * 16 * kd_rows(STUDENT, TEACHER, 4.0).mean() + 0.3 * ce_rows(STUDENT, LABELS).mean()
    assert sum(run(custom).values()) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("schedule,epoch", [("cosine", 2), ("cosine", 4), ("linear", 6), ("cosine", 12)])
def test_ctkd_temperature_gradient_is_reversed_and_scaled_by_lambda(schedule: str, epoch: int) -> None:
    method = create_method("ctkd", temperature=5.0, schedule=schedule).double()
    theta = float(method.theta.detach())
    s, t, y = tensors(requires_grad=True)
    sum(method(s, t, y, epoch).values()).backward()
    h = 1e-5
    d_loss = (ctkd_loss_np(theta + h) - ctkd_loss_np(theta - h)) / (2 * h)  # finite difference
    lam = ctkd_lambda(epoch + 1, schedule, 0.0, 1.0, 10)
    assert abs(d_loss) > 1e-3  # the check below is not vacuous
    assert float(method.theta.grad) == pytest.approx(-lam * d_loss, abs=1e-6)
    assert method.epoch_log()["lambda"] == pytest.approx(lam)


def test_ctkd_student_gradient_is_not_reversed() -> None:
    ctkd = create_method("ctkd", temperature=6.0, alpha=0.5).double()
    vanilla = create_method("vanilla", temperature=6.0, alpha=0.5)
    s1, t1, y = tensors(requires_grad=True)
    s2, t2, _ = tensors(requires_grad=True)
    sum(ctkd(s1, t1, y, 5).values()).backward()
    sum(vanilla(s2, t2, y, 5).values()).backward()
    assert torch.allclose(s1.grad, s2.grad, atol=1e-12)


def test_ctkd_temperature_ascends_the_loss_and_stays_bounded() -> None:
    method = create_method("ctkd", temperature=3.0).double()
    opt = torch.optim.SGD(method.parameters(), lr=0.5)
    s, t, y = tensors()
    before = ctkd_loss_np(float(method.theta.detach()))
    for _ in range(3):
        opt.zero_grad()
        sum(method(s, t, y, 20).values()).backward()  # lambda = 1
        opt.step()
    assert ctkd_loss_np(float(method.theta.detach())) > before  # SGD *descending* made the loss larger
    temps = []
    for value in (-60.0, 60.0):
        with torch.no_grad():
            method.theta.fill_(value)
        temps.append(float(method.current_temperature().detach()))
        assert method.epoch_log()["temperature"] == pytest.approx(temps[-1])
    assert temps == pytest.approx([1.0, 21.0], abs=1e-9)


# ---- gradients, inputs and registry ---------------------------------------------------------------


@pytest.mark.parametrize("name", list(METHODS))
def test_gradients_reach_student_logits_and_never_the_teacher(name: str) -> None:
    method = create_method(name).double()
    s, t, y = tensors(requires_grad=True)
    terms = method(s, t, y, 3)
    assert terms and all(v.dim() == 0 for v in terms.values())
    sum(terms.values()).backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert t.grad is None


@pytest.mark.parametrize("name", [n for n, cls in METHODS.items() if cls.needs_teacher])
def test_methods_needing_a_teacher_reject_missing_or_misshapen_teacher_logits(name: str) -> None:
    s, t, y = tensors()
    with pytest.raises(ConfigError, match="teacher"):
        create_method(name)(s, None, y, 0)
    with pytest.raises(ConfigError, match=r"teacher logits have shape \(3, 3\)"):
        create_method(name)(s, t[:, :3], y, 0)


def test_scratch_needs_no_teacher() -> None:
    assert METHODS["scratch"].needs_teacher is False
    s, _, y = tensors()
    assert run(create_method("scratch"), s=s, t=None, y=y)["ce"] > 0


def test_unknown_method_and_hparams_list_what_is_allowed() -> None:
    with pytest.raises(ConfigError, match="unknown distillation method 'fitnet'.*'vanilla'.*'dkd'"):
        create_method("fitnet")
    with pytest.raises(ConfigError, match=r"\['T'\].*temperature \(default 4.0\).*alpha \(default 0.5\)"):
        create_method("vanilla", T=4)


@pytest.mark.parametrize(
    "name,hparams,match",
    [
        ("vanilla", {"temperature": 0}, r"temperature=0 is out of range; expected \(0, inf\]"),
        ("vanilla", {"alpha": 1.5}, r"alpha=1.5 is out of range; expected \[0, 1\]"),
        ("vanilla", {"standardize": "maybe"}, "standardize='maybe' is not a boolean"),
        ("ctkd", {"schedule": "step"}, r"schedule='step' is not allowed; expected one of \['cosine', 'linear'\]"),
        ("ctkd", {"e_cap": 2.5}, "e_cap=2.5 is not a whole number"),
        ("ctkd", {"temperature": 30.0}, r"strictly inside \(1, 21\)"),
        ("ctkd", {"lambda_min": 0.8, "lambda_max": 0.2}, "lambda_max=0.2 is out of range"),
        ("dkd", {"beta": "eight"}, "beta='eight' is not a finite number"),
    ],
)
def test_bad_hparam_values_name_key_value_and_expectation(name: str, hparams: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        create_method(name, **hparams)


@pytest.mark.parametrize("name", list(METHODS))
def test_hparams_round_trip_through_create_method(name: str) -> None:
    method = create_method(name)
    assert set(method.hparams()) == set(method_defaults(name))
    again = create_method(name, **method.hparams())
    assert again.hparams() == method.hparams()
    assert again.name == name


def test_command_line_strings_are_accepted_for_booleans_and_integral_floats() -> None:
    assert create_method("vanilla", standardize="true").hparams()["standardize"] is True
    assert create_method("ctkd", e_cap=10.0).hparams()["e_cap"] == 10
