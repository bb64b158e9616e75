"""Trials per hour with the teacher-logit cache vs a live teacher called on every batch.

The same search (same space, same seeds, same sampler seed, so the same trials) runs twice, once
reading cached teacher logits and once with ``--no-cache``, and the trials-per-hour of both are
printed side by side with their ratio. Run it directly (not collected by pytest):

    python tests/benchmarks/bench_cache_trials.py [--teacher vgg16|mobilenet_v3_large] [--size 64]
        [--trials 4] [--epochs 2]

With no teacher file given it builds an untrained teacher of the chosen architecture (VGG16 by
default, the real teacher's cost) at the store's size. Numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

SPACE = """
[study]
name = "{name}"
students = ["mobilenet_v3_small"]
seeds = [0, 1]
n_trials = {trials}
sampler = "random"
sampler_seed = 0
pruner = "none"
baseline = "none"

[train]
epochs = {epochs}
patience = 100
batch_size = 32

[space]
method = "vanilla"

[space.vanilla]
temperature = [2.0, 4.0, 8.0]
alpha = 0.5
"""


def main() -> None:
    """Build a phantom store and a teacher, run the search with and without the cache, print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", default="vgg16", help="teacher architecture (untrained) when --teacher-file is not given")
    parser.add_argument("--teacher-file", type=Path, default=None, help="an existing teacher checkpoint or ONNX file")
    parser.add_argument("--size", type=int, default=64, help="frame size of the phantom store")
    parser.add_argument("--videos", type=int, default=6, help="phantom videos per view")
    parser.add_argument("--trials", type=int, default=2, help="trials per run")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per seed")
    args = parser.parse_args()

    from kdbench.data.prepare import prepare_store
    from kdbench.data.synth import DYNAMIC_DIR, LVH_DIR, TMED_DIR, synthesize
    from kdbench.search.runner import SearchRequest, load_studies, run_search

    root = Path(tempfile.mkdtemp(prefix="kdbench-bench-cache-"))
    try:
        synthesize(root / "raw", videos_per_view=args.videos, seed=0, frames=8)
        prepare_store({"echonet_dynamic": root / "raw" / DYNAMIC_DIR, "echonet_lvh": root / "raw" / LVH_DIR,
                       "tmed2": root / "raw" / TMED_DIR}, root / "store", size=args.size, frames_per_video=4, workers=1)
        teacher = args.teacher_file
        if teacher is None:
            from kdbench.models import create_model
            from kdbench.models.checkpoint import save_checkpoint

            teacher = save_checkpoint(create_model(args.teacher, num_classes=4), root / "teacher.pt", arch=args.teacher,
                                      num_classes=4, input_size=args.size)
        rows = []
        # live first: whichever runs first also pays the process's warm-up (imports, first allocations)
        for label, no_cache in (("live teacher", True), ("cached logits", False)):
            space = root / f"{label.split()[0]}.toml"
            space.write_text(SPACE.format(name=label.split()[0], trials=args.trials, epochs=args.epochs))
            req = SearchRequest(config=space, store=root / "store", teacher=teacher, run_dir=root / "runs",
                                device="cpu", no_cache=no_cache)
            start = time.perf_counter()
            result = run_search(req)
            wall = time.perf_counter() - start
            trials = load_studies(result["study_dir"], None)["mobilenet_v3_small"].get_trials()
            done = sum(t.state.name == "COMPLETE" for t in trials)
            rows.append((label, done, wall, done / wall * 3600, [t.params for t in trials]))
        assert rows[0][4] == rows[1][4], "the two runs must train the same trials"
        print(f"teacher {args.teacher if args.teacher_file is None else args.teacher_file}, store {args.size} px, "
              f"{args.trials} trials x 2 seeds x {args.epochs} epochs of mobilenet_v3_small (vanilla KD)")
        print(f"{'':16}{'trials':>8}{'wall s':>10}{'trials/hour':>14}")
        for label, done, wall, per_hour, _ in rows:
            print(f"{label:16}{done:>8}{wall:>10.1f}{per_hour:>14.1f}")
        print(f"speed-up from the cache: {rows[1][3] / rows[0][3]:.2f}x trials per hour "
              "(the cached run includes building the cache once)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
