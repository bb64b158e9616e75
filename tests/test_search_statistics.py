"""Statistics over paired seeds, pinned to values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from kdbench.search.statistics import bootstrap_means, compare_paired, holm, mean_ci, paired_t_pvalue, \
    study_statistics


def test_holm_matches_hand_computation():
    # sorted: 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> monotone 0.06)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = holm([0.02, float("nan"), 0.01])  # NaN is not a comparison: m = 2
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_exact_bootstrap_enumerates_all_resamples():
    boot, how = bootstrap_means(np.array([-1.0, 0.0, 2.0]))
    assert how == "exact" and len(boot) == 27
    # multinomial table by hand: sums -3:1, -2:3, -1:3, 0:1+3, 1:6, 2:3, 3:3, 4:3, 6:1
    expected = sorted([-3] + [-2] * 3 + [-1] * 3 + [0] * 4 + [1] * 6 + [2] * 3 + [3] * 3 + [4] * 3 + [6])
    assert sorted(np.round(boot * 3).astype(int).tolist()) == expected


def test_compare_paired_hand_values():
    a, b = [1.0, 2.0, 5.0], [2.0, 2.0, 3.0]  # differences -1, 0, 2
    out = compare_paired(a, b)
    assert out["n"] == 3 and out["diff"] == pytest.approx(1 / 3)
    # P(A > B): 16 of 27 resample means are positive, 4 are zero (counted half): 18/27
    assert out["p_a_gt_b"] == pytest.approx(18 / 27)
    # paired t with df = 2: t^2 = 1/7, p = 1 - t / sqrt(t^2 + 2) = 1 - 1/sqrt(15)
    assert out["p_value"] == pytest.approx(1 - 1 / math.sqrt(15))
    assert out["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    # BCa by hand: z0 from 11 resample means below 1/3 and 6 equal; acceleration from the jackknife
    # means (1, 0.5, -0.5): sum dev^3 = 5/18, sum dev^2 = 7/6
    z0 = stats.norm.ppf((11 + 0.5 * 6) / 27)
    acc = (5 / 18) / (6 * (7 / 6) ** 1.5)
    values = np.array(sorted([-3] + [-2] * 3 + [-1] * 3 + [0] * 4 + [1] * 6 + [2] * 3 + [3] * 3 + [4] * 3 + [6])) / 3
    lo_q = stats.norm.cdf(z0 + (z0 - 1.959964) / (1 - acc * (z0 - 1.959964)))
    hi_q = stats.norm.cdf(z0 + (z0 + 1.959964) / (1 - acc * (z0 + 1.959964)))
    assert out["ci_low"] == pytest.approx(np.percentile(values, 100 * lo_q), abs=1e-4)
    assert out["ci_high"] == pytest.approx(np.percentile(values, 100 * hi_q), abs=1e-4)
    assert out["ci_low"] < out["diff"] < out["ci_high"]


def test_constant_differences_give_a_point_interval_and_certainty():
    out = compare_paired([0.9, 0.8, 0.7, 0.95, 0.85], [0.8, 0.7, 0.6, 0.85, 0.75])
    assert out["ci_low"] == pytest.approx(0.1) and out["ci_high"] == pytest.approx(0.1)
    assert out["p_a_gt_b"] == 1.0 and out["p_value"] == 0.0
    assert paired_t_pvalue(np.zeros(4)) == 1.0
    # five seeds: the exact two-sided Wilcoxon p can never be below 2 / 2^5
    assert out["p_wilcoxon"] == pytest.approx(0.0625)


def test_bca_agrees_with_scipy_for_many_seeds():
    rng = np.random.default_rng(3)
    a = rng.normal(0.80, 0.02, 12)
    b = a - rng.normal(0.01, 0.01, 12)
    ours = compare_paired(a, b)
    ref = stats.bootstrap((a, b), lambda x, y, axis=-1: np.mean(x - y, axis=axis), paired=True, method="BCa",
                          n_resamples=20000, random_state=1, vectorized=True).confidence_interval
    assert ours["ci_low"] == pytest.approx(ref.low, abs=2e-3)
    assert ours["ci_high"] == pytest.approx(ref.high, abs=2e-3)


def test_mean_ci_needs_two_values():
    assert mean_ci([0.8]) == (None, None)
    low, high = mean_ci([0.7, 0.8, 0.9, 0.75])
    assert low < 0.7875 < high


def _trial(student, number, method, val, test, state="complete"):
    seeds = {str(s): {"val_accuracy": v, "test_accuracy": t} for s, (v, t) in enumerate(zip(val, test))}
    return {"student": student, "trial": number, "method": method, "config_id": f"{method}-{number}", "hparams": {},
            "state": state, "seeds": seeds, "mean_val_accuracy": float(np.mean(val))}


def test_study_statistics_selects_on_val_compares_on_test_and_corrects():
    trials = [
        _trial("s", 0, "scratch", [0.70, 0.72, 0.71], [0.60, 0.61, 0.62]),
        _trial("s", 1, "vanilla", [0.80, 0.81, 0.79], [0.65, 0.66, 0.66]),  # best KD by val
        _trial("s", 2, "vanilla", [0.75, 0.75, 0.75], [0.90, 0.90, 0.90]),  # best on test: must not be chosen
        _trial("s", 3, "ctkd", [0.78, 0.78, 0.77], [0.61, 0.60, 0.64]),
        _trial("s", 4, "ctkd", [0.99, 0.99, 0.99], [0.99, 0.99, 0.99], state="pruned"),
        _trial("t", 0, "vanilla", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),  # no scratch: warned, skipped
    ]
    out = study_statistics(trials, seeds=[0, 1, 2])
    test_rows = [c for c in out["comparisons"] if c["metric"] == "test_accuracy"]
    assert [(c["comparison"], c["a"]["trial"]) for c in test_rows] == [
        ("best distillation vs scratch", 1), ("ctkd vs scratch", 3), ("vanilla vs scratch", 1)]
    best = test_rows[0]
    assert best["diff"] == pytest.approx(np.mean([0.05, 0.05, 0.04]))
    ps = [c["p_value"] for c in test_rows]
    assert [c["p_holm"] for c in test_rows] == pytest.approx(holm(ps))
    assert any("3 seed" in w for w in out["warnings"]) and any(w.startswith("t:") for w in out["warnings"])
