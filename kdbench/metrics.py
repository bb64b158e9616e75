"""Classification metrics shared by training, export and profiling: accuracy, macro-F1, per-class
and per-source accuracy and the confusion matrix, computed from numpy predictions and labels.

Beside the frame-level figures: expected calibration error (15 equal-width bins of the softmax
maximum), clip-level accuracy (one prediction per clip from the mean of its frames' logits, which
is how a view classifier is used on a cine loop), 95% intervals from a bootstrap that resamples
clips (frames of one clip are not independent), recall per (source, view) and the largest gap
between sources for a view several sources share (the shortcut check), and ``seed_clip_interval``,
the interval of a mean accuracy over seeds, and ``relative_interval``, its ratio to the teacher's (both on
``paired_interval``'s seed, clip and seed x clip parts).
``paired_interval`` compares two models on the same frames and seeds from every prediction (seed,
clip and seed x clip variance components; one seed: a clip-cluster t).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from kdbench.data.views import VIEWS
from kdbench.errors import DataError

ECE_BINS = 15
N_BOOTSTRAP = 2000


def predictions_from(logits_or_preds: np.ndarray) -> np.ndarray:
    """Class indices from logits ``[N, C]`` (argmax) or from predictions ``[N]`` (as is)."""
    arr = np.asarray(logits_or_preds)
    if arr.ndim == 2:
        if arr.shape[1] == 0:
            raise DataError(f"logits have shape {arr.shape}; expected [N, C] with C >= 1")
        return arr.argmax(axis=1).astype(np.int64)
    if arr.ndim == 1:
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.equal(np.mod(arr, 1), 0)):
                raise DataError(
                    f"predictions have non-integer values (dtype {arr.dtype}); expected class "
                    "indices [N] or logits [N, C]"
                )
        return arr.astype(np.int64)
    raise DataError(f"predictions have shape {arr.shape}; expected logits [N, C] or class indices [N]")


def classification_metrics(
    logits_or_preds: np.ndarray,
    labels: np.ndarray,
    sources: np.ndarray | None = None,
    *,
    clips: np.ndarray | None = None,
    class_names: tuple[str, ...] = VIEWS,
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class/per-source accuracy, worst-source accuracy and confusion matrix.

    ``per_class_accuracy`` is the recall of each class (``None`` for a class absent from
    ``labels``). ``macro_f1`` averages F1 over the classes that occur in ``labels`` or in the
    predictions (scikit-learn's default). ``confusion[i][j]`` counts frames of true class ``i``
    predicted as ``j``. ``per_source_accuracy`` and ``worst_source_accuracy`` are empty / ``None``
    when ``sources`` is not given. With ``sources``: ``per_source_view_recall`` {source: {view:
    recall}} and ``shortcut_gap`` (see :func:`shortcut_gap`). With logits ``[N, C]``: ``ece``. With
    ``clips`` (one clip id per frame, see :func:`clip_ids`): ``clip_accuracy``, ``clip_macro_f1``,
    ``n_clips``, ``accuracy_ci`` and ``clip_accuracy_ci`` (95%, bootstrap over clips, seeded).
    """
    preds, y = _checked(logits_or_preds, labels, class_names)
    n, k = len(y), len(class_names)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, preds), 1)
    true_count = confusion.sum(axis=1)
    per_class = {name: float(confusion[c, c] / true_count[c]) if true_count[c] else None
                 for c, name in enumerate(class_names)}
    per_source: dict[str, float] = {}
    out: dict[str, Any] = {}
    if sources is not None:
        src = _per_frame(sources, n, "sources").astype(str)
        for s in sorted(set(src.tolist())):
            per_source[s] = float((preds == y)[src == s].mean())
        out["per_source_view_recall"] = per_source_view_recall(preds, y, src, class_names)
        out["shortcut_gap"] = shortcut_gap(out["per_source_view_recall"])
    scores = np.asarray(logits_or_preds)
    if scores.ndim == 2:
        out["ece"] = expected_calibration_error(scores, y)
    if clips is not None:
        out.update(clip_metrics(scores if scores.ndim == 2 else np.eye(k)[preds], y, clips, class_names))
    return {
        "accuracy": float(np.trace(confusion) / n),
        "macro_f1": macro_f1(preds, y, k),
        "per_class_accuracy": per_class,
        "per_source_accuracy": per_source,
        "worst_source_accuracy": min(per_source.values()) if per_source else None,
        "confusion": confusion.tolist(),
        "n": n,
        **out,
    }


def _checked(logits_or_preds: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and labels as int64 class indices, DataError naming the first bad value."""
    preds = predictions_from(logits_or_preds)
    y = np.asarray(labels)
    if y.ndim != 1:
        raise DataError(f"labels have shape {y.shape}; expected a 1-D array of class indices")
    y = y.astype(np.int64)
    n = int(y.shape[0])
    if preds.shape[0] != n:
        raise DataError(f"{preds.shape[0]} predictions for {n} labels; expected one per label")
    if n == 0:
        raise DataError("no labels to score: got 0 frames, expected at least one")
    k = len(class_names)
    for name, arr in (("labels", y), ("predictions", preds)):
        bad = (arr < 0) | (arr >= k)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{name}[{i}] = {int(arr[i])} is not a class index; expected 0..{k - 1} "
                f"({', '.join(class_names)})"
            )
    return preds, y


def macro_f1(preds: np.ndarray, y: np.ndarray, k: int) -> float:
    """Mean F1 over the classes that occur in ``y`` or in ``preds`` (scikit-learn's default)."""
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, preds), 1)
    true_count, pred_count = confusion.sum(axis=1), confusion.sum(axis=0)
    present = (true_count + pred_count) > 0
    return float(np.mean(2 * np.diag(confusion)[present] / (true_count + pred_count)[present]))


def _per_frame(values: Any, n: int, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise DataError(f"{name} have shape {arr.shape}; expected ({n},), one per label")
    return arr


# ---------------------------------------------------------------------------------- calibration


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits ``[N, C]`` (float64, shifted by the row maximum)."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def expected_calibration_error(logits: np.ndarray, labels: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE over frames: sum over equal-width bins (lo, hi] of the softmax maximum of |accuracy - confidence| x share."""
    p = softmax(logits)
    conf = p.max(axis=1)
    hit = (p.argmax(axis=1) == np.asarray(labels)).astype(np.float64)
    idx = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    gap = np.bincount(idx, weights=hit, minlength=n_bins) - np.bincount(idx, weights=conf, minlength=n_bins)
    return float(np.abs(gap).sum() / len(conf))


# ---------------------------------------------------------------------------------- clips


def clip_ids(store: Any, rows: np.ndarray) -> np.ndarray:
    """Clip id ``"<source>/<video>"`` of each store row (frames of one video form one clip)."""
    rows = np.asarray(rows)
    return np.char.add(np.char.add(np.asarray(store.sources)[rows].astype(str), "/"),
                       np.asarray(store.videos)[rows].astype(str))


def clip_table(scores: np.ndarray, labels: np.ndarray, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per clip: (ids, label, prediction from the mean of its frames' scores); and each frame's clip index."""
    keys, inv = np.unique(np.asarray(clips).astype(str), return_inverse=True)
    sums = np.zeros((len(keys), scores.shape[1]))
    np.add.at(sums, inv, scores)
    counts = np.bincount(inv, minlength=len(keys))
    lab = np.full(len(keys), -1)
    lab[inv] = labels
    mixed = np.flatnonzero(lab[inv] != labels)
    if len(mixed):
        i = int(mixed[0])
        raise DataError(f"clip {str(keys[inv[i]])!r} has frames of different views (labels {labels[i]} and "
                        f"{lab[inv[i]]}); expected one view label per clip")
    return keys, lab, (sums / counts[:, None]).argmax(axis=1), inv


def clip_metrics(scores: np.ndarray, labels: np.ndarray, clips: Any, class_names: tuple[str, ...] = VIEWS,
                 confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Clip accuracy and macro-F1 (mean logits per clip) and clip-bootstrap intervals of frame and clip accuracy."""
    clips = _per_frame(clips, len(labels), "clips")
    keys, lab, pred, inv = clip_table(np.asarray(scores, dtype=np.float64), labels, clips)
    frame_hit = np.asarray(scores).argmax(axis=1) == labels
    clip_hit = pred == lab
    return {"clip_accuracy": float(clip_hit.mean()), "clip_macro_f1": macro_f1(pred, lab, len(class_names)),
            "n_clips": int(len(keys)),
            "accuracy_ci": list(seed_clip_interval(frame_hit[None], inv, confidence, seed=seed)),
            "clip_accuracy_ci": list(seed_clip_interval(clip_hit[None], np.arange(len(keys)), confidence, seed=seed))}


def _clip_resamples(hits: np.ndarray, inv: np.ndarray, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(hits summed per clip [S, K], clip-bootstrap weights [n_resamples, K]: how often each clip is drawn)."""
    k = int(inv.max()) + 1
    per_clip = np.zeros((hits.shape[0], k))
    np.add.at(per_clip.T, inv, hits.T)
    return per_clip, np.random.default_rng(seed).multinomial(k, np.full(k, 1.0 / k), size=n_resamples).astype(np.float64)


def seed_clip_interval(hits: np.ndarray, clips: np.ndarray, confidence: float = 0.95, n_resamples: int = N_BOOTSTRAP,
                       seed: int = 0) -> tuple[float, float]:
    """Interval of a mean accuracy over seeds that allows for both clip sampling and seed-to-seed variation.

    ``hits`` [S, N] (frame n of seed s correct), ``clips`` [N] clip ids. With S >= 2: paired_interval's
    engine on the accuracy itself (seed, clip and seed x clip variance components, t on Satterthwaite's
    df), for the expected accuracy over new seeds and new clips, cut to [0, 1]. It replaced a clip
    bootstrap widened by a seed t in quadrature, which counted the clip noise twice (0.99 at 3 seeds
    when clips dominate; tests/test_statistics_simulation.py). With S = 1, or no spread at all: the
    percentile clip bootstrap of one run's accuracy (conditional on that run; it respects [0, 1] near
    100%), and when every clip scores the same the Clopper-Pearson interval of K clips.
    """
    hits = np.atleast_2d(np.asarray(hits, dtype=np.float64))
    _, inv = np.unique(np.asarray(clips).astype(str), return_inverse=True)
    if hits.shape[1] != len(inv) or len(inv) == 0:
        raise DataError(f"hits have shape {hits.shape}; expected [seeds, {len(inv)}] with one column per clip id")
    k, s = int(inv.max()) + 1, hits.shape[0]
    alpha = (1 - confidence) / 2
    mean = float(hits.mean())
    if s > 1 and k > 1:  # a seed mean: paired_interval's engine (seed, clip and seed x clip parts)
        frames = np.bincount(inv, minlength=k).astype(np.float64)
        cells = (inv[None, :] + k * np.arange(s)[:, None]).ravel()
        d = np.bincount(cells, weights=hits.ravel(), minlength=s * k).reshape(s, k) / frames
        se2, df = _se2_df(d, frames / len(inv))
        if se2 > 1e-20:
            half = float(stats.t.ppf(1 - alpha, df)) * math.sqrt(se2)
            return max(0.0, mean - half), min(1.0, mean + half)
    per_clip, weights = _clip_resamples(hits, inv, n_resamples, seed)
    frames = np.bincount(inv, minlength=k).astype(np.float64)
    values = ((weights @ per_clip.T) / (weights @ frames)[:, None]).mean(axis=1)  # seed-mean on the drawn clips
    low, high = np.quantile(values, alpha), np.quantile(values, 1 - alpha)
    if high - low <= 1e-12:  # every clip scores the same: Clopper-Pearson over K clips, not a zero width
        x = mean * k
        low = stats.beta.ppf(alpha, x, k - x + 1) if x > 0 else 0.0
        high = stats.beta.ppf(1 - alpha, x + 1, k - x) if x < k else 1.0
    return float(low), float(high)


def relative_interval(hits: np.ndarray, reference_hits: np.ndarray, clips: np.ndarray,
                      confidence: float = 0.95) -> tuple[float, float, float]:
    """(ratio, low, high): the seed-mean accuracy of ``hits`` [S, N] over that of ``reference_hits`` [N] (the teacher).

    On paired_interval's engine (the one behind KD vs scratch and the leaderboard's decisions), by
    Fieller's inversion: ratio r is in the interval when paired_interval's t for the mean of
    ``hits - r x reference`` (per frame, the teacher's hit the same under every seed: one fixed
    checkpoint) does not reject 0 at ``confidence``: seed, clip and seed x clip parts as there, a hard
    clip hard for both. Should the set be unbounded (the teacher's accuracy itself not clear of 0), that
    side is reported as 0 or inf. Coverage simulated in tests/test_statistics_simulation.py (it replaced
    a clip bootstrap widened by a seed t, which counted the clip noise twice: 0.98 where clips dominate).
    """
    hits = np.atleast_2d(np.asarray(hits, dtype=np.float64))
    ref = np.asarray(reference_hits, dtype=np.float64).ravel()
    _, inv = np.unique(np.asarray(clips).astype(str), return_inverse=True)
    if hits.shape[1] != len(inv) or len(ref) != len(inv) or len(inv) == 0:
        raise DataError(f"hits {hits.shape} and reference hits {ref.shape} do not match {len(inv)} clip ids")
    if ref.sum() == 0:
        raise DataError("the reference model has accuracy 0 on these frames: a ratio to it is undefined")
    ratio = float(hits.mean() / ref.mean())
    s, c = hits.shape[0], int(inv.max()) + 1
    frames = np.bincount(inv, minlength=c).astype(np.float64)
    cells = (inv[None, :] + c * np.arange(s)[:, None]).ravel()
    if c < 2:
        return ratio, 0.0, math.inf

    def gap(r: float, side: float) -> float:
        """(mean of hits - r ref) + side x t x se: 0 at the interval's bound on that side."""
        d = np.bincount(cells, weights=(hits - r * ref[None, :]).ravel(), minlength=s * c).reshape(s, c) / frames
        se2, df = _se2_df(d, frames / len(inv))
        t = float(stats.t.ppf(0.5 + confidence / 2, df)) if se2 > 1e-20 else 0.0
        return float(hits.mean() - r * ref.mean()) + side * t * math.sqrt(max(se2, 0.0))

    return ratio, _fieller_bound(gap, ratio, -1.0), _fieller_bound(gap, ratio, +1.0)


def _fieller_bound(gap: Any, ratio: float, side: float) -> float:
    """The root of ``gap(r, side)`` on ``side`` of ``ratio`` (lower bound: side -1), or 0 / inf if none."""
    from scipy.optimize import brentq

    def f(r: float) -> float:
        return gap(r, side)

    if f(ratio) * side <= 0:  # no spread: the interval is the point
        return ratio
    step = max(abs(ratio), 1e-3) * 0.05
    for _ in range(60):
        far = ratio + side * step
        if side < 0 and far <= 0:
            far = 0.0
        if f(far) * side <= 0:
            lo, hi = sorted((ratio, far))
            return float(brentq(f, lo, hi, xtol=1e-10))
        if far == 0.0:
            return 0.0
        step *= 2
    return math.inf if side > 0 else 0.0


# ---------------------------------------------------------------------------------- paired comparison


class PairedInputError(DataError, ValueError):
    """Bad input to :func:`paired_interval` (a ValueError, and a DataError the CLI prints plainly)."""


def _paired_inputs(correct_a: Any, correct_b: Any, clip_ids: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b) as float [S, N] 0/1 arrays and each frame's clip index [N]; PairedInputError naming the argument."""
    arrays = []
    for name, value in (("correct_a", correct_a), ("correct_b", correct_b)):
        arr = np.asarray(value)
        arr = arr[None] if arr.ndim == 1 else arr
        if arr.ndim != 2 or 0 in arr.shape:
            raise PairedInputError(f"{name} has shape {np.shape(value)}; expected [seeds, frames] of 0/1")
        if arr.dtype == object or not np.all((arr == 0) | (arr == 1)):
            raise PairedInputError(f"{name} has values other than 0/1 (dtype {arr.dtype}); expected 0/1 or bool")
        arrays.append(arr.astype(np.float64))
    a, b = arrays
    if b.shape != a.shape:
        raise PairedInputError(f"correct_b has shape {b.shape} but correct_a has {a.shape}; expected the same "
                               "[seeds, frames] (row i of both = seed i, the same frames in the same order)")
    ids = np.asarray(clip_ids)
    if ids.ndim > 1 and len(ids) == a.shape[1]:  # tuples as labels: one object per frame
        ids = np.empty(len(ids), dtype=object)
        ids[:] = list(map(tuple, clip_ids))
    if ids.shape != (a.shape[1],):
        raise PairedInputError(f"clip_ids has shape {ids.shape}; expected ({a.shape[1]},), one clip id per frame")
    try:
        _, inv = np.unique(ids, return_inverse=True)
    except TypeError:  # mixed or unorderable labels: number them in order of appearance
        index: dict[Any, int] = {}
        inv = np.array([index.setdefault(c, len(index)) for c in ids.tolist()])
    return a, b, inv.reshape(-1)


def _paired_se2_parts(d: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """(Q_seed, Q_clip, Q_resid) of the per-seed per-clip mean differences ``d`` [S, C], clip weights ``w`` [C].

    Each is a cluster-robust variance of the frame-weighted mean (balanced case: the two-way ANOVA
    mean squares MS_seed, MS_clip, MS_resid over S*C). Expectations: Q_seed = v_seed/S +
    v_resid*sum(w^2)/S, Q_clip = v_clip*sum(w^2) + v_resid*sum(w^2)/S, Q_resid = v_resid*sum(w^2)/S.
    """
    s, c = d.shape
    per_seed = d @ w  # each seed's accuracy difference
    per_clip = d.mean(axis=0)
    theta = float(per_seed.mean())
    q_clip = float(c / (c - 1) * np.sum(w**2 * (per_clip - theta) ** 2))
    if s == 1:
        return 0.0, q_clip, 0.0
    resid = d - per_seed[:, None] - per_clip[None, :] + theta
    q_resid = float(c / (c - 1) * np.sum(w**2 * (resid**2).sum(axis=0)) / (s * (s - 1)))
    return float(per_seed.var(ddof=1) / s), q_clip, q_resid


def _se2_df(d: np.ndarray, w: np.ndarray, parts: bool = False) -> Any:
    """(se^2, Satterthwaite df) of the frame-weighted mean of per-seed per-clip differences ``d`` [S, C]
    (paired_interval's rule, see there), and with ``parts`` the se2_parts dict too."""
    s, c = d.shape
    q_seed, q_clip, q_resid = _paired_se2_parts(d, w)
    clip_part = max(q_clip - q_resid, 0.0)
    if s == 1:
        terms, split = [(q_clip, c - 1)], {"seed": None, "clip": q_clip, "seed_x_clip": None}
    else:
        terms = [(q_seed, s - 1)] + ([(q_clip, c - 1), (q_resid, (s - 1) * (c - 1))] if clip_part > 0 else [])
        split = {"seed": q_seed - q_resid, "clip": clip_part, "seed_x_clip": q_resid}
    se2 = q_seed + clip_part
    df = max(se2**2 / sum(q**2 / k for q, k in terms), s - 1.0) if se2 > 1e-20 else float(s - 1 or 1)
    return (se2, df, split) if parts else (se2, df)


def margin_verdict(ci_low: float | None, ci_high: float | None, margin: float, identical: bool = False) -> str:
    """The decision rule on one interval of best minus other at an equivalence margin (the one rule behind the
    leaderboard's decisions and the search's race): ``equivalent`` when the whole interval lies inside
    (-margin, margin), else ``worse`` when it lies above 0, else ``undecided``. With no interval (no spread):
    ``equivalent`` for identical hits, else ``undecided``."""
    if ci_low is None or ci_high is None:
        return "equivalent" if identical else "undecided"
    if -margin < ci_low and ci_high < margin:
        return "equivalent"
    return "worse" if ci_low > 0 else "undecided"


def paired_interval(correct_a: Any, correct_b: Any, clip_ids: Any, level: float = 0.95) -> dict[str, Any]:
    """Interval and two-sided p-value of the accuracy difference A - B on the same frames and seed indices.

    ``correct_a``/``correct_b``: [seeds, frames] of 0/1 or bool ([frames] = one seed), row i of both
    from seed i; ``clip_ids``: [frames], any hashable labels. Returns ``diff`` (mean of a minus b),
    ``ci_low``/``ci_high``, ``p_value`` (diff = 0), ``se``, ``df``, ``method``, ``level``, ``n_seeds``,
    ``n_clips``, ``n_frames``, ``mean_a``, ``mean_b`` and ``se2_parts`` {seed, clip, seed_x_clip}, the
    terms of se**2 (seed and seed_x_clip shrink as 1/seeds, clip and seed_x_clip as 1/clips). ``ci_*``,
    ``p_value``, ``se``, ``df`` are None when undefined: < 2 clips or no spread (all differences equal).

    One seed (``"clip t"``): two fixed checkpoints over clips; cluster-robust (CR1) SE of the frame mean
    from per-clip summed differences, t on C-1 df (a clip bootstrap: same width, random, slower).
    Several seeds (``"seed+clip t"``): the expected difference over new seeds AND new clips.
    Method-of-moments variance components of d[s, c], the mean difference on clip c under seed s
    (balanced: the two-way ANOVA mean squares over S*C, see ``_paired_se2_parts``): se^2 = v_seed/S +
    v_clip/C + v_resid/(S*C) = Q_seed + max(Q_clip - Q_resid, 0); t on Satterthwaite's df (>= S-1).
    Q_seed = var(per-seed difference)/S, the seed t's own se^2, already holds the clip noise
    v_resid/(S*C), so the clip term adds only the clip-mean spread beyond it: nothing is counted twice
    (today's seed x clip intervals: 0.98-0.99 at 3 seeds). With the clip part estimated <= 0 this is
    exactly the seed-level paired t. The seed part is not truncated at 0: that pretest lets df jump
    from S-1 to ~C-1 (0.92-0.93 coverage at 3 seeds). Not a two-way bootstrap: 3 seeds understate
    their own spread (0.88 for seed_clip_interval's); this is exact arithmetic, < 10 ms at 30 x 5000.

    Simulated (tests/benchmarks/sim_paired_interval.py; 130 clips x 4 frames, seed SD ~0.03): null
    coverage 0.947-0.952 at 1-10 seeds, power >= the seed t's (0.28 vs 0.26 at 3 seeds, 5 points;
    equal at 5, 10). Model-specific clip effects: 0.924-0.947 (Satterthwaite a little liberal at 3
    seeds), the seed t 0.905 at 10 seeds (blind to clip sampling). One seed of A in five collapsing
    by 15 points: 0.908-0.931 (t: 0.908-0.941); most misses are studies where no seed collapsed
    (mean off by 3 points, nothing in the data shows it): no skew correction can repair those.
    """
    if isinstance(level, bool) or not 0 < level < 1:
        raise PairedInputError(f"level = {level!r}; expected a number between 0 and 1 (e.g. 0.95)")
    a, b, inv = _paired_inputs(correct_a, correct_b, clip_ids)
    s, n = a.shape
    c = int(inv.max()) + 1
    frames = np.bincount(inv, minlength=c).astype(np.float64)
    cells = (inv[None, :] + c * np.arange(s)[:, None]).ravel()
    d = np.bincount(cells, weights=(a - b).ravel(), minlength=s * c).reshape(s, c) / frames
    out: dict[str, Any] = {"diff": float(a.mean() - b.mean()), "ci_low": None, "ci_high": None, "p_value": None,
                           "se": None, "df": None, "method": "clip t" if s == 1 else "seed+clip t", "level": level,
                           "n_seeds": s, "n_clips": c, "n_frames": n, "mean_a": float(a.mean()),
                           "mean_b": float(b.mean()), "se2_parts": None}
    if c < 2:
        return out
    se2, df, out["se2_parts"] = _se2_df(d, frames / n, parts=True)
    if se2 <= 1e-20:  # no spread at all: an interval or p-value would be meaningless
        return out
    se, t = float(np.sqrt(se2)), float(stats.t.ppf(0.5 + level / 2, df))
    return {**out, "se": se, "df": float(df), "ci_low": out["diff"] - t * se, "ci_high": out["diff"] + t * se,
            "p_value": float(2 * stats.t.sf(abs(out["diff"]) / se, df))}


# ---------------------------------------------------------------------------------- shortcut check


def per_source_view_recall(preds: np.ndarray, labels: np.ndarray, sources: np.ndarray,
                           class_names: tuple[str, ...] = VIEWS) -> dict[str, dict[str, float]]:
    """Recall of each view within each source, for the views that source has frames of."""
    out: dict[str, dict[str, float]] = {}
    for s in sorted(set(sources.tolist())):
        in_s = sources == s
        out[s] = {name: float((preds[in_s & (labels == c)] == c).mean())
                  for c, name in enumerate(class_names) if np.any(in_s & (labels == c))}
    return out


def shortcut_gap(recall: dict[str, dict[str, float]]) -> dict[str, Any] | None:
    """The largest recall gap between two sources for one view present in several sources (None if none is).

    ``{"view", "sources": [higher, lower], "gap"}``; a large gap means the model may read the source
    (scanner, dataset) instead of the view. Ties go to the first view in label order.
    """
    best: dict[str, Any] | None = None
    order = {v: i for i, v in enumerate(VIEWS)}
    for view in sorted({v for r in recall.values() for v in r}, key=lambda v: (order.get(v, len(order)), v)):
        have = sorted((r[view], s) for s, r in recall.items() if view in r)
        if len(have) < 2:
            continue
        (low, s_low), (high, s_high) = have[0], have[-1]
        if best is None or high - low > best["gap"]:
            best = {"view": view, "sources": [s_high, s_low], "gap": float(high - low)}
    return best
