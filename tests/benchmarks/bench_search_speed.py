"""Benchmark: the search's trials per hour on the demo's space, before issue 16 (every run in NCHW,
``KDBENCH_FAST_PATH=nchw``) and after (``auto``: the measured, cached format per student).

The space is the demo's own (``kdbench.cli.demo_plan.search_space_toml`` with ``SIZES["default"]``'s epochs,
batch and image size, read at run time), on a reduced grid (``--students`` x ``--methods`` x
``--seeds``), over a phantom store like the demo's (``kdbench data synth`` + ``data prepare`` at the
demo's size) and a small stand-in teacher (``--teacher-arch``, 1 epoch, cached logits: its quality
does not matter for speed). Each timed run is the real ``kdbench search`` in a subprocess with a
fresh ``--run-dir``; the arms alternate A B A B for ``--rounds`` rounds. Before timing, one untimed
``auto`` search fills the format cache (``KDBENCH_CACHE_DIR``), so the timed ``auto`` runs do not
include the probe; that warm-up's own trials/hour (probe included) is printed beside.

    python tests/benchmarks/bench_search_speed.py [--students a,b] [--methods scratch,vanilla]
        [--seeds 1] [--rounds 2] [--work-dir DIR]

trials/h = complete trials / the subprocess's wall time (imports and study setup included);
trials/CPU-h divides by its CPU time (user + system, all threads: less sensitive to other processes
on a shared machine); "fit only" divides by the summed wall time of the per-seed runs (kdbench.train's
``wall_time_s``: format choice, training, precise BN, evaluation; no process start-up or study set-up).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KDBENCH = [sys.executable, "-c", "import sys; from kdbench.cli import main; sys.argv[0] = 'kdbench'; sys.exit(main())"]


def _kdbench(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run one kdbench command line; returns its wall time and its CPU time (user + system) in seconds."""
    t0, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([*KDBENCH, "--quiet", *args], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"kdbench {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter() - t0, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _phantom(work: Path, size, teacher_arch: str, env: dict[str, str]) -> tuple[Path, Path]:
    """The demo's phantom store at the demo's size and a 1-epoch stand-in teacher with cached logits."""
    raw, store, teacher = work / "raw", work / "store", work / "teacher.pt"
    if not (store / "manifest.json").is_file():
        _kdbench(["data", "synth", "--out", str(raw), "--videos-per-view", str(size.videos_per_view),
                  "--frames", str(size.frames), "--seed", "0"], env)
        _kdbench(["data", "prepare", "--echonet-dynamic", str(raw / "EchoNet-Dynamic"), "--echonet-lvh",
                  str(raw / "EchoNet-LVH"), "--tmed2", str(raw / "TMED2"), "--out", str(store), "--size",
                  str(size.image_size), "--frames-per-video", str(size.frames_per_video)], env)
    if not teacher.is_file():
        _kdbench(["teacher", "train", "--store", str(store), "--out", str(teacher), "--arch", teacher_arch,
                  "--epochs", "1", "--batch-size", "32", "--device", "cpu"], env)
        _kdbench(["teacher", "cache", "--store", str(store), "--teacher", str(teacher)], env)
    return store, teacher


def _search(space: Path, store: Path, teacher: Path, run_dir: Path, env: dict[str, str]) -> dict:
    """One real `kdbench search` in a fresh run directory: wall time, trials, training time, formats."""
    shutil.rmtree(run_dir, ignore_errors=True)
    wall, cpu = _kdbench(["search", "--config", str(space), "--store", str(store), "--teacher", str(teacher),
                     "--run-dir", str(run_dir), "--study", "demo", "--device", "cpu"], env)
    study = run_dir / "demo"
    with open(study / "summary.csv", newline="") as fh:
        complete = sum(row["state"] == "complete" for row in csv.DictReader(fh))
    train_s, formats = 0.0, {}
    for metrics_file in study.glob("trials/*/*/seed_*/metrics.json"):
        metrics = json.loads(metrics_file.read_text())
        train_s += metrics.get("wall_time_s") or 0.0
        fp = metrics.get("fast_path") or {}
        formats[metrics["student"]] = f"{fp.get('train', {}).get('format')}/{fp.get('eval', {}).get('format')}"
    return {"wall_s": wall, "cpu_s": cpu, "trials": complete, "train_s": train_s, "formats": formats, "load": os.getloadavg()[0]}


def _per_hour(run: dict, key: str = "wall_s") -> float:
    """Complete trials per hour of ``run[key]`` seconds."""
    return run["trials"] * 3600.0 / max(run[key], 1e-9)


METRICS = (("wall_s", "trials/h"), ("cpu_s", "trials/CPU-h"), ("train_s", "fit-only trials/h"))


def _line(label: str, run: dict) -> str:
    """One run's row: trials, wall seconds, each rate, load average."""
    rates = "".join(f" {_per_hour(run, key):>{len(title)}.0f}" for key, title in METRICS)
    return f"{label:<32.32} {run['trials']:>6} {run['wall_s']:>7.1f}{rates}  {run['load']:.2f}"


def _report(runs: dict[str, list[dict]], warm: dict) -> None:
    """Print each arm's runs, the medians and the after/before ratios."""
    print(f"{'arm':<32} {'trials':>6} {'wall s':>7}" + "".join(f" {t}" for _, t in METRICS) + "  load (1 min)")
    for arm, label in (("nchw", "before (KDBENCH_FAST_PATH=nchw)"), ("auto", "after (auto, format cache warm)")):
        for r in runs[arm]:
            print(_line(label, r))
    print(_line("after, probe included (warm-up)", warm))
    for key, title in METRICS:
        before, after = (statistics.median(_per_hour(r, key) for r in runs[arm]) for arm in ("nchw", "auto"))
        print(f"median {title}: before {before:.0f}, after {after:.0f}, ratio after/before {after / before:.2f}")
    paired = [round(_per_hour(a) / _per_hour(b), 2) for a, b in zip(runs["auto"], runs["nchw"])]
    print(f"after/before trials/h per round (adjacent runs): {paired}")
    print("formats chosen (train/eval):", json.dumps(runs["auto"][-1]["formats"], sort_keys=True))


def main() -> None:
    """Build the phantom and the space, warm the format cache, time the arms interleaved, print the table."""
    from kdbench.cli.demo_plan import SIZES, STUDENTS, search_space_toml

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", default=",".join(STUDENTS), help="students of the reduced grid")
    parser.add_argument("--methods", default="scratch,vanilla", help="methods of the reduced grid")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per trial")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds (each arm runs once per round)")
    parser.add_argument("--teacher-arch", default="mobilenet_v3_small", help="the stand-in teacher (1 epoch)")
    parser.add_argument("--work-dir", type=Path, help="keeps the phantom, teacher and format cache between runs")
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="kdbench-bench-search-"))
    work.mkdir(parents=True, exist_ok=True)
    size = dataclasses.replace(SIZES["default"], seeds=args.seeds)
    students, methods = args.students.split(","), args.methods.split(",")
    space = work / "space.toml"
    space.write_text(search_space_toml(size, students, methods))
    env = {**os.environ, "KDBENCH_CACHE_DIR": str(work / "format_cache")}
    env.pop("KDBENCH_FAST_PATH", None)
    import kdbench

    print(f"kdbench {kdbench.__version__} from {Path(kdbench.__file__).parent}")
    print(f"demo space: {len(students)} students x {len(methods)} methods x {size.seeds} seeds, {size.epochs} epochs, "
          f"{size.image_size} px, {os.cpu_count()} cores, load average at start {os.getloadavg()}", flush=True)
    store, teacher = _phantom(work, size, args.teacher_arch, env)
    shutil.rmtree(work / "format_cache", ignore_errors=True)
    warm = _search(space, store, teacher, work / "runs_warm", env)  # fills the format cache: the probe
    runs: dict[str, list[dict]] = {"nchw": [], "auto": []}
    for r in range(args.rounds):
        for arm in ("nchw", "auto"):
            arm_env = {**env, "KDBENCH_FAST_PATH": "nchw"} if arm == "nchw" else env
            runs[arm].append(_search(space, store, teacher, work / f"runs_{arm}_{r}", arm_env))
            print(f"  round {r} {arm}: {runs[arm][-1]['trials']} trials in {runs[arm][-1]['wall_s']:.1f} s", flush=True)
    _report(runs, warm)
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()
