"""Statistics over paired seeds: is the best distilled student really better than scratch?

For every student architecture kdbench compares, on the seeds both trials ran:

- the best distillation configuration (by mean validation accuracy) against the best scratch one;
- the best configuration of each method against scratch.

Each comparison reports the mean paired difference A - B with a BCa bootstrap confidence interval,
P(A > B) (the bootstrap probability that the mean difference is positive), a paired t-test p-value
(and the exact Wilcoxon signed-rank p-value beside it), and Holm-corrected p-values across all the
comparisons of one metric. Selection uses validation accuracy, so the comparisons are made on
**test** accuracy, which took no part in choosing the configurations (validation is shown too).

The bootstrap resamples seeds (the pairs) with replacement. With n <= 7 seeds every one of the
n^n resamples is enumerated, so results are exact and deterministic; beyond that 20 000 random
resamples with a fixed seed are drawn.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Sequence

import numpy as np
from scipy import stats

EXACT_MAX_N = 7
N_RESAMPLES = 20_000
CONFIDENCE = 0.95
METRICS = ("test_accuracy", "val_accuracy")
TIE = 1e-12


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


def bootstrap_means(d: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = 0) -> tuple[np.ndarray, str]:
    """Means of bootstrap resamples of ``d``: all n^n of them for small n, else random ones."""
    n = len(d)
    if n <= EXACT_MAX_N:
        idx = np.array(list(itertools.product(range(n), repeat=n)), dtype=np.int8)
        return d[idx].mean(axis=1), "exact"
    rng = np.random.default_rng(seed)
    return d[rng.integers(0, n, size=(n_resamples, n))].mean(axis=1), "monte-carlo"


def bca_interval(d: np.ndarray, boot: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The BCa interval of the mean of ``d`` from its bootstrap means (Efron 1987)."""
    theta = float(d.mean())
    if _constant(d):
        return theta, theta
    n_b = len(boot)
    below = (np.sum(boot < theta - TIE) + 0.5 * np.sum(np.abs(boot - theta) <= TIE)) / n_b
    z0 = stats.norm.ppf(np.clip(below, 0.5 / n_b, 1 - 0.5 / n_b))
    jack = (d.sum() - d) / (len(d) - 1)
    dev = jack.mean() - jack
    denom = 6.0 * (np.sum(dev**2)) ** 1.5
    a = float(np.sum(dev**3) / denom) if denom > 0 else 0.0
    alpha = (1 - confidence) / 2
    out = []
    for z in (stats.norm.ppf(alpha), stats.norm.ppf(1 - alpha)):
        out.append(float(np.percentile(boot, 100 * stats.norm.cdf(z0 + (z0 + z) / (1 - a * (z0 + z))))))
    return out[0], out[1]


def _constant(d: np.ndarray) -> bool:
    """All values equal up to floating-point noise (accuracy differences such as 0.9-0.8 vs 0.8-0.7)."""
    return bool(np.ptp(d) <= 1e-12 * max(1.0, float(np.max(np.abs(d)))))


def paired_t_pvalue(d: np.ndarray) -> float:
    """Two-sided paired t-test p-value of mean(d) = 0 (0 or 1 when all differences are equal)."""
    n = len(d)
    if n < 2:
        return float("nan")
    sd = float(d.std(ddof=1))
    mean = float(d.mean())
    if _constant(d):
        return 1.0 if abs(mean) <= TIE else 0.0
    t = mean / (sd / math.sqrt(n))
    return float(2 * stats.t.sf(abs(t), df=n - 1))


def wilcoxon_pvalue(d: np.ndarray) -> float:
    """Two-sided exact Wilcoxon signed-rank p-value (zero differences dropped; 1 when none are left)."""
    nz = d[np.abs(d) > TIE]
    if len(nz) == 0:
        return 1.0
    return float(stats.wilcoxon(nz, method="exact").pvalue)


def compare_paired(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Mean difference A - B over paired seeds, BCa CI, P(A > B), paired t and Wilcoxon p-values."""
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired samples need equal lengths, got {len(a_arr)} and {len(b_arr)}")
    d = a_arr - b_arr
    n = len(d)
    out: dict[str, Any] = {"n": n, "mean_a": _f(a_arr.mean()) if n else None, "mean_b": _f(b_arr.mean()) if n else None,
                           "diff": _f(d.mean()) if n else None, "ci_low": None, "ci_high": None, "ci_method": None,
                           "p_a_gt_b": None, "p_value": None, "p_wilcoxon": None}
    if n == 0:
        return out
    boot, how = bootstrap_means(d)
    out["p_a_gt_b"] = _f((np.sum(boot > TIE) + 0.5 * np.sum(np.abs(boot) <= TIE)) / len(boot))
    if n >= 2:
        low, high = bca_interval(d, boot, confidence)
        out.update(ci_low=_f(low), ci_high=_f(high), ci_method=f"BCa ({how} bootstrap)",
                   p_value=_f(paired_t_pvalue(d)), p_wilcoxon=_f(wilcoxon_pvalue(d)))
    return out


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """BCa bootstrap interval of a mean over seeds (None with fewer than 2 values)."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    if len(v) < 2:
        return None, None
    boot, _ = bootstrap_means(v)
    low, high = bca_interval(v, boot, confidence)
    return _f(low), _f(high)


def _f(x: Any) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


# ---- the study's comparisons ----------------------------------------------------------------------


def _best(trials: list[dict[str, Any]], objective: str) -> dict[str, Any] | None:
    scored = [t for t in trials if t.get(f"mean_{objective}") is not None]
    return max(scored, key=lambda t: (t[f"mean_{objective}"], -t["trial"])) if scored else None


def _paired(a: dict[str, Any], b: dict[str, Any], metric: str) -> tuple[list[int], list[float], list[float]]:
    seeds = sorted(int(s) for s in set(a["seeds"]) & set(b["seeds"])
                   if a["seeds"][s].get(metric) is not None and b["seeds"][s].get(metric) is not None)
    return seeds, [a["seeds"][str(s)][metric] for s in seeds], [b["seeds"][str(s)][metric] for s in seeds]


def _ref(t: dict[str, Any]) -> dict[str, Any]:
    return {"trial": t["trial"], "method": t["method"], "config_id": t["config_id"], "hparams": t["hparams"]}


def study_statistics(trials: list[dict[str, Any]], seeds: list[int], baseline: str | None = "scratch",
                     objective: str = "val_accuracy", confidence: float = CONFIDENCE) -> dict[str, Any]:
    """All comparisons of a study from its completed trials (trial.json dicts), Holm-corrected per metric."""
    warnings = []
    if len(seeds) < 5:
        warnings.append(f"only {len(seeds)} seed(s) per configuration: with fewer than 5 the intervals are wide and "
                        "the p-values weak; treat the comparisons as indications")
    comparisons: list[dict[str, Any]] = []
    complete = [t for t in trials if t.get("state") == "complete"]
    for student in sorted({t["student"] for t in complete}):
        mine = [t for t in complete if t["student"] == student]
        base = _best([t for t in mine if t["method"] == baseline], objective)
        if base is None:
            warnings.append(f"{student}: no completed {baseline!r} trial, so nothing to compare against")
            continue
        kd = [t for t in mine if t["method"] != baseline]
        pairs = []
        best_kd = _best(kd, objective)
        if best_kd is not None:
            pairs.append(("best distillation", best_kd))
        for method in sorted({t["method"] for t in kd}):
            pairs.append((method, _best([t for t in kd if t["method"] == method], objective)))
        for label, a in pairs:
            for metric in METRICS:
                common, xa, xb = _paired(a, base, metric)
                comparisons.append({"student": student, "comparison": f"{label} vs {baseline}", "metric": metric,
                                    "a": _ref(a), "b": _ref(base), "seeds": common,
                                    **compare_paired(xa, xb, confidence)})
    for metric in METRICS:
        rows = [c for c in comparisons if c["metric"] == metric]
        adjusted = holm([np.nan if c["p_value"] is None else c["p_value"] for c in rows])
        for c, p in zip(rows, adjusted):
            c["p_holm"] = None if math.isnan(p) else p
            c["significant"] = c["p_holm"] is not None and c["p_holm"] < 1 - confidence
    return {"confidence": confidence, "objective": objective, "baseline": baseline, "seeds": seeds,
            "test": "paired t-test (two-sided); exact Wilcoxon signed-rank beside it",
            "correction": f"Holm over the {len(comparisons) // len(METRICS)} comparisons of each metric",
            "ci": "BCa paired bootstrap over seeds", "p_a_gt_b": "bootstrap probability that mean(A - B) > 0",
            "warnings": warnings, "comparisons": comparisons}
