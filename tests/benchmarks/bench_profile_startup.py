"""Benchmark: local profiling through the fork server versus fresh interpreters, side by side.

    python tests/benchmarks/bench_profile_startup.py [--quick] [--repeats N]

Builds a small set of ONNX models (``tests/profile_fixtures.py``'s ``tiny_cnn`` at a few widths and
sizes, plus an exported mobilenet_v3_small unless ``--quick``) and profiles all of them with
``kdbench.profile.local.run_local`` on the x86 profile (onnxruntime and openvino, its threads and
batch sizes, 3 runs per model x runtime, a raw frame's preprocessing timed as the CLI does), once
through fresh interpreters and once through the fork server, alternating which goes first over
``--repeats``. The rule is the demo's default (``--min-time 0.5 --max-time 2.5 --warmup 0.5``);
``--quick`` uses a shorter one, 2 models and 2 repeats (under 3 minutes on a 2-core CPU).

Prints each way's wall time, seconds per run and the p50 spread of its records (median and max over
the records, and how many are unstable), then ``profiling speed-up X`` (fresh wall / fork-server
wall, medians over the repeats). Timings only mean something on a quiet machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from profile_fixtures import tiny_cnn  # noqa: E402

from kdbench.profile.hardware import load_profile  # noqa: E402
from kdbench.profile.local import AgentInputs, MeasureRule, run_local, use_fork_server  # noqa: E402
from kdbench.profile.results import discover_models  # noqa: E402

DEMO_RULE = dict(min_time_s=0.5, max_time_s=2.5, warmup_s=0.5, runs=3)  # kdbench.demo's default size
QUICK_RULE = dict(min_time_s=0.1, max_time_s=0.5, warmup_s=0.1, min_queries=50, runs=3)
WAYS = {"fresh": True, "fork-server": False}


def build_models(root: Path, quick: bool) -> Path:
    """The models to profile, written under ``root``."""
    tiny_cnn(root / "cnn32_w8.onnx", size=32, width=8)
    tiny_cnn(root / "cnn32_w32.onnx", size=32, width=32, fc_in=64)
    if not quick:
        tiny_cnn(root / "cnn64_w16.onnx", size=64, width=16)
        tiny_cnn(root / "cnn32_5mb.onnx", size=32, big_weight_mb=5)
        from kdbench.convert.onnx_export import export_onnx
        from kdbench.models.registry import create_model

        export_onnx(create_model("mobilenet_v3_small", num_classes=4).eval(), root / "mnv3s_32.onnx", 32)
    return root


def profile_once(models: Path, fresh: bool, rule: MeasureRule, inputs: AgentInputs) -> tuple[float, list[dict]]:
    """Wall seconds and records of one profiling pass."""
    t0 = time.perf_counter()
    records = run_local(discover_models(models), load_profile("x86"), rule=rule, inputs=inputs, fresh=fresh)
    return time.perf_counter() - t0, records


def spread_summary(records: list[dict]) -> str:
    """Median and max p50 spread over the ok records, and how many are unstable."""
    spreads = [r["p50_spread_pct"] for r in records if r.get("status") == "ok" and r.get("p50_spread_pct") is not None]
    unstable = sum(1 for r in records if r.get("status") == "ok" and not r.get("stable"))
    failed = sum(1 for r in records if r.get("status") != "ok")
    if not spreads:
        return f"no ok records ({failed} failed)"
    return (f"p50 spread median {statistics.median(spreads):.1f}% max {max(spreads):.1f}%, "
            f"{unstable}/{len(records)} unstable, {failed} failed")


def main() -> None:
    """Profile both ways, print the table and the speed-up."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 models, a short rule, 2 repeats (< 3 min)")
    ap.add_argument("--repeats", type=int, default=None, help="passes per way (default 3, --quick 2)")
    ap.add_argument("--raw-frame", default="768x1024x3", help="raw frame whose preprocessing each run times ('' for none)")
    args = ap.parse_args()
    repeats = args.repeats or (2 if args.quick else 3)
    if not use_fork_server(False):
        sys.exit("this platform has no os.fork: nothing to compare")
    rule = MeasureRule(**(QUICK_RULE if args.quick else DEMO_RULE))
    walls: dict[str, list[float]] = {w: [] for w in WAYS}
    records: dict[str, list[dict]] = {w: [] for w in WAYS}
    with tempfile.TemporaryDirectory() as tmp:
        models = build_models(Path(tmp) / "models", args.quick)
        import numpy as np

        np.save(Path(tmp) / "frames.npy", np.random.default_rng(0).integers(0, 256, (8, 64, 64), dtype=np.uint8))
        inputs = AgentInputs(str(Path(tmp) / "frames.npy"), args.raw_frame or None)
        for i in range(repeats):
            order = list(WAYS) if i % 2 == 0 else list(reversed(WAYS))
            for way in order:
                wall, recs = profile_once(models, WAYS[way], rule, inputs)
                walls[way].append(wall)
                records[way] += recs
                print(f"pass {i + 1}/{repeats} {way:12s} {wall:7.1f} s", flush=True)
        n_runs = len(discover_models(models)) * 2 * rule.runs
    print(f"\n{n_runs} runs per pass ({n_runs // rule.runs} model x runtime, {rule.runs} runs each), rule {rule}")
    for way in WAYS:
        wall = statistics.median(walls[way])
        print(f"{way:12s} wall {wall:7.1f} s  {wall / n_runs:6.3f} s/run  {spread_summary(records[way])}")
    fresh, forked = statistics.median(walls["fresh"]), statistics.median(walls["fork-server"])
    print(f"saved {(fresh - forked) / n_runs:.3f} s per run")
    print(f"profiling speed-up {fresh / forked:.2f}x")


if __name__ == "__main__":
    main()
