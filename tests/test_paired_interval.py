"""kdbench.metrics.paired_interval: hand-computed values, input errors, undefined cases and a small simulation.

The simulation reuses the hierarchical model of tests/benchmarks/sim_paired_interval.py (which prints
the full null and power tables at 1, 3, 5 and 10 seeds).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from kdbench.errors import DataError
from kdbench.metrics import paired_interval

CLIPS = ["x", "x", "y", "y", "z", "z"]
# Two seeds x 6 frames x 3 clips. Differences a - b per frame: seed 0 [0,1 | 0,0 | 1,0], seed 1 [1,1 | 0,1 | 1,0].
A = [[1, 1, 1, 0, 1, 1], [1, 1, 1, 1, 1, 0]]
B = [[1, 0, 1, 0, 0, 1], [0, 0, 1, 0, 0, 0]]


def test_two_seeds_three_clips_by_hand():
    # Clip means d[s, c]: seed 0 [1/2, 0, 1/2], seed 1 [1, 1/2, 1/2]; per-seed differences 1/3, 2/3; diff = 6/12 = 1/2.
    # Q_seed = var(1/3, 2/3)/S = (1/18)/2 = 1/36 (the seed t's se^2).
    # Clip means over seeds [3/4, 1/4, 1/2]: Q_clip = var/C = (1/16)/3 = 1/48.
    # Residuals d - seed mean - clip mean + 1/2: seed 0 [-1/12, -1/12, 1/6], seed 1 the negatives: sum of squares
    # 1/12, Q_resid = (1/12) / ((S-1)(C-1)) / (S C) = 1/144.
    # se^2 = Q_seed + (Q_clip - Q_resid) = 1/36 + 1/72 = 1/24;
    # parts: seed 1/36 - 1/144 = 1/48, clip 1/72, seed x clip 1/144.
    # Satterthwaite: (6/144)^2 / ((4/144)^2/1 + (3/144)^2/2 + (1/144)^2/2) = 36 / 21 = 12/7.
    r = paired_interval(np.array(A, dtype=bool), np.array(B), CLIPS)
    assert (r["diff"], r["mean_a"], r["mean_b"]) == pytest.approx((0.5, 10 / 12, 4 / 12))
    assert r["se"] == pytest.approx(1 / np.sqrt(24)) and r["df"] == pytest.approx(12 / 7)
    assert r["se2_parts"] == pytest.approx({"seed": 1 / 48, "clip": 1 / 72, "seed_x_clip": 1 / 144})
    half = stats.t.ppf(0.975, 12 / 7) / np.sqrt(24)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((0.5 - half, 0.5 + half))
    assert r["p_value"] == pytest.approx(2 * stats.t.sf(np.sqrt(6), 12 / 7))
    assert (r["n_seeds"], r["n_clips"], r["n_frames"], r["method"]) == (2, 3, 6, "seed+clip t")


def test_one_seed_is_the_clip_cluster_t():
    # Seed 0 alone: clip sums of a - b [1, 0, 1], 2 frames each, diff 1/3;
    # CR1: C/(C-1) * sum (sum_c - 2/3)^2 / N^2 = 3/2 * (1/9 + 4/9 + 1/9) / 36 = 1/36, se 1/6 on C-1 = 2 df.
    r = paired_interval(A[0], B[0], CLIPS)
    assert r["method"] == "clip t" and r["n_seeds"] == 1
    assert (r["diff"], r["se"], r["df"]) == pytest.approx((1 / 3, 1 / 6, 2))
    assert r["ci_high"] == pytest.approx(1 / 3 + stats.t.ppf(0.975, 2) / 6)
    assert r["p_value"] == pytest.approx(2 * stats.t.sf(2, 2))


def test_one_seed_unequal_clips_matches_cr1_and_labels_do_not_matter():
    rng = np.random.default_rng(0)
    clips = np.repeat(np.arange(30), rng.integers(1, 7, 30))
    a, b = rng.random(len(clips)) < 0.8, rng.random(len(clips)) < 0.7
    diff = a.mean() - b.mean()
    sums = np.bincount(clips, weights=a.astype(float) - b) - np.bincount(clips) * diff
    r = paired_interval(a, b, clips)
    assert r["se"] == pytest.approx(np.sqrt(30 / 29 * np.sum(sums**2)) / len(clips))
    order = rng.permutation(len(clips))
    r2 = paired_interval(a[order], b[order], [f"clip-{c}" for c in clips[order]], level=0.95)
    keys = ("diff", "se", "ci_low", "p_value")
    assert [r2[k] for k in keys] == pytest.approx([r[k] for k in keys])
    r3 = paired_interval(a, b, [("echonet", int(c)) for c in clips])  # tuples are labels too
    assert [r3[k] for k in keys] == pytest.approx([r[k] for k in keys]) and r3["n_clips"] == 30


def test_no_clip_spread_gives_exactly_the_seed_level_paired_t():
    # Clip mean differences [1, 0, 1/2], [0, 1, 0], [1/2, 1/2, 1]: all three clips average 1/2 over the
    # seeds, so the clip part (Q_clip = 0 < Q_resid) is dropped and what is left is the seed t.
    a = np.array([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0], [1, 0, 1, 0, 1, 1]])
    b = np.array([[0, 0, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
    r = paired_interval(a, b, CLIPS)
    t = stats.ttest_rel(a.mean(axis=1), b.mean(axis=1))
    assert r["se2_parts"]["clip"] == 0.0 and r["df"] == 2
    assert r["p_value"] == pytest.approx(t.pvalue)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(tuple(t.confidence_interval(0.95)))


def test_duplicated_frames_change_nothing():
    rng = np.random.default_rng(1)
    clips = np.repeat(np.arange(40), 3)
    a, b = rng.random((4, 120)) < 0.8, rng.random((4, 120)) < 0.75
    r = paired_interval(a, b, clips)
    r2 = paired_interval(np.repeat(a, 2, axis=1), np.repeat(b, 2, axis=1), np.repeat(clips, 2))
    assert (r2["diff"], r2["se"], r2["df"]) == pytest.approx((r["diff"], r["se"], r["df"]))


@pytest.mark.parametrize("a,b,clips,name", [
    (np.ones((3, 6)), np.ones((2, 6)), CLIPS, "correct_b"),
    (np.ones((3, 6)), np.ones((3, 5)), CLIPS, "correct_b"),
    (np.ones((2, 6)), np.ones((2, 6)), CLIPS[:5], "clip_ids"),
    (np.full((2, 6), 2), np.ones((2, 6)), CLIPS, "correct_a"),
    (np.ones((2, 6)), np.full((2, 6), np.nan), CLIPS, "correct_b"),
    (np.ones((2, 2, 6)), np.ones((2, 2, 6)), CLIPS, "correct_a"),
    (np.ones((2, 0)), np.ones((2, 0)), [], "correct_a"),
])
def test_bad_input_raises_a_value_error_naming_the_argument(a, b, clips, name):
    with pytest.raises(ValueError, match=name) as info:
        paired_interval(a, b, clips)
    assert isinstance(info.value, DataError)  # the CLI prints it without a traceback


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1])
def test_bad_level(level):
    with pytest.raises(ValueError, match="level"):
        paired_interval(A, B, CLIPS, level=level)


@pytest.mark.parametrize("a,b,clips,undefined", [
    (A, A, CLIPS, True),  # every difference zero
    (A, B, ["x"] * 6, True),  # one clip
    (np.ones((3, 6)), np.zeros((3, 6)), CLIPS, True),  # always +1: no spread anywhere
    ([[1, 0, 1, 1], [1, 0, 1, 1]], [[0, 0, 1, 1], [0, 0, 1, 1]], [0, 1, 1, 2], False),  # seeds agree, clips differ
    ([1, 0, 1, 1], [0, 0, 1, 1], [0, 1, 1, 2], False),  # one seed, one clip differs
])
def test_undefined_cases_give_none(a, b, clips, undefined):
    r = paired_interval(a, b, clips)
    assert (r["ci_low"] is None) == (r["ci_high"] is None) == (r["p_value"] is None) == (r["se"] is None) == undefined
    assert r["diff"] == pytest.approx(np.mean(a) - np.mean(b))


def _simulation():
    path = Path(__file__).parent / "benchmarks" / "sim_paired_interval.py"
    spec = importlib.util.spec_from_file_location("sim_paired_interval", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclass looks itself up there
    spec.loader.exec_module(mod)
    return mod


def test_simulated_coverage_and_power_at_five_seeds():
    """400 studies of 5 seeds x 130 clips x 4 frames (seed SD of accuracy ~0.03). Found: coverage 0.945-0.96
    (binomial SE 1.1 points, so [0.91, 0.985] is a +-3 SE band), power at a true 3 points equal to the seed t's
    on the same studies (its intervals are the seed t's whenever the clip part is estimated <= 0)."""
    sim = _simulation()
    h, clips, runs = sim.Hierarchy(), np.repeat(np.arange(130), 4), 400
    a, b, truth, _ = sim.draw(h, np.random.default_rng(5), runs, 5, 0.0)
    cover, reject, _ = sim.paired_runs(a, b, clips, truth)
    assert 0.91 <= cover.mean() <= 0.985, f"null coverage {cover.mean():.3f}"
    assert reject.mean() == pytest.approx(1 - cover.mean())  # p < 0.05 exactly when the 95% interval misses 0
    a, b, truth, _ = sim.draw(h, np.random.default_rng(6), runs, 5, 0.03)
    ours, seed_t = sim.paired_runs(a, b, clips, truth)[1], sim.seed_t_runs(a, b, truth)[1]
    assert ours.mean() >= seed_t.mean() - 0.01, f"power {ours.mean():.3f} vs seed t {seed_t.mean():.3f}"
    assert ours.mean() > 0.15
