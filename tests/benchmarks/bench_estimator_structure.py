"""Does the latency estimator's structure extrapolate? Measured on this host, across architectures and resolutions.

Run as a script on a quiet machine (about 7 minutes on a 2-core CPU; ``--quick``: fewer architectures):

    python tests/benchmarks/bench_estimator_structure.py [--quick] [--threads 2] [--repeat 2] [--levels extended,all]

Each step runs at ONNX Runtime's graph level ``extended`` (the graph an ARM CPU such as the Raspberry Pi's runs:
Conv + activation fusion, no layout change) and ``all`` (what kdbench profile runs; on an x86 CPU it adds the
NCHWc blocked layout, with reorder nodes wherever a non-blocked op meets a blocked one).

What it does (issue 25, parts 1 and 2):

1. Exports every architecture as kdbench exports a student (1 channel, 4 classes) at 32/64/112/224 px and
   measures each whole model on this host with ONNX Runtime (the profile agent, in one process: median of
   at least 0.5 s of runs), ``--repeat`` times; the spread between repeats is printed (the floor of any
   estimator's error here).
2. **Per-class constants** (the structure the Raspberry Pi 4 calibration uses), fitted as the Pi's is fitted
   -- on whole-model latencies at 224 px of the calibration architectures only -- then asked for the other
   architectures and for 32/64/112 px.
3. **Kernel level** (``kdbench profile calibrate --kernels``): the micro-benchmark suite timed by the same
   agent, kernel costs fitted on it alone (and the dispatch chain: what each further node costs the runtime; and
   the memory chains: what a kernel pays when the whole model's working set is out of the cache,
   ``kdbench.profile.kernel_memory``), the same predictions asked.

Printed: a table architecture x resolution (measured ms, each estimator's error), then per group (calibration
architectures at sizes not fitted; unseen architectures at every size) the median |error| and the share within
+-10% / +-25%, and the micro-benchmarks' wall time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from kdbench.convert.onnx_export import graph_export
from kdbench.profile.calibrate_kernels import STATISTICS, WHOLE_PREFIX, calibrate_kernels, pack, time_suite
from kdbench.profile.estimate import Row, fit_constants, predict_ms
from kdbench.profile.features import graph_features
from kdbench.profile.kernels import CALIBRATION_ARCHS, graph_kernels

UNSEEN = ("mobilenet_v3_small", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "mnasnet0_5", "efficientnet_b0",
          "ghostnet_100", "squeezenet1_1")
SIZES = (32, 64, 112, 224)
X86_CORE_GMACS = 2.5 * 16  # the x86 profile's clock x FMA per cycle


def measure(folder: Path, threads: int, repeat: int, level: str, stat: str) -> list[dict[str, float]]:
    """Whole-model ms per ``arch@size``, once per repeat (each repeat a fresh agent process)."""
    tar = pack(folder, folder.parent / "whole.tar")
    runs = []
    for _ in range(repeat):
        us = time_suite(tar, "onnxruntime", threads, min_s=0.5, graph_level=level)[STATISTICS[stat]]
        runs.append({k[len(WHOLE_PREFIX):]: v / 1000.0 for k, v in us.items() if k.startswith(WHOLE_PREFIX)})
    return runs


def summary(errors: list[float]) -> str:
    """Median |error| and the shares within +-10% / +-25%."""
    if not errors:
        return "n=0"
    a = [abs(e) for e in errors]
    return (f"n={len(a)} median |error| {statistics.median(a):.1f}%, within ±10% {100 * sum(x <= 10 for x in a) / len(a):.0f}%, "
            f"within ±25% {100 * sum(x <= 25 for x in a) / len(a):.0f}%")


def evaluate(level: str, fit_archs: tuple[str, ...], feats: dict, kernels: dict, folder: Path, args) -> dict:
    """Measure, fit both structures, predict: the table and the summaries for one graph optimisation level."""
    runs = measure(folder, args.threads, args.repeat, level, args.statistic)
    observed = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    spread = [100 * (max(r[k] for r in runs) / min(r[k] for r in runs) - 1) for k in observed]
    rows = [Row(k, feats[k], observed[k], args.threads, "fp32", k.split("@")[0]) for k in observed
            if k.split("@")[0] in fit_archs and k.endswith("@224")]
    constants = fit_constants(rows, X86_CORE_GMACS)
    t0 = time.perf_counter()
    cal, _, host = calibrate_kernels("onnxruntime", args.threads, archs=fit_archs, graph_level=level,
                                     statistic=args.statistic)
    wall = time.perf_counter() - t0
    table, groups = [], {}
    for key in sorted(observed, key=lambda k: (k.split("@")[0] not in fit_archs, k.split("@")[0], int(k.split("@")[1]))):
        arch, size = key.split("@")
        old = predict_ms(constants, X86_CORE_GMACS, feats[key], 1, args.threads, "fp32")
        new = cal.predict_ms(kernels[key])
        e_old, e_new = 100 * (old / observed[key] - 1), 100 * (new / observed[key] - 1)
        group = ("calibration arch, 224 px" if size == "224" else "calibration arch, other size") \
            if arch in fit_archs else "unseen architecture"
        groups.setdefault(group, ([], []))
        groups[group][0].append(e_old)
        groups[group][1].append(e_new)
        table.append((key, group, observed[key], old, e_old, new, e_new))
    print(f"\n== ONNX Runtime graph level {level!r}, threads {args.threads}, {args.statistic} run: whole models measured {args.repeat}x, "
          f"median spread between repeats {statistics.median(spread):.1f}% (max {max(spread):.1f}%)")
    print(f"{'model':26s} {'group':30s} {'measured':>9s} {'per-class':>9s} {'err':>7s} {'kernel':>9s} {'err':>7s}")
    for key, group, obs, old, e_old, new, e_new in table:
        print(f"{key:26s} {group:30s} {obs:9.3f} {old:9.3f} {e_old:+6.1f}% {new:9.3f} {e_new:+6.1f}%")
    for group, (e_old, e_new) in groups.items():
        print(f"[{level}] {group}: per-class constants (fit on 224 px): {summary(e_old)}")
        print(f"[{level}] {group}: kernel level: {summary(e_new)}")
    print(f"[{level}] kernel calibration: {cal.suite['kernels']} micro-benchmarks + {len(cal.whole_ms)} validation models, "
          f"{wall:.0f} s in all ({cal.suite['timing_wall_s']} s of timing); its own band ±{cal.band_pct:.0f}%")
    print(f"[{level}] dispatch chain: each further kernel {cal.model.node_us:.2f} us")
    if cal.model.memory:
        print(f"[{level}] memory chains: {cal.model.memory.describe()}")
    return {"runs": runs, "table": table, "constants": constants, "kernels": cal.to_dict(), "host": host}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 unseen architectures, 2 calibration ones")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--levels", default="extended,all",
                    help="ONNX Runtime graph levels to run at (extended: the graph an ARM CPU such as the Pi's runs; "
                         "all: x86 adds its NCHWc layout)")
    ap.add_argument("--statistic", choices=tuple(STATISTICS), default="median",
                    help="each model's and kernel's median run (as profile's p50) or its fastest (less disturbed by load)")
    ap.add_argument("--json", type=Path, default=None, help="also write every number here")
    args = ap.parse_args()
    fit_archs = CALIBRATION_ARCHS[:2] if args.quick else CALIBRATION_ARCHS
    unseen = UNSEEN[:3] if args.quick else UNSEEN
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "whole"
        feats, kernels = {}, {}
        for arch in fit_archs + unseen:
            for size in SIZES:
                path = graph_export(arch, folder / f"{WHOLE_PREFIX}{arch}@{size}.onnx", size)
                feats[f"{arch}@{size}"], kernels[f"{arch}@{size}"] = graph_features(path, size), graph_kernels(path, size)
        for level in args.levels.split(","):
            out[level] = evaluate(level, fit_archs, feats, kernels, folder, args)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
