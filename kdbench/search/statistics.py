"""Statistics over paired seeds: is a distilled student really better than scratch?

For every student architecture kdbench compares, on the seeds both trials ran, the best
configuration of each distillation method (by mean validation objective) against the best scratch
configuration: one row per method, the best method's row marked ``best_distillation``. Selection
uses validation data, so the verdict is on **test** accuracy (validation is shown too). Choosing the
best of many configurations and testing it on the same seeds still favours it (winner's curse):
``kdbench search confirm`` retrains the choice on fresh seeds (``confirm/statistics.json``).

The choices, checked by null simulations (``tests/test_statistics_simulation.py``,
``tests/benchmarks/sim_statistics.py``):

- **Interval** of the mean paired difference ``d = A - B``: the Student t interval
  ``mean(d) +- t_{n-1, 0.975} * sd(d) / sqrt(n)``. Exact for normal differences at any n >= 2 and
  close for the symmetric, discrete differences of accuracies; a bootstrap over 3-10 seeds covers
  70-91% instead of 95%. ``mean_ci`` is the same interval for a mean over seeds. Both take
  ``bounds`` (the study's accuracy differences use (-1, 1)): a t interval over 2-3 seeds can run
  past what an accuracy can be, and is cut there (coverage unchanged).
- **P(A > B)**: the posterior probability that the mean difference is positive under the
  reference prior (flat on the mean, 1/sigma on the scale) of a normal model, i.e. the one-sided t
  ``F_{t, n-1}(mean(d) / (sd(d) / sqrt(n)))``. Under the null it is >= 0.95 in 5% of runs exactly
  as often as the one-sided t-test rejects at 5%.
- **p_value**: the two-sided paired t-test. **p_wilcoxon**: the exact Wilcoxon signed-rank test
  with midranks for tied |d| (zero differences dropped), computed as the exact sign-flip
  permutation distribution of the signed midranks (so ties do not make it wrong).
- **Degenerate data** (every difference equal, so sd = 0): the t statistic does not exist. The
  interval and P(A > B) are ``None`` with a ``note``; ``p_value`` is then the sign-flip permutation
  p (``p_wilcoxon``), whose minimum at n non-zero differences is 2 * 2^-n two-sided, never 0.
- **Holm** over the comparisons of one metric (one per method and student).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
METRICS = ("test_accuracy", "val_accuracy")
OPTIONAL_METRICS = ("test_clip_accuracy",)  # compared when the trials' seed summaries carry them
TIE = 1e-12
DECIMALS = 10  # |d| equal to this many decimals are tied (0.9 - 0.8 and 0.8 - 0.7 are both 0.1)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaN stays NaN."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    running = 0.0
    for rank, i in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def constant_rows(d: np.ndarray) -> np.ndarray:
    """Per row of ``d`` [..., n]: all values equal up to floating-point noise."""
    d = np.asarray(d, dtype=float)
    scale = np.maximum(1.0, np.max(np.abs(d), axis=-1))
    return np.ptp(d, axis=-1) <= 1e-12 * scale


def t_summary(d: np.ndarray, confidence: float = CONFIDENCE) -> dict[str, np.ndarray]:
    """Vectorised over rows of ``d`` [R, n]: mean, t interval, one-sided t posterior P(mean > 0), two-sided p.

    NaN where undefined: fewer than 2 values or all values equal (sd = 0).
    """
    d = np.atleast_2d(np.asarray(d, dtype=float))
    n = d.shape[-1]
    mean = d.mean(axis=-1)
    nan = np.full(mean.shape, np.nan)
    if n < 2:
        return {"mean": mean, "low": nan, "high": nan, "p_gt": nan, "p_value": nan, "se": nan}
    se = d.std(axis=-1, ddof=1) / math.sqrt(n)
    se = np.where(constant_rows(d), np.nan, se)
    half = stats.t.ppf(0.5 + confidence / 2, df=n - 1) * se
    t = mean / se
    return {"mean": mean, "low": mean - half, "high": mean + half, "p_gt": stats.t.cdf(t, df=n - 1),
            "p_value": 2 * stats.t.sf(np.abs(t), df=n - 1), "se": se}


def signed_rank_pvalue(d: Sequence[float]) -> float:
    """Two-sided exact Wilcoxon signed-rank p with midranks: the sign-flip permutation distribution of W+.

    Zero differences are dropped (1 when none are left). Exact under ties: W+ is enumerated over all
    2^m sign patterns of the m midranks by convolution, so d = [.01, .01, .02, -.01, .03] gives 0.25.
    """
    arr = np.asarray(d, dtype=float)
    nz = arr[np.abs(arr) > TIE]
    if len(nz) == 0:
        return 1.0
    ranks2 = np.rint(2 * stats.rankdata(np.round(np.abs(nz), DECIMALS))).astype(int)  # 2 x midrank: integers
    counts = np.zeros(int(ranks2.sum()) + 1)
    counts[0] = 1.0
    for r in ranks2:
        counts[r:] += counts[:-r].copy()  # r >= 2: each rank either adds to W+ or not
    total = ranks2.sum()
    w_obs = int(ranks2[nz > 0].sum())
    dist = np.abs(2 * np.arange(total + 1) - total)  # |2 W+ - total| of each W+
    p = counts[dist >= abs(2 * w_obs - total)].sum() / counts.sum()
    return float(min(1.0, p))


def compare_paired(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE,
                   bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """Mean difference A - B over paired seeds: t interval, P(A > B) (one-sided t posterior), t and Wilcoxon p.

    ``bounds``: the range the true difference can take (e.g. (-1, 1) for accuracies); the interval is cut to it.
    """
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired samples need equal lengths, got {len(a_arr)} and {len(b_arr)}")
    d = a_arr - b_arr
    n = len(d)
    out: dict[str, Any] = {"n": n, "mean_a": _f(a_arr.mean()) if n else None, "mean_b": _f(b_arr.mean()) if n else None,
                           "diff": _f(d.mean()) if n else None, "sd_diff": _f(d.std(ddof=1)) if n > 1 else None,
                           "ci_low": None, "ci_high": None, "ci_method": None, "p_a_gt_b": None, "p_value": None,
                           "p_value_method": None, "p_wilcoxon": None, "note": ""}
    if n < 2:
        out["note"] = f"{n} paired seed(s): an interval and a test need at least 2"
        return out
    s = {k: float(v[0]) for k, v in t_summary(d[None], confidence).items()}
    out["p_wilcoxon"] = signed_rank_pvalue(d)
    if math.isnan(s["se"]):
        out.update(sd_diff=0.0, p_value=out["p_wilcoxon"], p_value_method="exact sign-flip permutation (t undefined)",
                   note=f"all {n} paired differences are equal ({d[0]:+.4g}): no spread, so no t interval or "
                        f"P(A>B); the permutation p cannot go below {2 * 0.5 ** n:.3g} at {n} seeds")
        if abs(d[0]) <= TIE:
            out.update(p_value=1.0, p_a_gt_b=0.5)
        return out
    low, high = _clip(s["low"], s["high"], bounds)
    out.update(ci_low=low, ci_high=high, ci_method="t interval on paired differences",
               p_a_gt_b=s["p_gt"], p_value=s["p_value"], p_value_method="paired t-test (two-sided)")
    return out


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE,
            bounds: tuple[float, float] | None = None) -> tuple[float | None, float | None]:
    """Student t interval of a mean over seeds (None with fewer than 2 values or when all are equal), cut to ``bounds``."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if len(v) < 2:
        return None, None
    s = t_summary(v[None], confidence)
    low, high = _f(s["low"][0]), _f(s["high"][0])
    return (None, None) if low is None or high is None else _clip(low, high, bounds)


def _clip(low: float, high: float, bounds: tuple[float, float] | None) -> tuple[float, float]:
    """The interval cut to the range the true value can take (a t interval can run past 0 or 1)."""
    if bounds is None:
        return low, high
    return max(low, bounds[0]), min(high, bounds[1])


def _f(x: Any) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


# ---- the study's comparisons ----------------------------------------------------------------------


def best_trial(trials: list[dict[str, Any]], objective: str) -> dict[str, Any] | None:
    """The trial with the highest mean ``objective`` (ties: the earlier trial); None if none is scored."""
    scored = [t for t in trials if t.get(f"mean_{objective}") is not None]
    # ties go to the earliest configuration: its first trial number, which a retry after a fault keeps
    return max(scored, key=lambda t: (t[f"mean_{objective}"], -t.get("first_trial", t["trial"]))) if scored else None


def _paired(a: dict[str, Any], b: dict[str, Any], metric: str) -> tuple[list[int], list[float], list[float]]:
    seeds = sorted(int(s) for s in set(a["seeds"]) & set(b["seeds"])
                   if a["seeds"][s].get(metric) is not None and b["seeds"][s].get(metric) is not None)
    return seeds, [a["seeds"][str(s)][metric] for s in seeds], [b["seeds"][str(s)][metric] for s in seeds]


def _ref(t: dict[str, Any]) -> dict[str, Any]:
    return {"trial": t["trial"], "method": t["method"], "config_id": t["config_id"], "hparams": t["hparams"]}


def metrics_present(trials: list[dict[str, Any]]) -> tuple[str, ...]:
    """METRICS plus the optional ones (clip accuracy) that some trial's seeds report."""
    extra = tuple(m for m in OPTIONAL_METRICS
                  if any(s.get(m) is not None for t in trials for s in (t.get("seeds") or {}).values()))
    return METRICS + extra


def student_comparisons(mine: list[dict[str, Any]], baseline: str, objective: str, metrics: tuple[str, ...],
                        confidence: float) -> list[dict[str, Any]]:
    """One row per (method, metric): the method's best configuration vs the best baseline one at its input size."""
    from kdbench.search.baselines import matched_baseline

    kd = [t for t in mine if t["method"] != baseline]
    best_kd = best_trial(kd, objective)
    rows = []
    for method in sorted({t["method"] for t in kd}):
        a = best_trial([t for t in kd if t["method"] == method], objective)
        base = matched_baseline(mine, a, baseline, objective) if a is not None else None
        if base is None:  # no baseline at that input size (study_statistics says so)
            continue
        for metric in metrics:
            common, xa, xb = _paired(a, base, metric)
            rows.append({"student": a["student"], "comparison": f"{method} vs {baseline}", "metric": metric,
                         "best_distillation": a is best_kd, "a": _ref(a), "b": _ref(base), "seeds": common,
                         **compare_paired(xa, xb, confidence, bounds=(-1.0, 1.0))})
    return rows


def correct(comparisons: list[dict[str, Any]], metrics: tuple[str, ...], confidence: float) -> None:
    """Holm-adjust the p-values of each metric's comparisons in place (p_holm, significant)."""
    for metric in metrics:
        rows = [c for c in comparisons if c["metric"] == metric]
        adjusted = holm([np.nan if c["p_value"] is None else c["p_value"] for c in rows])
        for c, p in zip(rows, adjusted):
            c["p_holm"] = None if math.isnan(p) else p
            c["significant"] = c["p_holm"] is not None and c["p_holm"] < 1 - confidence


def study_statistics(trials: list[dict[str, Any]], seeds: list[int], baseline: str | None = "scratch",
                     objective: str = "val_accuracy", confidence: float = CONFIDENCE) -> dict[str, Any]:
    """All comparisons of a study from its completed trials (trial.json dicts), Holm-corrected per metric."""
    from kdbench.search.baselines import missing_baselines

    warnings = []
    if len(seeds) < 5:
        warnings.append(f"only {len(seeds)} seed(s) per configuration: with fewer than 5 the intervals are wide and "
                        "the p-values weak; treat the comparisons as indications")
    complete = [t for t in trials if t.get("state") == "complete"]
    metrics = metrics_present(complete)
    comparisons: list[dict[str, Any]] = []
    for student in sorted({t["student"] for t in complete}):
        mine = [t for t in complete if t["student"] == student]
        if best_trial([t for t in mine if t["method"] == baseline], objective) is None:
            warnings.append(f"{student}: no completed {baseline!r} trial, so nothing to compare against")
            continue
        comparisons += student_comparisons(mine, baseline, objective, metrics, confidence)
        warnings += [f"{student}: no completed {baseline!r} trial at input size {size} px, where a method's best "
                     "configuration was trained; that comparison is left out (rerun the search to train it)"
                     for size in missing_baselines(mine, baseline, objective)]
    correct(comparisons, metrics, confidence)
    n_family = len(comparisons) // len(metrics)
    return {"confidence": confidence, "objective": objective, "baseline": baseline, "seeds": seeds,
            "metrics": list(metrics),
            "test": "paired t-test (two-sided); exact Wilcoxon signed-rank with midranks beside it; "
                    "exact sign-flip permutation p when all differences are equal",
            "correction": f"Holm over the {n_family} comparisons of each metric (one per method and student)",
            "ci": "t interval on the paired differences over seeds",
            "p_a_gt_b": "one-sided t posterior probability that mean(A - B) > 0 (reference prior)",
            "selection": f"each method's configuration chosen by mean {objective}; best_distillation marks the best "
                         "method per student; the same seeds chose and test it (see `kdbench search confirm`)",
            "warnings": warnings, "comparisons": comparisons}
