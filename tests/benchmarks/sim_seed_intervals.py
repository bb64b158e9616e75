"""Coverage of a seed mean's interval (``seed_clip_interval``) and of the ratio to the teacher (``relative_interval``).

    python tests/benchmarks/sim_seed_intervals.py [--runs 1000]

The models of tests/test_statistics_simulation.py (which runs 300 studies per case), at more runs: frame hits
from logit 2 + seed effect + clip effect + seed x clip noise on 16 clips x 4 frames (a seed mean), and a
student/teacher pair on 110 clips x 4 frames with the clip effect shared (the ratio; the truth by Monte Carlo).
Both intervals are on paired_interval's engine (seed, clip and seed x clip parts; Fieller for the ratio).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kdbench.metrics import relative_interval, seed_clip_interval  # noqa: E402
from test_statistics_simulation import _clustered_hits  # noqa: E402


def mean_coverage(seeds: int, sd_seed: float, sd_clip: float, runs: int) -> tuple[float, float]:
    rng = np.random.default_rng(seeds)
    total = np.sqrt(sd_seed**2 + sd_clip**2 + 0.5**2)
    truth = np.mean(1 / (1 + np.exp(-(2 + rng.normal(0, total, 1_000_000)))))
    clips = np.repeat(np.arange(16), 4)
    hits = [seed_clip_interval(_clustered_hits(rng, seeds, 16, 4, sd_seed, sd_clip), clips) for _ in range(runs)]
    return float(np.mean([lo <= truth <= hi for lo, hi in hits])), float(np.median([hi - lo for lo, hi in hits]))


def ratio_coverage(seeds: int, sd_seed: float, runs: int) -> tuple[float, float]:
    rng = np.random.default_rng(40 + seeds)
    z_seed, z_clip, z_clip_t = rng.normal(size=(3, 1_000_000))
    e = rng.normal(0, 0.5, 1_000_000)
    truth = (np.mean(1 / (1 + np.exp(-(1 + sd_seed * z_seed + 0.8 * z_clip + e))))
             / np.mean(1 / (1 + np.exp(-(2 + 0.8 * z_clip + 0.3 * z_clip_t)))))
    k, f = 110, 4
    clips = np.repeat(np.arange(k), f)
    cover, widths = 0, []
    for _ in range(runs):
        v = rng.normal(0, 0.8, (1, k))
        p_s = 1 / (1 + np.exp(-(1 + rng.normal(0, sd_seed, (seeds, 1)) + v + rng.normal(0, 0.5, (seeds, k)))))
        p_t = 1 / (1 + np.exp(-(2 + v[0] + rng.normal(0, 0.3, k))))
        hits = (rng.random((seeds, k, f)) < p_s[:, :, None]).reshape(seeds, -1)
        ref = (rng.random((k, f)) < p_t[:, None]).ravel()
        _, low, high = relative_interval(hits, ref, clips)
        cover += low <= truth <= high
        widths.append(high - low)
    return cover / runs, float(np.median(widths))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=1000)
    args = p.parse_args()
    start = time.perf_counter()
    print(f"{args.runs} simulated studies per case; coverage of the 95% interval, median width")
    print(f"{'interval':<22} {'seeds':>5} {'case':<26} {'cover':>6} {'width':>7}")
    for seeds, sd_seed, sd_clip, case in [(3, 1.0, 0.3, "seeds dominate"), (5, 1.0, 0.3, "seeds dominate"),
                                          (3, 0.3, 1.0, "clips dominate"), (5, 0.3, 1.0, "clips dominate"),
                                          (10, 0.3, 1.0, "clips dominate")]:
        cover, width = mean_coverage(seeds, sd_seed, sd_clip, args.runs)
        print(f"{'seed_clip_interval':<22} {seeds:>5} {case:<26} {cover:6.3f} {width:7.3f}")
    for seeds, sd_seed, case in [(3, 0.3, "seeds vary"), (5, 0.3, "seeds vary"), (5, 0.05, "clips dominate"),
                                 (10, 0.3, "seeds vary"), (3, 0.05, "clips dominate")]:
        cover, width = ratio_coverage(seeds, sd_seed, args.runs)
        print(f"{'relative_interval':<22} {seeds:>5} {case:<26} {cover:6.3f} {width:7.3f}")
    print(f"runtime {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
