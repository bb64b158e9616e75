"""Benchmark: a vanilla-KD run with cached teacher logits vs the same run from scratch vs a naive
run that calls the teacher on every batch. Same student, data, epochs and seed; measured side by
side in one process, alternating, best of --repeats. Goal: cached KD / scratch <= 1.10.

    python tests/benchmarks/bench_cache.py [--store STORE] [--teacher-arch vgg16] [--epochs 2]

Without --store it builds a phantom store (4 views x 10 videos, 64 px, 8 frames per video).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _phantom_store(root: Path, videos_per_view: int, size: int):
    """Synthesise the phantom and prepare a store from it."""
    from kdbench.data.prepare import prepare_store
    from kdbench.data.store import FrameStore
    from kdbench.data.synth import DYNAMIC_DIR, LVH_DIR, TMED_DIR, synthesize

    synthesize(root / "raw", videos_per_view=videos_per_view, seed=0, frames=16)
    sources = {"echonet_dynamic": root / "raw" / DYNAMIC_DIR, "echonet_lvh": root / "raw" / LVH_DIR,
               "tmed2": root / "raw" / TMED_DIR}
    prepare_store(sources, root / "store", size=size, frames_per_video=8, workers=2)
    return FrameStore.open(root / "store")


def main() -> None:
    """Run the three variants and print their wall times and ratios."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path)
    parser.add_argument("--student", default="mobilenet_v3_small")
    parser.add_argument("--teacher-arch", default="vgg16")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--videos-per-view", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()

    import torch

    from kdbench.data.store import FrameStore
    from kdbench.distill.cache import load_or_build_teacher_logits
    from kdbench.models import create_model
    from kdbench.models.checkpoint import save_checkpoint
    from kdbench.teacher import live_teacher
    from kdbench.train import TrainConfig, train_student

    tmp = Path(tempfile.mkdtemp(prefix="kdbench-bench-cache-"))
    store = FrameStore.open(args.store) if args.store else _phantom_store(tmp, args.videos_per_view, args.size)
    teacher_path = tmp / "teacher.pt"
    torch.manual_seed(0)
    save_checkpoint(create_model(args.teacher_arch), teacher_path, arch=args.teacher_arch, num_classes=4,
                    input_size=store.size)
    t0 = time.perf_counter()
    logits = load_or_build_teacher_logits(store, teacher_path)
    build_s = time.perf_counter() - t0
    n_train = len(store.indices("train"))
    print(f"store {store.path}: {len(store)} frames ({n_train} train) at {store.size} px; "
          f"student {args.student}, teacher {args.teacher_arch}, {args.epochs} epochs, batch {args.batch_size}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"one-off teacher-logit cache build: {build_s:.1f} s for {len(store)} frames")

    # patience above epochs: every variant runs exactly the same number of epochs
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, patience=args.epochs + 1, device="cpu", seed=0)
    variants = {
        "scratch": lambda: train_student(store, args.student, "scratch", {}, config, progress=False),
        "vanilla + cache": lambda: train_student(store, args.student, "vanilla", {}, config, teacher_logits=logits,
                                                 progress=False),
        "vanilla, teacher per batch": lambda: train_student(store, args.student, "vanilla", {}, config,
                                                            teacher_model=live_teacher(teacher_path), progress=False),
    }
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, run in variants.items():
            t0 = time.perf_counter()
            run()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
    base = best["scratch"]
    print(f"{'variant':<28} {'wall s (best of %d)' % args.repeats:>20} {'vs scratch':>11}")
    for name, seconds in best.items():
        print(f"{name:<28} {seconds:>20.2f} {seconds / base:>10.2f}x")
    print(f"goal: vanilla + cache <= 1.10x scratch -> {'met' if best['vanilla + cache'] / base <= 1.10 else 'NOT met'}")


if __name__ == "__main__":
    main()
