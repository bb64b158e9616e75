"""Benchmark: the demo students under the profiler -- OpenVINO f32 vs bf16, and p50 spread over fresh processes.

    python tests/benchmarks/bench_profile_students.py [--size 112] [--threads 2] [--runs 3] [--out DIR]

Exports the four demo students (4 classes, grey input) to ONNX at ``--size`` with kdbench's own
exporter, then runs ``kdbench profile`` on them with the runtimes onnxruntime, openvino (f32,
explicit) and openvino-bf16, each model in ``--runs`` fresh processes. Prints, per student:
ORT / OpenVINO f32 / OpenVINO bf16 p50 with the precision that actually ran (read back from the
compiled model), the bf16/f32 ratio, and each runtime's p50 over the fresh processes with their
spread and the stable flag; also the estimated vs measured model memory (one definition).
Timings depend on the host's load: the load average is recorded with every record.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

STUDENTS = ("mobilenet_v3_small", "mobilenet_v3_large", "shufflenet_v2_x1_0", "ghostnet_100")


def export(out: Path, size: int) -> None:
    """The four students as ONNX files in ``out``."""
    from kdbench.convert.onnx_export import export_onnx
    from kdbench.models.registry import create_model

    out.mkdir(parents=True, exist_ok=True)
    for s in STUDENTS:
        if not (out / f"{s}.onnx").is_file():
            export_onnx(create_model(s, num_classes=4).eval(), out / f"{s}.onnx", size)


def main() -> None:
    """Run and print the side-by-side table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="kdbench-bench-"))
    models = work / f"students_{args.size}"
    export(models, args.size)
    cmd = [str(Path(sys.executable).with_name("kdbench")), "profile", "--target", "x86", "--models", str(models), "--out",
           str(work / "profiles"), "--threads", str(args.threads), "--runs", str(args.runs),
           "--runtimes", "onnxruntime,openvino,openvino-bf16", "--min-time", "1", "--max-time", "5"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    recs = [r for r in json.loads((work / "profiles" / "x86" / "results.json").read_text())
            if r["batch"] == 1 and r["status"] == "ok"]
    by = {(r["variant_id"], r["runtime"]): r for r in recs}
    print(f"{args.size} px, {args.threads} threads, {args.runs} fresh processes each; load avg "
          f"{recs[0]['conditions'][0]['before']['load_avg']}")
    print(f"{'student':22} {'ORT p50':>9} {'OV f32 p50':>11} {'ran':>5} {'OV bf16 p50':>12} {'ran':>5} {'bf16/f32':>9}")
    for s in STUDENTS:
        o, f, b = by.get((s, "onnxruntime")), by.get((s, "openvino")), by.get((s, "openvino-bf16"))
        if not (o and f and b):
            continue
        print(f"{s:22} {o['latency_ms']['p50']:9.3f} {f['latency_ms']['p50']:11.3f} {f['inference_precision']:>5} "
              f"{b['latency_ms']['p50']:12.3f} {b['inference_precision']:>5} "
              f"{b['latency_ms']['p50'] / f['latency_ms']['p50']:9.2f}")
    print(f"\n{'student':22} {'runtime':15} {'p50 per process (ms)':32} {'spread %':>9} stable")
    for r in sorted(recs, key=lambda r: (r["variant_id"], r["runtime"])):
        runs = ", ".join(f"{v:.3f}" for v in r["p50_runs_ms"])
        print(f"{r['variant_id']:22} {r['runtime']:15} {runs:32} {r['p50_spread_pct']:9.1f} {r['stable']}")
    from kdbench.profile.estimate import CALIBRATION_DIR, Calibration
    from kdbench.profile.features import graph_features

    cal = Calibration.load(CALIBRATION_DIR / "rpi4.json")
    print(f"\n{'student':22} {'runtime':15} {'model MB measured':>18} {'estimated':>10} {'ratio':>6}")
    for r in sorted(recs, key=lambda r: (r["variant_id"], r["runtime"])):
        est = cal.memory_for(r["runtime"]).predict_mb(graph_features(models / f"{r['variant_id']}.onnx"))
        print(f"{r['variant_id']:22} {r['runtime']:15} {r['model_memory_mb']:18.1f} {est:10.1f} "
              f"{est / r['model_memory_mb']:6.2f}")


if __name__ == "__main__":
    main()
