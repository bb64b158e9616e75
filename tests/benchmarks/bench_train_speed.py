"""Benchmark: kdbench's training images/s (``fit`` with ``fast_path="auto"``: the measured, cached
format) against a plain eager NCHW loop (AdamW, cross-entropy) on the same model, frames and batches.

Side by side in one process, the two arms alternate (ABBA order) for ``--repeats`` rounds, each
round a fresh model of the same seed training ``--steps`` batches; the medians and their ratio are
printed with the format kdbench chose and the load average. Goal on the 2-core CPU: >= 1.5x for
mobilenet_v3_small, never below 0.95x.

    python tests/benchmarks/bench_train_speed.py [--students a,b] [--sizes 32,112] [--batch 32]
        [--steps 8] [--repeats 3] [--cache-dir DIR]

Without --cache-dir the format choice is measured afresh in a temporary cache (the first kdbench
round of each row includes that probe, outside the timed training loop).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

STUDENTS = ("mobilenet_v3_small", "mobilenet_v3_large", "shufflenet_v2_x1_0", "ghostnet_100")


def _phantom_store(root: Path, size: int, videos_per_view: int):
    """Synthesise the phantom and prepare a store at ``size`` px."""
    from kdbench.data.prepare import prepare_store
    from kdbench.data.store import FrameStore
    from kdbench.data.synth import DYNAMIC_DIR, LVH_DIR, TMED_DIR, synthesize

    raw = root / "raw"
    if not raw.exists():
        synthesize(raw, videos_per_view=videos_per_view, seed=0, frames=16)
    sources = {"echonet_dynamic": raw / DYNAMIC_DIR, "echonet_lvh": raw / LVH_DIR, "tmed2": raw / TMED_DIR}
    prepare_store(sources, root / f"store{size}", size=size, frames_per_video=8, workers=1)
    return FrameStore.open(root / f"store{size}")


def kdbench_images_per_s(store, student: str, batch: int, steps: int) -> tuple[float, float, str]:
    """One kdbench run (scratch, one epoch of ``steps`` batches): training images per second and per CPU-second, format."""
    from kdbench.train import TrainConfig, train_student

    cfg = TrainConfig(epochs=1, batch_size=batch, max_batches_per_epoch=steps, precise_bn_batches=0, device="cpu",
                      seed=0, fast_path="auto", eval_batch_size=256)
    result = train_student(store, student, "scratch", {}, cfg, progress=False)
    images = min(steps * batch, len(store.indices("train")))
    return result.train_images_per_s, images / max(result.train_cpu_s, 1e-9), result.fast_path["train"]["format"]


def _fill_format_cache(store, student: str, batch: int) -> None:
    """Measure the format choice as the first run long enough to probe would (the benchmark's runs are shorter)."""
    import torch

    from kdbench import fastpath
    from kdbench.data.loader import StoreLoader
    from kdbench.models import create_model

    x, y, _ = next(iter(StoreLoader(store, "train", batch)))
    fastpath.choose(create_model(student, num_classes=4), x, y, "train", torch.device("cpu"), "auto", student, batch,
                    planned_steps=fastpath.MIN_PROBE_RUN_STEPS)


def plain_images_per_s(store, student: str, batch: int, steps: int) -> tuple[float, float]:
    """The plain loop: eager NCHW, AdamW, cross-entropy, the same shuffled batches as kdbench's loader."""
    import torch

    from kdbench.data.loader import StoreLoader
    from kdbench.models import create_model

    torch.manual_seed(0)
    model = create_model(student, num_classes=4).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    images, t0, cpu0 = 0, time.perf_counter(), time.process_time()
    for b, (x, y, _) in enumerate(StoreLoader(store, "train", batch, shuffle=True, seed=0)):
        if b >= steps:
            break
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        images += len(y)
    return images / (time.perf_counter() - t0), images / (time.process_time() - cpu0)


def main() -> None:
    """Measure every (student, size) row and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", default=",".join(STUDENTS))
    parser.add_argument("--sizes", default="32,112")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--videos-per-view", type=int, default=10)
    parser.add_argument("--cache-dir", type=Path)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default, every core)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kdbench-bench-train-"))
    os.environ["KDBENCH_CACHE_DIR"] = str(args.cache_dir or tmp / "cache")
    os.environ.pop("KDBENCH_FAST_PATH", None)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, {args.steps} steps x "
          f"{args.repeats} rounds per arm (ABBA), load average at start {os.getloadavg()[0]:.1f}", flush=True)
    print("img/s = wall clock; img/cpu-s = per process CPU second (less sensitive to other processes)", flush=True)
    print(f"{'student':<20} {'px':>4} {'kdbench img/s':>14} {'plain img/s':>12} {'ratio':>6} {'ratio cpu-s':>11}  format",
          flush=True)
    for size in (int(s) for s in args.sizes.split(",")):
        store = _phantom_store(tmp, size, args.videos_per_view)
        for student in args.students.split(","):
            _row(store, student, size, args)
    print(f"load average at end {os.getloadavg()[0]:.1f}")


def _row(store, student: str, size: int, args: argparse.Namespace) -> None:
    """Alternate the two arms for one student and size; print medians and ratios."""
    _fill_format_cache(store, student, args.batch)
    runs: dict[str, list[tuple[float, float]]] = {"kd": [], "plain": []}
    fmt = ""
    for r in range(args.repeats):
        for arm in (("kd", "plain") if r % 2 == 0 else ("plain", "kd")):
            if arm == "kd":
                wall, cpu, fmt = kdbench_images_per_s(store, student, args.batch, args.steps)
                runs["kd"].append((wall, cpu))
            else:
                runs["plain"].append(plain_images_per_s(store, student, args.batch, args.steps))
    med = {arm: [statistics.median(v[i] for v in vals) for i in (0, 1)] for arm, vals in runs.items()}
    (a, a_cpu), (b, b_cpu) = med["kd"], med["plain"]
    print(f"{student:<20} {size:>4} {a:>14.1f} {b:>12.1f} {a / b:>6.2f} {a_cpu / b_cpu:>11.2f}  {fmt}   "
          f"(load {os.getloadavg()[0]:.1f}; wall rounds kdbench {[round(v[0]) for v in runs['kd']]} "
          f"plain {[round(v[0]) for v in runs['plain']]})", flush=True)


if __name__ == "__main__":
    main()
