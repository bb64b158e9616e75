"""Benchmark: augmentation that keeps the teacher cache, its cost and its accuracy effect.

(a) Cost. Whole ``kdbench.train.train_student`` runs, each with K augmented versions of every
training frame (``TrainConfig.augment_versions``): vanilla KD looking its teacher logits up in the
[K, N, 4] cache (``aug[k, row]``) against scratch, same student, seed and batches. The two arms run
ABAB interleaved (KD, scratch, then scratch, KD, ...), so a machine whose load drifts over minutes
weighs on both alike; each pair gives a ratio KD / scratch, summarised by their geometric mean with
a 95% t interval over the pairs' log ratios (``kdbench.search.statistics.mean_ci``), beside the
ratio of the summed times. Many short pairs beat few long ones on a loaded machine.

    training passes = ``RunResult.train_time_s`` (no validation: the work the arms share least)
    whole run       = ``RunResult.wall_time_s`` (setup, training, validation, final evaluation)
    goal: KD + augmentation + cache <= 1.10x scratch + augmentation

Also printed: the one-off cache build (K teacher passes over the training frames, shared by every
trial and seed with the same teacher, store, K, augmentation and seed), the cost of making the
augmented batches against plain ones, and, timed over thousands of repeats (robust to load), the
only work the arms do differently: the lookup, the KD loss and its backward to the logits vs CE.

(b) Accuracy effect. The same method with K versions vs without augmentation (K = 0), on the same
seeds (same initial weights and batch order), every run as in a search: the epoch kept is the best
on validation accuracy. The paired differences (augmented - plain) of the kept epoch's validation
and test accuracy get a 95% t interval over seeds (``kdbench.search.statistics.compare_paired``).
Validation accuracy chose the epoch, so it is optimistic for both arms; test accuracy is the honest
figure.

    python tests/benchmarks/bench_augment_cache.py [--part both|time|accuracy] [--store STORE]
        [--versions 4] [--size 32] [--videos-per-view 30] [--seeds 5] [--epochs-accuracy 8]

Without --store it builds a phantom store (4 views, --videos-per-view videos per view and source,
8 frames per video, --size px). The teacher for the cost part is an untrained --teacher-arch unless
--teacher names a checkpoint (a trained one lets the accuracy part use --accuracy-method vanilla).
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


def run(store, method: str, seed: int, args, versions: int, epochs: int, plain=None, augmented=None):
    """One training run as a search trial does it (student by name, selection on validation)."""
    from kdbench.train import TrainConfig, train_student

    cfg = TrainConfig(epochs=epochs, batch_size=args.batch_size, patience=epochs, seed=seed, device="cpu",
                      augment_versions=versions)
    return train_student(store, args.student, method, {}, cfg, teacher_logits=plain, augmented_logits=augmented,
                         progress=False)


def time_arms(store, args, plain, augmented) -> list[dict[str, float]]:
    """ABAB interleaved pairs of KD + augmentation + cache and scratch + augmentation: their times."""
    pairs = []
    run(store, "scratch", 0, args, args.versions, 1)  # warm-up (allocator, kernels), not counted
    for r in range(args.rounds):
        order = ("vanilla", "scratch") if r % 2 == 0 else ("scratch", "vanilla")
        done = {m: run(store, m, 0, args, args.versions, args.epochs, plain, augmented) for m in order}
        pairs.append({f"{arm}_{what}": getattr(done[m], f"{what}_s")
                      for arm, m in (("kd", "vanilla"), ("scratch", "scratch")) for what in ("train_time", "wall_time")})
        print(f"  pair {r + 1} ({order[0]} first): training passes KD {pairs[-1]['kd_train_time']:.2f} s, scratch "
              f"{pairs[-1]['scratch_train_time']:.2f} s; whole runs {pairs[-1]['kd_wall_time']:.2f} s, "
              f"{pairs[-1]['scratch_wall_time']:.2f} s", flush=True)
    return pairs


def batch_seconds(store, args) -> tuple[float, float]:
    """Seconds to make one epoch of augmented batches, and of the same plain batches."""
    from kdbench.data.augment import AugmentedLoader
    from kdbench.data.loader import StoreLoader

    out = []
    for loader in (AugmentedLoader(store, "train", args.batch_size, versions=args.versions, seed=0),
                   StoreLoader(store, "train", args.batch_size, shuffle=True, seed=0)):
        loader.set_epoch(1)
        start = time.perf_counter()
        for _ in loader:
            pass
        out.append(time.perf_counter() - start)
    return out[0], out[1]


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


def report_cost(store, args, plain, augmented) -> None:
    """Part (a): the ABAB pairs, their ratios with a t interval, and the supporting measurements."""
    import math

    from kdbench.data.augment import AugmentedLoader
    from kdbench.search.statistics import mean_ci

    print(f"(a) cost: {args.rounds} ABAB pairs of {args.epochs}-epoch runs, K = {args.versions}")
    pairs = time_arms(store, args, plain, augmented)
    print(f"{'measure':<16} {'KD+aug+cache s':>15} {'scratch+aug s':>14} {'sum ratio':>10} {'geo. mean':>10} "
          f"{'95% t interval':>17} {'goal <= 1.10':>13}")
    for what, label in (("train_time", "training passes"), ("wall_time", "whole run")):
        logs = [math.log(p[f"kd_{what}"] / p[f"scratch_{what}"]) for p in pairs]
        low, high = (math.exp(v) if v is not None else None for v in mean_ci(logs))
        kd, scratch = sum(p[f"kd_{what}"] for p in pairs), sum(p[f"scratch_{what}"] for p in pairs)
        verdict = "n/a" if low is None else "met" if high <= 1.10 else "NOT met" if low > 1.10 else "uncertain"
        interval = "n/a" if low is None else f"[{low:.3f}, {high:.3f}]"
        print(f"{label:<16} {kd:>15.2f} {scratch:>14.2f} {kd / scratch:>9.3f}x {math.exp(sum(logs) / len(logs)):>9.3f}x "
              f"{interval:>17} {verdict:>13}")
    aug_s, plain_s = batch_seconds(store, args)
    print(f"making one epoch of batches: augmented {aug_s:.2f} s, plain {plain_s:.2f} s (both arms make the augmented ones)")
    first = next(iter(AugmentedLoader(store, "train", args.batch_size, versions=args.versions, seed=0)))
    side = loss_side_seconds(augmented, first)
    extra = side["vanilla"] - side["scratch"]
    per_step = min(p["scratch_train_time"] for p in pairs) / (args.epochs * -(-len(store.indices("train")) // args.batch_size))
    print(f"what only KD does per step (lookup, KD loss, its backward to the logits; median of 2000): "
          f"{1e3 * side['vanilla']:.3f} ms vs {1e3 * side['scratch']:.3f} ms for CE -> {1e3 * extra:.3f} ms extra, "
          f"{extra / per_step:.4f} of the fastest scratch run's mean step ({1e3 * per_step:.1f} ms): implied ratio "
          f"{1 + extra / per_step:.3f}x")


def report_accuracy(store, args, plain, augmented) -> None:
    """Part (b): K versions vs no augmentation over paired seeds; mean differences with 95% t intervals."""
    from kdbench.search.statistics import compare_paired

    method = args.accuracy_method
    print(f"(b) accuracy effect: {method}, K = {args.versions} vs K = 0, seeds {list(range(args.seeds))}, "
          f"{args.epochs_accuracy} epochs (kept epoch: best validation accuracy)")
    rows = {"aug": [], "plain": []}
    for seed in range(args.seeds):
        order = (("aug", args.versions), ("plain", 0)) if seed % 2 == 0 else (("plain", 0), ("aug", args.versions))
        for arm, k in order:
            r = run(store, method, seed, args, k, args.epochs_accuracy, plain, augmented)
            rows[arm].append((r.metrics["val"]["accuracy"], r.metrics["test"]["accuracy"], r.best_epoch))
        a, p = rows["aug"][-1], rows["plain"][-1]
        print(f"  seed {seed}: val {a[0]:.4f} (K={args.versions}) vs {p[0]:.4f} (K=0), test {a[1]:.4f} vs {p[1]:.4f}, "
              f"kept epochs {a[2] + 1} / {p[2] + 1}", flush=True)
    n_val, n_test = len(store.indices("val")), len(store.indices("test"))
    print(f"{'metric':<15} {'K=' + str(args.versions):>8} {'K=0':>8} {'diff':>8} {'95% t interval':>20} {'p (t)':>7} {'p (Wilcoxon)':>13}")
    for i, (metric, n) in enumerate((("val_accuracy", n_val), ("test_accuracy", n_test))):
        c = compare_paired([r[i] for r in rows["aug"]], [r[i] for r in rows["plain"]], bounds=(-1.0, 1.0))
        interval = "n/a" if c["ci_low"] is None else f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]"
        p_t = "n/a" if c["p_value"] is None else f"{c['p_value']:.3f}"
        print(f"{metric:<15} {c['mean_a']:>8.4f} {c['mean_b']:>8.4f} {c['diff']:>+8.4f} {interval:>20} {p_t:>7} "
              f"{c['p_wilcoxon']:>13.3f}   ({n} frames; n = {c['n']} seeds){'  ' + c['note'] if c['note'] else ''}")


def main() -> None:
    """Build the store and the caches, then run the parts asked for."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("both", "time", "accuracy"), default="both")
    parser.add_argument("--store", type=Path)
    parser.add_argument("--teacher", type=Path, help="teacher checkpoint (default: an untrained --teacher-arch)")
    parser.add_argument("--student", default="mobilenet_v3_small")
    parser.add_argument("--teacher-arch", default="vgg16")
    parser.add_argument("--versions", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=1, help="epochs of each timed run")
    parser.add_argument("--rounds", type=int, default=8, help="ABAB pairs timed")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--videos-per-view", type=int, default=30)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs-accuracy", type=int, default=8)
    parser.add_argument("--accuracy-method", default="scratch", help="scratch, or a KD method (give a trained --teacher)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared 2-core machine)")
    args = parser.parse_args()

    os.environ.setdefault("KDBENCH_FAST_PATH", "nchw")  # the same plain format in both arms, no probe
    import torch

    from kdbench.data.augment import AugmentConfig
    from kdbench.data.store import FrameStore
    from kdbench.distill.augmented_cache import augmented_cache_key, load_or_build_augmented_logits
    from kdbench.distill.cache import load_or_build_teacher_logits
    from kdbench.models import create_model
    from kdbench.models.checkpoint import save_checkpoint

    torch.set_num_threads(args.threads)
    load_before, start = os.getloadavg(), time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="kdbench-bench-augment-"))
    store = FrameStore.open(args.store) if args.store else _phantom_store(tmp, args.videos_per_view, args.size)
    teacher = args.teacher
    if teacher is None:
        teacher = tmp / "teacher.pt"
        torch.manual_seed(0)
        save_checkpoint(create_model(args.teacher_arch), teacher, arch=args.teacher_arch, num_classes=4,
                        input_size=store.size)
    key, _ = augmented_cache_key(store, teacher, args.versions, 0, AugmentConfig(), "train")
    cached = (store.path / "teacher_cache" / f"{key}.npy").exists()
    t0 = time.perf_counter()
    augmented = load_or_build_augmented_logits(store, teacher, args.versions, seed=0)
    build_s = time.perf_counter() - t0
    plain = load_or_build_teacher_logits(store, teacher)
    n = {s: len(store.indices(s)) for s in ("train", "val", "test")}
    print(f"store {store.path}: {len(store)} frames (train {n['train']}, val {n['val']}, test {n['test']}) at "
          f"{store.size} px; student {args.student}, teacher {teacher.name} ({'given' if args.teacher else 'untrained ' + args.teacher_arch}), "
          f"batch {args.batch_size}, torch threads {torch.get_num_threads()}")
    print(f"one-off augmented teacher-logit cache {'load (built before)' if cached else 'build'}: {build_s:.1f} s "
          f"for {args.versions} x {n['train']} frames")
    if args.part in ("both", "time"):
        report_cost(store, args, plain, augmented)
    if args.part in ("both", "accuracy"):
        report_accuracy(store, args, plain, augmented)
    print(f"load average (1, 5, 15 min) before {tuple(round(v, 2) for v in load_before)}, "
          f"after {tuple(round(v, 2) for v in os.getloadavg())} on {os.cpu_count()} CPUs; "
          f"benchmark wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
