"""Write the leaderboard as Markdown (README.md, for people), CSV (leaderboard.csv) and JSON (leaderboard.json).

All three are functions of the collected rows only: no timestamps, no absolute paths beyond those the
user passed, stable ordering, so the same inputs give byte-identical files. The CSV and the JSON hold
the same rows (``BoardRow.to_dict``).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from kdbench.leaderboard.collect import NO_TARGET, Leaderboard, TargetBoard
from kdbench.leaderboard.columns import COLUMNS, column_names
from kdbench.profile.constraints import describe_constraints
from kdbench.leaderboard.decisions import fmt_margin
from kdbench.leaderboard.rank import row_label
from kdbench.leaderboard.row import BoardRow, number

EST = "≈"  # prefix of an estimated figure in the Markdown
BIASED = "†"  # suffix of a selection-biased validation figure (the best's and the recommended model's)
JSON_FORMAT = 2  # 2: flags are booleans (recommended + recommended_uncertain, estimated, unstable), no 'note'; timm columns

# The per-target tables of README.md: a main table that fits GitHub's content width (about 950 px) and, in a
# collapsible block, every other figure of the same rows.
MAIN_HEADERS = ("model", "decision", "val acc<br>(95% CI)", "test acc<br>(95% CI)", "p50<br>ms", "model<br>MB",
                "size<br>MB", "verdict")
_MAIN_RIGHT = {2, 3, 4, 5, 6}
_RUNTIME_SHORT = {"onnxruntime": "ORT"}  # in the main tables' model cells
DETAIL_HEADERS = (
    "model", "front", "decision vs best: best - this [95% CI]", "T", "α", "train batch",
    "variant (precision, runtime)", "test clip acc (95% CI)", "seed-mean test acc (95% CI) (n)",
    "rel. to teacher (seed mean) (95% CI)", "macro-F1", "ECE", "shortcut gap", "p50 ms (band)", "fps (band)",
    "params (M)", "GMACs", "figures", "verdict", "KD vs scratch: Holm p, verdict",
)
_DETAIL_RIGHT = {1, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}


# ---------------------------------------------------------------------------------------- formatting


def fmt_num(value: Any, digits: int = 3) -> str:
    """A number with fixed decimals, or '-' when absent, not finite or not a number."""
    x = number(value)
    return "-" if x is None else f"{x:.{digits}f}"


def fmt_p(value: Any) -> str:
    """A p-value or probability: '<0.001' for tiny values, else three decimals ('-' when it is not a number)."""
    x = number(value)
    return "-" if x is None else "<0.001" if x < 0.001 else f"{x:.3f}"


def fmt_ci(value: Any, low: Any, high: Any, n: Any = None, kind: str | None = None) -> str:
    """A figure with its interval: '0.912 [0.897, 0.925]', with '(n=5, seeds+clips)' for seed means."""
    if value is None:
        return "-"
    text = fmt_num(value) + (f" [{fmt_num(low)}, {fmt_num(high)}]" if low is not None and high is not None else " [no CI]")
    extra = ", ".join(p for p in (f"n={n}" if n is not None else "", kind or "") if p)
    return f"{text} ({extra})" if extra else text


def _band(value: Any, low: Any, high: Any, digits: int) -> str:
    """An estimated figure with its band: '12.0 (8.0-16.0)'."""
    text = fmt_num(value, digits)
    if text != "-" and low is not None and high is not None:
        text += f" ({fmt_num(low, digits)}-{fmt_num(high, digits)})"
    return text


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _est(row: BoardRow, text: str) -> str:
    """Prefix a figure of an estimated row with the estimate sign."""
    return f"{EST}{text}" if row.estimated and text != "-" else text


def _profiled(row: BoardRow) -> bool:
    """Whether a profile result gave the row its speed figures."""
    return row.latency_p50_ms is not None or row.fps is not None


def _figures(row: BoardRow) -> str:
    if row.estimated:
        return f"estimated ±{row.error_band_pct:g}%" if row.error_band_pct is not None else "estimated"
    if not _profiled(row):
        return "-"
    return "measured, UNSTABLE" if row.unstable else "measured"


def variant_label(row: BoardRow) -> str:
    """'int8_ort (int8, onnxruntime)'; the precision is left out when the variant name says it."""
    parts = [p for p in (row.precision, row.runtime) if p and p != row.variant]
    return f"{row.variant} ({', '.join(parts)})" if parts else str(row.variant)


def _verdict(row: BoardRow) -> str:
    verdict = row.verdict or "-"
    return f"{verdict}: {row.verdict_reasons}" if row.verdict_reasons and verdict in ("fails", "uncertain", "unknown") else verdict


def _shortcut(row: BoardRow) -> str:
    return f"{row.shortcut_view} {fmt_num(row.shortcut_gap, 2)}" if row.shortcut_gap is not None else "-"


def _sig(row: BoardRow) -> str:
    if row.kd_vs_scratch_p_holm is None and row.kd_vs_scratch_verdict is None:
        return "-"
    return (f"{fmt_p(row.kd_vs_scratch_p_holm)}, {row.kd_vs_scratch_verdict or '-'}"
            + (f" ({row.kd_vs_scratch_source})" if row.kd_vs_scratch_source else ""))


def _opt(value: Any, digits: int) -> str:
    return fmt_num(value, digits) if value is not None else "-"


def decision_cell(row: BoardRow) -> str:
    """'worse [+0.052, +0.108]'; an undecided row with what would settle it (or why it was not compared)."""
    if row.decision is None:
        return "-"
    ci = (f" [{row.decision_ci_low:+.3f}, {row.decision_ci_high:+.3f}]"
          if row.decision_ci_low is not None and row.decision_ci_high is not None else "")
    if row.decision == "undecided":
        note = row.decision_note or ""
        return f"undecided{ci}: {note.split('; ', 1)[1] if '; ' in note else note}"
    if row.decision == "equivalent" and not ci and row.decision_note:
        return f"equivalent: {row.decision_note}"
    return f"{row.decision}{ci}"


def fmt_iv(value: Any, low: Any, high: Any, digits: int = 3) -> str:
    """A figure with its 95% interval, compactly: '0.912 (0.897–0.925)'; '0.912 (no CI)' without one."""
    if value is None:
        return "-"
    if low is None or high is None:
        return f"{fmt_num(value, digits)} (no CI)"
    return f"{fmt_num(value, digits)} ({fmt_num(low, digits)}–{fmt_num(high, digits)})"


def _biased(row: BoardRow, text: str) -> str:
    """Mark a validation figure chosen on these frames (the best's, the recommended model's) selection-biased."""
    return text + BIASED if text != "-" and (row.decision == "best" or row.recommended) else text


def val_cell(row: BoardRow) -> str:
    """The validation accuracy with its interval, marked † when it was chosen on these frames (best, recommended)."""
    return _biased(row, fmt_iv(row.val_accuracy, row.val_accuracy_low, row.val_accuracy_high))


def test_cell(row: BoardRow) -> str:
    return fmt_iv(row.test_accuracy, row.test_accuracy_low, row.test_accuracy_high)


def ece_cell(row: BoardRow) -> str:
    """ECE with its clip-bootstrap interval where the per-frame test predictions were saved."""
    if row.test_ece is not None and row.test_ece_low is not None and row.test_ece_high is not None:
        return fmt_iv(row.test_ece, row.test_ece_low, row.test_ece_high)
    return fmt_num(row.test_ece)


def short_model(row: BoardRow) -> str:
    """The model in two short lines: 'student<br>method · variant @ runtime' (ORT for onnxruntime; the runtime left
    out when the variant name carries it)."""
    variant = str(row.variant or "-")
    runtime = _RUNTIME_SHORT.get(row.runtime or "", row.runtime or "")
    shown = runtime and not any(n.lower() in variant.lower() for n in (runtime, row.runtime))
    return f"{row.student or '-'}<br>{row.method or '-'} · {variant}{f' @ {runtime}' if shown else ''}"


def _two_lines(text: str) -> str:
    """'0.825 (0.785–0.865)†' as '0.825†<br>(0.785–0.865)' (a narrow column); other text as it is."""
    value, sep, interval = text.partition(" (")
    return f"{value}{BIASED if text.endswith(BIASED) else ''}<br>({interval.rstrip(BIASED)}" if sep else text


def _main_cells(row: BoardRow) -> list[str]:
    """The cells of one row in the main table (MAIN_HEADERS order)."""
    return [short_model(row), row.decision or "-", _two_lines(val_cell(row)), _two_lines(test_cell(row)),
            _est(row, fmt_num(row.latency_p50_ms, 2)), _est(row, fmt_num(row.model_memory_mb, 1)),
            fmt_num(row.size_mb, 2), row.verdict or "-"]


def _seed_mean(row: BoardRow) -> str:
    text = fmt_iv(row.seed_mean_test_accuracy, row.seed_test_low, row.seed_test_high)
    extra = ", ".join(p for p in (f"n={row.n_seeds}" if row.n_seeds is not None else "", row.seed_interval or "") if p)
    return f"{text} ({extra})" if extra and text != "-" else text


def _detail_cells(row: BoardRow) -> list[str]:
    """The cells of one row in the 'all figures' table (DETAIL_HEADERS order): what the main table leaves out."""
    return [
        row_label(row), str(row.front) if row.front is not None else "-", decision_cell(row),
        _opt(row.temperature, 1), _opt(row.alpha, 2),
        str(row.train_batch_size) if row.train_batch_size is not None else "-", variant_label(row),
        fmt_iv(row.test_clip_accuracy, row.test_clip_accuracy_low, row.test_clip_accuracy_high), _seed_mean(row),
        _relative(row), fmt_num(row.test_macro_f1), ece_cell(row), _shortcut(row),
        _est(row, _band(row.latency_p50_ms, row.latency_p50_low_ms, row.latency_p50_high_ms, 2)),
        _est(row, _band(row.fps, row.fps_low, row.fps_high, 1)), fmt_num(row.param_count, 2),
        fmt_num(row.infer_gmacs, 3), _figures(row), _verdict(row), _sig(row),
    ]


def markdown_table(headers: list[str] | tuple[str, ...], rows: list[list[str]], right: set[int] | None = None) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned)."""
    right = right or set()
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(headers))) + "|"]
    for r in rows:
        if len(r) != len(headers):
            raise ValueError(f"table row has {len(r)} cells for {len(headers)} headers: {r}")
        lines.append("| " + " | ".join(_cell(c) for c in r) + " |")
    return "\n".join(lines)


def rows_table(rows: list[BoardRow]) -> str:
    """A per-target main table of rows (fits GitHub's content width)."""
    return markdown_table(MAIN_HEADERS, [_main_cells(r) for r in rows], _MAIN_RIGHT)


def details_block(summary: str, body: list[str]) -> list[str]:
    """A collapsible block; the blank line after <summary> makes GitHub render the Markdown inside."""
    return [f"<details><summary>{summary}</summary>", ""] + body + ["", "</details>", ""]


def details_table(board: TargetBoard, rows: list[BoardRow]) -> list[str]:
    """Every figure of the ranked rows that the main tables leave out, in a collapsible block."""
    where = f"target {board.name}" if board.name != NO_TARGET else "the accuracy-only board"
    table = markdown_table(DETAIL_HEADERS, [_detail_cells(r) for r in rows], _DETAIL_RIGHT)
    return details_block(f"All figures for {where}", [table])


# ---------------------------------------------------------------------------------------- README


def _board_title(board: TargetBoard) -> str:
    return "Accuracy only (no profile results)" if board.name == NO_TARGET else f"Target `{board.name}`"


def _anchor(board: TargetBoard) -> str:
    return "accuracy-only" if board.name == NO_TARGET else f"target-{board.name}".lower()


def _objectives(board: TargetBoard) -> str:
    names = {"val_accuracy": "validation accuracy ↑", "latency_p50_ms": "batch-1 latency p50 ↓", "size_mb": "file size ↓"}
    return ", ".join(names.get(c, c) for c, _ in board.objectives)


def split_size_text(lb: Leaderboard) -> str:
    """'Test figures: 64 test frames from 16 clips; validation: 60 frames from 15 clips.'"""
    parts = []
    for split, word in (("test", "test"), ("val", "validation")):
        frames, clips = lb.split_sizes.get(split, (None, None))
        if frames:
            parts.append(f"{frames} {word} frames" + (f" from {clips} clips" if clips else " (clip count not recorded)"))
    return ("The figures rest on " + " and ".join(parts) + ".") if parts else "The split sizes were not recorded."


def _relative(row: BoardRow) -> str:
    """The seed-mean accuracy relative to the teacher with its paired interval; else this variant's ratio."""
    if row.seed_relative_accuracy is not None:
        return fmt_iv(row.seed_relative_accuracy, row.seed_relative_low, row.seed_relative_high)
    return fmt_num(row.relative_accuracy) + (" (this variant, no interval)" if row.relative_accuracy is not None else "")


_VS_BEST = {"best": "best on validation", "equivalent": "equivalent to the best", "worse": "worse than the best",
            "undecided": "undecided against the best"}


def _why(r: BoardRow) -> str:
    """Why the recommended row won, in short (the rule of kdbench.leaderboard.rank.recommend)."""
    if r.recommended_uncertain:
        return (f"no model surely meets the constraints and this one's estimate band straddles a limit "
                f"({r.verdict_reasons or '-'}): measure it on the target before relying on it")
    meets = r.verdict == "meets"
    if r.decision in ("best", "equivalent"):
        return ("the fastest (then smallest) of the models that are best or equivalent to the most accurate one"
                + (" and meet every constraint" if meets else ""))
    return (f"no model{' that meets every constraint' if meets else ''} is best or equivalent to the most accurate "
            f"one, so the most accurate one{' that does' if meets else ''}")


def _speed(b: TargetBoard, r: BoardRow) -> str:
    """'≈12.00 ms p50 / ≈79.4 fps on rpi4 (estimated), model memory ≈30.0 MB'; '' without any such figure."""
    if r.latency_p50_ms is None and r.fps is None:
        return ""
    text = (f"{_est(r, fmt_num(r.latency_p50_ms, 2))} ms p50 / {_est(r, fmt_num(r.fps, 1))} fps on {b.name}"
            + (" (estimated)" if r.estimated else ""))
    memory = r.model_memory_mb
    return text + (f", model memory {_est(r, fmt_num(memory, 1))} MB" if memory is not None else "")


def recommendation_sentence(b: TargetBoard) -> str:
    """One sentence per target: what to ship, its accuracies, its speed and memory there, and why it won."""
    where = f"**{b.name}** ({describe_constraints(b.constraints)})" if b.name != NO_TARGET else "**Accuracy only**"
    r = b.recommended
    if r is None:
        return f"- {where}: nothing to ship: {b.recommendation}."
    flag = "UNCERTAIN: " if r.recommended_uncertain else ""
    parts = [f"validation accuracy {val_cell(r)} ({_VS_BEST.get(r.decision, 'no decision')})",
             f"test accuracy {test_cell(r)}", _speed(b, r), f"size {fmt_num(r.size_mb, 2)} MB"]
    return f"- {where}: {flag}ship **{row_label(r)}**: {', '.join(p for p in parts if p)}; why: {_why(r)}."


def _recommendation_lines(lb: Leaderboard) -> list[str]:
    return (["**What to ship, per target**", ""] + [recommendation_sentence(b) for b in lb.boards]
            + ["", f"Accuracies with their 95% interval (low–high); {BIASED} selection-biased (chosen on these "
               f"frames: read the test figure); {EST} estimated, not measured; ORT: onnxruntime. How the choice is made: "
               "[How to read this page](#how-to-read-this-page).", ""])


def _teacher_lines(lb: Leaderboard) -> list[str]:
    out = ["**Teacher (reference, not ranked).**"]
    t = lb.teacher
    desc = f"{t.get('arch') or 'teacher'}"
    if t.get("accuracy") is not None:
        desc += f": test accuracy {fmt_num(t['accuracy'])}"
        for key, name in (("clip_accuracy", "clip accuracy"), ("macro_f1", "macro-F1"),
                          ("worst_source_accuracy", "worst-source accuracy"), ("ece", "ECE")):
            if t.get(key) is not None:
                desc += f", {name} {fmt_num(t[key])}"
        desc += f" (from {t.get('source')})"
    else:
        desc += ": test accuracy unknown"
    out += [desc + ".", ""]
    trows = [r for b in lb.boards for r in b.teacher_rows]
    if not trows:
        return out + ["The teacher was not exported or profiled, so it has no latency or size here.", ""]
    return out + _teacher_tables(trows)


def _teacher_tables(trows: list[BoardRow]) -> list[str]:
    """The teacher's variants per target: the figures to compare against, then every figure collapsed."""
    main = markdown_table(
        ["target", "variant", "test acc<br>(95% CI)", "p50<br>ms", "fps", "model<br>MB", "size<br>MB", "verdict"],
        [[r.target or "-", variant_label(r), _two_lines(test_cell(r)), _est(r, fmt_num(r.latency_p50_ms, 2)),
          _est(r, fmt_num(r.fps, 1)), _est(r, fmt_num(r.model_memory_mb, 1)), fmt_num(r.size_mb, 2), r.verdict or "-"]
         for r in trows], {2, 3, 4, 5, 6})
    full = markdown_table(
        ["target", "variant (precision, runtime)", "test acc (95% CI)", "p50 ms", "fps", "model MB", "size MB",
         "params (M)", "GMACs", "figures", "verdict"],
        [[r.target or "-", variant_label(r), test_cell(r),
          _est(r, fmt_num(r.latency_p50_ms, 2)), _est(r, fmt_num(r.fps, 1)), _est(r, fmt_num(r.model_memory_mb, 1)),
          fmt_num(r.size_mb, 2), fmt_num(r.param_count, 2), fmt_num(r.infer_gmacs, 3),
          _figures(r) if _profiled(r) else (r.decision_note or "-"), _verdict(r)] for r in trows],
        {2, 3, 4, 5, 6, 7, 8})
    return [main, ""] + details_block("All figures for the teacher", [full])


MARGIN_SOURCES = {"--margin": "set by `--margin`", "study": "the study's `[study] margin`",
                  "default": "the default: the study sets none"}


def margin_text(lb: Leaderboard) -> str:
    """'δ = 0.010 (1 point), the default: ...'."""
    basis = f" ({lb.margin_basis})" if lb.margin_basis else ""
    return f"δ = {fmt_margin(lb.margin)}, {MARGIN_SOURCES.get(lb.margin_source, lb.margin_source)}{basis}"


def ece_floor_text(lb: Leaderboard) -> str:
    """The ECE noise floor for the test split's size (kdbench.leaderboard.calibration.ece_noise_floor)."""
    if not lb.ece_floor:
        return ""
    n, median, p95 = lb.ece_floor
    return (f"ECE noise floor: a perfectly calibrated model scores {fmt_num(median)} on {n} test frames (95th "
            f"percentile {fmt_num(p95)}; simulated with confidences spread evenly, frames independent): ECE values and "
            "differences below that are noise.")


def _rule_text(lb: Leaderboard) -> str:
    """How the recommended model is chosen, the selection-bias mark, the split sizes and the ECE noise floor."""
    return ("Recommended model per target: the fastest (then smallest) model that is **best or "
            "equivalent** to the target's most accurate model **on validation** and meets the target's constraints. "
            "Equivalent: the whole 95% interval of best minus model, paired on the same validation frames (and seed "
            f"indices, for seed means), lies inside ±δ ({margin_text(lb)}; fixed before the data are seen). When no "
            "model that meets the constraints is best or equivalent, the most accurate one that does, saying so. A "
            "model whose verdict is 'uncertain' (an estimate's error band straddles a limit) is recommended only when "
            f"no model surely meets the constraints, and then flagged UNCERTAIN. {BIASED} marks a **selection-biased** "
            "validation figure: the best's and the recommended model's were chosen on these very frames (epoch, "
            "configuration, seed, variant), so they read high; the seed mean (in 'All figures') and the **test** "
            "figures are the less biased estimates. " + split_size_text(lb)
            + (" " + ece_floor_text(lb) if lb.ece_floor else ""))


def _how_to_read(lb: Leaderboard) -> list[str]:
    return ['<a id="how-to-read-this-page"></a>', ""] + details_block("How to read this page", [
        _INTRO, "", _rule_text(lb), "", "Per target, the main tables hold the figures that decide; 'All figures for "
        "target …' below them holds every other figure of the same rows (and `leaderboard.csv` / `leaderboard.json` "
        "every figure of every row)."])


def _board_lines(b: TargetBoard, plots: dict[str, str], margin: float | None = None) -> list[str]:
    lines = [f'<a id="{_anchor(b)}"></a>', "", f"## {_board_title(b)}", ""]
    if margin is not None and b.margin != margin:
        lines += [f"Decisions on this target at its own margin δ = {fmt_margin(b.margin)} (`--margin "
                  f"{b.name}={b.margin:g}`; the others: {fmt_margin(margin)}).", ""]
    if b.name != NO_TARGET:
        src = f" (from `{Path(b.constraints_source).name}`)" if b.constraints_source else ""
        lines += [f"Constraints: {describe_constraints(b.constraints)}{src}. Pareto objectives: {_objectives(b)}.", ""]
    else:
        lines += [f"Pareto objectives: {_objectives(b)}.", ""]
    lines += [f"**Recommended:** {b.recommendation}.", ""]
    if b.left_out_unstable:
        lines += [f"{b.left_out_unstable} ranked model(s) with an unstable measurement were left out of the "
                  "recommendation (`--include-unstable` to include them).", ""]
    if b.name in plots:
        lines += [f"![validation accuracy vs {'latency' if b.name != NO_TARGET else 'size'} on {b.name}]({plots[b.name]})", ""]
    return lines + _board_tables(b)


def _board_tables(b: TargetBoard) -> list[str]:
    """A target's main tables (Pareto-optimal, the rest), every other figure of their rows, the unranked rows."""
    first = [r for r in b.rows if r.front == 1]
    rest = [r for r in b.rows if r.front not in (None, 1)]
    unranked = [r for r in b.rows if r.front is None]
    lines = [f"### Pareto-optimal ({len(first)})", "", rows_table(first) if first else "_none_", ""]
    lines += [f"### The rest ({len(rest)})", "", rows_table(rest) if rest else "_none: every ranked model is Pareto-optimal_", ""]
    if first or rest:
        lines += details_table(b, first + rest)
    if unranked:
        lines += [f"### Not ranked ({len(unranked)})", "", "Missing a figure the ranking needs:", ""]
        lines += [markdown_table(["student", "method", "variant (precision, runtime)", "test acc", "why"],
                                 [[str(r.student), str(r.method), variant_label(r), fmt_num(r.test_accuracy), r.decision_note or "-"]
                                  for r in unranked], {3}), ""]
    return lines


def pareto_title(pareto: dict[str, Any]) -> str:
    """'Pareto front for rpi4 (estimated latency)'."""
    return f"Pareto front for {pareto['target']} (estimated latency)"


def _pareto_lines(lb: Leaderboard) -> list[str]:
    """The multi-objective study's own section: Optuna's Pareto front over every student, fastest first."""
    pf = lb.pareto
    if not pf:
        return []
    lines = ['<a id="pareto-front"></a>', "", f"## {pareto_title(pf)}", "",
             f"The study searched two objectives at once ({' ↑, '.join(pf['objectives'])} ↓): these configurations are "
             "its Pareto front (no other trial has both a higher seed-mean validation accuracy and a lower latency), "
             f"over every student. Latency, fps and model memory are {EST} **estimated** for {pf['target']} before "
             "training (untrained graph at the trained input size), with the estimator's band; accuracies are seed "
             "means with their 95% interval. Pruning was off in this study.", ""]
    lines.append(markdown_table(
        ["family", "student", "input px", "method", "trial", "val acc seed mean [95% CI] (n)", "test acc seed mean",
         "p50 ms", "fps [band]", "model MB", "verdict"],
        [[str(r["family"]), str(r["student"]), str(r["input_size"]), str(r["method"]), str(r["trial"]),
          fmt_ci(r["val_accuracy"], *r["val_interval"], r["n_seeds"], r["interval_kind"]), fmt_num(r["test_accuracy"]),
          f"{EST}{fmt_num(r['latency_ms'], 2)}", f"{EST}{_band(r['fps'], r['fps_low'], r['fps_high'], 1)}",
          f"{EST}{fmt_num(r['model_memory_mb'], 1)}", str(r["status"])] for r in pf["rows"]],
        {2, 4, 5, 6, 7, 8, 9}))
    return lines + [""]


def _seeds_cell(m: Any) -> str:
    """'5' seeds, and how the interval was formed when not over seeds alone ('5<br>+clips')."""
    kind = str(m.interval_kind or "")
    return f"{m.n}<br>+clips" if "clip" in kind else str(m.n)


def _method_lines(lb: Leaderboard, plots: dict[str, str]) -> list[str]:
    lines = ['<a id="accuracy-per-method"></a>', "", "## Accuracy per method", "",
             "The best configuration of each method per student (chosen on its seed-mean validation figure), its test "
             "figures over the seeds of the fp32 training.", ""]
    if "methods" in plots:
        lines += [f"![test accuracy per method and student]({plots['methods']})", ""]
    fam = lb.families  # a study that searched families: rows grouped under their family (widths together)
    results = sorted(lb.method_results, key=lambda m: fam.get(m.student, m.student)) if fam else lb.method_results
    lines.append(markdown_table(
        ["family"] * bool(fam) + ["student<br>method · trial", "val acc<br>seed mean", "test acc seed mean<br>(95% CI)",
                                  "seeds", "test clip<br>acc", "test ECE<br>(95% CI)"],
        [[fam.get(m.student, m.student)] * bool(fam) + [
          f"{m.student}<br>{m.method} · {m.trial}", fmt_num(m.means["val"]),
          _two_lines(fmt_iv(m.means["test"], *m.intervals["test"])), _seeds_cell(m), fmt_num(m.test.get("clip_accuracy")),
          _two_lines(fmt_iv(m.test.get("ece"), *m.test["ece_ci"]) if m.test.get("ece_ci") else fmt_num(m.test.get("ece")))]
         for m in results], {i + bool(fam) for i in (1, 2, 3, 4, 5)}))
    lines += [""] + details_block("Per-seed test accuracy", [markdown_table(
        ["student", "method", "trial", "per-seed test acc (seed: acc)"],
        [[m.student, m.method, str(m.trial), ", ".join(f"{s}: {fmt_num(a)}" for s, a in zip(m.seeds, m.accuracies["test"]))]
         for m in results], {2})])
    lines.append("")
    if lb.comparisons:
        where = ("on fresh confirmation seeds (`kdbench search confirm`): the configurations were chosen on other runs"
                 if lb.comparisons_source == "confirm" else
                 "on the search's own runs, among which the best configuration was chosen on validation: optimistic "
                 "(`kdbench search confirm` retrains on fresh seeds)")
        lines += ["### Distillation vs scratch, per architecture", "",
                  f"Paired over seeds on **test** accuracy, {where}. A - B is the mean difference with its 95% interval "
                  "(engine paired_interval: over seeds and test clips from every prediction; seed t: over per-seed "
                  "accuracies), p the two-sided paired test, Holm p corrected over every comparison of the study "
                  "(* significant: Holm p < 0.05); the verdict is at the study's margin.", ""]
        lines.append(markdown_table(
            ["student<br>comparison", "A − B<br>(95% CI)", "p", "Holm p", "seeds", "engine", "verdict"],
            [[f"{c.student}<br>{c.comparison}", _two_lines(fmt_iv(c.diff, c.ci_low, c.ci_high)),
              fmt_p(c.p_value), fmt_p(c.p_holm) + (" *" if c.significant else ""),
              str(len(c.seeds or [])), str(c.engine or "-").replace(" x ", "×"),
              c.verdict or "-"] for c in lb.comparisons],
            {1, 2, 3, 4}))
        lines.append("")
    return lines


_INTRO = ("Every choice here is made on **validation** figures: per target, the models are ranked by non-dominated "
          "sorting over validation accuracy (higher is better), batch-1 latency (lower) and file size (lower), as far "
          "as they were measured; front 1 holds the Pareto-optimal models. Test figures are reported beside and never "
          "used to choose. Every accuracy carries a 95% interval from a bootstrap over clips (frames of one cine loop "
          "move together); a seed mean's is for new seeds and new clips (seed, clip and seed x clip parts, "
          "`kdbench.metrics.seed_clip_interval`). "
          "'decision' compares each ranked model with the target's best on the same validation frames "
          "(`kdbench.metrics.paired_interval`, best - model, 95%) at the margin δ: best, equivalent (the whole interval "
          "inside ±δ), worse (otherwise, the interval above 0) or undecided (neither: with about how many seeds or validation "
          f"clips would settle it, or why no paired comparison was possible). {BIASED}: selection-biased (chosen on "
          "these frames). ECE carries a clip-bootstrap interval where the per-frame test predictions were saved. "
          "Figures marked " + EST +
          " are **estimated** for an absent target (latency model; its band in brackets, its error in 'figures'), "
          "not measured. See [Columns](#columns).")


def render_markdown(lb: Leaderboard, plots: dict[str, str], command: str = "") -> str:
    """README.md of the leaderboard: what to ship per target, how to read the page, one section per target (main
    tables, every other figure collapsed), per-method results, statistics, legend."""
    lines = [f"# Leaderboard: study `{lb.study}`", ""] + _recommendation_lines(lb)
    inputs = [f"study `{lb.inputs['study']}`"]
    inputs.append(f"export `{lb.inputs['export']}`" if lb.inputs.get("export") else "no export")
    inputs.append(f"profiles `{lb.inputs['profiles']}`" if lb.inputs.get("profiles") else "no profiles")
    lines += [f"Generated by `kdbench leaderboard` from {', '.join(inputs)}."]
    if command:
        lines += ["", f"Regenerate: `{command}`"]
    lines += [""] + _how_to_read(lb) + _teacher_lines(lb)
    notes = lb.notes + [f"statistics: {w}" for w in lb.statistics_warnings]
    if notes:
        lines += ["**Notes.**", ""] + [f"- {n}" for n in notes] + [""]
    pareto = [f"[{pareto_title(lb.pareto)}](#pareto-front)"] if lb.pareto else []
    lines += ["Sections: " + ", ".join([f"[{_board_title(b)}](#{_anchor(b)})" for b in lb.boards] + pareto)
              + ", [Accuracy per method](#accuracy-per-method), [Columns](#columns).", ""]
    for b in lb.boards:
        lines += _board_lines(b, plots, lb.margin)
    lines += _pareto_lines(lb)
    lines += _method_lines(lb, plots)
    if lb.left_out:
        lines += ["## Variants left out", "", "Exported variants that failed (not ranked):", ""]
        lines += [f"- `{v['variant_id']}`: {_cell(v['reason'])}" for v in lb.left_out] + [""]
    lines += ['<a id="columns"></a>', "", "## Columns", "",
              "A row's figures are measured on the exported file in its runtime, for the checkpoint that was exported "
              "(one seed); the seed means are over the seeds of the fp32 training of the same configuration, so the two "
              f"can differ (quantisation, pruning, seed). {EST} marks an estimated latency, fps or memory figure. "
              "`leaderboard.csv` and `leaderboard.json` hold the same rows with these columns (empty cell / null = not "
              "available; a flag is True or False, never empty; a number is never text):", ""]
    lines += [f"- `{name}`: {desc}" for name, desc in COLUMNS.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- CSV and JSON


def _csv_value(value: Any) -> str:
    """A cell of leaderboard.csv: '' for None, True/False for a flag (pandas reads dtype bool), 6 significant digits."""
    if value is None:
        return ""
    return format(value, ".6g") if isinstance(value, float) else str(value)


def all_rows(lb: Leaderboard) -> list[BoardRow]:
    """Every row of every target, in ranked order: the rows of the CSV and of the JSON."""
    return [r for b in lb.boards for r in b.rows]


def render_csv(lb: Leaderboard) -> str:
    """leaderboard.csv: every row of every target, ranked order, the fixed columns of ``COLUMNS``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    names = column_names()
    writer.writerow(names)
    for r in all_rows(lb):
        writer.writerow([_csv_value(v) for v in r.to_dict().values()])
    return buf.getvalue()


def render_json(lb: Leaderboard) -> str:
    """leaderboard.json: the CSV's rows as objects, with each target's constraints and recommendation."""
    targets = [{"target": b.name, "constraints": b.constraints, "objectives": [list(o) for o in b.objectives],
                "margin": b.margin,
                "decisions": {v: sum(r.decision == v for r in b.rows) for v in ("best", "equivalent", "worse", "undecided")},
                "recommendation": b.recommendation,
                "recommended": None if b.recommended is None else {"variant_id": b.recommended.variant_id,
                                                                   "model": b.recommended.model,
                                                                   "runtime": b.recommended.runtime,
                                                                   "uncertain": b.recommended.recommended_uncertain}}
               for b in lb.boards]
    doc = {"format_version": JSON_FORMAT, "study": lb.study, "columns": column_names(), "targets": targets,
           "split_sizes": {k: {"frames": v[0], "clips": v[1]} for k, v in sorted(lb.split_sizes.items())},
           "margin": {"value": lb.margin, "source": lb.margin_source, **({"basis": lb.margin_basis} if lb.margin_basis else {})},
           "ece_noise_floor": None if not lb.ece_floor else {"test_frames": lb.ece_floor[0], "median": lb.ece_floor[1],
                                                             "p95": lb.ece_floor[2]},
           "rows": [r.to_dict() for r in all_rows(lb)]}
    if lb.pareto:
        doc["pareto_front"] = lb.pareto
    return json.dumps(doc, indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def write_text(path: Path, text: str) -> None:
    """Write text as UTF-8 with \\n line ends (atomically)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(text.encode("utf-8"))
    tmp.replace(path)
