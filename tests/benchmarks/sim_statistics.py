"""Null simulations of kdbench.search.statistics, before (a git revision) and after (the working tree).

    python tests/benchmarks/sim_statistics.py [--runs 2000] [--before-rev 673ee7f]

For n = 3, 5, 10 paired seeds and two null models it prints, side by side, how often the 95%
interval of ``compare_paired`` covers the true difference 0, how often ``P(A>B) >= 0.95``, and how
often the interval of ``mean_ci`` covers the true mean. Models: ``normal`` (A, B = a shared seed effect N(0.8, 0.03) + N(0, 0.014) each)
and ``accuracy`` (A and B each the accuracy of 64 Bernoulli(0.85) frames; discrete, ties and
all-equal differences happen). An interval that is not given (all differences equal) counts as a miss.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def load_revision(rev: str) -> ModuleType:
    """kdbench/search/statistics.py as it was at ``rev``, imported from a temp file."""
    src = subprocess.run(["git", "show", f"{rev}:kdbench/search/statistics.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"statistics_{rev}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def null_pairs(model: str, n: int, runs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A, B [runs, n] with equal expected values."""
    rng = np.random.default_rng(seed)
    if model == "normal":
        base = rng.normal(0.8, 0.03, (runs, n))  # the seed's effect, shared by A and B
        return base + rng.normal(0, 0.014, (runs, n)), base + rng.normal(0, 0.014, (runs, n))
    return rng.binomial(64, 0.85, (runs, n)) / 64, rng.binomial(64, 0.85, (runs, n)) / 64


def rates(mod: ModuleType, a: np.ndarray, b: np.ndarray, true_mean: float) -> tuple[float, float, float]:
    """(coverage of the paired interval, rate of P(A>B) >= 0.95, coverage of mean_ci on A)."""
    cover = high_p = cover_mean = 0
    for xa, xb in zip(a, b):
        c = mod.compare_paired(xa, xb)
        cover += c["ci_low"] is not None and c["ci_low"] <= 0 <= c["ci_high"]
        high_p += c.get("p_a_gt_b") is not None and c["p_a_gt_b"] >= 0.95  # removed since: counts 0 there
        low, high = mod.mean_ci(xa)
        cover_mean += low is not None and low <= true_mean <= high
    return cover / len(a), high_p / len(a), cover_mean / len(a)


def main() -> None:
    """Print the before/after table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--before-rev", default="673ee7f")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from kdbench.search import statistics as after

    before = load_revision(args.before_rev)
    print(f"{args.runs} null runs each; before = {args.before_rev}, after = working tree")
    print(f"{'model':9} {'n':>3} | {'paired CI coverage':^19} | {'P(A>B)>=0.95 rate':^19} | {'mean_ci coverage':^19}")
    print(f"{'':9} {'':>3} | {'before':>9} {'after':>9} | {'before':>9} {'after':>9} | {'before':>9} {'after':>9}")
    for model, true_mean in (("normal", 0.80), ("accuracy", 0.85)):
        for n in (3, 5, 10):
            a, b = null_pairs(model, n, args.runs, seed=n)
            old, new = rates(before, a, b, true_mean), rates(after, a, b, true_mean)
            print(f"{model:9} {n:>3} | {old[0]:9.3f} {new[0]:9.3f} | {old[1]:9.3f} {new[1]:9.3f} | "
                  f"{old[2]:9.3f} {new[2]:9.3f}")


if __name__ == "__main__":
    main()
