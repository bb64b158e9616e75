"""Null and power simulations of kdbench.metrics.paired_interval against the seed-level paired t.

    python tests/benchmarks/sim_paired_interval.py [--runs 2000] [--quick] [--collapse-rate 0.2] [--seeds 1 3 5 10]

A hierarchical model of two classifiers scored on the same 130 clips x 4 frames: frame hit ~
Bernoulli(expit(logit)), logit = 1.9 + model shift + seed effect (per model, SD 0.2) + clip
difficulty (shared by both models, SD 1.0) + frame difficulty (shared, SD 0.5) + seed x clip
(per model, SD 0.4) [+ model x clip, SD 0.5, in the ``clip x model`` variant]. Accuracy ~0.82, seed SD
of one model's accuracy ~0.03 (~0.016 of it is frame and clip noise). ``collapsed``: each seed of A
loses ~15 accuracy points with probability ``--collapse-rate`` (one seed in five, like the demo's
mobilenet_v3_large/dkd seed 4), the other seeds of A are better by what keeps the stated difference.
The truth is the expected difference over new seeds and new clips (Gauss-Hermite quadrature; with
one seed: the two drawn checkpoints' expected difference over new clips). Seed t: scipy.stats.ttest_rel
on per-seed accuracies and its confidence interval (fixed clips; undefined at one seed). Coverage and
rejections (p < 0.05) count a missing interval as a miss / no rejection.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from scipy import optimize, special, stats

ROOT = Path(__file__).resolve().parents[2]
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(80)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


def mean_accuracy(logit: np.ndarray | float, sd: float) -> np.ndarray:
    """E[expit(logit + N(0, sd^2))], elementwise (quadrature)."""
    return special.expit(np.asarray(logit)[..., None] + sd * _NODES) @ _WEIGHTS


@dataclass(frozen=True)
class Hierarchy:
    """Logit-scale parameters of the simulated pair of models (see the module docstring)."""

    mu: float = 1.9
    sd_seed: float = 0.2
    sd_clip: float = 1.0
    sd_frame: float = 0.5
    sd_seed_clip: float = 0.4
    sd_model_clip: float = 0.0
    collapse_rate: float = 0.0
    collapse_points: float = 0.15
    clips: int = 130
    frames: int = 4

    @property
    def clip_sd(self) -> float:
        """SD of everything a new clip (and frame) draws, for one fixed checkpoint."""
        return float(np.sqrt(self.sd_clip**2 + self.sd_frame**2 + self.sd_seed_clip**2 + self.sd_model_clip**2))

    @property
    def kappa(self) -> float:
        """Logit drop of a collapsed seed: ``collapse_points`` of expected accuracy."""
        sd = float(np.hypot(self.clip_sd, self.sd_seed))
        base = float(mean_accuracy(self.mu, sd))
        return optimize.brentq(lambda k: base - float(mean_accuracy(self.mu - k, sd)) - self.collapse_points, 0, 10)

    def shift_for(self, diff: float) -> float:
        """Logit shift of model A that makes E[acc A] - E[acc B] = ``diff`` over new seeds and clips."""
        sd = float(np.hypot(self.clip_sd, self.sd_seed))
        kappa = self.kappa if self.collapse_rate else 0.0
        acc_b = float(mean_accuracy(self.mu, sd))

        def acc_a(delta: float) -> float:
            return (1 - self.collapse_rate) * float(mean_accuracy(self.mu + delta, sd)) + \
                self.collapse_rate * float(mean_accuracy(self.mu + delta - kappa, sd))
        return optimize.brentq(lambda d: acc_a(d) - acc_b - diff, -5, 5)


def draw(h: Hierarchy, rng: np.random.Generator, runs: int, seeds: int, diff: float
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hits of A and B [runs, seeds, clips*frames], each run's true difference [runs] (new clips, and
    new seeds too when seeds > 1) and its number of collapsed seeds [runs]."""
    c, f = h.clips, h.frames
    shared = rng.normal(0, h.sd_clip, (runs, 1, c, 1)) + rng.normal(0, h.sd_frame, (runs, 1, c, f))
    hits, seed_logits, collapsed = [], [], np.zeros(runs, dtype=int)
    for model, shift in enumerate((h.shift_for(diff), 0.0)):
        u = shift + rng.normal(0, h.sd_seed, (runs, seeds, 1, 1))
        if model == 0 and h.collapse_rate:  # seeds of A collapse
            down = rng.random((runs, seeds, 1, 1)) < h.collapse_rate
            u, collapsed = u - h.kappa * down, down.sum(axis=(1, 2, 3))
        model_clip = rng.normal(0, h.sd_model_clip, (runs, 1, c, 1)) if h.sd_model_clip else 0.0
        p = special.expit(h.mu + u + shared + model_clip + rng.normal(0, h.sd_seed_clip, (runs, seeds, c, 1)))
        hits.append((rng.random((runs, seeds, c, f)) < p).reshape(runs, seeds, c * f))
        seed_logits.append(h.mu + u[:, 0, 0, 0])
    if seeds > 1:
        truth = np.full(runs, diff)
    else:  # the two drawn checkpoints, over new clips
        truth = mean_accuracy(seed_logits[0], h.clip_sd) - mean_accuracy(seed_logits[1], h.clip_sd)
    return hits[0], hits[1], truth, collapsed


def paired_runs(a: np.ndarray, b: np.ndarray, clips: np.ndarray, truth: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """paired_interval on each run: (truth covered, p < 0.05, width) [runs]; no interval: miss, no rejection, NaN."""
    from kdbench.metrics import paired_interval

    out = np.zeros((3, len(a)))
    for i, (xa, xb, true) in enumerate(zip(a, b, truth)):
        r = paired_interval(xa, xb, clips)
        out[:, i] = ((r["ci_low"] <= true <= r["ci_high"], r["p_value"] < 0.05, r["ci_high"] - r["ci_low"])
                     if r["ci_low"] is not None else (0, 0, np.nan))
    return out[0].astype(bool), out[1].astype(bool), out[2]


def seed_t_runs(a: np.ndarray, b: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scipy.stats.ttest_rel on per-seed accuracies [runs, seeds]: (truth covered, p < 0.05, width) [runs]."""
    res = stats.ttest_rel(a.mean(axis=2), b.mean(axis=2), axis=1)
    ci = res.confidence_interval(0.95)
    low, high = np.asarray(ci.low), np.asarray(ci.high)
    return (low <= truth) & (truth <= high), res.pvalue < 0.05, high - low  # NaN (no spread): a miss


VARIANTS = {"normal": {}, "collapsed": {"collapse_rate": 0.2}, "clip x model": {"sd_model_clip": 0.5}}


def table(runs: int, seed_counts: tuple[int, ...], diffs: tuple[float, ...], variants: dict[str, Hierarchy]) -> None:
    """Print coverage / type-I / width under the null and power at each diff, per variant, seeds and method.

    With one seed the truth is the drawn checkpoints' own difference, not 0: only coverage and width are
    shown. For the collapsed variant, ``misses: k0`` is the share of null studies that missed and had
    no collapsed seed (what no method can see in the data).
    """
    head = " ".join(f"{f'pow {d * 100:g}pt':>8}" for d in diffs)
    print(f"{'variant':13} {'S':>2} {'method':15} {'cover':>6} {'p<.05':>6} {'width':>6} | {head}")
    for name, h in variants.items():
        clips = np.repeat(np.arange(h.clips), h.frames)
        for s in seed_counts:
            rows: dict[str, list[float]] = {"paired_interval": [], "seed t": []}
            none = (np.zeros(runs, bool), np.zeros(runs, bool), np.ones(runs))  # no seed t at one seed
            for k, diff in enumerate((0.0, *diffs)):
                a, b, truth, collapsed = draw(h, np.random.default_rng(1000 * s + k), runs, s, diff)
                for method, (cover, reject, width) in (("paired_interval", paired_runs(a, b, clips, truth)),
                                                       ("seed t", seed_t_runs(a, b, truth) if s > 1 else none)):
                    null = [cover.mean(), reject.mean(), np.nanmedian(width), np.mean(~cover & (collapsed == 0))]
                    rows[method] += null if k == 0 else [reject.mean()]
            for method, v in rows.items():
                if s == 1 and method == "seed t":
                    continue
                power = " ".join(f"{x:8.3f}" for x in v[4:]) if s > 1 else f"{'-':>8}" * len(diffs)
                typ1 = f"{v[1]:6.3f}" if s > 1 else f"{'-':>6}"
                extra = f"  misses: k0 {v[3]:.3f} of {1 - v[0]:.3f}" if h.collapse_rate and s > 1 else ""
                print(f"{name:13} {s:>2} {method:15} {v[0]:6.3f} {typ1} {v[2] * 100:6.2f} | {power}{extra}", flush=True)


def main() -> None:
    """Parse arguments, print the tables and the runtime."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000, help="simulated studies per cell (default 2000)")
    parser.add_argument("--quick", action="store_true", help="300 runs per cell (overrides --runs)")
    parser.add_argument("--collapse-rate", type=float, default=0.2, help="P(a seed of A collapses), collapsed variant")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 3, 5, 10])
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    runs = 300 if args.quick else args.runs
    variants = {name: replace(Hierarchy(), **kw) for name, kw in VARIANTS.items()}
    variants["collapsed"] = replace(variants["collapsed"], collapse_rate=args.collapse_rate)
    warnings.simplefilter("ignore", RuntimeWarning)  # ttest_rel on seeds that happen to agree exactly
    start = time.perf_counter()
    print(f"{runs} simulated studies per cell; 130 clips x 4 frames; cover = coverage of the true difference "
          "(null: 0), p<.05 = type-I error, width = median width in points; power = P(p < .05) at a true difference of")
    table(runs, tuple(args.seeds), (0.01, 0.02, 0.03, 0.05), variants)
    print(f"runtime {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
