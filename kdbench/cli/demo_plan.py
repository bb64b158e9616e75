"""`kdbench demo`: the whole pipeline on the phantom, as the sequence of commands a user would type.

Every step is a real `kdbench` command line, printed before it runs, so the demo doubles as a
walk-through of the workflow. Every stage skips work it has already done, so a demo that was
interrupted continues where it stopped when run again.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from kdbench.errors import ConfigError

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
    profile_time_s: float  # minimum timed seconds per model on the host
    int8: str
    teacher_arch: str = "vgg16"
    methods: tuple[str, ...] = tuple(METHODS)  # distillation methods searched (each student x each method)
    profile_runs: int = 3  # fresh processes per model x runtime (their spread marks unstable figures)
    holdout: float | None = None  # val and test share of each source's clips (None: the sources' usual 10-15%)


SIZES = {
    # <= 15 minutes on a 2-core CPU: 4 students x 4 methods x 5 seeds x 5 epochs at 32 px (a VGG16 from
    # scratch needs ~60 steps before it leaves chance level; 32 px buys them within the budget; at 3
    # epochs most students kept their last epoch, still improving). Validation and test hold 35% of the
    # clips each (120+ clips, 480+ frames): evaluation is cheap, training stays small.
    "default": DemoSize(videos_per_view=60, frames=16, image_size=32, frames_per_video=4, teacher_epochs=10,
                        epochs=5, seeds=5, profile_time_s=0.5, int8="ort,openvino", holdout=0.35),
    # for the end-to-end test and CI's wheel check: every stage, minimal work, a small stand-in teacher,
    # one distillation method against the scratch baseline
    "tiny": DemoSize(videos_per_view=3, frames=8, image_size=32, frames_per_video=3, teacher_epochs=1,
                     epochs=1, seeds=2, profile_time_s=0.2, int8="ort", teacher_arch="mobilenet_v3_large",
                     methods=("scratch", "vanilla"), profile_runs=1),
}


def search_space_toml(size: DemoSize, students: list[str], methods: list[str]) -> str:
    """The demo's search space: every student x every method (grid, method defaults), paired seeds."""
    quoted = lambda items: ", ".join(f'"{i}"' for i in items)  # noqa: E731
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

[train]
epochs = {size.epochs}
patience = {size.epochs}
batch_size = 32
lr = 2e-3

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
        + (["--holdout", s(size.holdout)] if size.holdout else []),
        ["data", "prepare", "--echonet-dynamic", s(raw / "EchoNet-Dynamic"), "--echonet-lvh", s(raw / "EchoNet-LVH"),
         "--tmed2", s(raw / "TMED2"), "--out", s(store), "--size", s(size.image_size),
         "--frames-per-video", s(size.frames_per_video)],
        ["data", "info", s(store)],
    ]
    if not teacher.is_file():
        steps.append(["teacher", "train", "--store", s(store), "--out", s(teacher), "--arch", size.teacher_arch,
                      "--epochs", s(size.teacher_epochs),
                      "--batch-size", "32", "--patience", s(size.teacher_epochs), "--device", "cpu"])
    steps += [
        ["teacher", "cache", "--store", s(store), "--teacher", s(teacher)],
        ["search", "--config", s(space), "--store", s(store), "--teacher", s(teacher), "--run-dir", s(runs),
         "--study", "demo", "--device", "cpu"],
        ["export", "--store", s(store), "--study", s(runs / "demo"), "--out", s(export), "--int8", size.int8],
        ["export", "--store", s(store), "--checkpoint", s(teacher), "--out", s(export), "--int8", ""],
        ["profile", "--target", "x86", "--export", s(export), "--out", s(profiles), "--min-time", s(size.profile_time_s),
         "--max-time", s(max(1.0, size.profile_time_s * 5)), "--warmup", s(min(1.0, size.profile_time_s)),
         "--runs", s(size.profile_runs)],
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
    steps = demo_commands(out, size, Path(leaderboard or out / "leaderboard"), students or STUDENTS,
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
