"""Non-dominated sorting on hand-made points (ties, duplicates, mixed senses) and the constraint verdicts."""

from __future__ import annotations

import random

import pytest

from kdbench.errors import ConfigError
from kdbench.profile.constraints import describe_constraints, evaluate_constraints
from kdbench.pareto import dominates, front_staircase, pareto_fronts

ACC_LAT_SIZE = ["max", "min", "min"]


def test_dominance_needs_one_strict_improvement():
    assert dominates((0.9, 1.0, 5.0), (0.8, 1.0, 5.0), ACC_LAT_SIZE)
    assert dominates((0.9, 1.0, 5.0), (0.9, 2.0, 6.0), ACC_LAT_SIZE)
    assert not dominates((0.9, 1.0, 5.0), (0.9, 1.0, 5.0), ACC_LAT_SIZE)  # equal: nobody dominates
    assert not dominates((0.9, 2.0, 5.0), (0.8, 1.0, 5.0), ACC_LAT_SIZE)  # a trade-off
    with pytest.raises(ValueError, match="sense"):
        dominates((1, 2), (1, 2), ["max", "up"])


def test_fronts_of_hand_made_points_with_ties_and_duplicates():
    points = [
        (0.90, 10.0, 5.0),  # 0: most accurate
        (0.80, 2.0, 1.0),   # 1: fastest and smallest
        (0.85, 5.0, 3.0),   # 2: in between, dominated by nobody
        (0.85, 5.0, 3.0),   # 3: duplicate of 2: same front
        (0.85, 6.0, 3.0),   # 4: dominated by 2 and 3 only
        (0.80, 6.0, 3.0),   # 5: dominated by 4 (and everything above it)
        (0.90, 10.0, 6.0),  # 6: tie on accuracy and latency with 0, larger: dominated by 0
        (0.70, 1.0, 9.0),   # 7: the largest file but the fastest: on front 1
    ]
    assert pareto_fronts(points, ACC_LAT_SIZE) == [1, 1, 1, 1, 2, 3, 2, 1]
    assert pareto_fronts([], ACC_LAT_SIZE) == []
    assert pareto_fronts([(0.5, 1.0, 1.0)] * 3, ACC_LAT_SIZE) == [1, 1, 1]


def test_fronts_match_the_definition_on_random_points():
    rng = random.Random(7)
    for _ in range(30):
        n = rng.randint(1, 25)
        # few distinct values, so ties and duplicates are frequent
        pts = [(rng.choice([0.7, 0.8, 0.9]), rng.choice([1.0, 2.0, 3.0, 4.0]), rng.choice([1.0, 5.0])) for _ in range(n)]
        fronts = pareto_fronts(pts, ACC_LAT_SIZE)
        for i, p in enumerate(pts):
            doms = [j for j, q in enumerate(pts) if dominates(q, p, ACC_LAT_SIZE)]
            if fronts[i] == 1:
                assert not doms
            else:
                assert any(fronts[j] == fronts[i] - 1 for j in doms)
                assert all(fronts[j] < fronts[i] for j in doms)


def test_bad_points_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        pareto_fronts([(float("nan"), 1.0, 1.0)], ACC_LAT_SIZE)
    with pytest.raises(ValueError, match="one per objective"):
        pareto_fronts([(0.5, 1.0)], ACC_LAT_SIZE)


def test_staircase_steps_through_the_2d_front():
    stair = front_staircase([(1.0, 0.7), (2.0, 0.8), (4.0, 0.9), (3.0, 0.75)])
    assert stair == [(1.0, 0.7), (2.0, 0.7), (2.0, 0.8), (4.0, 0.8), (4.0, 0.9)]


def test_constraint_verdicts_follow_the_numbers():
    rpi4 = {"min_fps": 30.0, "max_memory_mb": 50.0}
    assert evaluate_constraints({"fps": 30.0, "memory_mb": 49.9}, rpi4) == ("meets", [])
    verdict, why = evaluate_constraints({"fps": 29.9, "memory_mb": 50.0}, rpi4)
    assert verdict == "fails" and why == ["fps 29.9 < 30", "memory 50.0 MB >= 50 MB"]
    assert evaluate_constraints({"fps": 100.0, "memory_mb": None}, rpi4) == ("unknown", ["memory not measured"])
    # a missing figure never hides a violation
    assert evaluate_constraints({"fps": 10.0, "memory_mb": None}, rpi4)[0] == "fails"
    assert evaluate_constraints({"fps": 1.0}, {}) == ("n/a", [])
    assert evaluate_constraints({"size_mb": 60.0}, {"max_file_mb": 50.0})[0] == "fails"
    # an error band that straddles a limit is neither a pass nor a failure
    banded = {"fps": 29.9, "fps_low": 20.2, "fps_high": 44.3, "model_memory_mb": 10.0}
    assert evaluate_constraints(banded, rpi4) == ("uncertain", ["fps 29.9 (20.2-44.3) straddles 30"])
    assert evaluate_constraints({**banded, "fps_low": 30.5, "fps": 45.0}, rpi4)[0] == "meets"
    assert evaluate_constraints({**banded, "fps_high": 29.0, "fps": 20.0}, rpi4)[0] == "fails"
    assert evaluate_constraints({**banded, "model_memory_mb": 60.0, "memory_mb": 1.0}, rpi4)[0] == "fails"
    with pytest.raises(ConfigError, match="max_latency"):
        evaluate_constraints({"fps": 1.0}, {"max_latency": 3.0})
    assert describe_constraints(rpi4) == "fps >= 30, memory < 50 MB"
