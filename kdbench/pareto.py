"""Non-dominated sorting (Pareto fronts) over objectives that are maximised or minimised: the one implementation
(the leaderboard's fronts per target, the search's multi-objective front).

A point dominates another when it is at least as good in every objective and strictly better in
one. Front 1 holds the points nobody dominates; front k the points dominated only by points of
fronts 1..k-1. Equal points never dominate each other, so duplicates share a front.
"""

from __future__ import annotations

import math
from typing import Sequence

SENSES = ("max", "min")


def _as_minimised(point: Sequence[float], senses: Sequence[str]) -> tuple[float, ...]:
    """The point with every maximised objective negated, so that smaller is better everywhere."""
    out = []
    for value, sense in zip(point, senses):
        if sense not in SENSES:
            raise ValueError(f"objective sense {sense!r}; expected one of {SENSES}")
        v = float(value)
        if math.isnan(v):
            raise ValueError(f"point {tuple(point)} has a NaN objective; drop or impute it before sorting")
        out.append(-v if sense == "max" else v)
    return tuple(out)


def dominates(a: Sequence[float], b: Sequence[float], senses: Sequence[str]) -> bool:
    """True when ``a`` is at least as good as ``b`` in every objective and strictly better in one."""
    if not (len(a) == len(b) == len(senses)):
        raise ValueError(f"points {tuple(a)} and {tuple(b)} need one value per objective sense {tuple(senses)}")
    ma, mb = _as_minimised(a, senses), _as_minimised(b, senses)
    return all(x <= y for x, y in zip(ma, mb)) and any(x < y for x, y in zip(ma, mb))


def pareto_fronts(points: Sequence[Sequence[float]], senses: Sequence[str]) -> list[int]:
    """The front number (1 = Pareto-optimal) of every point, in input order (Deb's fast non-dominated sort)."""
    n = len(points)
    if n == 0:
        return []
    for p in points:
        if len(p) != len(senses):
            raise ValueError(f"point {tuple(p)} has {len(p)} values; expected one per objective {tuple(senses)}")
    pts = [_as_minimised(p, senses) for p in points]

    def dom(i: int, j: int) -> bool:
        return all(x <= y for x, y in zip(pts[i], pts[j])) and any(x < y for x, y in zip(pts[i], pts[j]))

    dominated_by_count = [0] * n
    dominated_sets: list[list[int]] = [[] for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            if dom(i, j):
                dominated_sets[i].append(j)
                dominated_by_count[j] += 1
            elif dom(j, i):
                dominated_sets[j].append(i)
                dominated_by_count[i] += 1
    front = [0] * n
    current = [i for i in range(n) if dominated_by_count[i] == 0]
    k = 1
    while current:
        nxt = []
        for i in current:
            front[i] = k
            for j in dominated_sets[i]:
                dominated_by_count[j] -= 1
                if dominated_by_count[j] == 0:
                    nxt.append(j)
        current = nxt
        k += 1
    return front


def front_staircase(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Corner points of the step line through a 2-D front of (cost down, benefit up) points, sorted by cost."""
    pts = sorted(points, key=lambda p: (p[0], -p[1]))
    best: list[tuple[float, float]] = []
    for x, y in pts:
        if not best or y > best[-1][1]:
            best.append((x, y))
    out: list[tuple[float, float]] = []
    for i, (x, y) in enumerate(best):
        if i:
            out.append((x, best[i - 1][1]))
        out.append((x, y))
    return out
