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

from test_statistics_simulation import mean_intervals, ratio_intervals  # noqa: E402


def coverage(truth: float, intervals: list[tuple[float, float]]) -> tuple[float, float]:
    """(share of intervals holding the truth, median width)."""
    return (float(np.mean([lo <= truth <= hi for lo, hi in intervals])),
            float(np.median([hi - lo for lo, hi in intervals])))


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
        cover, width = coverage(*mean_intervals(seeds, sd_seed, sd_clip, args.runs))
        print(f"{'seed_clip_interval':<22} {seeds:>5} {case:<26} {cover:6.3f} {width:7.3f}")
    for seeds, sd_seed, case in [(3, 0.3, "seeds vary"), (5, 0.3, "seeds vary"), (5, 0.05, "clips dominate"),
                                 (10, 0.3, "seeds vary"), (3, 0.05, "clips dominate")]:
        cover, width = coverage(*ratio_intervals(seeds, sd_seed, args.runs))
        print(f"{'relative_interval':<22} {seeds:>5} {case:<26} {cover:6.3f} {width:7.3f}")
    print(f"runtime {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
