"""Statistics over paired seeds: is a distilled student really better than scratch?

For every student architecture kdbench compares, on the seeds both trials ran, the best
configuration of each distillation method (by mean validation objective) against the best scratch
configuration: one row per method, the best method's row marked ``best_distillation``. Selection
uses validation data, so the verdict is on **test** accuracy (validation is shown too). Choosing the
best of many configurations and testing it on the same seeds still favours it (winner's curse: the
test comparison is not free of the selection, only less exposed to it than validation is):
``kdbench search confirm`` retrains the choice on fresh seeds (``confirm/statistics.json``).

The engine (``engine`` on every comparison):

- **paired_interval** (``kdbench.metrics.paired_interval``) when every seed of both trials saved
  its predictions (``seed_<s>/predictions.npz``) and the study's frame store opens (``study.json``
  ``store``): the per-frame correctness [common seeds, split frames] of the two configurations, with
  seed, clip and seed x clip variance components, so the interval is for new seeds *and* new clips
  and uses every prediction, not one accuracy per seed. Clip accuracy: one hit per clip (its frames'
  mean logits), each clip its own cluster.
- **seed t** otherwise (no store on this machine, predictions not saved, frames that differ, fewer
  than 2 seeds), with the reason in ``engine_note`` and the warnings: the Student t interval on the
  per-seed differences ``mean(d) +- t_{n-1, 0.975} * sd(d) / sqrt(n)`` (exact for normal differences
  at any n >= 2; a bootstrap over 3-10 seeds covers 70-91% instead of 95%). ``mean_ci`` is the same
  interval for a mean over seeds. Both take ``bounds`` (accuracy differences use (-1, 1)).

Beside it: **p_value** (two-sided, from the engine), **p_wilcoxon** (exact Wilcoxon signed-rank on
the per-seed differences, midranks for tied |d|, computed as the exact sign-flip permutation
distribution). **Degenerate data** (every difference equal, so sd = 0): no interval, with a
``note``; ``p_value`` is then the sign-flip permutation p, whose minimum at n non-zero differences
is 2 * 2^-n two-sided, never 0. **Holm** over the comparisons of one metric (one per method and
student): ``p_holm``, ``significant`` (p_holm < 0.05); a confirmation looked at several times
multiplies it by the number of looks (Bonferroni, ``kdbench.search.confirm``).

There is no P(A > B): the one-sided t posterior it was is 1 - one-sided p, uncorrected for picking
the best of several methods on the same seeds (under the null it read >= 0.95 in 9-15% of studies).
Instead every comparison has a **verdict** at the study's margin delta (``[study] margin``, default
0.01 accuracy): ``KD better`` / ``<baseline> better`` (Holm p < 0.05, by the sign of the
difference), ``equivalent within +-delta`` (the 95% interval, not adjusted for the family, lies
inside (-delta, delta): two one-sided tests at 2.5%), else ``undecided at this budget: about N
seeds would detect delta``. N is a normal power calculation (80% power, two-sided 5%, and at the
Holm family's first-step level 5%/m) from the observed variance: paired_interval's ``se2_parts``
(seed and seed x clip parts shrink as 1/seeds; the clip part, the test clips' own sampling, does
not, so when it alone is too large no number of seeds suffices and the verdict says so) or the
seed t's sd of the per-seed differences. An undecided comparison is never a "no difference".
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import stats

from kdbench.search.baselines import matched_baseline, missing_baselines
from kdbench.search.comparison import Comparison
from kdbench.search.selection import best_trial

CONFIDENCE = 0.95
METRICS = ("test_accuracy", "val_accuracy")
OPTIONAL_METRICS = ("test_clip_accuracy",)  # compared when the trials' seed summaries carry them
TIE = 1e-12
DECIMALS = 10  # |d| equal to this many decimals are tied (0.9 - 0.8 and 0.8 - 0.7 are both 0.1)
DEFAULT_MARGIN = 0.01  # delta: accuracy difference that matters, when the study names none
POWER = 0.8  # of the "about N seeds would detect delta" figure
ENGINE_PAIRED, ENGINE_T = "paired_interval", "seed t"
SPLIT_OF = {"test_accuracy": ("test", False), "val_accuracy": ("val", False), "test_clip_accuracy": ("test", True)}


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
    """Vectorised over rows of ``d`` [R, n]: mean, t interval, two-sided p, standard error.

    NaN where undefined: fewer than 2 values or all values equal (sd = 0).
    """
    d = np.atleast_2d(np.asarray(d, dtype=float))
    n = d.shape[-1]
    mean = d.mean(axis=-1)
    nan = np.full(mean.shape, np.nan)
    if n < 2:
        return {"mean": mean, "low": nan, "high": nan, "p_value": nan, "se": nan}
    se = d.std(axis=-1, ddof=1) / math.sqrt(n)
    se = np.where(constant_rows(d), np.nan, se)
    half = stats.t.ppf(0.5 + confidence / 2, df=n - 1) * se
    t = mean / se
    return {"mean": mean, "low": mean - half, "high": mean + half, "p_value": 2 * stats.t.sf(np.abs(t), df=n - 1),
            "se": se}


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
    """Mean difference A - B over paired seeds (the "seed t" engine): t interval, t and Wilcoxon p.

    ``bounds``: the range the true difference can take (e.g. (-1, 1) for accuracies); the interval is cut to it.
    """
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"paired samples need equal lengths, got {len(a_arr)} and {len(b_arr)}")
    d = a_arr - b_arr
    n = len(d)
    out: dict[str, Any] = {"n": n, "mean_a": _f(a_arr.mean()) if n else None, "mean_b": _f(b_arr.mean()) if n else None,
                           "diff": _f(d.mean()) if n else None, "sd_diff": _f(d.std(ddof=1)) if n > 1 else None,
                           "ci_low": None, "ci_high": None, "ci_method": None, "p_value": None,
                           "p_value_method": None, "p_wilcoxon": None, "note": "", "engine": ENGINE_T,
                           "se": None, "df": None, "se2_parts": None}
    if n < 2:
        out["note"] = f"{n} paired seed(s): an interval and a test need at least 2"
        return out
    s = {k: float(v[0]) for k, v in t_summary(d[None], confidence).items()}
    out["p_wilcoxon"] = signed_rank_pvalue(d)
    if math.isnan(s["se"]):
        out.update(sd_diff=0.0, p_value=out["p_wilcoxon"], p_value_method="exact sign-flip permutation (t undefined)",
                   note=f"all {n} paired differences are equal ({d[0]:+.4g}): no spread, so no t interval; "
                        f"the permutation p cannot go below {2 * 0.5 ** n:.3g} at {n} seeds")
        if abs(d[0]) <= TIE:
            out.update(p_value=1.0)
        return out
    low, high = _clip(s["low"], s["high"], bounds)
    out.update(ci_low=low, ci_high=high, ci_method="t interval on paired differences", p_value=s["p_value"],
               p_value_method="paired t-test (two-sided)", se=s["se"], df=float(n - 1))
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


# ---- per-frame correctness from the trials' predictions (the paired_interval engine) --------------


def open_store(path: Any) -> tuple[Any, str | None]:
    """The study's frame store for the paired_interval engine, or (None, why) when it is not named or cannot be
    opened on this machine (the comparisons then use the seed t)."""
    from kdbench.data.store import FrameStore
    from kdbench.errors import DataError

    if not path:
        return None, "study.json names no frame store"
    try:
        return FrameStore.open(path), None
    except DataError as err:
        return None, f"the study's frame store cannot be opened here ({err})"


class Predictions:
    """Per-seed frame hits of trials, from each seed's predictions.npz (read once per trial, seeds and split).

    ``why`` collects the reasons a comparison fell back to the seed t (store missing, predictions not saved)."""

    def __init__(self, store: Any, why: str | None = None) -> None:
        self.store = store
        self.why: list[str] = [why] if why else []
        self._cache: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray] | None] = {}

    def hits(self, trial: dict[str, Any], seeds: list[int], split: str,
             per_clip: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(hits [seeds, N], cluster ids [N], store rows [N]) of ``seeds`` of ``trial`` (None: not available)."""
        from kdbench.errors import DataError
        from kdbench.predictions import seed_hits, seed_logits

        if self.store is None:
            return None
        run_dir = trial.get("run_dir")
        key = (run_dir, tuple(seeds), split, per_clip)
        if key not in self._cache:
            got = None
            try:
                preds = seed_logits(Path(run_dir), seeds, split, self.store) if run_dir else None
            except DataError as err:
                preds = None
                self._note(f"{trial['student']} trial {trial['trial']}: {err}")
            if preds is not None:
                hits, clips = seed_hits(*preds, self.store, per_clip=per_clip)
                got = (hits.astype(bool), np.asarray(clips), preds[1])
            else:
                self._note(f"{trial['student']} trial {trial['trial']}: no {split} predictions.npz for every seed "
                           f"{seeds} (or their frames differ)")
            self._cache[key] = got
        return self._cache[key]

    def _note(self, line: str) -> None:
        if line not in self.why:
            self.why.append(line)


def compare_hits(hits_a: np.ndarray, hits_b: np.ndarray, clips: np.ndarray, confidence: float = CONFIDENCE,
                 bounds: tuple[float, float] | None = None) -> dict[str, Any]:
    """compare_paired's keys from per-frame correctness [seeds, frames] of A and B on the same frames and seeds,
    by ``kdbench.metrics.paired_interval`` (engine "paired_interval"); p_wilcoxon on the per-seed differences."""
    from kdbench.metrics import paired_interval

    r = paired_interval(hits_a, hits_b, clips, level=confidence)
    per_seed = np.asarray(hits_a, dtype=float).mean(axis=1) - np.asarray(hits_b, dtype=float).mean(axis=1)
    n = len(per_seed)
    out: dict[str, Any] = {
        "n": n, "mean_a": r["mean_a"], "mean_b": r["mean_b"], "diff": r["diff"],
        "sd_diff": float(per_seed.std(ddof=1)) if n > 1 else None, "ci_low": None, "ci_high": None,
        "ci_method": f"paired_interval ({r['method']}): seed, clip and seed x clip variance components",
        "p_value": r["p_value"], "p_value_method": "paired_interval t on Satterthwaite df (two-sided)",
        "p_wilcoxon": signed_rank_pvalue(per_seed) if n > 1 else None, "note": "", "engine": ENGINE_PAIRED,
        "se": r["se"], "df": r["df"], "se2_parts": r["se2_parts"], "n_clips": r["n_clips"], "n_frames": r["n_frames"]}
    if r["ci_low"] is not None:
        out["ci_low"], out["ci_high"] = _clip(r["ci_low"], r["ci_high"], bounds)
    elif abs(r["diff"]) <= TIE and r["n_clips"] > 1:
        out.update(p_value=1.0, note="A and B are right on exactly the same frames: no difference to test")
    else:
        out["note"] = (f"no spread in the paired differences over {r['n_clips']} clip(s): no interval "
                       "(paired_interval is undefined)")
    return out


# ---- the study's comparisons ----------------------------------------------------------------------


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


def compare(a: dict[str, Any], b: dict[str, Any], metric: str, confidence: float,
            preds: Predictions | None = None) -> dict[str, Any]:
    """Trial A vs trial B on ``metric`` over their common seeds: paired_interval on their predictions when
    ``preds`` has them (both trials, the same frames), else the seed t on the recorded per-seed figures."""
    common, xa, xb = _paired(a, b, metric)
    split = SPLIT_OF.get(metric)
    if preds is not None and split is not None and len(common) >= 2:
        ha, hb = preds.hits(a, common, *split), preds.hits(b, common, *split)
        if ha is not None and hb is not None:
            if np.array_equal(ha[2], hb[2]):
                return {"seeds": common, **compare_hits(ha[0], hb[0], ha[1], confidence, bounds=(-1.0, 1.0))}
            preds._note(f"{a['student']} trials {a['trial']} and {b['trial']}: {split} predictions on different frames")
    return {"seeds": common, **compare_paired(xa, xb, confidence, bounds=(-1.0, 1.0))}


def student_comparisons(mine: list[dict[str, Any]], baseline: str, objective: str, metrics: tuple[str, ...],
                        confidence: float, preds: Predictions | None = None) -> list[dict[str, Any]]:
    """One row per (method, metric): the method's best configuration vs the best baseline one at its input size."""

    kd = [t for t in mine if t["method"] != baseline]
    best_kd = best_trial(kd, objective)
    rows = []
    for method in sorted({t["method"] for t in kd}):
        a = best_trial([t for t in kd if t["method"] == method], objective)
        base = matched_baseline(mine, a, baseline, objective) if a is not None else None
        if base is None:  # no baseline at that input size (study_statistics says so)
            continue
        for metric in metrics:
            rows.append({"student": a["student"], "comparison": f"{method} vs {baseline}", "metric": metric,
                         "best_distillation": a is best_kd, "a": _ref(a), "b": _ref(base),
                         **compare(a, base, metric, confidence, preds)})
    return rows


def correct(comparisons: list[dict[str, Any]], metrics: tuple[str, ...], confidence: float, looks: int = 1) -> None:
    """Holm-adjust the p-values of each metric's comparisons in place (p_holm, significant); with ``looks`` > 1
    (a confirmation rerun to add seeds) p_holm is also multiplied by the number of looks (Bonferroni)."""
    for metric in metrics:
        rows = [c for c in comparisons if c["metric"] == metric]
        adjusted = holm([np.nan if c["p_value"] is None else c["p_value"] for c in rows])
        for c, p in zip(rows, adjusted):
            c["p_holm"] = None if math.isnan(p) else min(1.0, p * max(1, looks))
            c["significant"] = c["p_holm"] is not None and c["p_holm"] < 1 - confidence


# ---- verdicts at the study's margin -----------------------------------------------------------------


def study_margin(cfg: dict[str, Any] | None) -> float:
    """The study's margin delta: ``margin`` of the resolved config or its raw ``[study]`` table, else 0.01."""
    cfg = cfg or {}
    for value in (cfg.get("margin"), ((cfg.get("raw") or {}).get("study") or {}).get("margin")):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return DEFAULT_MARGIN


def seeds_to_detect(c: dict[str, Any], margin: float, alpha: float, power: float = POWER) -> tuple[int | None, str]:
    """(about how many seeds detect a true difference of ``margin`` with ``power`` at two-sided ``alpha``, why not).

    Normal approximation: se(N)^2 = V_seed / N + V_fixed must reach (margin / (z_{1-alpha/2} + z_power))^2.
    paired_interval: V_seed = (seed + seed_x_clip parts) x n (they shrink as 1/seeds), V_fixed = the clip part
    (the same test clips whatever the seeds); seed t: V_seed = sd(per-seed differences)^2, V_fixed = 0."""
    target = (margin / (stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power))) ** 2
    n = c.get("n") or 0
    if c.get("engine") == ENGINE_PAIRED and (c.get("se2_parts") or {}).get("seed") is not None:
        parts = c["se2_parts"]
        per_seed, fixed = max(0.0, (parts["seed"] + parts["seed_x_clip"]) * n), parts["clip"]
    elif c.get("sd_diff") is not None and n >= 2:
        per_seed, fixed = c["sd_diff"] ** 2, 0.0
    else:
        return None, f"{n} seed(s) cannot tell how much seeds vary"
    if fixed >= target:
        split = "validation" if str(c.get("metric", "")).startswith("val") else "test"
        return None, (f"more seeds alone would not detect {margin:g} on these {c.get('n_clips')} {split} clips (the "
                      f"clips' own spread is too large; a larger {split} split would)")
    return max(2, math.ceil(per_seed / (target - fixed))), ""


def verdict(c: dict[str, Any], margin: float, baseline: str, family: int, confidence: float = CONFIDENCE) -> None:
    """Set ``margin``, ``decision`` (kd_better | baseline_better | equivalent | undecided), ``verdict`` (the words)
    and ``seeds_needed`` {raw, holm, family, power} on a comparison with p_holm and significant set."""
    alpha = round(1 - confidence, 10)
    raw, why = seeds_to_detect(c, margin, alpha)
    holm_n, why_holm = seeds_to_detect(c, margin, alpha / max(1, family))
    c["margin"] = margin
    c["seeds_needed"] = {"raw": raw, "holm": holm_n, "family": family, "power": POWER, "alpha": alpha}
    low, high, n = c.get("ci_low"), c.get("ci_high"), c.get("n") or 0
    if c.get("significant") and c["diff"] > 0:
        c["decision"], c["verdict"] = "kd_better", "KD better"
    elif c.get("significant") and c["diff"] < 0:
        c["decision"], c["verdict"] = "baseline_better", f"{baseline} better"
    elif low is not None and -margin < low and high < margin:
        c["decision"], c["verdict"] = "equivalent", f"equivalent within +-{margin:g}"
    else:
        c["decision"] = "undecided"
        if low is None and n >= 2:  # no spread at all: neither an interval nor a variance to plan seeds from
            text = f"no interval ({c.get('note') or 'no spread in the paired differences'})"
        elif raw is None:
            text = why
        elif raw <= n:
            text = (f"{n} seeds already detect {margin:g} {POWER:.0%} of the time, so the difference is probably "
                    f"smaller than that; more seeds would show whether it lies within +-{margin:g}")
        else:
            after = f"{holm_n} after Holm over {family}" if holm_n is not None else f"after Holm over {family}: {why_holm}"
            text = f"about {raw} seeds would detect {margin:g} ({POWER:.0%} power, two-sided {alpha:.0%}; {after})"
        c["verdict"] = f"undecided at this budget: {text}"


def _engine_summary(comparisons: list[dict[str, Any]]) -> str:
    engines = sorted({c.get("engine") for c in comparisons if c.get("engine")})
    return engines[0] if len(engines) == 1 else ("mixed: " + ", ".join(engines) if engines else "none")


def study_statistics(trials: list[dict[str, Any]], seeds: list[int], baseline: str | None = "scratch",
                     objective: str = "val_accuracy", confidence: float = CONFIDENCE, store: Any = None,
                     store_note: str | None = None, margin: float | None = None, looks: int = 1) -> dict[str, Any]:
    """All comparisons of a study from its completed trials (trial.json dicts, with ``run_dir`` for predictions),
    Holm-corrected per metric, each with a verdict at ``margin`` (default 0.01).

    ``store``: the study's FrameStore (``open_store``): comparisons then use paired_interval on the seeds'
    predictions; without it (``store_note`` says why) the seed t. ``looks``: how many times a confirmation
    was looked at (Bonferroni over them)."""

    margin = DEFAULT_MARGIN if margin is None else float(margin)
    warnings = []
    if len(seeds) < 5:
        warnings.append(f"only {len(seeds)} seed(s) per configuration: with fewer than 5 the intervals are wide and "
                        "the p-values weak; treat the comparisons as indications")
    complete = [t for t in trials if t.get("state") == "complete"]
    metrics = metrics_present(complete)
    preds = Predictions(store, store_note or (None if store is not None else "no frame store given"))
    comparisons: list[dict[str, Any]] = []
    for student in sorted({t["student"] for t in complete}):
        mine = [t for t in complete if t["student"] == student]
        if best_trial([t for t in mine if t["method"] == baseline], objective) is None:
            warnings.append(f"{student}: no completed {baseline!r} trial, so nothing to compare against")
            continue
        comparisons += student_comparisons(mine, baseline, objective, metrics, confidence, preds)
        warnings += [f"{student}: no completed {baseline!r} trial at input size {size} px, where a method's best "
                     "configuration was trained; that comparison is left out (rerun the search to train it)"
                     for size in missing_baselines(mine, baseline, objective)]
    correct(comparisons, metrics, confidence, looks)
    for metric in metrics:
        rows = [c for c in comparisons if c["metric"] == metric]
        for c in rows:
            verdict(c, margin, str(baseline), len(rows), confidence)
    engine = _engine_summary(comparisons)
    engine_note = ""
    if any(c.get("engine") == ENGINE_T for c in comparisons):
        why = preds.why or ["fewer than 2 common seeds"]
        engine_note = ("the seed-level t on per-seed accuracies was used where predictions could not be paired: "
                       + "; ".join(why[:5]) + (f"; and {len(why) - 5} more" if len(why) > 5 else ""))
        warnings.append(f"engine {engine}: {engine_note}")
    n_family = len(comparisons) // len(metrics)
    return {"confidence": confidence, "objective": objective, "baseline": baseline, "seeds": seeds,
            "metrics": list(metrics), "engine": engine, "engine_note": engine_note, "margin": margin,
            "test": "paired_interval (seed, clip and seed x clip variance components; t on Satterthwaite df) on the "
                    "seeds' per-frame predictions, or the paired t-test on per-seed figures (engine 'seed t'); "
                    "exact Wilcoxon signed-rank with midranks beside it",
            "correction": f"Holm over the {n_family} comparisons of each metric (one per method and student)"
                          + (f", times {looks} looks (Bonferroni)" if looks > 1 else ""),
            "ci": "paired_interval over seeds and clips" if engine == ENGINE_PAIRED else
                  f"{engine}: paired_interval over seeds and clips, or the t interval on per-seed differences",
            "verdict": f"KD better / {baseline} better: Holm p < {1 - confidence:.2g}; equivalent: the "
                       f"{confidence:.0%} interval inside +-{margin:g} (the margin); else undecided, with about how "
                       f"many seeds would detect {margin:g} ({POWER:.0%} power; raw and at the Holm family's "
                       "first-step level)",
            "selection": f"each method's configuration chosen by mean {objective}; best_distillation marks the best "
                         "method per student; the same seeds chose and test it, so the test comparison still "
                         "favours the chosen configuration (see `kdbench search confirm`)",
            "warnings": warnings, "comparisons": [Comparison.from_dict(c).to_dict() for c in comparisons]}


# ---- repeated looks at a confirmation ---------------------------------------------------------------

LOOKS_NOTE = ("each rerun of `kdbench search confirm` with more seeds is another look at the same comparisons; with "
              "{k} looks p_holm is multiplied by {k} (Bonferroni over the looks made so far). That is exact when the "
              "number of looks was fixed before the first; looking again because a look was undecided is covered "
              "only in part: simulated under the null (seed t, looks at 5/10/15/20 seeds), some look is "
              "significant in 7.9% of studies with this correction, 13% without it, 3.9% with 4 looks planned and "
              "each tested at 5%/4")


def confirm_looks(previous: dict[str, Any] | None, seeds: list[int], candidates: list[dict[str, Any]],
                  now: str | None = None) -> list[dict[str, Any]]:
    """The looks at a confirmation, this one included: [{n_seeds, seeds, time}], one per seed count.

    ``previous``: the confirm/statistics.json this run replaces (None: the first). Its looks carry over while
    it confirmed the same configurations (else the comparisons are new ones and counting restarts); a file
    from before looks were recorded counts as one look at its seeds. A rerun with the same seeds is the same
    look, not a new one."""
    def picks(rows: Any) -> list[tuple]:
        return sorted((str(c.get("student")), str(c.get("trial")), str(c.get("config_id")))
                      for c in (rows if isinstance(rows, list) else []) if isinstance(c, dict))

    looks: list[dict[str, Any]] = []
    if isinstance(previous, dict) and picks(previous.get("candidates")) == picks(candidates) and picks(candidates):
        if isinstance(previous.get("looks"), list):
            looks = [dict(x) for x in previous["looks"] if isinstance(x, dict) and isinstance(x.get("n_seeds"), int)]
        elif isinstance(previous.get("seeds"), list):
            looks = [{"n_seeds": len(previous["seeds"]), "seeds": list(previous["seeds"]), "time": None}]
    if not any(x["n_seeds"] == len(seeds) for x in looks):
        looks.append({"n_seeds": len(seeds), "seeds": [int(s) for s in seeds],
                      "time": now or datetime.now(timezone.utc).isoformat(timespec="seconds")})
    return looks
