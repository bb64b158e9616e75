"""Join what the earlier stages wrote into leaderboard rows, one per (configuration x variant x runtime) per target.

Inputs (formats in docs/ARCHITECTURE.md):

- the study directory of ``kdbench search`` (required): ``study.json``, ``trials/<student>/<n>/trial.json``
  with per-seed metrics, ``seed_<s>/metrics.json``, ``statistics.json``;
- the export directory of ``kdbench export`` (optional): ``manifest.json`` with one record per variant;
- the profile directory of ``kdbench profile`` (optional): ``<target>/results.json``.

Without an export the rows are the best trial of every (student, method) from the study; without
profiles there is one accuracy-only board (target ``none``). The accuracy of a row is the variant's
own test accuracy, re-measured on the exported file; the seed-mean and its interval come from the
fp32 training of the same configuration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kdbench.errors import ConfigError, DataError
from kdbench.leaderboard.columns import column_names
from kdbench.leaderboard.constraints import evaluate_constraints, load_constraints
from kdbench.leaderboard.pareto import pareto_fronts
from kdbench.manifest import read_json

NO_TARGET = "none"
_TRIAL_RE = re.compile(r"trials[/\\]([^/\\]+)[/\\](\d+)[/\\]seed_(\d+)")
_TRIAL_ID_RE = re.compile(r"^trials_(.+)_(\d+)_seed_(\d+)$")
_PRECISIONS = ("int8", "fp16")


@dataclass
class TargetBoard:
    """The rows of one target, ranked, with its constraints and the recommended model."""

    name: str
    objectives: list[tuple[str, str]]  # (column, "max" | "min") used for the fronts
    constraints: dict[str, float] = field(default_factory=dict)
    constraints_source: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)  # ranked first (by front), then unranked
    teacher_rows: list[dict[str, Any]] = field(default_factory=list)
    recommended: dict[str, Any] | None = None
    recommendation: str = ""


@dataclass
class Leaderboard:
    """Everything the renderers need: boards per target, the teacher, per-method seed results, notes."""

    study: str
    boards: list[TargetBoard]
    teacher: dict[str, Any]
    method_results: list[dict[str, Any]]
    notes: list[str]
    left_out: list[dict[str, Any]]
    inputs: dict[str, str]
    statistics_warnings: list[str] = field(default_factory=list)
    comparisons: list[dict[str, Any]] = field(default_factory=list)  # statistics.json, test accuracy


# ---------------------------------------------------------------------------------------- reading


def _read_json_file(path: Path, what: str) -> Any:
    """Read a JSON file, naming it in the error when it is not valid JSON."""
    try:
        return read_json(path)
    except ValueError as err:
        raise DataError(f"{path}: not valid JSON ({err}); expected {what}") from None


def read_study(study_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    """study.json, every trial.json and statistics.json (None when absent) of a study directory."""
    from kdbench.search.results import read_study_json, read_trials

    study_dir = Path(study_dir)
    if not study_dir.exists():
        raise DataError(f"--study {study_dir} does not exist; expected RUN_DIR/<study> written by `kdbench search`")
    info = read_study_json(study_dir)
    trials = read_trials(study_dir)
    for t in trials:
        for key in ("student", "trial", "method", "state", "seeds"):
            if key not in t:
                raise DataError(f"{t['run_dir']}/trial.json: key {key!r} missing (expected a trial written by `kdbench search`)")
    stats_path = study_dir / "statistics.json"
    stats = _read_json_file(stats_path, "the statistics of `kdbench search`") if stats_path.is_file() else None
    return info, trials, stats


def read_export(export_dir: Path) -> dict[str, Any]:
    """The export manifest, checked to hold a list of variant records."""
    path = Path(export_dir) / "manifest.json"
    if not path.is_file():
        raise DataError(f"--export {export_dir}: {path} does not exist; expected the directory written by `kdbench export`")
    doc = _read_json_file(path, "the export manifest")
    if not isinstance(doc, dict) or not isinstance(doc.get("variants"), list):
        raise DataError(f"{path}: key 'variants' missing or not a list; expected the export manifest of `kdbench export`")
    for i, v in enumerate(doc["variants"]):
        if not isinstance(v, dict):
            raise DataError(f"{path}: variants[{i}] is {type(v).__name__}; expected an object")
        for key in ("id", "variant", "status"):
            if key not in v:
                raise DataError(f"{path}: variants[{i}] has no key {key!r}")
    return doc


def available_targets(profile_dir: Path) -> list[str]:
    """Targets with a results.json under the profile directory, sorted."""
    return sorted(p.parent.name for p in Path(profile_dir).glob("*/results.json"))


def read_profile(profile_dir: Path, target: str) -> list[dict[str, Any]]:
    """The records of ``<profile_dir>/<target>/results.json``."""
    from kdbench.profile.results import load_results

    path = Path(profile_dir) / target / "results.json"
    if not path.is_file():
        have = available_targets(profile_dir)
        raise DataError(f"--targets {target}: {path} does not exist; profile results exist for {have or 'no target'} "
                        f"(run `kdbench profile --target {target} --out {profile_dir}`)")
    records = load_results(path)
    for i, r in enumerate(records):
        if "variant_id" not in r:
            raise DataError(f"{path}: record {i} has no key 'variant_id'")
    return records


# ---------------------------------------------------------------------------------------- study side


def _seed_metrics(trial: dict[str, Any], seed: str) -> dict[str, Any]:
    """metrics.metrics of one seed run of a trial ({} when its metrics.json is missing)."""
    path = Path(trial["run_dir"]) / f"seed_{seed}" / "metrics.json"
    if not path.is_file():
        return {}
    doc = _read_json_file(path, "a training run's metrics.json")
    return doc.get("metrics") or {}


def _mean(values: list[float]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def trial_summary(trial: dict[str, Any]) -> dict[str, Any]:
    """Seed-level test results of a trial: accuracies, mean, 95% CI, macro-F1, worst source, teacher accuracy."""
    from kdbench.search.statistics import mean_ci

    seeds = sorted(trial["seeds"], key=int)
    accs = [trial["seeds"][s].get("test_accuracy") for s in seeds]
    f1s = [trial["seeds"][s].get("test_macro_f1") for s in seeds]
    per_seed = [_seed_metrics(trial, s).get("test") or {} for s in seeds]
    valid = [a for a in accs if a is not None]
    low, high = mean_ci(valid)
    return {"seeds": [int(s) for s in seeds], "test_accuracies": accs, "mean": _mean(valid), "ci": (low, high),
            "n": len(valid), "macro_f1": _mean(f1s), "worst_source_accuracy": _mean([m.get("worst_source_accuracy") for m in per_seed]),
            "teacher_accuracy": next((m["teacher_accuracy"] for m in per_seed if m.get("teacher_accuracy") is not None), None)}


def best_per_method(trials: list[dict[str, Any]], objective: str) -> list[dict[str, Any]]:
    """The best completed trial (by mean ``objective`` over seeds) of every (student, method), sorted."""
    key = f"mean_{objective}"
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for t in trials:
        if t.get("state") == "complete" and t.get(key) is not None:
            groups.setdefault((t["student"], t["method"]), []).append(t)
    return [max(groups[g], key=lambda t: (t[key], -t["trial"])) for g in sorted(groups)]


def kd_significance(stats: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Per student: the 'best distillation vs baseline' comparison on test accuracy from statistics.json."""
    out: dict[str, dict[str, Any]] = {}
    for c in (stats or {}).get("comparisons", []):
        if c.get("metric") == "test_accuracy" and str(c.get("comparison", "")).startswith("best distillation vs"):
            out[c["student"]] = c
    return out


def _hparam(hparams: dict[str, Any], key: str) -> Any:
    value = (hparams or {}).get(key)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _config_columns(trial: dict[str, Any] | None, method: str | None, hparams: dict[str, Any] | None) -> dict[str, Any]:
    """The student-configuration columns from a trial (or from the variant record alone)."""
    hp = (trial or {}).get("hparams") or hparams or {}
    return {"method": (trial or {}).get("method") or method, "temperature": _hparam(hp, "temperature"),
            "alpha": _hparam(hp, "alpha"), "batch_size": ((trial or {}).get("train") or {}).get("batch_size"),
            "trial": (trial or {}).get("trial")}


# ---------------------------------------------------------------------------------------- teacher


def teacher_info(info: dict[str, Any], summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The teacher's architecture and test metrics: its teacher.json beside the checkpoint, else the seeds' record."""
    path = info.get("teacher")
    out: dict[str, Any] = {"path": path, "arch": None, "accuracy": None, "macro_f1": None,
                           "worst_source_accuracy": None, "source": None}
    if path:
        meta_path = Path(path).with_suffix(".json")
        if meta_path.is_file():
            doc = _read_json_file(meta_path, "the teacher's metrics (written by `kdbench teacher train`)")
            test = (doc.get("metrics") or {}).get("test") or {}
            out.update(arch=doc.get("arch"), accuracy=test.get("accuracy"), macro_f1=test.get("macro_f1"),
                       worst_source_accuracy=test.get("worst_source_accuracy"), source=meta_path.name)
    if out["accuracy"] is None:
        acc = next((s["teacher_accuracy"] for s in summaries if s.get("teacher_accuracy") is not None), None)
        if acc is not None:
            out.update(accuracy=acc, source="teacher_accuracy in the trials' metrics.json")
    return out


def _is_teacher(variant: dict[str, Any], cand: dict[str, Any], teacher: dict[str, Any]) -> bool:
    """True for an exported variant of the teacher (same checkpoint file, or a candidate named 'teacher')."""
    if str(variant.get("candidate", "")).lower() == "teacher":
        return True
    tpath, cpath = teacher.get("path"), cand.get("checkpoint")
    if tpath and cpath:
        try:
            return Path(tpath).resolve() == Path(cpath).resolve()
        except OSError:
            return False
    return False


# ---------------------------------------------------------------------------------------- rows


def _empty_row() -> dict[str, Any]:
    return {c: None for c in column_names()}


def _precision(variant: dict[str, Any]) -> str:
    if variant.get("precision"):
        return str(variant["precision"])
    name = str(variant.get("variant", ""))
    return next((p for p in _PRECISIONS if p in name), "fp32")


def _trial_of(cand: dict[str, Any], variant: dict[str, Any], trials: dict[tuple[str, int], dict[str, Any]]) -> dict[str, Any] | None:
    """The study trial a candidate came from, found from its run-directory path or its id."""
    for text in (cand.get("source"), cand.get("checkpoint")):
        m = _TRIAL_RE.search(str(text or ""))
        if m and (m.group(1), int(m.group(2))) in trials:
            return trials[(m.group(1), int(m.group(2)))]
    m = _TRIAL_ID_RE.match(str(variant.get("candidate", "")))
    if m and (m.group(1), int(m.group(2))) in trials:
        return trials[(m.group(1), int(m.group(2)))]
    return None


def variant_rows(export: dict[str, Any], trials: list[dict[str, Any]], summaries: dict[tuple[str, int], dict[str, Any]],
                 teacher: dict[str, Any], notes: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(student rows, teacher rows, left-out variants) from the export manifest, joined with their trials."""
    by_key = {(t["student"], int(t["trial"])): t for t in trials}
    cands = {c.get("id"): c for c in export.get("candidates", []) if isinstance(c, dict)}
    rows, teacher_rows, left_out = [], [], []
    unmatched = set()
    for v in sorted(export["variants"], key=lambda v: str(v["id"])):
        cand = cands.get(v.get("candidate"), {})
        if v["status"] != "ok":
            left_out.append({"variant_id": v["id"], "reason": v.get("reason") or "failed"})
            continue
        test = (v.get("metrics") or {}).get("test") or {}
        row = _empty_row()
        is_teacher = _is_teacher(v, cand, teacher)
        trial = None if is_teacher else _trial_of(cand, v, by_key)
        row.update(_config_columns(trial, v.get("method"), cand.get("hparams")))
        row.update(student=v.get("student") or cand.get("student"), variant=v["variant"], precision=_precision(v),
                   runtime=v.get("runtime"), accuracy=test.get("accuracy"), macro_f1=test.get("macro_f1"),
                   worst_source_accuracy=test.get("worst_source_accuracy"), size_mb=v.get("size_mb"),
                   params=v.get("params"), macs=v.get("macs"), variant_id=v["id"])
        if trial is not None:
            s = summaries[(trial["student"], int(trial["trial"]))]
            row.update(seed_mean_accuracy=s["mean"], seed_ci_low=s["ci"][0], seed_ci_high=s["ci"][1], n_seeds=s["n"])
        elif not is_teacher:
            unmatched.add(str(v.get("candidate")))
        if row["accuracy"] is None and row["seed_mean_accuracy"] is not None:
            row["accuracy"] = row["seed_mean_accuracy"]
            row["note"] = "the variant has no test accuracy in the export manifest: accuracy is the seed mean"
        elif row["accuracy"] is None:
            row["note"] = "no test accuracy in the export manifest"
        if is_teacher:
            row["method"] = "teacher"
            teacher_rows.append(row)
        else:
            rows.append(row)
    if unmatched:
        notes.append(f"exported candidate(s) {', '.join(sorted(unmatched))} could not be matched to a trial of this study: "
                     "their seed-mean interval, T, alpha and batch size are left empty")
    return rows, teacher_rows, left_out


def study_rows(best: list[dict[str, Any]], summaries: dict[tuple[str, int], dict[str, Any]]) -> list[dict[str, Any]]:
    """Accuracy-only rows (no export): the best trial of every (student, method), scored by its seed mean."""
    rows = []
    for t in best:
        s = summaries[(t["student"], int(t["trial"]))]
        row = _empty_row()
        row.update(_config_columns(t, None, None))
        row.update(student=t["student"], variant="checkpoint", precision="fp32", accuracy=s["mean"],
                   seed_mean_accuracy=s["mean"], seed_ci_low=s["ci"][0], seed_ci_high=s["ci"][1], n_seeds=s["n"],
                   macro_f1=s["macro_f1"], worst_source_accuracy=s["worst_source_accuracy"],
                   note="not exported: accuracy is the seed mean of the trained checkpoints")
        rows.append(row)
    return rows


def _pick_records(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Batch-1 records per variant id, one per (runtime, precision), a measurement preferred to an estimate."""
    chosen: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in records:
        if r.get("batch", 1) != 1:
            continue
        key = (str(r["variant_id"]), str(r.get("runtime")), str(r.get("precision")))
        old = chosen.get(key)
        rank = (r.get("status") == "ok", bool(r.get("measured", True)))
        if old is None or rank > (old.get("status") == "ok", bool(old.get("measured", True))):
            chosen[key] = r
    out: dict[str, list[dict[str, Any]]] = {}
    for key in sorted(chosen):
        out.setdefault(key[0], []).append(chosen[key])
    return out


def join_profile(base: list[dict[str, Any]], records: dict[str, list[dict[str, Any]]], target: str) -> list[dict[str, Any]]:
    """One row per (variant, runtime) measured on ``target``; a variant without a usable record stays, unranked."""
    out = []
    for row in base:
        recs = records.get(str(row.get("variant_id")), [])
        if not recs:
            out.append({**row, "target": target, "note": row.get("note") or f"no profile result on {target}"})
            continue
        for r in recs:
            new = {**row, "target": target, "runtime": r.get("runtime") or row.get("runtime")}
            if r.get("precision") and r.get("precision") != row.get("precision") and str(r.get("runtime", "")).startswith("pytorch"):
                new["precision"] = r["precision"]
            if r.get("status") != "ok":
                new["note"] = f"profiling failed: {r.get('error')}"
                out.append(new)
                continue
            lat = r.get("latency_ms") or {}
            measured = bool(r.get("measured", True))
            new.update(latency_p50_ms=lat.get("p50"), latency_p90_ms=lat.get("p90"), fps=r.get("fps"),
                       memory_mb=r.get("rss_increment_mb"), measured="measured" if measured else "estimated",
                       error_band_pct=None if measured else (r.get("error_band") or {}).get("pct"))
            if new.get("size_mb") is None:
                new["size_mb"] = r.get("file_size_mb")
            out.append(new)
    return out


# ---------------------------------------------------------------------------------------- ranking


def _sort_key(row: dict[str, Any]) -> tuple:
    def num(v: Any, sign: float = 1.0) -> float:
        return sign * float(v) if v is not None else float("inf")

    return (row["front"] if row.get("front") is not None else 10**9, num(row.get("accuracy"), -1.0),
            num(row.get("latency_p50_ms")), num(row.get("size_mb")), str(row.get("variant_id") or ""),
            str(row.get("student") or ""), str(row.get("method") or ""), str(row.get("runtime") or ""))


def rank_rows(rows: list[dict[str, Any]], objectives: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Set 'front' and 'pareto' on the rows that have every objective; return all rows, ranked first."""
    rankable = [r for r in rows if all(r.get(c) is not None for c, _ in objectives)]
    fronts = pareto_fronts([[r[c] for c, _ in objectives] for r in rankable], [s for _, s in objectives])
    for r, f in zip(rankable, fronts):
        r["front"], r["pareto"] = f, "yes" if f == 1 else "no"
    for r in rows:
        if r.get("front") is None:
            missing = [c for c, _ in objectives if r.get(c) is None]
            r["pareto"] = ""
            if not r.get("note"):
                r["note"] = f"not ranked: no {', '.join(missing)}"
    return sorted(rows, key=_sort_key)


def recommend(board: TargetBoard) -> None:
    """Pick the board's recommended model: the most accurate ranked model that meets the constraints."""
    ranked = [r for r in board.rows if r.get("front") is not None]
    if not ranked:
        board.recommendation = "no model could be ranked on this target (see the notes in the table)"
        return
    eligible = [r for r in ranked if r["meets_constraints"] in ("yes", "n/a")]
    if not eligible:
        unknown = [r for r in ranked if r["meets_constraints"] == "unknown"]
        fastest = min(ranked, key=lambda r: (r["latency_p50_ms"] if r.get("latency_p50_ms") is not None else float("inf"), _sort_key(r)))
        text = f"no model meets the constraints on {board.name}"
        if unknown:
            text += f" ({len(unknown)} could not be checked: a constrained figure was not measured)"
        if fastest.get("fps") is not None:
            text += (f"; the fastest is {row_label(fastest)} at {fastest['fps']:.1f} fps "
                     f"({'; '.join(fastest.get('violations_list') or []) or 'no violation'})")
        board.recommendation = text
        return
    # The most accurate eligible model is Pareto-optimal among the eligible ones; ties go to the faster, smaller one.
    best = min(eligible, key=lambda r: (-r["accuracy"], r["latency_p50_ms"] if r.get("latency_p50_ms") is not None else 0.0,
                                        r["size_mb"] if r.get("size_mb") is not None else 0.0, _sort_key(r)))
    board.recommended = best
    if best["meets_constraints"] == "yes":
        where = "on the Pareto front" if best["front"] == 1 else (
            f"front {best['front']}: every model dominating it breaks a constraint")
        board.recommendation = f"{row_label(best)}: the most accurate model that meets every constraint ({where})"
    else:
        board.recommendation = f"{row_label(best)}: the most accurate model (no constraints defined for this target; front {best['front']})"


def row_label(row: dict[str, Any]) -> str:
    """A short name of a row: student / method / variant @ runtime."""
    runtime = f" @ {row['runtime']}" if row.get("runtime") else ""
    return f"{row.get('student')} / {row.get('method')} / {row.get('variant')}{runtime}"


# ---------------------------------------------------------------------------------------- the whole board


def collect(study_dir: Path, export_dir: Path | None = None, profile_dir: Path | None = None,
            targets: list[str] | None = None) -> Leaderboard:
    """Read every input and build the leaderboard: ranked boards per target, teacher, per-method seed results."""
    notes: list[str] = []
    info, trials, stats = read_study(study_dir)
    objective = (info.get("config") or {}).get("objective", "val_accuracy")
    complete = [t for t in trials if t.get("state") == "complete"]
    if not complete:
        raise DataError(f"{study_dir}: no completed trial (run `kdbench search`, or see `kdbench search status`)")
    summaries = {(t["student"], int(t["trial"])): trial_summary(t) for t in complete}
    best = best_per_method(complete, objective)
    teacher = teacher_info(info, list(summaries.values()))
    if stats is None:
        notes.append(f"{Path(study_dir) / 'statistics.json'} not found: the KD-vs-scratch columns are empty "
                     "(it is written when `kdbench search` finishes)")
    sig = kd_significance(stats)

    left_out: list[dict[str, Any]] = []
    teacher_base: list[dict[str, Any]] = []
    if export_dir is not None:
        export = read_export(export_dir)
        base, teacher_base, left_out = variant_rows(export, complete, summaries, teacher, notes)
        if not base:
            raise DataError(f"{Path(export_dir) / 'manifest.json'}: no student variant with status 'ok' "
                            f"({len(left_out)} failed); nothing to rank")
    else:
        notes.append("no --export given: rows are the best trial of every (student, method), scored by their seed-mean "
                     "test accuracy; no size, latency or constraints")
        base = study_rows(best, summaries)

    teacher_acc = teacher.get("accuracy")
    for row in base + teacher_base:
        if teacher_acc and row.get("accuracy") is not None:
            row["relative_accuracy"] = row["accuracy"] / teacher_acc
    for row in base:
        c = sig.get(str(row.get("student")))
        if c is not None:
            row.update(kd_vs_scratch_diff=c.get("diff"), kd_vs_scratch_p_holm=c.get("p_holm"),
                       kd_vs_scratch_p_a_gt_b=c.get("p_a_gt_b"))
    if teacher_acc is None:
        notes.append("the teacher's test accuracy is unknown (no teacher.json beside the study's teacher and no "
                     "teacher_accuracy in the trials): relative accuracy is left empty")

    boards: list[TargetBoard] = []
    if targets and profile_dir is None:
        raise ConfigError(f"--targets {','.join(targets)} needs --profiles (the directory written by `kdbench profile`)")
    if profile_dir is not None and export_dir is None:
        notes.append(f"--profiles {profile_dir} ignored: profile results are keyed by exported variant id, so they need "
                     "--export as well")
        profile_dir = None
    if profile_dir is None:
        notes.append("no profile results: accuracy-only leaderboard (no latency, memory or constraints)")
        objectives = [("accuracy", "max")] + ([("size_mb", "min")] if all(r.get("size_mb") is not None for r in base) else [])
        rows = [{**r, "target": NO_TARGET, "meets_constraints": "n/a", "violations_list": []} for r in base]
        board = TargetBoard(NO_TARGET, objectives, rows=rank_rows(rows, objectives),
                            teacher_rows=[{**r, "target": NO_TARGET} for r in teacher_base])
        recommend(board)
        boards.append(board)
    else:
        profile_dir = Path(profile_dir)
        if not profile_dir.is_dir():
            raise DataError(f"--profiles {profile_dir} does not exist; expected the directory written by `kdbench profile`")
        names = targets or available_targets(profile_dir)
        if not names:
            raise DataError(f"--profiles {profile_dir}: no <target>/results.json inside; run `kdbench profile` first")
        objectives = [("accuracy", "max"), ("latency_p50_ms", "min"), ("size_mb", "min")]
        for name in names:
            records = _pick_records(read_profile(profile_dir, name))
            constraints, source = load_constraints(name, profile_dir)
            rows = join_profile(base, records, name)
            for r in rows:
                verdict, reasons = evaluate_constraints(r, constraints)
                r["meets_constraints"], r["violations_list"] = verdict, reasons
                r["violations"] = "; ".join(reasons) or None
            board = TargetBoard(name, objectives, constraints, source, rank_rows(rows, objectives),
                                teacher_rows=join_profile(teacher_base, records, name))
            for r in board.teacher_rows:
                verdict, reasons = evaluate_constraints(r, constraints)
                r["meets_constraints"], r["violations"] = verdict, "; ".join(reasons) or None
            recommend(board)
            boards.append(board)

    method_results = []
    for t in best:
        s = summaries[(t["student"], int(t["trial"]))]
        method_results.append({"student": t["student"], "method": t["method"], "trial": t["trial"], **s})
    return Leaderboard(study=str(info.get("study") or Path(study_dir).name), boards=boards, teacher=teacher,
                       method_results=method_results, notes=notes, left_out=left_out,
                       inputs={"study": str(study_dir), "export": str(export_dir) if export_dir else "",
                               "profiles": str(profile_dir) if profile_dir else ""},
                       statistics_warnings=list((stats or {}).get("warnings", [])),
                       comparisons=[c for c in (stats or {}).get("comparisons", []) if c.get("metric") == "test_accuracy"])
