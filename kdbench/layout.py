"""A study folder's layout, spelled once: ``STUDY/trials/<student>/<trial>/seed_<s>/`` holds one seed run
(metrics.json, best.pt, predictions.npz), its trial's ``trial.json`` one level up.

Seeds are ints here whatever the caller holds (JSON object keys are strings: ``"3"`` and ``3`` name one folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

TRIALS = "trials"
SEED_PREFIX = "seed_"


def trial_dir(study_dir: str | Path, student: str, number: int | str) -> Path:
    """The folder of trial ``number`` of ``student``: its seed runs and trial.json."""
    return Path(study_dir) / TRIALS / student / str(int(number))


def seed_dir(run_dir: str | Path, seed: int | str) -> Path:
    """The folder of seed ``seed``'s run inside a trial's (or a confirmation's) folder."""
    return Path(run_dir) / f"{SEED_PREFIX}{int(seed)}"


def seed_runs(study_dir: str | Path, student: str) -> Iterator[Path]:
    """Every seed-run folder of ``student`` in the study (any trial)."""
    return (Path(study_dir) / TRIALS / student).glob(f"*/{SEED_PREFIX}*")
