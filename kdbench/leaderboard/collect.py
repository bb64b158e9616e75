"""Join what the earlier stages wrote into leaderboard rows, one per (configuration x variant x runtime) per target.

Inputs (formats in docs/ARCHITECTURE.md):

- the study directory of ``kdbench search`` (required): ``study.json``, ``trials/<student>/<n>/trial.json``
  with per-seed metrics, ``seed_<s>/metrics.json`` (and ``predictions.npz``), ``statistics.json`` and, when
  ``kdbench search confirm`` ran, ``confirm/statistics.json``;
- the export directory of ``kdbench export`` (optional): ``manifest.json`` with one record per variant,
  each naming its student, trial and seed;
- the profile directory of ``kdbench profile`` (optional): ``<target>/results.json``.

Without an export the rows are the best trial of every (student, method) from the study, scored by their
seed means; without profiles there is one accuracy-only board (target ``none``). Every choice (ranking,
fronts, recommendation) is made on validation figures; test figures are reported beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kdbench.errors import ConfigError, DataError
from kdbench.export_manifest import MANIFEST, ExportManifest, VariantRecord
from kdbench.layout import trial_dir
from kdbench.leaderboard.decisions import ValHits
from kdbench.leaderboard.rank import not_ranked, rank_rows, recommend
from kdbench.leaderboard.row import BoardRow
from kdbench.leaderboard.seeds import SeedSummary, seed_metrics, summarise_trial
from kdbench.manifest import read_json
from kdbench.profile.constraints import evaluate_constraints, load_constraints
from kdbench.profile.results import ProfileRecord, load_results
from kdbench.search.comparison import Comparison, comparisons_of
from kdbench.search.space import DEFAULT_MARGIN, check_margin
from kdbench.search.selection import best_trial
from kdbench.search.trial_record import TrialRecord

NO_TARGET = "none"
_PRECISIONS = ("int8", "fp16")


@dataclass
class TargetBoard:
    """The rows of one target, ranked, with its constraints and the recommended model."""

    name: str
    objectives: list[tuple[str, str]]  # (column, "max" | "min") used for the fronts
    constraints: dict[str, float] = field(default_factory=dict)
    constraints_source: str = ""
    rows: list[BoardRow] = field(default_factory=list)  # ranked first (by front), then unranked
    teacher_rows: list[BoardRow] = field(default_factory=list)
    recommended: BoardRow | None = None
    recommendation: str = ""
    left_out_unstable: int = 0  # ranked rows left out of the recommendation as unstable
    margin: float = DEFAULT_MARGIN  # equivalence margin of the decisions (kdbench.leaderboard.decisions)


@dataclass
class Leaderboard:
    """Everything the renderers need: boards per target, the teacher, per-method seed results, notes."""

    study: str
    boards: list[TargetBoard]
    teacher: dict[str, Any]
    method_results: list[SeedSummary]
    notes: list[str]
    left_out: list[dict[str, Any]]
    inputs: dict[str, str]
    statistics_warnings: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)  # KD-vs-scratch etc., test accuracy
    comparisons_source: str = ""  # "confirm" | "search" | ""
    split_sizes: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)  # split -> (frames, clips)
    pareto: dict[str, Any] | None = None  # multi-objective study: {"target", "objectives", "rows"} (pareto_section)
    families: dict[str, str] = field(default_factory=dict)  # student -> family, when the study declared families
    margin: float = DEFAULT_MARGIN  # equivalence margin of the decisions
    margin_source: str = "default"  # "--margin" | "study" | "default"
    margin_basis: str = ""  # the study's `[study] margin_basis`: why this margin (printed beside it)
    ece_floor: tuple[int, float, float] | None = None  # (test frames, median, 95th percentile): calibrated model's ECE


# ---------------------------------------------------------------------------------------- reading


def _read_json_file(path: Path, what: str) -> Any:
    """Read a JSON file, naming it in the error when it is not valid JSON."""
    try:
        return read_json(path)
    except ValueError as err:
        raise DataError(f"{path}: not valid JSON ({err}); expected {what}") from None


def read_study(study_dir: Path) -> tuple[dict[str, Any], list[TrialRecord]]:
    """study.json and every trial of a study directory (TrialRecord names a trial.json missing a key)."""
    from kdbench.search.results import read_study_json, study_trial_records

    study_dir = Path(study_dir)
    if not study_dir.exists():
        raise DataError(f"--study {study_dir} does not exist; expected RUN_DIR/<study> written by `kdbench search`")
    return read_study_json(study_dir), study_trial_records(study_dir)


def read_statistics(study_dir: Path, notes: list[str] | None = None) -> tuple[dict[str, Any] | None, str]:
    """The study's statistics and where they come from: confirm/statistics.json (fresh seeds) first, then the search's.

    A confirmation counts only when it confirmed the configurations the finished study chooses now
    (kdbench.search.confirm.confirmation_problem); otherwise the search's, with one note in ``notes`` saying why.
    """
    from kdbench.search.confirm import confirmation_problem

    confirm = Path(study_dir) / "confirm" / "statistics.json"
    if confirm.is_file():
        stats = _read_json_file(confirm, "the statistics of `kdbench search confirm`")
        why = confirmation_problem(Path(study_dir), stats) if isinstance(stats, dict) else "not a JSON object"
        if why is None:
            return stats, "confirm"
        if notes is not None:
            notes.append(f"{confirm} not used: {why}; KD vs scratch comes from the search's own runs, among which the "
                         "best configuration was chosen: optimistic (rerun `kdbench search confirm` once the search "
                         "has finished)")
    path = Path(study_dir) / "statistics.json"
    if path.is_file():
        return _read_json_file(path, "the statistics of `kdbench search`"), "search"
    return None, ""


def read_export(export_dir: Path) -> ExportManifest:
    """The export manifest (its variant records and candidates)."""
    path = Path(export_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"--export {export_dir}: {path} does not exist; expected the directory written by `kdbench export`")
    return ExportManifest.read(export_dir)


def available_targets(profile_dir: Path) -> list[str]:
    """Targets with a results.json under the profile directory, sorted."""
    return sorted(p.parent.name for p in Path(profile_dir).glob("*/results.json"))


def read_profile(profile_dir: Path, target: str) -> list[ProfileRecord]:
    """The records of ``<profile_dir>/<target>/results.json`` (older records read as today's)."""
    path = Path(profile_dir) / target / "results.json"
    if not path.is_file():
        have = available_targets(profile_dir)
        raise DataError(f"--targets {target}: {path} does not exist; profile results exist for {have or 'no target'} "
                        f"(run `kdbench profile --target {target} --out {profile_dir}`)")
    return load_results(path)


def open_study_store(info: dict[str, Any], notes: list[str]) -> Any:
    """The study's frame store (for seed+clip intervals), or None with a note when it cannot be opened."""
    from kdbench.data.store import FrameStore

    path = info.get("store")
    if not path:
        return None
    try:
        return FrameStore.open(path)
    except DataError as err:
        notes.append(f"the study's frame store could not be opened ({err}): seed-mean intervals resample seeds only")
        return None


# ---------------------------------------------------------------------------------------- study side


def best_per_method(trials: list[TrialRecord], objective: str) -> list[TrialRecord]:
    """The best completed trial (by mean ``objective`` over seeds, a validation figure) of every (student, method)."""
    groups: dict[tuple[str, str], list[TrialRecord]] = {}
    for t in trials:
        if t.state == "complete" and t.mean(objective) is not None:
            groups.setdefault((t.student, t.method), []).append(t)
    return [best_trial(groups[g], objective) for g in sorted(groups)]  # the search's one best-trial rule


def kd_significance(comparisons: list[Comparison]) -> dict[str, Comparison]:
    """Per student: the best distillation method vs the baseline on test accuracy (its row marked best_distillation)."""
    return {c.student: c for c in comparisons if c.metric == "test_accuracy" and c.best_distillation}


def _hparam(hparams: dict[str, Any], key: str) -> Any:
    value = (hparams or {}).get(key)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def method_settings(trial: TrialRecord | None, method: str | None, hparams: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """The settings the method ran with: the trial's recorded ``method_settings``, else its (or, without a trial,
    the exported candidate's) ``hparams`` over the method's defaults (kdbench.distill.registry.resolved_hparams)."""
    from kdbench.distill.registry import resolved_hparams  # defers torch

    if trial is None:
        return resolved_hparams(method, hparams)
    if isinstance(trial.method_settings, dict):
        return trial.method_settings
    return resolved_hparams(trial.method, trial.hparams)


def config_columns(trial: TrialRecord | None, method: str | None, hparams: dict[str, Any] | None = None
                   ) -> dict[str, Any]:
    """The student-configuration columns from a trial (or, outside a study, the method and its candidate's hparams)."""
    method = trial.method if trial is not None else method
    hp = method_settings(trial, method, hparams)
    return {"method": method, "temperature": _hparam(hp, "temperature"),
            "alpha": _hparam(hp, "alpha"), "train_batch_size": trial.train.get("batch_size") if trial else None,
            "trial": trial.trial if trial else None}


def _ci(metrics: dict[str, Any], key: str) -> tuple[Any, Any]:
    ci = metrics.get(key)
    return (ci[0], ci[1]) if isinstance(ci, (list, tuple)) and len(ci) == 2 else (None, None)


def metric_columns(val: dict[str, Any], test: dict[str, Any]) -> dict[str, Any]:
    """The accuracy columns of one evaluated model from its val/test metrics (kdbench.metrics.classification_metrics)."""
    (vlo, vhi), (tlo, thi), (clo, chi) = _ci(val, "accuracy_ci"), _ci(test, "accuracy_ci"), _ci(test, "clip_accuracy_ci")
    gap = test.get("shortcut_gap") or {}
    return {"val_accuracy": val.get("accuracy"), "val_accuracy_low": vlo, "val_accuracy_high": vhi,
            "test_accuracy": test.get("accuracy"), "test_accuracy_low": tlo, "test_accuracy_high": thi,
            "test_clip_accuracy": test.get("clip_accuracy"), "test_clip_accuracy_low": clo,
            "test_clip_accuracy_high": chi, "test_macro_f1": test.get("macro_f1"),
            "test_clip_macro_f1": test.get("clip_macro_f1"), "test_ece": test.get("ece"),
            "test_ece_low": _ci(test, "ece_ci")[0], "test_ece_high": _ci(test, "ece_ci")[1],
            "test_worst_source_accuracy": test.get("worst_source_accuracy"), "shortcut_view": gap.get("view"),
            "shortcut_sources": " > ".join(str(s) for s in gap.get("sources") or []) or None,
            "shortcut_gap": gap.get("gap"), "test_frames": test.get("n"), "test_clips": test.get("n_clips")}


def seed_columns(s: SeedSummary) -> dict[str, Any]:
    """The seed-mean columns of a trial's summary."""
    low, high = s.intervals["test"]
    ratio, rlo, rhi = s.relative or (None, None, None)
    return {"seed_mean_val_accuracy": s.means["val"], "seed_mean_test_accuracy": s.means["test"],
            "seed_test_low": low, "seed_test_high": high, "seed_interval": s.interval_kind, "n_seeds": s.n,
            "seed_relative_accuracy": ratio, "seed_relative_low": rlo, "seed_relative_high": rhi}


# ---------------------------------------------------------------------------------------- teacher


def teacher_info(info: dict[str, Any], summaries: list[SeedSummary]) -> dict[str, Any]:
    """The teacher's architecture and test metrics: its teacher.json beside the checkpoint, else the seeds' record."""
    path = info.get("teacher")
    out: dict[str, Any] = {"path": path, "arch": None, "accuracy": None, "macro_f1": None, "val_accuracy": None,
                           "worst_source_accuracy": None, "clip_accuracy": None, "ece": None, "source": None}
    if path:
        meta_path = Path(path).with_suffix(".json")
        if meta_path.is_file():
            doc = _read_json_file(meta_path, "the teacher's metrics (written by `kdbench teacher train`)")
            test = (doc.get("metrics") or {}).get("test") or {}
            out.update(arch=doc.get("arch"), source=meta_path.name,
                       val_accuracy=((doc.get("metrics") or {}).get("val") or {}).get("accuracy"),
                       **{k: test.get(k) for k in ("accuracy", "macro_f1", "worst_source_accuracy", "clip_accuracy", "ece")})
    if out["accuracy"] is None:
        acc = next((s.teacher_accuracy for s in summaries if s.teacher_accuracy is not None), None)
        if acc is not None:
            out.update(accuracy=acc, source="teacher_accuracy in the trials' metrics.json")
    return out


def _is_teacher(variant: VariantRecord, cand: dict[str, Any], teacher: dict[str, Any]) -> bool:
    """True for an exported variant of the teacher (same checkpoint file, or a candidate named 'teacher')."""
    if variant.candidate.lower() == "teacher":
        return True
    tpath, cpath = teacher.get("path"), cand.get("checkpoint")
    if tpath and cpath:
        try:
            return Path(tpath).resolve() == Path(cpath).resolve()
        except OSError:
            return False
    return False


# ---------------------------------------------------------------------------------------- rows


def _precision(variant: VariantRecord) -> str:
    if variant.precision:
        return variant.precision
    return next((p for p in _PRECISIONS if p in variant.variant), "fp32")


def model_name(row: BoardRow) -> str:
    """The model column, timm-style '<architecture>.<weights tag>': 'mobilenet_v3_small.vanilla_trial1_int8_ort'."""
    trial = f"_trial{row.trial}" if row.trial is not None else ""
    return f"{row.student}.{row.method}{trial}_{row.variant}"


def _variant_row(v: VariantRecord, trial: dict[str, Any] | None, hparams: dict[str, Any] | None = None) -> BoardRow:
    """The row of one exported variant: its own re-measured figures and its configuration (the trial's, else the
    exported candidate's ``hparams``)."""
    metrics = v.metrics or {}
    return BoardRow(student=v.student, variant=v.variant, precision=_precision(v), runtime=v.runtime, seed=v.seed,
                    infer_img_size=v.input_size, size_mb=v.size_mb,
                    param_count=v.params / 1e6 if v.params is not None else None,
                    infer_gmacs=v.macs / 1e9 if v.macs is not None else None, variant_id=v.id,
                    **config_columns(trial, v.method, hparams), **metric_columns(metrics.get("val") or {}, metrics.get("test") or {}))


def variant_rows(variants: list[VariantRecord], candidates: dict[str, dict[str, Any]], trials: list[TrialRecord],
                 summaries: dict[tuple[str, int], SeedSummary], teacher: dict[str, Any],
                 notes: list[str]) -> tuple[list[BoardRow], list[BoardRow], list[dict[str, Any]]]:
    """(student rows, teacher rows, left-out variants) from the export's records, joined with their trials."""
    by_key = {t.key: t for t in trials}
    rows, teacher_rows, left_out, unmatched = [], [], [], set()
    for v in sorted(variants, key=lambda v: v.id):
        if v.status != "ok":
            left_out.append({"variant_id": v.id, "reason": v.reason or "failed"})
            continue
        cand = candidates.get(v.candidate, {})
        is_teacher = _is_teacher(v, cand, teacher)
        trial = None if is_teacher or v.trial is None else by_key.get((str(v.student), v.trial))
        row = _variant_row(v, trial, cand.get("hparams"))
        if trial is not None:
            row = row.replace(**seed_columns(summaries[trial.key]))
        elif not is_teacher:
            unmatched.add(v.candidate)
        if row.val_accuracy is None:
            row.decision_note = not_ranked("no validation accuracy in the export manifest")
        if is_teacher:
            teacher_rows.append(row.replace(method="teacher"))
        else:
            rows.append(row)
    if unmatched:
        notes.append(f"exported candidate(s) {', '.join(sorted(unmatched))} name no completed trial of this study: "
                     "their seed means and training batch size are left empty (T and alpha: the candidate's hparams)")
    return rows, teacher_rows, left_out


def study_rows(best: list[TrialRecord], summaries: dict[tuple[str, int], SeedSummary]) -> list[BoardRow]:
    """Accuracy-only rows (no export): the best trial of every (student, method), scored by its seed means."""
    rows = []
    for t in best:
        s = summaries[t.key]
        val = {"accuracy": s.means["val"], "accuracy_ci": s.intervals["val"]}
        test = {**s.test, "accuracy": s.means["test"], "accuracy_ci": s.intervals["test"]}
        rows.append(BoardRow(student=t.student, variant="checkpoint", precision="fp32", **metric_columns(val, test),
                             **config_columns(t, None), **seed_columns(s)))
    return rows


def _pick_records(records: list[ProfileRecord]) -> dict[str, list[ProfileRecord]]:
    """Batch-1 records per variant id, one per (runtime, precision), a measurement preferred to an estimate."""
    chosen: dict[tuple[str, str, str], ProfileRecord] = {}
    for r in records:
        if r.batch != 1:
            continue
        key = (str(r.variant_id), str(r.runtime), str(r.precision))
        old = chosen.get(key)
        if old is None or (r.status == "ok", bool(r.measured)) > (old.status == "ok", bool(old.measured)):
            chosen[key] = r
    out: dict[str, list[ProfileRecord]] = {}
    for key in sorted(chosen):
        out.setdefault(key[0], []).append(chosen[key])
    return out


def _bands(r: ProfileRecord, p50: float | None, fps: float | None) -> dict[str, Any]:
    """Latency, fps and memory bands: the record's own (a measurement's run spread, an estimate's band), else an
    estimate's ± error band applied to p50 and fps."""
    runs = [float(v) for v in r.p50_runs_ms or [] if v is not None]
    out = {"latency_p50_low_ms": min(runs) if runs else None, "latency_p50_high_ms": max(runs) if runs else None,
           "fps_low": r.fps_low, "fps_high": r.fps_high, "model_memory_mb_low": r.model_memory_mb_low,
           "model_memory_mb_high": r.model_memory_mb_high}
    pct = (r.error_band or {}).get("pct")
    if not r.measured and pct is not None and 0 <= float(pct) < 100:
        f = float(pct) / 100.0
        if out["latency_p50_low_ms"] is None and p50 is not None:
            out.update(latency_p50_low_ms=p50 * (1 - f), latency_p50_high_ms=p50 * (1 + f))
        if out["fps_low"] is None and fps is not None:
            out.update(fps_low=fps / (1 + f), fps_high=fps / (1 - f))
    return out


def timm_speed(p50_ms: float | None, batch: int) -> dict[str, Any]:
    """timm's speed columns of a median step time: infer_batch_size, infer_step_time (ms) and infer_samples_per_sec."""
    rate = batch * 1000.0 / p50_ms if p50_ms else None
    return {"infer_batch_size": batch, "infer_step_time": p50_ms, "infer_samples_per_sec": rate}


def _profile_columns(r: ProfileRecord) -> dict[str, Any]:
    """The hardware columns of one ok profile record."""
    lat = r.latency_ms or {}
    measured = bool(r.measured)
    out = {"latency_p50_ms": lat.get("p50"), "latency_p90_ms": lat.get("p90"), "fps": r.fps,
           "model_memory_mb": r.model_memory_mb, "peak_rss_mb": r.process_peak_rss_mb,
           "estimated": not measured, "runtime_version": r.runtime_version,
           "threads": r.threads, **timm_speed(lat.get("p50"), r.batch),
           "unstable": measured and r.stable is False,
           "frame_fps": r.frame_fps, "error_band_pct": None if measured else (r.error_band or {}).get("pct")}
    out.update(_bands(r, out["latency_p50_ms"], out["fps"]))
    return out


def join_profile(base: list[BoardRow], records: dict[str, list[ProfileRecord]], target: str) -> list[BoardRow]:
    """One row per (variant, runtime) measured on ``target``; a variant without a usable record stays, unranked."""
    out = []
    for row in base:
        recs = records.get(str(row.variant_id), [])
        if not recs:
            why = row.decision_note or not_ranked(f"no profile result on {target}")
            out.append(row.replace(target=target, decision_note=why))
            continue
        for r in recs:
            new = row.replace(target=target, runtime=r.runtime or row.runtime, precision=r.precision or row.precision)
            if r.status != "ok":
                out.append(new.replace(decision_note=not_ranked(f"profiling failed: {r.error}")))
                continue
            new = new.replace(**_profile_columns(r))
            if new.size_mb is None:
                new.size_mb = r.file_size_mb
            out.append(new)
    return out


# ---------------------------------------------------------------------------------------- the whole board


def apply_verdicts(rows: list[BoardRow], constraints: dict[str, float]) -> None:
    """Set each row's verdict and its reasons with the shared constraint evaluator (the one `kdbench profile` uses)."""
    for r in rows:
        status, reasons = evaluate_constraints(r.to_dict(), constraints)
        r.verdict, r.verdict_reasons = status, "; ".join(reasons) or None


def _split_sizes(rows: list[BoardRow], summaries: list[SeedSummary], study_dir: Path) -> dict[str, tuple[Any, Any]]:
    """(frames, clips) of the validation and test splits, from the evaluated models' own metrics."""
    test = next(((r.test_frames, r.test_clips) for r in rows if r.test_frames), None)
    val = None
    for s in summaries:
        for seed in s.seeds:
            m = seed_metrics(trial_dir(study_dir, s.student, s.trial), seed)
            test = test or ((m.get("test") or {}).get("n"), (m.get("test") or {}).get("n_clips"))
            val = ((m.get("val") or {}).get("n"), (m.get("val") or {}).get("n_clips"))
            break
        if val:
            break
    return {"val": val or (None, None), "test": test or (None, None)}


def _boards(base: list[BoardRow], teacher_base: list[BoardRow], profile_dir: Path | None, targets: list[str] | None,
            include_unstable: bool, notes: list[str], predictions: dict[str, ValHits] | None = None,
            margin: float = DEFAULT_MARGIN, per_target: dict[str, float] | None = None) -> list[TargetBoard]:
    """One ranked board per target (or the accuracy-only board); decisions on ``predictions`` at ``margin``,
    or at ``per_target[name]`` for a target given its own (``--margin rpi4=0.02``)."""
    per_target = per_target or {}
    if profile_dir is None:
        if per_target:
            name = sorted(per_target)[0]
            raise ConfigError(f"--margin {name}={per_target[name]:g}: an accuracy-only leaderboard (no --profiles) has "
                              "no targets; give one margin")
        notes.append("no profile results: accuracy-only leaderboard (no latency, memory or constraints)")
        objectives = [("val_accuracy", "max")] + ([("size_mb", "min")] if all(r.size_mb is not None for r in base) else [])
        rows = [r.replace(target=NO_TARGET, verdict="n/a") for r in base]
        board = TargetBoard(NO_TARGET, objectives, rows=rank_rows(rows, objectives, predictions, margin),
                            teacher_rows=[r.replace(target=NO_TARGET) for r in teacher_base], margin=margin)
        recommend(board, include_unstable)
        return [board]
    profile_dir = Path(profile_dir)
    if not profile_dir.is_dir():
        raise DataError(f"--profiles {profile_dir} does not exist; expected the directory written by `kdbench profile`")
    names = targets or available_targets(profile_dir)
    if not names:
        raise DataError(f"--profiles {profile_dir}: no <target>/results.json inside; run `kdbench profile` first")
    objectives = [("val_accuracy", "max"), ("latency_p50_ms", "min"), ("size_mb", "min")]
    unknown = sorted(set(per_target) - set(names))
    if unknown:
        raise ConfigError(f"--margin {unknown[0]}={per_target[unknown[0]]:g}: no target {unknown[0]!r} on this "
                          f"leaderboard; expected one of {', '.join(names)}")
    boards = []
    for name in names:
        board_margin = per_target.get(name, margin)
        records = _pick_records(read_profile(profile_dir, name))
        constraints, source = load_constraints(name, profile_dir)
        rows = join_profile(base, records, name)
        apply_verdicts(rows, constraints)
        board = TargetBoard(name, objectives, constraints, source,
                            rank_rows(rows, objectives, predictions, board_margin),
                            teacher_rows=join_profile(teacher_base, records, name), margin=board_margin)
        apply_verdicts(board.teacher_rows, constraints)
        recommend(board, include_unstable)
        boards.append(board)
    return boards


def student_families(info: dict[str, Any]) -> dict[str, str]:
    """{student: family} of a study that searched families (kdbench.search.families), else {}."""
    from kdbench.search.families import family_of

    cfg = info.get("config") or {}
    if not cfg.get("families"):
        return {}
    return {s: family_of(s, cfg["families"]) for s in cfg.get("students") or []}


def pareto_section(study_dir: Path, info: dict[str, Any], summaries: dict[tuple[str, int], SeedSummary]
                   ) -> dict[str, Any] | None:
    """A multi-objective study's Pareto front (kdbench.search.results.best_trials(pareto=True), over every
    student) with its seed-mean accuracies and estimated prices; None for a single-objective study."""
    from kdbench.search.results import best_trial_records, study_objectives

    objectives = study_objectives(info)
    if len(objectives) < 2:
        return None
    rows = []
    for e in best_trial_records(study_dir, per_architecture=False, pareto=True):
        s, price = summaries[(e.student, int(e.trial))], e.price or {}
        rows.append({"family": e.family or e.student, "student": e.student, "trial": e.trial,
                     "input_size": e.input_size, "method": e.method, "hparams": e.hparams,
                     "val_accuracy": e.mean, "val_interval": list(s.intervals["val"]),
                     "test_accuracy": s.means["test"], "test_interval": list(s.intervals["test"]),
                     "interval_kind": s.interval_kind, "n_seeds": e.n_seeds,
                     **{k: price.get(k) for k in ("precision", "latency_ms", "fps", "fps_low", "fps_high",
                                                   "model_memory_mb", "error_band_pct", "status", "method")}})
    return {"target": objectives[1].partition("@")[2], "objectives": objectives, "rows": rows}


def study_margin(info: dict[str, Any], margin: float | None = None) -> tuple[float, str]:
    """The equivalence margin and where it comes from: ``--margin``, else the study's ``[study] margin``, else 0.01."""
    if margin is not None:
        return check_margin(margin, "--margin"), "--margin"
    cfg = info.get("config") or {}
    value = cfg.get("margin", ((cfg.get("raw") or {}).get("study") or {}).get("margin"))
    if value is not None:
        return check_margin(value, "study.json config.margin ([study] margin)"), "study"
    return DEFAULT_MARGIN, "default"


def _margin_basis(info: dict[str, Any]) -> str:
    """The study's one line on why its margin (``[study] margin_basis``), or ''."""
    cfg = info.get("config") or {}
    basis = cfg.get("margin_basis", ((cfg.get("raw") or {}).get("study") or {}).get("margin_basis"))
    return basis if isinstance(basis, str) else ""


def _load_variant_predictions(export_dir: Path, rec: VariantRecord) -> tuple[ValHits, dict[str, Any]]:
    """An exported variant's validation hits (one checkpoint) and its test ECE interval, from the predictions
    ``kdbench export`` saved beside it; ValHits(missing=why) when there are none."""
    from kdbench.leaderboard.calibration import ece_interval

    if not rec.predictions:
        return ValHits(missing="`kdbench export` saved no per-frame predictions for this variant (an older export: "
                               "rerun it to add them)"), {}
    path = Path(export_dir) / rec.predictions
    if not path.is_file():
        return ValHits(missing=f"its per-frame predictions {path} are missing (rerun `kdbench export`)"), {}
    try:
        with np.load(path) as doc:
            arrays = {k: np.asarray(doc[k]) for k in doc.files}
        val = {k: arrays[f"val_{k}"] for k in ("logits", "rows", "labels", "clips")}
    except (OSError, ValueError, KeyError) as err:
        raise DataError(f"{path}: not the per-frame predictions `kdbench export` writes ({err}); rerun `kdbench export`") from None
    if not (len(val["logits"]) == len(val["rows"]) == len(val["labels"]) == len(val["clips"])):
        raise DataError(f"{path}: val logits, rows, labels and clips differ in length; rerun `kdbench export`")
    hits = ValHits(hits=(val["logits"].argmax(axis=1) == val["labels"])[None], rows=val["rows"], clips=val["clips"])
    extra: dict[str, Any] = {}
    if all(f"test_{k}" in arrays for k in ("logits", "labels", "clips")):
        ci = ece_interval([arrays["test_logits"]], arrays["test_labels"], arrays["test_clips"])
        if ci is not None:
            extra = {"test_ece_low": ci[0], "test_ece_high": ci[1]}
    return hits, extra


def variant_predictions(export_dir: Path, variants: list[VariantRecord], rows: list[BoardRow]) -> dict[str, ValHits]:
    """Validation hits per variant id (kdbench.leaderboard.rank.hits_key) for the decisions; sets each row's test
    ECE interval from the same file."""
    by_id = {v.id: v for v in variants}
    out: dict[str, ValHits] = {}
    for row in rows:
        rec = by_id.get(str(row.variant_id))
        if rec is None:
            continue
        if rec.id not in out:
            out[rec.id], extra = _load_variant_predictions(export_dir, rec)
            for key, value in extra.items():
                setattr(row, key, value)
    return out


def _ece_floor(rows: list[BoardRow]) -> tuple[int, float, float] | None:
    """(test frames, median, 95th percentile) ECE of a perfectly calibrated model on the test split's size."""
    from kdbench.leaderboard.calibration import ece_noise_floor

    frames = next((int(r.test_frames) for r in rows if r.test_frames), None)
    return (frames, *ece_noise_floor(frames)) if frames else None


def collect(study_dir: Path, export_dir: Path | None = None, profile_dir: Path | None = None,
            targets: list[str] | None = None, include_unstable: bool = False,
            margin: float | dict[str, float] | None = None) -> Leaderboard:
    """Read every input and build the leaderboard: ranked boards per target, teacher, per-method seed results.

    ``margin``: the decisions' equivalence margin (None: the study's ``[study] margin``, else 0.01), or a
    dict of per-target margins, ``"*"`` for the others (``--margin 0.01 --margin rpi4=0.02``)."""
    notes: list[str] = []
    study_dir = Path(study_dir)
    info, trials = read_study(study_dir)
    default, per_target = (margin.get("*"), {k: check_margin(v, f"--margin {k}=") for k, v in margin.items()
                                             if k != "*"}) if isinstance(margin, dict) else (margin, {})
    margin, margin_source = study_margin(info, default)
    stats, stats_source = read_statistics(study_dir, notes)
    confirm_not_used = bool(notes)  # read_statistics said why it fell back to the search's statistics
    objective = (info.get("config") or {}).get("objective", "val_accuracy")
    complete = [t for t in trials if t.state == "complete"]
    if not complete:
        raise DataError(f"{study_dir}: no completed trial (run `kdbench search`, or see `kdbench search status`)")
    store = open_study_store(info, notes)
    summaries = {t.key: summarise_trial(t, store) for t in complete}
    best = best_per_method(complete, objective)
    teacher = teacher_info(info, list(summaries.values()))
    if stats is None:
        notes.append(f"{study_dir / 'statistics.json'} not found: the KD-vs-scratch columns are empty "
                     "(it is written when `kdbench search` finishes)")
    elif stats_source == "search" and not confirm_not_used:
        notes.append("KD vs scratch comes from the search's own runs, among which the best configuration was chosen: "
                     "optimistic (run `kdbench search confirm` for fresh seeds)")
    if targets and profile_dir is None:
        raise ConfigError(f"--targets {','.join(targets)} needs --profiles (the directory written by `kdbench profile`)")

    left_out: list[dict[str, Any]] = []
    teacher_base: list[BoardRow] = []
    if export_dir is not None:
        manifest = read_export(export_dir)
        variants, candidates = manifest.variants, {c.get("id"): c for c in manifest.candidates}
        base, teacher_base, left_out = variant_rows(variants, candidates, complete, summaries, teacher, notes)
        if not base:
            raise DataError(f"{Path(export_dir) / 'manifest.json'}: no student variant with status 'ok' "
                            f"({len(left_out)} failed); nothing to rank")
        predictions = variant_predictions(Path(export_dir), variants, base)
    else:
        notes.append("no --export given: rows are the best trial of every (student, method), scored by their seed means; "
                     "no size, latency or constraints")
        base = study_rows(best, summaries)
        predictions = {f"{t.student}/trial {t.trial}": summaries[t.key].val_hits for t in best}
        if profile_dir is not None:
            notes.append(f"--profiles {profile_dir} ignored: profile results are keyed by exported variant id, so they "
                         "need --export as well")
            profile_dir = None

    teacher_acc = teacher.get("accuracy")
    comparisons = comparisons_of(stats, where=f"{study_dir} statistics ({stats_source})")
    sig = kd_significance(comparisons)
    for row in base + teacher_base:
        row.model = model_name(row)
        if teacher_acc and row.test_accuracy is not None:
            row.relative_accuracy = row.test_accuracy / teacher_acc
    for row in base:
        c = sig.get(str(row.student))
        if c is not None:
            row.kd_vs_scratch_diff, row.kd_vs_scratch_p_holm = c.diff, c.p_holm
            row.kd_vs_scratch_verdict, row.kd_vs_scratch_source = c.verdict, stats_source
    if teacher_acc is None:
        notes.append("the teacher's test accuracy is unknown (no teacher.json beside the study's teacher and no "
                     "teacher_accuracy in the trials): relative accuracy is left empty")

    boards = _boards(base, teacher_base, profile_dir, targets, include_unstable, notes, predictions, margin, per_target)
    method_results = [summaries[t.key] for t in best]
    return Leaderboard(study=str(info.get("study") or study_dir.name), boards=boards, teacher=teacher,
                       method_results=method_results, notes=notes, left_out=left_out,
                       inputs={"study": str(study_dir), "export": str(export_dir) if export_dir else "",
                               "profiles": str(profile_dir) if profile_dir else ""},
                       statistics_warnings=list((stats or {}).get("warnings", [])),
                       comparisons=[c for c in comparisons if c.metric == "test_accuracy"],
                       comparisons_source=stats_source,
                       split_sizes=_split_sizes(base, method_results, study_dir),
                       pareto=pareto_section(study_dir, info, summaries), families=student_families(info),
                       margin=margin, margin_source=margin_source, ece_floor=_ece_floor(base),
                       margin_basis=_margin_basis(info) if margin_source == "study" else "")
