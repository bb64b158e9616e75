"""Decisions against the best model of a target at an equivalence margin: best / equivalent / worse / undecided.

Every ranked row of a target is compared with the target's best row (the most accurate on validation) by one
paired comparison on the same validation frames, ``kdbench.metrics.paired_interval(best, model, clips)``: the
95% interval of best minus model. With the margin delta (``[study] margin``, ``kdbench leaderboard --margin``,
fixed before the data are seen; default 0.01 = 1 accuracy point):

- ``best``: the most accurate ranked row on validation (ties: the faster, then the smaller);
- ``equivalent``: the whole interval lies inside (-delta, +delta). A loss smaller than the margin is acceptable
  by definition, so this holds even when the interval excludes 0;
- ``worse``: otherwise, when the interval lies above 0 (``ci_low > 0``);
- ``undecided``: neither; the note says what would settle it (``settle_text``).

Rows whose figure is a seed mean (checkpoint rows, no export) compare [seeds, frames] of 0/1 from each seed's
``predictions.npz`` on the seed indices both have; an exported variant compares its own per-frame predictions
(one checkpoint; ``EXPORT/<candidate>/predictions-<variant>.npz``). Two rows of the same exported file (the same
variant in another runtime) are ``equivalent`` without a test. Missing predictions, no shared seed index or no
shared frame make a row ``undecided`` with the reason.

What would settle an undecided row (``settle_text``): with the difference d staying where it is, the interval
decides once its half-width h = t(df) x se falls below max(delta - |d|, |d|) (below delta - |d| it lies
inside +-delta, below |d| it excludes 0). ``paired_interval``'s se^2 = seed + clip + seed_x_clip
(``se2_parts``) scales with S' seeds and C' clips as seed x S/S' + clip x C/C' + seed_x_clip x SC/(S'C'), with
Satterthwaite's df as in ``paired_interval``; the smallest S' (clips as they are) that gets there is "about S'
seeds"; when no S' up to ``MAX_SEEDS`` does (the clip part alone is too wide), or for one checkpoint (more
seeds do not narrow a comparison of two fixed checkpoints), the smallest C' is reported against the C
validation clips the store has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

VERDICTS = ("best", "equivalent", "worse", "undecided")
LEVEL = 0.95
MAX_SEEDS = 1000


@dataclass
class ValHits:
    """A row's validation predictions as 0/1 hits: [seeds, frames] for a seed mean, [1, frames] for one checkpoint."""

    hits: np.ndarray | None = None  # [S, N] bool
    rows: np.ndarray | None = None  # [N] frame identity (store rows), to pair frames
    clips: np.ndarray | None = None  # [N] clip ids
    seeds: list[int] | None = None  # seed index of each hits row; None: one exported checkpoint
    missing: str | None = None  # why there are no hits


@dataclass
class Decision:
    """One row's verdict against the best, with the interval of best minus it and a note."""

    verdict: str
    note: str
    ci_low: float | None = None
    ci_high: float | None = None
    diff: float | None = None


def fmt_margin(margin: float) -> str:
    """'0.010 (1 point)'."""
    return f"{margin:.3f} ({100 * margin:g} point{'s' if round(100 * margin, 6) != 1 else ''})"


def _pts(x: float) -> str:
    return f"{x:+.3f}"


def _pair(best: ValHits, other: ValHits) -> tuple[np.ndarray, np.ndarray, np.ndarray, str] | str:
    """(best hits, other hits, clips, what was paired) on shared seeds and frames, or why they cannot be paired."""
    if best.missing or best.hits is None:
        return "no paired comparison: the best has no per-frame validation predictions (see its decision_note)"
    if other.missing or other.hits is None:
        return other.missing or "no per-frame validation predictions"
    if (best.seeds is None) != (other.seeds is None):
        return "one row is an exported checkpoint and the other a seed mean: no paired comparison"
    if best.seeds is None:
        ia, ib, seed_text = [0], [0], "one checkpoint each"
    else:
        shared = sorted(set(best.seeds) & set(other.seeds or []))
        if not shared:
            return f"shares no seed index with the best (seeds {other.seeds} vs {best.seeds}): no paired comparison"
        ia, ib = [best.seeds.index(s) for s in shared], [other.seeds.index(s) for s in shared]
        seed_text = f"{len(shared)} shared seed{'s' if len(shared) != 1 else ''}"
        if len(shared) < max(len(best.seeds), len(other.seeds)):
            seed_text += f" of {max(len(best.seeds), len(other.seeds))}"
    common, ja, jb = np.intersect1d(best.rows, other.rows, return_indices=True)
    if not len(common):
        return "shares no validation frame with the best: no paired comparison"
    clips = np.asarray(best.clips)[ja]
    n_clips = len(np.unique(clips.astype(str)))
    frame_text = f"{len(common)} frames from {n_clips} clips"
    if len(common) < max(len(best.rows), len(other.rows)):
        frame_text += " shared"
    return (np.asarray(best.hits)[np.ix_(ia, ja)], np.asarray(other.hits)[np.ix_(ib, jb)], clips,
            f"paired on {seed_text}, {frame_text}")


def _halfwidth(parts: dict[str, Any], s: int, c: int, s2: np.ndarray, c2: np.ndarray, level: float) -> np.ndarray:
    """Expected half-width t(df) x se at S' = s2 seeds and C' = c2 clips from today's se2_parts (S = s, C = c)."""
    seed, clip, sxc = (float(parts.get(k) or 0.0) for k in ("seed", "clip", "seed_x_clip"))
    s2, c2 = np.asarray(s2, dtype=np.float64), np.asarray(c2, dtype=np.float64)
    seed2, sxc2, clip2 = seed * s / s2, sxc * (s / s2) * (c / c2), clip * c / c2
    se2 = np.maximum(seed2 + sxc2 + clip2, 0.0)
    if parts.get("seed") is None:  # one checkpoint: clip t on C'-1 df
        df = c2 - 1
    else:
        q_seed, q_resid, q_clip = seed2 + sxc2, sxc2, clip2 + sxc2
        denom = q_seed**2 / (s2 - 1) + (q_clip**2 / (c2 - 1) + q_resid**2 / ((s2 - 1) * (c2 - 1))) * (clip > 0)
        df = np.maximum(np.where(denom > 0, se2**2 / np.where(denom > 0, denom, 1.0), s2 - 1), s2 - 1)
    return stats.t.ppf(0.5 + level / 2, np.maximum(df, 1.0)) * np.sqrt(se2)


def _clips_needed(parts: dict[str, Any], s: int, c: int, need: float, level: float) -> int | None:
    """The fewest validation clips (seeds as they are) whose expected half-width is below ``need``; None: none."""
    hi = c * 2
    while _halfwidth(parts, s, c, s, hi, level) >= need:
        hi *= 2
        if hi > c * 10**6:
            return None
    grid = np.arange(c + 1, hi + 1)
    ok = np.flatnonzero(_halfwidth(parts, s, c, np.full(len(grid), s), grid, level) < need)
    return int(grid[ok[0]]) if len(ok) else None


def settle_text(res: dict[str, Any], margin: float, level: float = LEVEL, max_seeds: int = MAX_SEEDS) -> str:
    """What would settle an undecided comparison (see the module docstring): about N seeds, or N validation clips."""
    parts, s, c = res.get("se2_parts"), int(res["n_seeds"]), int(res["n_clips"])
    d = abs(float(res["diff"]))
    need = max(margin - d, d)  # the half-width below which the interval is inside +-margin or excludes 0
    if not parts or c < 2:
        return "too few validation clips to estimate the noise"
    cond = f"if the difference stays near {_pts(float(res['diff']))}"
    if parts.get("seed") is not None:
        grid = np.arange(max(s, 2) + 1, max_seeds + 1)
        ok = np.flatnonzero(_halfwidth(parts, s, c, grid, np.full(len(grid), c), level) < need) if len(grid) else []
        if len(ok):
            return f"undecided at this budget: about {int(grid[ok[0]])} seeds (now {s}) would settle it, {cond}"
    clips = _clips_needed(parts, s, c, need, level)
    seeds_fail = (f"more seeds alone would not settle it (not with {max_seeds}): " if parts.get("seed") is not None
                  else "more seeds do not narrow a comparison of two fixed checkpoints: ")
    if clips is None:
        return seeds_fail + "neither would any number of validation clips"
    return (seeds_fail + f"about {clips} validation clips would, {cond}: more validation clips than the store has "
            f"({c}): undecided at this budget")


def compare(best: ValHits, other: ValHits, margin: float, level: float = LEVEL) -> Decision:
    """The verdict of ``other`` against ``best`` (best minus other, paired) at the margin."""
    from kdbench.metrics import margin_verdict, paired_interval

    paired = _pair(best, other)
    if isinstance(paired, str):
        return Decision("undecided", paired)
    a, b, clips, how = paired
    res = paired_interval(a, b, clips, level)
    d, low, high = res["diff"], res["ci_low"], res["ci_high"]
    verdict = margin_verdict(low, high, margin, bool(np.array_equal(a, b)))
    if low is None or high is None:
        if verdict == "equivalent":
            return Decision("equivalent", f"the same hits as the best on every validation frame ({how})", 0.0, 0.0, 0.0)
        return Decision("undecided", f"best - this = {_pts(d)}, no interval ({res['n_clips']} clip(s), no spread; {how})",
                        diff=d)
    text = f"best - this = {_pts(d)} [{_pts(low)}, {_pts(high)}]"
    if verdict == "equivalent":
        return Decision("equivalent", f"{text}: inside ±{margin:.3f} ({how})", low, high, d)
    if verdict == "worse":
        return Decision("worse", f"{text}: above 0 ({how})", low, high, d)
    return Decision("undecided", f"{text}: neither inside ±{margin:.3f} nor above 0 ({how}); "
                    + settle_text(res, margin, level), low, high, d)
