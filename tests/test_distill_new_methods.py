"""Golden values of DIST, WTTM, NKD and of the logit-standardisation switch, computed by hand.

The references below use only Python's ``math`` on lists, following each paper's formula (and the
official code's reading of it, cited in each method's module); the literals pin the numbers they
give on these tiny logits, so a change in either the reference or the implementation is caught.
"""

from __future__ import annotations

import math

import pytest
import torch

from kdbench.distill import METHODS, create_method
from kdbench.errors import ConfigError

# 2 samples x 4 classes; labels 3 and 1 (the teacher is right on row 1 only)
S = [[1.0, 0.0, -1.0, 2.0], [0.5, 1.5, 0.0, -0.5]]
T = [[2.0, 0.0, -2.0, 1.0], [0.0, 3.0, 1.0, -1.0]]
Y = [3, 1]
# a third row, so DIST's intra-class correlations (across the batch) are not just +-1
S3, T3, Y3 = S + [[-1.0, 2.0, 0.5, 0.0]], T + [[1.0, 0.5, 2.5, -0.5]], Y + [2]
TOL = 1e-6


# ---- references in plain Python ------------------------------------------------------------------


def softmax(z: list[float], temp: float = 1.0) -> list[float]:
    m = max(z)
    e = [math.exp((v - m) / temp) for v in z]
    return [v / sum(e) for v in e]


def mean(v: list[float]) -> float:
    return sum(v) / len(v)


def ce(s: list[list[float]], y: list[int]) -> float:
    return mean([-math.log(softmax(r)[g]) for r, g in zip(s, y)])


def kl(p: list[float], q: list[float]) -> float:
    return sum(a * (math.log(a) - math.log(b)) for a, b in zip(p, q))


def pearson(a: list[float], b: list[float]) -> float:
    da, db = [x - mean(a) for x in a], [x - mean(b) for x in b]
    norm = math.sqrt(sum(x * x for x in da)) * math.sqrt(sum(x * x for x in db))
    return sum(x * y for x, y in zip(da, db)) / (norm + 1e-8)


def zscore(z: list[float]) -> list[float]:
    std = math.sqrt(sum((v - mean(z)) ** 2 for v in z) / (len(z) - 1))  # n - 1, as torch.std
    return [(v - mean(z)) / (std + 1e-7) for v in z]


def dist_ref(s, t, tau: float, beta: float, gamma: float) -> float:
    ys, yt = [softmax(r, tau) for r in s], [softmax(r, tau) for r in t]
    inter = 1 - mean([pearson(a, b) for a, b in zip(ys, yt)])
    intra = 1 - mean([pearson([r[c] for r in ys], [r[c] for r in yt]) for c in range(len(s[0]))])
    return tau**2 * (beta * inter + gamma * intra)


def wttm_ref(s, t, gamma: float, beta: float) -> float:
    terms = []
    for rs, rt in zip(s, t):
        powered = [p**gamma for p in softmax(rt)]
        u = sum(powered)
        terms.append(u * kl([p / u for p in powered], softmax(rs)))
    return beta * mean(terms)


def nkd_ref(s, t, y, temp: float, gamma: float) -> float:
    target, non = [], []
    for rs, rt, g in zip(s, t, y):
        target.append(-softmax(rt)[g] * math.log(softmax(rs)[g]))
        ns, nt = [v for c, v in enumerate(rs) if c != g], [v for c, v in enumerate(rt) if c != g]
        non.append(-sum(a * math.log(b) for a, b in zip(softmax(nt, temp), softmax(ns, temp))))
    return mean(target) + gamma * temp**2 * mean(non)


def run(name: str, s=S, t=T, y=Y, **hparams) -> dict[str, float]:
    method = create_method(name, **hparams)
    terms = method(torch.tensor(s, dtype=torch.float64), torch.tensor(t, dtype=torch.float64), torch.tensor(y), 0)
    return {k: float(v) for k, v in terms.items()}


CE_2x4 = 0.4930980442508838  # mean CE of S on Y


def test_the_plain_python_cross_entropy_is_the_golden_value() -> None:
    assert ce(S, Y) == pytest.approx(CE_2x4, abs=1e-12)


# ---- DIST ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("s,t,y,hp,golden", [
    (S, T, Y, {}, 0.37081170652537043),  # official defaults beta = gamma = 1, tau = 1
    (S, T, Y, {"temperature": 4.0}, 2.9309911331347696),
    (S3, T3, Y3, {}, 1.017061919656089),
    (S3, T3, Y3, {"beta": 2.0, "gamma": 0.5, "temperature": 2.0}, 4.939319880604311),
])
def test_dist_matches_pearson_relation_formula(s, t, y, hp, golden) -> None:
    full = {"beta": 1.0, "gamma": 1.0, "temperature": 1.0, **hp}
    expected = dist_ref(s, t, full["temperature"], full["beta"], full["gamma"])
    assert expected == pytest.approx(golden, abs=1e-12)
    terms = run("dist", s, t, y, **hp)
    assert terms["kd"] == pytest.approx(expected, abs=TOL)
    assert terms["ce"] == pytest.approx(ce(s, y), abs=TOL)


def test_dist_intra_term_uses_the_batch_dimension() -> None:
    """With 3 rows the intra-class part is a real correlation; beta = 0 isolates it."""
    intra = run("dist", S3, T3, Y3, beta=0.0)["kd"]
    assert intra == pytest.approx(dist_ref(S3, T3, 1.0, 0.0, 1.0), abs=TOL)
    assert intra == pytest.approx(0.36723122433225, abs=TOL)
    assert run("dist", S, T, Y, beta=0.0)["kd"] == pytest.approx(0.0, abs=1e-5)  # 2 rows: every column correlates +1


def test_dist_is_zero_when_the_student_copies_the_teacher_up_to_scale_and_shift() -> None:
    """Pearson ignores a positive affine map of the probabilities, but not of the logits: copy exactly."""
    assert run("dist", T3, T3, Y3)["kd"] == pytest.approx(0.0, abs=1e-6)


# ---- WTTM ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hp,golden", [
    ({}, 2.5259768999259373),  # defaults gamma = 0.2, beta = 4
    ({"gamma": 0.5, "beta": 1.0}, 0.25737677713220236),
])
def test_wttm_matches_weighted_transformed_teacher_formula(hp, golden) -> None:
    full = {"gamma": 0.2, "beta": 4.0, **hp}
    assert wttm_ref(S, T, full["gamma"], full["beta"]) == pytest.approx(golden, abs=1e-12)
    terms = run("wttm", **hp)
    assert terms["kd"] == pytest.approx(golden, abs=TOL)
    assert terms["ce"] == pytest.approx(CE_2x4, abs=TOL)


def test_wttm_transform_is_teacher_temperature_one_over_gamma() -> None:
    """p_t^gamma / U_gamma = softmax(z_t * gamma); gamma = 1 gives U = 1 and plain KL(p_t || q)."""
    powered = [p**0.25 for p in softmax(T[0])]
    assert [p / sum(powered) for p in powered] == pytest.approx(softmax(T[0], 4.0), abs=1e-12)
    plain_kl = mean([kl(softmax(t), softmax(s)) for s, t in zip(S, T)])
    assert run("wttm", gamma=1.0, beta=1.0)["kd"] == pytest.approx(plain_kl, abs=TOL)


# ---- NKD -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hp,golden", [
    ({}, 1.524760013312587),  # defaults T = 1, gamma = 1.5
    ({"temperature": 2.0, "gamma": 1.0}, 4.243636864114367),
])
def test_nkd_matches_normalized_target_and_non_target_formula(hp, golden) -> None:
    full = {"temperature": 1.0, "gamma": 1.5, **hp}
    assert nkd_ref(S, T, Y, full["temperature"], full["gamma"]) == pytest.approx(golden, abs=1e-12)
    terms = run("nkd", **hp)
    assert terms["kd"] == pytest.approx(golden, abs=TOL)
    assert terms["ce"] == pytest.approx(CE_2x4, abs=TOL)


def test_nkd_non_target_part_ignores_the_target_logit() -> None:
    """Changing only the target-class logit of the teacher leaves the non-target part unchanged."""
    bumped = [row[:] for row in T]
    bumped[0][Y[0]] += 5.0
    gamma_only = run("nkd", t=bumped)["kd"] - nkd_ref(S, bumped, Y, 1.0, 0.0)
    assert gamma_only == pytest.approx(nkd_ref(S, T, Y, 1.0, 1.5) - nkd_ref(S, T, Y, 1.0, 0.0), abs=TOL)


# ---- logit standardisation switch ------------------------------------------------------------------


def test_standardize_switch_golden_on_vanilla() -> None:
    """Vanilla KD with standardize=true: KL of softmax(zscore / T), CE on the raw logits."""
    zs, zt = [zscore(r) for r in S], [zscore(r) for r in T]
    assert zs[0] == pytest.approx([0.3872983, -0.3872983, -1.1618950, 1.1618950], abs=1e-6)
    kd = 0.5 * 16 * mean([kl(softmax(t, 4.0), softmax(s, 4.0)) for s, t in zip(zs, zt)])
    assert kd == pytest.approx(0.0565499409961122, abs=1e-10)
    terms = run("vanilla", standardize=True)
    assert terms["kd"] == pytest.approx(kd, abs=TOL)
    assert terms["ce"] == pytest.approx(0.5 * CE_2x4, abs=TOL)


@pytest.mark.parametrize("name,reference,golden", [
    ("dist", lambda s, t: dist_ref(s, t, 1.0, 1.0, 1.0), 0.2789729500983955),
    ("wttm", lambda s, t: wttm_ref(s, t, 0.2, 4.0), 2.9225782398937703),
    ("nkd", lambda s, t: nkd_ref(s, t, Y, 1.0, 1.5), 1.6686023128272487),
])
def test_standardize_switch_feeds_zscored_logits_to_the_distillation_term(name, reference, golden) -> None:
    zs, zt = [zscore(r) for r in S], [zscore(r) for r in T]
    assert reference(zs, zt) == pytest.approx(golden, abs=1e-12)
    terms = run(name, standardize=True)
    assert terms["kd"] == pytest.approx(golden, abs=1e-5)
    assert terms["ce"] == pytest.approx(CE_2x4, abs=TOL)  # the label term keeps the raw logits
    assert terms["kd"] != pytest.approx(run(name)["kd"], abs=1e-3)  # the switch changes something


@pytest.mark.parametrize("name", [n for n, cls in METHODS.items() if "standardize" in cls.defaults()])
def test_standardized_methods_ignore_a_per_sample_shift_and_scale_of_the_logits(name: str) -> None:
    base = run(name, standardize=True)
    moved = run(name, s=[[3 * v + 7 for v in r] for r in S], t=[[0.5 * v - 2 for v in r] for r in T],
                standardize=True)
    assert moved["kd"] == pytest.approx(base["kd"], abs=1e-5)


def test_every_teacher_logit_method_but_ctkd_has_the_switch() -> None:
    with_switch = {n for n, cls in METHODS.items() if "standardize" in cls.defaults()}
    assert with_switch >= {"vanilla", "conditional", "dkd", "dist", "wttm", "nkd"}
    assert create_method("logit_std").standardize is True  # the alias


@pytest.mark.parametrize("name,hparams,match", [
    ("wttm", {"gamma": 0.0}, r"gamma=0.0 is out of range; expected \(0, 1\]"),
    ("wttm", {"gamma": 1.5}, r"gamma=1.5 is out of range"),
    ("dist", {"temperature": -1}, r"temperature=-1 is out of range"),
    ("nkd", {"gamma": "lots"}, "gamma='lots' is not a finite number"),
    ("dist", {"standardize": "perhaps"}, "standardize='perhaps' is not a boolean"),
])
def test_bad_hparams_of_new_methods_name_key_and_value(name: str, hparams: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        create_method(name, **hparams)


def test_nkd_rejects_two_classes() -> None:
    with pytest.raises(ConfigError, match="at least 3 classes"):
        run("nkd", s=[[1.0, 0.0]], t=[[0.0, 1.0]], y=[0])
