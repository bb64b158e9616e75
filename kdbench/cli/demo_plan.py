"""`kdbench demo`: the whole pipeline on the phantom, as the sequence of commands a user would type.

Every step is a real `kdbench` command line, printed before it runs, so the demo doubles as a
walk-through of the workflow. Every stage skips work it has already done, so a demo that was
interrupted continues where it stopped when run again.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kdbench.errors import ConfigError
from kdbench.recipe import LEGACY, RECOMMENDED, Recipe

STUDENTS = ["mobilenet_v3_small", "mobilenet_v3_large", "shufflenet_v2_x1_0", "ghostnet_100"]
METHODS = ["scratch", "vanilla", "dkd", "dist"]  # the baseline, classic KD and the two strongest logit methods


@dataclass(frozen=True)
class DemoSize:
    """How big the demo's data and runs are."""

    videos_per_view: int
    frames: int  # frames per phantom clip
    image_size: int
    frames_per_video: int
    teacher_epochs: int
    epochs: int
    seeds: int
    profile_time_s: float  # minimum timed seconds per model and batch on the host (warm-up: 0.4x that)
    int8: str
    teacher_arch: str = "vgg16"
    methods: tuple[str, ...] = tuple(METHODS)  # distillation methods searched (each student x each method)
    profile_runs: int = 3  # fresh processes per model x runtime (their spread marks unstable figures)
    holdout: float | None = None  # val and test share of each source's clips (None: the sources' usual 10-15%)
    students: tuple[str, ...] = tuple(STUDENTS)
    unlabelled_clips: int = 0  # `data synth --unlabelled N`: an unlabelled pool the teacher labels (0 = none)
    unlabelled_share: float = 0.0  # `[train] unlabelled`: share of the pool in each KD epoch
    batch_size: int = 32
    lr: float = 2e-3
    recipe: Recipe = LEGACY  # learning-rate schedule and weight average (kdbench.recipe)
    margin: float | None = None  # `[study] margin` (None: the study's default, 1 point)
    teacher_recipe: Recipe = LEGACY
    augment_versions: int = 0  # `[train] augment_versions`: K augmented versions of each training frame (0 = off)
    margin_basis: str = ""  # `[study] margin_basis`: why this margin, printed beside it on the leaderboard


DEMO_MARGIN_BASIS = ("the smallest of 1, 1.5, 2, 2.5 and 3 points at which the known answer on this phantom and "
                     "recipe calls a model truly 2 x margin below the best worse in >= 80% of 5-seed studies: 90% at "
                     "3 points (76% at 2.5, 53% at 2); tests/benchmarks/bench_decisions.py --world demo "
                     "--at-twice-margin")

SIZES = {
    # <= 15 minutes on a 2-core CPU, sized so its decisions can be made (issue 21; docs/training.md has the
    # measurements behind each choice):
    # - 32 px: a VGG16 from scratch needs ~60 steps before it leaves chance level; 32 px buys them (10 epochs).
    # - Validation and test hold 35% of the clips each (120+ clips, 480+ frames): evaluation is cheap.
    # - An unlabelled pool of 600 clips (1,680 frames, 4x the 400 labelled training frames), half of it in each
    #   KD epoch: vanilla KD with the pool reaches 0.96-0.99 of the teacher's test accuracy where KD on the
    #   labelled frames alone stays at 0.79-0.86. KD vs scratch therefore asks what a hospital archive asks: is a
    #   teacher worth it when most frames have no label.
    # - 8 epochs, 4 augmented versions of every training frame (teacher logits cached per version), warm-up +
    #   cosine per step and a weight average (kdbench.recipe.RECOMMENDED): augmentation halves scratch's seed
    #   spread (SD 0.041 -> 0.020 for mobilenet_v3_small); best epochs were 4-7 of 8.
    # - Two students x two methods: mobilenet_v3_small (the smallest) and shufflenet_v2_x1_0 (the fastest on
    #   x86 and the Pi in the earlier demos), scratch against vanilla KD, 5 paired seeds. A KD run with the pool
    #   costs about 3x a scratch run, so each further student or method costs one to two minutes; DKD and DIST
    #   were below vanilla KD in every earlier demo and would not change a decision.
    # - Margin 0.03 (DEMO_MARGIN_BASIS): a phantom with 138 validation clips cannot resolve 1 point.
    # - int8 through ONNX Runtime's quantiser only (both runtimes still run every file): OpenVINO's own int8
    #   files added 2 models x 2 runtimes x 3 fresh processes to the profile step, which took the demo to 975 s.
    # - The x86 profile times batch 1 only: the leaderboard reads nothing else (batch 8 cost the demo ~30 s).
    # - Profile rule 0.25 s timed and 0.1 s of warm-up per batch (was 0.5 s and 0.5 s): the students run in
    #   0.1-3 ms, so that is still hundreds of queries, and in two alternating A/B pairs on this 2-core VM the
    #   batch-1 p50 spread over the 3 processes was no wider (median 11% and 7% vs 22% and 20%) in 0.67x the time.
    "default": DemoSize(videos_per_view=60, frames=16, image_size=32, frames_per_video=4, teacher_epochs=10,
                        epochs=8, seeds=5, profile_time_s=0.25, int8="ort", holdout=0.35,
                        students=("mobilenet_v3_small", "shufflenet_v2_x1_0"), methods=("scratch", "vanilla"),
                        unlabelled_clips=600, unlabelled_share=0.5, recipe=RECOMMENDED, augment_versions=4,
                        margin=0.03, margin_basis=DEMO_MARGIN_BASIS),
    # for the end-to-end test and CI's wheel check: every stage, minimal work, a small stand-in teacher,
    # one distillation method against the scratch baseline
    "tiny": DemoSize(videos_per_view=3, frames=8, image_size=32, frames_per_video=3, teacher_epochs=1,
                     epochs=1, seeds=2, profile_time_s=0.2, int8="ort", teacher_arch="mobilenet_v3_large",
                     methods=("scratch", "vanilla"), profile_runs=1, unlabelled_clips=4, unlabelled_share=1.0,
                     recipe=RECOMMENDED),
}


def search_space_toml(size: DemoSize, students: list[str], methods: list[str]) -> str:
    """The demo's search space: every student x every method (grid, method defaults), paired seeds."""
    quoted = lambda items: ", ".join(f'"{i}"' for i in items)  # noqa: E731
    margin = f"margin = {size.margin:g}  # the decisions' equivalence margin, fixed before the data are seen\n" if size.margin else ""
    recipe = "" if size.recipe == LEGACY else "".join(f"{key} = {json.dumps(value)}\n"
                                                      for key, value in size.recipe.to_dict().items())
    unlabelled = f"unlabelled = {size.unlabelled_share:g}  # share of the unlabelled pool in each KD epoch\n" if size.unlabelled_share else ""
    if size.augment_versions:
        unlabelled += f"augment_versions = {size.augment_versions}  # fixed augmented versions of every training frame\n"
    if size.margin_basis:
        margin += f"margin_basis = {json.dumps(size.margin_basis)}\n"
    return f"""# Written by `kdbench demo`: every student x every method at its default settings, on the
# same {size.seeds} seeds, sized for a 2-core CPU. See search_spaces/quick.toml and wide.toml for real searches.
[study]
name = "demo"
students = [{quoted(students)}]
seeds = {size.seeds}
n_trials = {len(students) * len(methods)}
objective = "val_accuracy"
sampler = "grid"
pruner = "none"
baseline = "scratch"
keep_checkpoints = "best"
{margin}
[train]
epochs = {size.epochs}
patience = {size.epochs}
batch_size = {size.batch_size}
lr = {size.lr:g}
{recipe}{unlabelled}
[space]
method = [{quoted(methods)}]
"""


def demo_commands(out: Path, size: DemoSize, leaderboard: Path, students: list[str], methods: list[str]) -> list[list[str]]:
    """The kdbench command lines the demo runs, in order."""
    raw, store, teacher = out / "raw", out / "store", out / "teacher.pt"
    runs, export, profiles = out / "runs", out / "export", out / "profiles"
    space = out / "demo_space.toml"
    space.parent.mkdir(parents=True, exist_ok=True)
    space.write_text(search_space_toml(size, students, methods))
    s = str
    steps = [
        ["data", "synth", "--out", s(raw), "--videos-per-view", s(size.videos_per_view), "--frames", s(size.frames), "--seed", "0"]
        + (["--holdout", s(size.holdout)] if size.holdout else [])
        + (["--unlabelled", s(size.unlabelled_clips)] if size.unlabelled_clips else []),
        ["data", "prepare", "--echonet-dynamic", s(raw / "EchoNet-Dynamic"), "--echonet-lvh", s(raw / "EchoNet-LVH"),
         "--tmed2", s(raw / "TMED2"), "--out", s(store), "--size", s(size.image_size),
         "--frames-per-video", s(size.frames_per_video)]
        + (["--unlabelled", s(raw / "Unlabelled")] if size.unlabelled_clips else []),
        ["data", "info", s(store)],
    ]
    if not teacher.is_file():
        steps.append(["teacher", "train", "--store", s(store), "--out", s(teacher), "--arch", size.teacher_arch,
                      "--epochs", s(size.teacher_epochs), "--batch-size", "32", "--patience", s(size.teacher_epochs),
                      "--lr-schedule", size.teacher_recipe.lr_schedule, "--warmup", s(size.teacher_recipe.warmup),
                      "--ema", s(size.teacher_recipe.ema), "--device", "cpu"])
    steps += [
        ["teacher", "cache", "--store", s(store), "--teacher", s(teacher)],
        ["search", "--config", s(space), "--store", s(store), "--teacher", s(teacher), "--run-dir", s(runs),
         "--study", "demo", "--device", "cpu"],
        ["export", "--store", s(store), "--study", s(runs / "demo"), "--out", s(export), "--int8", size.int8],
        ["export", "--store", s(store), "--checkpoint", s(teacher), "--out", s(export), "--int8", ""],
        ["profile", "--target", "x86", "--export", s(export), "--out", s(profiles), "--min-time", s(size.profile_time_s),
         "--max-time", s(max(1.0, size.profile_time_s * 5)), "--warmup", s(min(1.0, round(0.4 * size.profile_time_s, 3))),
         "--runs", s(size.profile_runs), "--batch-sizes", "1"],
        ["profile", "--target", "rpi4", "--export", s(export), "--out", s(profiles), "--estimate"],
        ["leaderboard", "--study", s(runs / "demo"), "--export", s(export), "--profiles", s(profiles),
         "--out", s(leaderboard)],
    ]
    return steps


def run_demo(out: Path, size_name: str = "default", leaderboard: Path | None = None,
             students: list[str] | None = None, methods: list[str] | None = None,
             run_command: Callable[[list[str]], None] | None = None,
             announce: Callable[[int, int, str], None] | None = None) -> dict[str, float]:
    """Run every demo step; returns the wall time of each step in seconds."""
    if size_name not in SIZES:
        raise ConfigError(f"demo size {size_name!r} is not one of {sorted(SIZES)}")
    out = Path(out)
    size = SIZES[size_name]
    steps = demo_commands(out, size, Path(leaderboard or out / "leaderboard"), students or list(size.students),
                          methods or list(size.methods))
    timings: dict[str, float] = {}
    for i, argv in enumerate(steps, 1):
        line = "kdbench " + shlex.join(argv)
        if announce is not None:
            announce(i, len(steps), line)
        start = time.perf_counter()
        (run_command or _run_in_process)(argv)
        timings[line] = time.perf_counter() - start
    return timings


def _run_in_process(argv: list[str]) -> None:
    """Run one kdbench command line in this process; a failing step stops the demo."""
    from kdbench.cli import app

    try:
        code = app(argv, standalone_mode=False)
    except SystemExit as stop:
        code = stop.code
    if code not in (0, None):
        raise ConfigError(f"demo step failed (exit {code}): kdbench {shlex.join(argv)}")
