"""Statistics over paired seeds, pinned to values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from kdbench.search.statistics import compare_paired, holm, mean_ci, signed_rank_pvalue, study_statistics, t_summary


def test_holm_matches_hand_computation():
    # sorted: 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> monotone 0.06)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    out = holm([0.02, float("nan"), 0.01])  # NaN is not a comparison: m = 2
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_compare_paired_hand_values():
    a, b = [1.0, 2.0, 5.0], [2.0, 2.0, 3.0]  # differences -1, 0, 2: mean 1/3, sd sqrt(7/3), se sqrt(7)/3
    out = compare_paired(a, b)
    assert out["n"] == 3 and out["diff"] == pytest.approx(1 / 3)
    assert out["sd_diff"] == pytest.approx(math.sqrt(7 / 3))
    half = 4.302652729911275 * math.sqrt(7) / 3  # t_{2, 0.975} x se
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((1 / 3 - half, 1 / 3 + half))
    # t = 1/sqrt(7); with 2 degrees of freedom F(t) = 1/2 + t / (2 sqrt(t^2 + 2)), so p = 2 (1 - F(t)) = 1 - 1/sqrt(15)
    assert out["p_value"] == pytest.approx(1 - 1 / math.sqrt(15))
    assert "p_a_gt_b" not in out and (out["engine"], out["se"], out["df"]) == ("seed t", pytest.approx(math.sqrt(7) / 3), 2)
    assert out["p_value"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    # Wilcoxon: zero dropped, ranks 1 (-) and 2 (+): W+ = 2 of 0..3, every sign pattern as extreme -> 1
    assert out["p_wilcoxon"] == 1.0


def test_wilcoxon_is_exact_under_ties():
    # |d| midranks 2, 2, 4, 2, 5; W+ = 13 of 15. Sign patterns with W+ >= 13 or <= 2: {}, and one of the
    # three 2s left out (4 each side) -> 8 / 32
    assert signed_rank_pvalue([0.01, 0.01, 0.02, -0.01, 0.03]) == pytest.approx(0.25)
    # accuracy differences that are equal only up to floating point are tied too
    assert signed_rank_pvalue(np.array([0.9, 0.8, 0.85, 0.6, 0.95]) - np.array([0.8, 0.7, 0.83, 0.7, 0.92])) == \
        pytest.approx(signed_rank_pvalue([0.1, 0.1, 0.02, -0.1, 0.03]))
    rng = np.random.default_rng(0)
    for _ in range(5):  # no ties: scipy's exact Wilcoxon
        d = rng.normal(0.01, 0.02, 8)
        assert signed_rank_pvalue(d) == pytest.approx(stats.wilcoxon(d, method="exact").pvalue)


def test_equal_differences_give_no_zero_p_and_no_zero_width_interval():
    out = compare_paired([0.9, 0.8, 0.7, 0.95, 0.85], [0.8, 0.7, 0.6, 0.85, 0.75])
    assert out["ci_low"] is None and out["ci_high"] is None
    # the exact sign-flip p: all five signs positive, 2 of 32 patterns as extreme
    assert out["p_value"] == pytest.approx(2 / 32) and out["p_wilcoxon"] == pytest.approx(2 / 32)
    assert "permutation" in out["p_value_method"] and "equal" in out["note"]
    three = compare_paired([0.8, 0.7, 0.9], [0.7, 0.6, 0.8])  # the demo's 3 seeds: 0.25, never significant
    assert three["p_value"] == pytest.approx(0.25)
    same = compare_paired([0.8, 0.7], [0.8, 0.7])
    assert same["p_value"] == 1.0 and same["ci_low"] is None


def test_intervals_are_cut_to_the_possible_range():
    raw = compare_paired([0.9, 0.2], [0.3, 0.4])  # 2 seeds: t_{1, 0.975} = 12.7, the interval passes -1 and 1
    assert raw["ci_low"] < -1 < 1 < raw["ci_high"]
    cut = compare_paired([0.9, 0.2], [0.3, 0.4], bounds=(-1.0, 1.0))
    assert (cut["ci_low"], cut["ci_high"]) == (-1.0, 1.0)
    assert mean_ci([0.99, 0.9], bounds=(0.0, 1.0))[1] == 1.0 and mean_ci([0.99, 0.9])[1] > 1.0


def test_one_seed_has_no_interval_or_test():
    out = compare_paired([0.8], [0.7])
    assert out["diff"] == pytest.approx(0.1) and out["ci_low"] is None and out["p_value"] is None
    assert "at least 2" in out["note"]


def test_t_summary_is_vectorised_compare_paired():
    rng = np.random.default_rng(1)
    d = rng.normal(0.0, 0.02, (20, 4))
    s = t_summary(d)
    for i in (0, 7, 19):
        one = compare_paired(d[i], np.zeros(4))
        assert (one["ci_low"], one["ci_high"], one["p_value"], one["se"]) == pytest.approx(
            (s["low"][i], s["high"][i], s["p_value"][i], s["se"][i]))


def test_mean_ci_is_the_t_interval():
    assert mean_ci([0.8]) == (None, None)
    assert mean_ci([0.8, 0.8, 0.8]) == (None, None)  # no spread: no zero-width interval
    v = [0.7, 0.8, 0.9, 0.75]
    half = stats.t.ppf(0.975, 3) * np.std(v, ddof=1) / 2
    assert mean_ci(v) == pytest.approx((np.mean(v) - half, np.mean(v) + half))


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
    # one row per method (no duplicate "best distillation" row in the Holm family); the best is marked
    assert [(c["comparison"], c["a"]["trial"], c["best_distillation"]) for c in test_rows] == [
        ("ctkd vs scratch", 3, False), ("vanilla vs scratch", 1, True)]
    best = test_rows[1]
    assert best["diff"] == pytest.approx(np.mean([0.05, 0.05, 0.04]))
    ps = [c["p_value"] for c in test_rows]
    assert [c["p_holm"] for c in test_rows] == pytest.approx(holm(ps))
    assert "2 comparisons" in out["correction"] and out["metrics"] == ["test_accuracy", "val_accuracy"]
    assert any("3 seed" in w for w in out["warnings"]) and any(w.startswith("t:") for w in out["warnings"])


def test_study_statistics_compares_clip_accuracy_when_seeds_report_it():
    trials = [_trial("s", 0, "scratch", [0.7, 0.72, 0.71], [0.6, 0.61, 0.62]),
              _trial("s", 1, "dkd", [0.8, 0.81, 0.79], [0.65, 0.66, 0.63])]
    for t, clip in zip(trials, ([0.5, 0.5, 0.75], [0.75, 0.75, 0.75])):
        for s, c in zip(sorted(t["seeds"]), clip):
            t["seeds"][s]["test_clip_accuracy"] = c
    out = study_statistics(trials, seeds=[0, 1, 2])
    clip = [c for c in out["comparisons"] if c["metric"] == "test_clip_accuracy"]
    assert len(clip) == 1 and clip[0]["diff"] == pytest.approx(1 / 6) and clip[0]["p_holm"] is not None
