"""The public Python API: run a search, read its trials and statistics, export and profile students, build and read
a leaderboard.

Everything here is also reachable as ``kdbench.<name>`` (imported on first use, so ``import kdbench``
stays instant). Results are the same files the command line writes, read back as plain dicts::

    import kdbench
    study = kdbench.run_search("quick", store="store", teacher="teacher.pt", study="nb", device="cpu")
    study.best_trials()          # best configuration per student, mean and CI over seeds
    rows = kdbench.load_leaderboard("leaderboard")
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdbench.errors import DataError

__all__ = ["StudyResult", "run_search", "load_study", "best_trials", "read_trials", "export_variants", "profile_models",
           "build_leaderboard", "load_leaderboard", "create_model", "model_info", "configure_logging"]


@dataclass
class StudyResult:
    """A study directory written by ``kdbench search`` and its paired statistics."""

    study_dir: Path
    statistics: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float | None = None

    def best_trials(self, per_architecture: bool = True) -> list[dict[str, Any]]:
        """The best trial per student (or overall): configuration, objective mean and CI over seeds."""
        return best_trials(self.study_dir, per_architecture)

    def trials(self) -> list[dict[str, Any]]:
        """Every trial's trial.json (configuration, state, per-seed metrics, means)."""
        return read_trials(self.study_dir)

    def comparisons(self, metric: str = "test_accuracy") -> list[dict[str, Any]]:
        """The paired comparisons (each method vs the baseline, per student) on one metric."""
        return [c for c in self.statistics.get("comparisons", []) if c.get("metric") == metric]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {"study_dir": str(self.study_dir), "statistics": self.statistics, "wall_time_s": self.wall_time_s}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyResult:
        """Inverse of ``to_dict``."""
        return cls(Path(d["study_dir"]), d.get("statistics") or {}, d.get("wall_time_s"))


def run_search(config: str | Path, store: str | Path, teacher: str | Path | None = None, *, study: str | None = None,
           run_dir: str | Path = "runs", storage: str | None = None, n_trials: int | None = None, workers: int = 1,
           device: str = "auto", no_cache: bool = False) -> StudyResult:
    """Run (or resume) a search like ``kdbench search``; ``config`` is a TOML path or a shipped name ('quick')."""
    from kdbench.search.runner import SearchRequest
    from kdbench.search.runner import run_search as _run
    from kdbench.search.space import load_space

    space = load_space(config)  # ConfigError before any work; resolves shipped names
    req = SearchRequest(config=space.path, store=Path(store), teacher=None if teacher is None else Path(teacher),
                        run_dir=Path(run_dir), storage=storage, study=study, n_trials=n_trials, workers=workers,
                        device=device, no_cache=no_cache)
    result = _run(req)
    return StudyResult(Path(result["study_dir"]), result["statistics"], result["wall_time_s"])


def load_study(study_dir: str | Path) -> StudyResult:
    """A finished (or interrupted) study directory with its statistics.json, without running anything."""
    from kdbench.search.results import read_study_json

    path = Path(study_dir)
    read_study_json(path)  # DataError when it is not a study directory
    stats_path = path / "statistics.json"
    statistics = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
    return StudyResult(path, statistics)


def best_trials(study_dir: str | Path, per_architecture: bool = True) -> list[dict[str, Any]]:
    """The best trial per student (``per_architecture``) or overall, read from the study's files."""
    from kdbench.search.results import best_trials as _best

    return _best(Path(study_dir), per_architecture)


def read_trials(study_dir: str | Path) -> list[dict[str, Any]]:
    """Every trial.json of a study directory."""
    from kdbench.search.results import read_trials as _read

    return _read(Path(study_dir))


def export_variants(store: str | Path, out: str | Path = "export", *, checkpoint: str | Path | None = None,
                    run: str | Path | None = None, study: str | Path | None = None, top: int = 3,
                    teacher: str | Path | None = None, force: bool = False, options: Any = None,
                    on_plan: Any = None, on_start: Any = None, on_done: Any = None, **settings: Any) -> Any:
    """Export like ``kdbench export``: the candidates of one of ``checkpoint``, ``run`` (a run folder) or ``study`` (a
    study folder) as every planned variant into ``out``; returns the ``kdbench.export_manifest.ExportManifest``.

    ``options`` is a ``kdbench.export.pipeline.ExportOptions``, else one is made of ``settings`` (``int8=("ort",)``,
    ``prune=(0.3,)``, ``fp16=True``, ...); ``on_plan(candidates, variant names)``, ``on_start(candidate id, variant)``
    and ``on_done(record dict)`` report progress."""
    from kdbench.export.pipeline import ExportOptions
    from kdbench.export.pipeline import export_variants as _export

    return _export(store, out, checkpoint=checkpoint, run=run, study=study, top=top,
                   options=options or ExportOptions(**settings), teacher=teacher, force=force, on_plan=on_plan,
                   on_start=on_start, on_done=on_done)


def profile_models(target: str, export: str | Path = "export", out: str | Path = "profiles", **options: Any) -> Any:
    """Profile like ``kdbench profile``: the models of ``export`` measured on (or, ``estimate=True``, estimated for)
    ``target``, merged into ``<out>/<target>/results.json``; returns a ``kdbench.profile.stage.ProfileRun`` (its new
    records, path, method). ``options``: those of ``kdbench.profile.stage.profile_models`` (``remote``, ``threads``,
    ``runtimes``, ``rule``, ``frames``, progress callbacks ...); ConfigError when nothing could be measured."""
    from kdbench.profile.stage import profile_models as _profile

    return _profile(target, export, out, **options)


def build_leaderboard(study: str | Path, out: str | Path = "leaderboard", export: str | Path | None = None,
                      profiles: str | Path | None = None, targets: list[str] | None = None,
                      plots: bool = True, margin: float | dict[str, float] | None = None,
                      include_unstable: bool = False) -> list[dict[str, Any]]:
    """Write the leaderboard directory like ``kdbench leaderboard`` and return its rows.

    ``margin``: the decisions' equivalence margin, an accuracy difference (None: the study's
    ``[study] margin``, else 0.01), or per target ``{"rpi4": 0.02, "*": 0.01}``, as ``kdbench leaderboard
    --margin``; ``include_unstable`` as ``--include-unstable``."""
    from kdbench.leaderboard.build import build_leaderboard as _build
    from kdbench.search.space import check_margin

    if margin is not None and not isinstance(margin, dict):
        margin = check_margin(margin, "margin")
    _build(Path(study), Path(out), None if export is None else Path(export),
           None if profiles is None else Path(profiles), targets, "kdbench.build_leaderboard(...)", plots,
           include_unstable, margin)
    return load_leaderboard(out)


def load_leaderboard(path: str | Path = "leaderboard") -> list[dict[str, Any]]:
    """Rows of a leaderboard directory (leaderboard.json, else leaderboard.csv) or file, each column as its type.

    From either file the same values: flags as bool, numbers as int/float or None (empty), text as str or None
    (``kdbench.leaderboard.row.typed_row``; columns are documented in ``kdbench.leaderboard.columns.COLUMNS``).
    ``pandas.DataFrame(rows)`` turns them into a table.
    """
    from kdbench.leaderboard.row import typed_row

    path = Path(path)
    if path.is_dir():
        path = path / "leaderboard.json" if (path / "leaderboard.json").is_file() else path / "leaderboard.csv"
    if not path.is_file():
        raise DataError(f"leaderboard {path} does not exist (write one with `kdbench leaderboard --out DIR`)")
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        rows = data.get("rows") if isinstance(data, dict) else data
        if not isinstance(rows, list):
            raise DataError(f"{path}: expected a list of rows or {{\"rows\": [...]}}, got {type(data).__name__}")
        return [typed_row(r) for r in rows]
    with path.open(newline="") as fh:
        return [typed_row(row) for row in csv.DictReader(fh)]


def create_model(name: str, num_classes: int = 4, pretrained: bool = False) -> Any:
    """A kdbench model (grey ``[B, 1, S, S]`` input): see ``kdbench.models.create_model``."""
    from kdbench.models import create_model as _create

    return _create(name, num_classes=num_classes, pretrained=pretrained)


def model_info(model: Any, size: int = 112) -> dict[str, int | float]:
    """``{"params", "macs", "size_mb"}`` of a kdbench model at ``size`` px."""
    from kdbench.models import model_info as _info

    return _info(model, size)


def configure_logging(mode: str = "normal") -> int:
    """Show kdbench's progress lines in a notebook ('quiet', 'normal' or 'verbose')."""
    from kdbench.logs import configure_logging as _configure

    return _configure(mode)
