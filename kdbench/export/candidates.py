"""Which students to export: a checkpoint, a run directory, or a study's best trials, resolved to
a list of candidates (checkpoint + how it was trained)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdbench.errors import ConfigError, DataError
from kdbench.manifest import read_json
from kdbench.search.results import BestTrial, best_trial_records

log = logging.getLogger(__name__)

# Files in a study directory that may list its best trials, checked in this order.
STUDY_LISTS = ("best_trials.json", "manifest.json")
STUDY_KEYS = ("best_trials", "candidates", "pareto")


@dataclass
class Candidate:
    """One trained student to turn into deployable variants."""

    id: str  # directory name under EXPORT/ and prefix of its variant ids
    checkpoint: Path
    student: str | None = None  # architecture; read from the checkpoint when None
    method: str | None = None  # distillation method it was trained with (for the pruning fine-tune)
    hparams: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # TrainConfig as a dict
    teacher: str | None = None  # teacher file recorded with the run, if any
    source: str = ""  # where it came from (for the manifest)
    training_metrics: dict[str, Any] = field(default_factory=dict)  # {"val": {...}, "test": {...}} from training
    trial: int | None = None  # the study trial it belongs to (a `kdbench search` study only)
    seed: int | None = None  # its training seed

    def describe(self) -> dict[str, Any]:
        """Plain-JSON form for the export manifest."""
        return {"id": self.id, "checkpoint": str(self.checkpoint), "student": self.student, "method": self.method,
                "hparams": self.hparams, "teacher": self.teacher, "source": self.source, "trial": self.trial,
                "seed": self.seed,
                "training_val_accuracy": (self.training_metrics.get("val") or {}).get("accuracy"),
                "training_test_accuracy": (self.training_metrics.get("test") or {}).get("accuracy")}


def _safe_id(text: str) -> str:
    """A directory-safe candidate id."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "candidate"


def from_run_dir(run_dir: str | Path, cid: str | None = None) -> Candidate:
    """A candidate from a training run directory (``best.pt`` + ``metrics.json``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run directory {run_dir} does not exist (expected a directory with best.pt and metrics.json)")
    ckpt = run_dir / "best.pt"
    if not ckpt.is_file():
        raise DataError(f"run directory {run_dir} has no best.pt (the run may have failed before its first epoch)")
    meta_path = run_dir / "metrics.json"
    meta: dict[str, Any] = {}
    if meta_path.is_file():
        try:
            meta = read_json(meta_path)
        except ValueError as err:
            raise DataError(f"{meta_path} is not valid JSON: {err}") from None
        if not isinstance(meta, dict):
            raise DataError(f"{meta_path} holds a {type(meta).__name__}; expected a JSON object")
        if not run_ok(meta):
            raise DataError(f"{meta_path}: status {meta.get('status')!r}; only runs with status 'ok' are exported "
                            "(a run whose loss went non-finite has no trustworthy checkpoint)")
    seed = (meta.get("config") or {}).get("seed")
    return Candidate(
        id=_safe_id(cid or run_dir.name),
        checkpoint=ckpt,
        student=meta.get("student") or meta.get("arch"),
        method=meta.get("method"),
        hparams=dict(meta.get("hparams") or {}),
        config=dict(meta.get("config") or {}),
        teacher=meta.get("teacher"),
        source=str(run_dir),
        training_metrics=dict(meta.get("metrics") or {}),
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
    )


def run_ok(meta: dict[str, Any]) -> bool:
    """True when a run's metrics.json says it finished normally (no status, from older runs, counts as ok)."""
    return meta.get("status", "ok") == "ok"


def from_checkpoint(path: str | Path) -> Candidate:
    """A candidate from a checkpoint file; its directory's metrics.json is used when it is a run directory."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist (expected a .pt file written by kdbench)")
    if path.name == "best.pt" and (path.parent / "metrics.json").is_file():
        return from_run_dir(path.parent)
    return Candidate(id=_safe_id(path.parent.name + "_" + path.stem if path.stem == "best" else path.stem),
                     checkpoint=path, source=str(path))


def _listed_runs(study_dir: Path) -> list[Path] | None:
    """Run directories a study lists as its best trials, or None when it lists none."""
    for name in STUDY_LISTS:
        path = study_dir / name
        if not path.is_file():
            continue
        try:
            doc = read_json(path)
        except ValueError as err:
            raise DataError(f"{path} is not valid JSON: {err}") from None
        entries = doc if isinstance(doc, list) and name == "best_trials.json" else None
        if isinstance(doc, dict):
            entries = next((doc[k] for k in STUDY_KEYS if isinstance(doc.get(k), list)), None)
        if entries is None:
            continue
        runs: list[Path] = []
        for i, entry in enumerate(entries):
            ref = entry if isinstance(entry, str) else (entry.get("run_dir") or entry.get("checkpoint")) if isinstance(entry, dict) else None
            if not ref:
                raise DataError(f"{path}: entry {i} ({entry!r}) names no run; expected a path or an object with 'run_dir' or 'checkpoint'")
            p = Path(ref) if Path(ref).is_absolute() else study_dir / ref
            runs.append(p.parent if p.suffix == ".pt" else p)
        return runs
    return None


def _config_key(meta: dict[str, Any]) -> str:
    """Identity of a trained configuration regardless of seed (student, method, hparams, config less seed)."""
    from kdbench.manifest import config_hash

    cfg = {k: v for k, v in (meta.get("config") or {}).items() if k != "seed"}
    return config_hash([meta.get("student"), meta.get("method"), meta.get("hparams"), cfg])


def from_study_dir(study_dir: str | Path, top: int = 3) -> list[Candidate]:
    """The best trials of a study directory.

    A study written by ``kdbench search`` (it has ``study.json``) gives its best trial per student
    (by mean validation accuracy over seeds), each represented by its best seed's checkpoint.
    Otherwise, when the study lists them (``best_trials.json``, or a ``best_trials``/``candidates``/``pareto``
    list in ``manifest.json``: paths or objects with ``run_dir``/``checkpoint``), those; otherwise
    the ``top`` configurations by validation accuracy among the run directories found under it,
    each represented by its best seed.
    """
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise DataError(f"study directory {study_dir} does not exist")
    if (study_dir / "study.json").is_file():
        return _from_search_study(study_dir)
    listed = _listed_runs(study_dir)
    if listed is not None:
        if not listed:
            raise DataError(f"study directory {study_dir} lists no best trials")
        return _unique([from_run_dir(p, _safe_id(str(p.relative_to(study_dir)) if p.is_relative_to(study_dir) else p.name)) for p in listed])
    best: dict[str, tuple[float, Path, dict[str, Any]]] = {}
    for metrics in sorted(study_dir.rglob("metrics.json")):
        run = metrics.parent
        if not (run / "best.pt").is_file():
            continue
        try:
            meta = read_json(metrics)
        except ValueError:
            continue
        if not isinstance(meta, dict) or not run_ok(meta):
            continue
        acc = ((meta.get("metrics") or {}).get("val") or {}).get("accuracy")
        if acc is None:
            continue
        key = _config_key(meta)
        if key not in best or acc > best[key][0]:
            best[key] = (float(acc), run, meta)
    if not best:
        raise DataError(
            f"study directory {study_dir} has no run directories (best.pt + metrics.json with validation "
            "metrics) and no best_trials.json"
        )
    ranked = sorted(best.values(), key=lambda t: (-t[0], str(t[1])))[:top]
    return _unique([from_run_dir(run, _safe_id(str(run.relative_to(study_dir)))) for _, run, _ in ranked])


def _from_search_study(study_dir: Path) -> list[Candidate]:
    """A study written by `kdbench search`: its best trial per student, each as its best finished seed's run."""
    out = []
    for best in best_trial_records(study_dir, per_architecture=True):
        run = _best_ok_seed(best)
        cand = from_run_dir(run, _safe_id(best.student))
        cand.student, cand.trial = best.student, int(best.trial)
        out.append(cand)
    return out


def _best_ok_seed(best: BestTrial) -> Path:
    """The run dir of a best trial's best seed, or of its best seed with status ok and a checkpoint when that one is not."""
    preferred = Path(best.best_seed_dir or "")
    order = [preferred] + [Path(d) for _, d in sorted(best.seed_dirs.items()) if Path(d) != preferred]
    for run in order:
        meta_path = run / "metrics.json"
        meta = read_json(meta_path) if meta_path.is_file() else {}
        if (run / "best.pt").is_file() and isinstance(meta, dict) and run_ok(meta):
            if run != preferred:
                log.warning("trial %s of %s: exporting %s, the best seed %s is not exportable", best.trial,
                            best.student, run.name, preferred.name)
            return run
    raise DataError(f"{preferred} has no best.pt with status 'ok' in metrics.json, nor has any other seed of trial "
                    f"{best.trial} of {best.student}: the study kept no exportable checkpoint")


def _unique(cands: list[Candidate]) -> list[Candidate]:
    """Make candidate ids unique by suffixing repeats with -2, -3, ..."""
    seen: dict[str, int] = {}
    for c in cands:
        n = seen.get(c.id, 0) + 1
        seen[c.id] = n
        if n > 1:
            c.id = f"{c.id}-{n}"
    return cands


def resolve_candidates(
    checkpoint: str | Path | None = None, run: str | Path | None = None, study_dir: str | Path | None = None,
    top: int = 3,
) -> list[Candidate]:
    """Candidates from exactly one of a checkpoint, a run directory or a study directory."""
    given = [name for name, v in (("--checkpoint", checkpoint), ("--run", run), ("--study", study_dir)) if v]
    if len(given) != 1:
        raise ConfigError(f"give exactly one of --checkpoint, --run, --study (got {', '.join(given) or 'none'})")
    if checkpoint:
        return [from_checkpoint(checkpoint)]
    if run:
        return [from_run_dir(run)]
    return from_study_dir(study_dir, top=top)  # type: ignore[arg-type]
