"""Benchmark: the profiler's own overhead versus a bare ONNX Runtime loop.

    python tests/benchmarks/bench_profiler_overhead.py [--repeats 7] [--queries 2000]

For each model, one ONNX Runtime session (1 thread) runs, interleaved ``--repeats`` times:
(a) a bare loop ``for _ in range(n): sess.run(None, feed)`` timed as a whole, and (b) the agent's
timed loop (``agent.time_queries``: a perf_counter pair and a list append per query, the CI check).
It prints per-query times and the ratio (b)/(a) -- median and best-of over repeats -- and, for the
whole-process view, the wall time of one agent subprocess against the time it spent timing.
The models are the worst case for overhead (a ~10 us tiny CNN) and a mid-size CNN at 112 px.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from profile_fixtures import tiny_cnn  # noqa: E402

from kdbench.profile import agent  # noqa: E402
from kdbench.profile.local import AGENT_PATH  # noqa: E402


def bench_model(path: Path, queries: int, repeats: int) -> dict:
    """Interleaved bare-loop vs profiler-loop timings for one model."""
    runner = agent.OrtRunner("onnxruntime", 1)
    runner.load(str(path))
    runner.prepare(1, None)
    run = runner.run
    for _ in range(200):
        run()
    bare, prof = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(queries):
            run()
        bare.append((time.perf_counter() - t0) / queries)
        out = agent.time_queries(run, min_queries=queries, min_time_s=0.0, max_time_s=1e9, rel_ci=1.0,
                                 floor_queries=queries)
        prof.append(out["wall_s"] / out["n"])
    ratios = [p / b for p, b in zip(prof, bare)]
    return {
        "model": path.name,
        "bare_us": statistics.median(bare) * 1e6,
        "profiler_us": statistics.median(prof) * 1e6,
        "ratio_median": statistics.median(ratios),
        "ratio_best": min(prof) / min(bare),
    }


def bench_process(path: Path) -> dict:
    """Wall time of one agent subprocess versus its timed seconds (fresh-process cost)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, str(AGENT_PATH), "--model", str(path), "--runtime", "onnxruntime",
                           "--threads", "1"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    res = json.loads(proc.stdout)
    b = res["batches"][0]
    return {"process_wall_s": wall, "timed_s": b["timed_s"], "warmup_s": b["warmup"]["seconds"],
            "queries": b["n"], "startup_and_load_s": wall - b["wall_s"] - b["warmup"]["seconds"]}


def main() -> None:
    """Run the benchmark and print a table and ratios."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--queries", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tiny = Path(tmp) / "tiny32.onnx"
        mid = Path(tmp) / "cnn112_w32.onnx"
        tiny_cnn(tiny, size=32, width=8)
        tiny_cnn(mid, size=112, width=32, fc_in=64)
        print(f"{'model':<18}{'bare us/query':>15}{'profiler us/query':>19}{'ratio (median)':>16}{'ratio (best)':>14}")
        for path, n in ((tiny, args.queries), (mid, max(args.queries // 10, 100))):
            r = bench_model(path, n, args.repeats)
            print(f"{r['model']:<18}{r['bare_us']:>15.2f}{r['profiler_us']:>19.2f}{r['ratio_median']:>16.4f}"
                  f"{r['ratio_best']:>14.4f}")
        p = bench_process(mid)
        print(f"one agent subprocess ({mid.name}, default rule): wall {p['process_wall_s']:.2f} s = "
              f"startup+load {p['startup_and_load_s']:.2f} s + warm-up {p['warmup_s']:.2f} s + timed loop; "
              f"{p['queries']} queries in {p['timed_s']:.2f} s timed")


if __name__ == "__main__":
    main()
