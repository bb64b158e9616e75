"""Does the training feed keep a step busy? Augmentation frames/s per core, and the share of a step spent waiting.

Run as a script (``--quick``: a few minutes on a 2-core CPU):

    python tests/benchmarks/bench_feed.py [--quick] [--batch 64] [--steps 12]

It prints

- ``augmentation speed-up X``: frames per CPU-second of one thread (``time.thread_time``, OpenCV held to one
  thread) of ``augment_batch`` against the per-frame reference (``augment_batch_reference``), both on the same
  batches, after checking that their outputs are identical;
- the per-core rate of the CPU's share of the CUDA feed (``batch_draws``: draws and warps only);
- the same speed-up for a search at ``input_size`` 64 on the 112 px store (frames read through a resized store, as
  float32: until issue 26's last step these took the per-frame code, so "before" there is 1.00);
- ``data wait fraction Y``: the share of a training step's wall time (mobilenet_v3_small at 112 px on this CPU)
  spent waiting for the next batch from the prefetching feed, with augmentation on (also: off, and with
  augmentation on but no prefetching, the loop as it was).

The store is a synthetic 112 px one (``synthetic_store.write_store``) in a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def per_core_rate(fn, frames: int, repeats: int) -> float:
    """Frames per CPU-second of this thread for ``fn()`` (which augments ``frames`` frames): the best of ``repeats``."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t0)
    return frames / best


def augmentation_speedup(batch: int, batches: int, repeats: int, size: int = 112, input_size: int | None = None) -> dict:
    """Per-core frames/s of the batch and per-frame augmentation on the same batches, and whether they agree
    (``input_size``: the frames as a search at that size reads them, through a resized store: float32)."""
    import cv2

    from kdbench.data.augment import AugmentConfig, augment_batch, augment_batch_reference, batch_draws
    from kdbench.data.resized import resized_store
    from synthetic_store import write_store

    from kdbench.data.store import FrameStore

    with tempfile.TemporaryDirectory() as tmp:
        store = resized_store(FrameStore.open(write_store(Path(tmp) / "store", batch * batches, size)), input_size)
        rng = np.random.default_rng(0)
        rows = rng.permutation(len(store)).reshape(batches, batch)
        work = [(np.asarray(store.frames[np.sort(r)]), np.sort(r), rng.integers(0, 8, batch)) for r in rows]
    config, threads = AugmentConfig(), cv2.getNumThreads()
    cv2.setNumThreads(1)  # per core: OpenCV's own threads would escape thread_time
    try:
        same = all(np.array_equal(augment_batch(f, r, k, 0, config), augment_batch_reference(f, r, k, 0, config))
                   for f, r, k in work)
        frames = batch * batches
        old = per_core_rate(lambda: [augment_batch_reference(f, r, k, 0, config) for f, r, k in work], frames, repeats)
        new = per_core_rate(lambda: [augment_batch(f, r, k, 0, config) for f, r, k in work], frames, repeats)
        drawn = per_core_rate(lambda: [batch_draws(f, r, k, 0, config, upsample=False) for f, r, k in work], frames,
                              repeats)
    finally:
        cv2.setNumThreads(threads)
    return {"same": same, "per_frame_fps": old, "batch_fps": new, "speedup": new / old, "draws_fps": drawn}


def wait_fraction(store, batch: int, steps: int, augment: bool, prefetching: bool) -> dict:
    """Train ``steps`` steps of mobilenet_v3_small; the share of the wall time spent waiting for batches."""
    import torch

    from kdbench.data.augment import AugmentedLoader
    from kdbench.data.loader import StoreLoader
    from kdbench.data.prefetch import prefetch
    from kdbench.models import create_model

    torch.manual_seed(0)
    model = create_model("mobilenet_v3_small").train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = (AugmentedLoader(store, "train", batch, versions=4, seed=0) if augment
              else StoreLoader(store, "train", batch, shuffle=True))
    waited, start = 0.0, None
    with prefetch(loader, "cpu", limit=steps + 1) if prefetching else _plain(loader, steps + 1) as batches:
        for b in range(steps + 1):
            t0 = time.perf_counter()
            x, y = next(batches)[:2]
            if b:  # step 0 warms up (and fills the queue)
                waited += time.perf_counter() - t0
            else:
                start = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    wall = time.perf_counter() - start
    return {"wait_s": waited, "wall_s": wall, "fraction": waited / wall, "images_per_s": steps * batch / wall}


class _plain:
    """The loader's own iterator as a context manager: the feed without prefetching."""

    def __init__(self, loader, limit: int) -> None:
        self.it = iter(loader)

    def __enter__(self):
        return self.it

    def __exit__(self, *exc) -> None:
        return None


def main() -> None:
    """Run both measurements and print their lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer batches and steps (a few minutes)")
    parser.add_argument("--batch", type=int, default=64, help="training batch size")
    parser.add_argument("--steps", type=int, default=None, help="training steps per measurement")
    args = parser.parse_args()
    import torch

    from kdbench.data.store import FrameStore
    from synthetic_store import write_store

    steps = args.steps or (8 if args.quick else 30)
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; torch threads {torch.get_num_threads()}")
    aug = augmentation_speedup(batch=64, batches=4 if args.quick else 16, repeats=3 if args.quick else 5)
    print(f"augmentation per core: per-frame {aug['per_frame_fps']:.0f} frames/s, batch {aug['batch_fps']:.0f} "
          f"frames/s; same outputs: {'yes' if aug['same'] else 'NO'}")
    print(f"augmentation speed-up {aug['speedup']:.2f}")
    print(f"CPU share of the CUDA feed (draws and warps; the arithmetic runs on the GPU): {aug['draws_fps']:.0f} "
          f"frames/s per core")
    small = augmentation_speedup(batch=64, batches=4 if args.quick else 16, repeats=3 if args.quick else 5,
                                 input_size=64)
    print(f"through a resized store (112 -> 64 px, float32 frames): per-frame {small['per_frame_fps']:.0f} frames/s, "
          f"batch {small['batch_fps']:.0f} frames/s; same outputs: {'yes' if small['same'] else 'NO'}")
    print(f"augmentation speed-up at input_size 64 {small['speedup']:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        store = FrameStore.open(write_store(Path(tmp) / "store", max(4096, args.batch * (steps + 2) * 2), 112))
        # the process's first training steps run slowly (torch's allocators and thread pools warming up): measured
        # first, they made the prefetching feed look 2.7x slower than the plain loop. An untimed run comes first.
        wait_fraction(store, args.batch, steps, True, False)
        results = {name: wait_fraction(store, args.batch, steps, augment, pre)
                   for name, augment, pre in (("augment, prefetch", True, True), ("plain, prefetch", False, True),
                                              ("augment, no prefetch", True, False))}
    for name, r in results.items():
        print(f"  {name}: waited {r['wait_s']:.3f} s of {r['wall_s']:.2f} s ({r['fraction']:.4f}), "
              f"{r['images_per_s']:.0f} images/s")
    print(f"data wait fraction {results['augment, prefetch']['fraction']:.4f}")
    print(f"data wait fraction without augmentation {results['plain, prefetch']['fraction']:.4f}")
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    if not (aug["same"] and small["same"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
