"""Benchmark: KD + augmentation + cached augmented teacher logits vs scratch + the same augmentation.

Two copies of the same student (same seed) train side by side in one process on the same
AugmentedLoader batches (version epoch mod K of each training frame): one with vanilla KD, its
teacher logits looked up in the [K, N, 4] cache (``logits[k, row]``), one from scratch. The two
arms' steps are interleaved batch by batch, in alternating order, and each step is timed; on a
shared machine whose load drifts over minutes this compares like with like far better than
timing whole runs one after the other. Making a batch (reading and augmenting its frames) is
timed once and counted in both arms, since each arm of a real run makes its own.

    KD arm      = batches + KD steps (forward, lookup, KD loss, backward, AdamW)
    scratch arm = batches + CE steps
    goal: KD arm / scratch arm <= 1.10 (printed with a 95% bootstrap interval over the batches)

On a machine so loaded that whole steps vary by tens of percent, the interval is wide; so the
benchmark also times, over thousands of repeats, the only work the arms do differently (the
teacher lookup, the KD loss and its backward to the logits, vs the CE loss) and prints the ratio
that extra work implies against the fastest step seen.

The one-off cache build (K teacher passes over the training frames, shared by every trial and
seed with the same teacher, store, K, augmentation and seed) is timed and printed separately, as
is the time to make the same batches without augmentation (what augmenting costs). The step is
the one of ``kdbench.train.fit``, without the per-epoch validation that costs both arms the same
(leaving it out makes the ratio a little larger than in a full run, not smaller).

    python tests/benchmarks/bench_augment_cache.py [--store STORE] [--versions 4] [--epochs 4]

Without --store it builds a phantom store (4 views x 10 videos, 64 px, 8 frames per video).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_cache import _phantom_store  # noqa: E402  (the same phantom store as the plain-cache benchmark)


def make_arm(student: str, method_name: str, seed: int):
    """(model, method, optimizer) as kdbench.train.fit builds them."""
    import torch

    from kdbench.distill.registry import create_method
    from kdbench.models import create_model
    from kdbench.train import seed_everything

    seed_everything(seed)
    model = create_model(student, num_classes=4).train()
    return model, create_method(method_name), torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)


def step(arm, x, y, idx, k, cache, epoch: int) -> float:
    """One training step of an arm; returns its wall time in seconds."""
    import torch

    from kdbench.data.augment import teacher_lookup

    model, method, optimizer = arm
    start = time.perf_counter()
    logits = model(x)
    teacher = torch.from_numpy(teacher_lookup(cache, idx, k)) if method.needs_teacher else None
    loss = sum(method(logits.float(), teacher, y, epoch).values())
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def timed_batches(loader, epoch: int):
    """Yield (seconds it took to make the batch, batch) for one epoch of ``loader``."""
    loader.set_epoch(epoch)
    it = iter(loader)
    while True:
        start = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            return
        yield time.perf_counter() - start, batch


def run_interleaved(store, args, cache) -> tuple[dict[str, float], list[tuple[float, float, float]]]:
    """Seconds making augmented batches, in KD steps, in scratch steps, making plain batches; per-batch triples."""
    from kdbench.data.augment import AugmentedLoader
    from kdbench.data.loader import StoreLoader

    arms = {"kd": make_arm(args.student, "vanilla", 0), "scratch": make_arm(args.student, "scratch", 0)}
    loader = AugmentedLoader(store, "train", args.batch_size, versions=args.versions, seed=0)
    totals = {"augmented batches": 0.0, "kd": 0.0, "scratch": 0.0, "plain batches": 0.0}
    n, per_batch = 0, []
    for epoch in range(args.epochs + 1):  # epoch 0 warms up (allocator, kernels) and is not counted
        for make_s, (x, y, idx, k) in timed_batches(loader, epoch):
            order = ["kd", "scratch"] if n % 2 == 0 else ["scratch", "kd"]
            n += 1
            times = {name: step(arms[name], x, y, idx, k, cache, epoch) for name in order}
            if epoch > 0:
                totals["augmented batches"] += make_s
                totals["kd"] += times["kd"]
                totals["scratch"] += times["scratch"]
                per_batch.append((make_s, times["kd"], times["scratch"]))
    plain = StoreLoader(store, "train", args.batch_size, shuffle=True, seed=0)
    for epoch in range(1, args.epochs + 1):
        totals["plain batches"] += sum(make_s for make_s, _ in timed_batches(plain, epoch))
    return totals, per_batch


def ratio_interval(per_batch: list[tuple[float, float, float]], n_boot: int = 2000) -> tuple[float, float]:
    """95% bootstrap interval (resampling batches) of sum(make + kd) / sum(make + scratch)."""
    import numpy as np

    t = np.asarray(per_batch)
    kd, scratch = t[:, 0] + t[:, 1], t[:, 0] + t[:, 2]
    pick = np.random.default_rng(0).integers(0, len(t), size=(n_boot, len(t)))
    ratios = kd[pick].sum(axis=1) / scratch[pick].sum(axis=1)
    return float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))


def loss_side_seconds(cache, batch, repeats: int = 2000) -> dict[str, float]:
    """Median seconds of the only work the arms do differently: teacher lookup, loss, its backward to the logits."""
    import numpy as np
    import torch

    from kdbench.data.augment import teacher_lookup
    from kdbench.distill.registry import create_method

    _, y, idx, k = batch
    out = {}
    for name in ("vanilla", "scratch"):
        method, times = create_method(name), []
        for _ in range(repeats):
            logits = torch.randn(len(y), 4, requires_grad=True)
            start = time.perf_counter()
            teacher = torch.from_numpy(teacher_lookup(cache, idx, k)) if method.needs_teacher else None
            sum(method(logits, teacher, y, 1).values()).backward()
            times.append(time.perf_counter() - start)
        out[name] = float(np.median(times))
    return out


def main() -> None:
    """Build the augmented cache, then time both arms and print their wall times and ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path)
    parser.add_argument("--student", default="mobilenet_v3_small")
    parser.add_argument("--teacher-arch", default="vgg16")
    parser.add_argument("--versions", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--videos-per-view", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()

    import torch

    from kdbench.data.augment import AugmentConfig, augmented_cache_key, load_or_build_augmented_logits
    from kdbench.data.store import FrameStore
    from kdbench.models import create_model
    from kdbench.models.checkpoint import save_checkpoint

    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="kdbench-bench-augment-"))
    store = FrameStore.open(args.store) if args.store else _phantom_store(tmp, args.videos_per_view, args.size)
    teacher_path = tmp / "teacher.pt"
    torch.manual_seed(0)
    save_checkpoint(create_model(args.teacher_arch), teacher_path, arch=args.teacher_arch, num_classes=4,
                    input_size=store.size)
    key, _ = augmented_cache_key(store, teacher_path, args.versions, 0, AugmentConfig(), "train")
    cached = (store.path / "teacher_cache" / f"{key}.npy").exists()
    t0 = time.perf_counter()
    cache = load_or_build_augmented_logits(store, teacher_path, args.versions, seed=0)
    build_s = time.perf_counter() - t0
    n_train = len(store.indices("train"))
    print(f"store {store.path}: {len(store)} frames ({n_train} train) at {store.size} px; student {args.student}, "
          f"teacher {args.teacher_arch}, K = {args.versions} versions, {args.epochs} timed epochs, "
          f"batch {args.batch_size}, torch threads {torch.get_num_threads()}")
    print(f"one-off augmented teacher-logit cache {'load (built before)' if cached else 'build'}: {build_s:.1f} s "
          f"for {args.versions} x {n_train} frames")

    t, per_batch = run_interleaved(store, args, cache)
    low, high = ratio_interval(per_batch)
    from kdbench.data.augment import AugmentedLoader

    first = next(iter(AugmentedLoader(store, "train", args.batch_size, versions=args.versions, seed=0)))
    loss_side = loss_side_seconds(cache, first)
    fastest = min(make + min(kd_s, scratch_s) for make, kd_s, scratch_s in per_batch)
    extra = loss_side["vanilla"] - loss_side["scratch"]
    scratch, kd = t["augmented batches"] + t["scratch"], t["augmented batches"] + t["kd"]
    print(f"{'arm':<36} {'wall s':>9} {'vs scratch + aug':>17}")
    print(f"{'scratch + augmentation':<36} {scratch:>9.2f} {1.0:>16.3f}x")
    print(f"{'vanilla KD + augmentation + cache':<36} {kd:>9.2f} {kd / scratch:>16.3f}x")
    print(f"  of which: making augmented batches {t['augmented batches']:.2f} s (plain batches: "
          f"{t['plain batches']:.2f} s), KD steps {t['kd']:.2f} s, scratch steps {t['scratch']:.2f} s")
    print(f"goal: KD + augmentation + cache <= 1.10x scratch + augmentation -> "
          f"{'met' if high <= 1.10 else 'NOT met' if low > 1.10 else 'uncertain'} ({kd / scratch:.3f}x, "
          f"95% interval over {len(per_batch)} interleaved batches [{low:.3f}, {high:.3f}])")
    paired = sorted((make + kd_s) / (make + scratch_s) for make, kd_s, scratch_s in per_batch)
    print(f"median of the per-batch paired ratios (robust to load spikes): {paired[len(paired) // 2]:.3f}x")
    print(f"what only KD does per step (lookup, KD loss, its backward to the logits; median of 2000): "
          f"{1e3 * loss_side['vanilla']:.3f} ms vs {1e3 * loss_side['scratch']:.3f} ms for CE -> {1e3 * extra:.3f} ms "
          f"extra, {extra / fastest:.4f} of the fastest step seen ({fastest:.2f} s): implied ratio "
          f"{1 + extra / fastest:.3f}x")
    print(f"load average (1, 5, 15 min) before {tuple(round(v, 2) for v in load_before)}, "
          f"after {tuple(round(v, 2) for v in os.getloadavg())} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
