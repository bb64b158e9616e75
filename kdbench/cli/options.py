"""Option parsing shared by several commands."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kdbench.errors import ConfigError


def parse_key_values(items: list[str] | None, option: str) -> dict[str, Any]:
    """Turn ["a=1", "b=cosine"] into {"a": 1, "b": "cosine"} (numbers parsed), naming bad items."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} {item!r}: expected KEY=VALUE, for example {option} schedule=cosine")
        out[key.strip()] = _number_or_text(raw.strip())
    return out


def _number_or_text(raw: str) -> Any:
    """An int or float when the text is one, else the text."""
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw


def _starting(names: list[str], incomplete: str) -> list[str]:
    return [n for n in names if n.startswith(incomplete)]


def complete_space(incomplete: str) -> list[str]:
    """Shell completion of ``--config``: the shipped and local search spaces by name."""
    from kdbench.resources import list_resources

    return _starting(list_resources("search_spaces"), incomplete)


def complete_target(incomplete: str) -> list[str]:
    """Shell completion of ``--target``: the shipped and local hardware profiles by name."""
    from kdbench.resources import list_resources

    return _starting(list_resources("hardware_profiles"), incomplete)


def complete_method(incomplete: str) -> list[str]:
    """Shell completion of ``--method``: the registered distillation methods."""
    from kdbench.distill.registry import METHODS  # imports torch: only when completing this option

    return _starting(sorted(METHODS), incomplete)


def complete_student(incomplete: str) -> list[str]:
    """Shell completion of ``--student`` / ``--model``: the registered students and teachers."""
    from kdbench.models.registry import list_models

    return _starting(list_models(), incomplete)


# A study is named one way in every command: --study NAME under --run-dir, or --study FOLDER.
STUDY_HELP = ("The study: its name (a folder under --run-dir), or the study's folder itself, e.g. runs/demo "
              "(any value with a '/' is a folder).")
RUN_DIR_HELP = "Where study folders are written (RUN_DIR/NAME/study.json ...)."


def study_location(study: str | Path, run_dir: Path) -> tuple[Path, str]:
    """``(run_dir, name)`` of ``--study``: a value with a path separator, or a folder with a study.json that is not
    under ``run_dir``, is the study's folder; any other value is a name under ``run_dir``."""
    text = str(study)
    path = Path(text).expanduser()
    is_folder = os.sep in text or "/" in text or (not (run_dir / text).exists() and (path / "study.json").is_file())
    if is_folder:
        path = path.resolve()
        return path.parent, path.name
    return run_dir, text


def study_folder(study: str | Path, run_dir: Path) -> Path:
    """The folder of an existing study named by ``--study`` (and ``--run-dir``); DataError when it is none."""
    from kdbench.search.results import read_study_json

    parent, name = study_location(study, run_dir)
    path = parent.resolve() / name
    read_study_json(path)  # DataError when it is not a study
    return path


def deprecated_option(old: str, new: str, *short: str) -> Any:
    """A hidden option for a spelling that still works for one release (see :func:`take_deprecated`)."""
    import typer

    return typer.Option(None, old, *short, hidden=True, help=f"Deprecated: use {new}.")


def take_deprecated(value: Any, current: Any, old: str, new: str) -> Any:
    """``current``, or the value given under the old spelling ``old`` (with a one-line deprecation warning);
    ConfigError when both are given."""
    if value is None:
        return current
    if current is not None:
        raise ConfigError(f"{old} and {new} name the same thing; give only {new}")
    from kdbench.cli.console import warn

    warn(f"{old} is deprecated and will be removed in the next release; use {new}")
    return value


RECIPE_HELP = {
    "lr_schedule": "Learning-rate schedule: warmup_cosine (per step: linear warm-up over --warmup of the steps, then "
                   "cosine to zero) or cosine_epochs (cosine over the epochs, stepped once per epoch, no warm-up; "
                   "the recipe of studies written before these options).",
    "warmup": "Share of the planned steps spent warming the learning rate up (warmup_cosine only).",
    "ema": "Decay of the weights' exponential moving average, updated every step; the average is validated, kept and "
           "saved instead of the raw weights (0 = off).",
}


def recipe_options(defaults: Any) -> dict[str, Any]:
    """Typer options for the training recipe (``lr_schedule``, ``warmup``, ``ema``) with the given TrainConfig-like
    defaults, so every training command offers the same three with the same help."""
    import typer

    return {
        "lr_schedule": typer.Option(defaults.lr_schedule, "--lr-schedule", metavar="SCHEDULE", help=RECIPE_HELP["lr_schedule"]),
        "warmup": typer.Option(defaults.warmup, "--warmup", metavar="FRACTION", help=RECIPE_HELP["warmup"]),
        "ema": typer.Option(defaults.ema, "--ema", metavar="DECAY", help=RECIPE_HELP["ema"]),
    }
