"""Write the leaderboard as Markdown (README.md, for people) and CSV (leaderboard.csv, fixed columns, for tools).

Both are functions of the collected rows only: no timestamps, no absolute paths beyond those the
user passed, stable ordering, so the same inputs give byte-identical files.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from kdbench.leaderboard.collect import NO_TARGET, Leaderboard, TargetBoard, row_label
from kdbench.leaderboard.columns import COLUMNS, column_names
from kdbench.leaderboard.constraints import describe_constraints

EST = "≈"  # prefix of an estimated figure in the Markdown

# (header, function of a row -> text); the per-target table of README.md.
TABLE_HEADERS = (
    "front", "student", "method", "T", "α", "batch", "variant (precision, runtime)", "test acc",
    "seed mean acc [95% CI] (n)", "rel. to teacher", "macro-F1", "worst-source acc", "p50 ms", "p90 ms", "fps",
    "memory MB", "size MB", "params", "MACs", "figures", "meets constraints", "KD vs scratch: Holm p, P(KD>scratch)",
)


# ---------------------------------------------------------------------------------------- formatting


def fmt_num(value: Any, digits: int = 3) -> str:
    """A number with fixed decimals, or '-' when absent or not finite."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{float(value):.{digits}f}"


def fmt_count(value: Any) -> str:
    """A large count as 1.52M / 15.3G / 980k, or '-'."""
    if value is None:
        return "-"
    v = float(value)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.2f}{unit}"
    return f"{v:.0f}"


def fmt_p(value: Any) -> str:
    """A p-value or probability: '<0.001' for tiny values, else three decimals."""
    if value is None:
        return "-"
    return "<0.001" if float(value) < 0.001 else f"{float(value):.3f}"


def fmt_ci(mean: Any, low: Any, high: Any, n: Any) -> str:
    """Seed mean with its interval: '0.912 [0.897, 0.925] (n=5)'."""
    if mean is None:
        return "-"
    ci = f" [{fmt_num(low)}, {fmt_num(high)}]" if low is not None and high is not None else " [no CI]"
    return f"{fmt_num(mean)}{ci} (n={n})"


def _cell(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _est(row: dict[str, Any], text: str) -> str:
    """Prefix a figure of an estimated row with the estimate sign."""
    return f"{EST}{text}" if row.get("measured") == "estimated" and text != "-" else text


def _figures(row: dict[str, Any]) -> str:
    if row.get("measured") == "estimated":
        band = row.get("error_band_pct")
        return f"estimated ±{band:g}%" if band is not None else "estimated"
    return row.get("measured") or "-"


def variant_label(row: dict[str, Any]) -> str:
    """'int8_ort (int8, onnxruntime)'; the precision is left out when the variant name says it."""
    parts = [p for p in (row.get("precision"), row.get("runtime")) if p and p != row.get("variant")]
    return f"{row.get('variant')} ({', '.join(parts)})" if parts else str(row.get("variant"))


def _table_cells(row: dict[str, Any]) -> list[str]:
    """The README cells of one row, in TABLE_HEADERS order."""
    sig = "-"
    if row.get("kd_vs_scratch_p_holm") is not None or row.get("kd_vs_scratch_p_a_gt_b") is not None:
        sig = f"{fmt_p(row.get('kd_vs_scratch_p_holm'))}, {fmt_num(row.get('kd_vs_scratch_p_a_gt_b'), 2)}"
    variant = variant_label(row)
    meets = row.get("meets_constraints") or "-"
    if meets == "no" and row.get("violations"):
        meets = f"no: {row['violations']}"
    elif meets == "unknown" and row.get("violations"):
        meets = f"unknown: {row['violations']}"
    return [
        str(row["front"]) if row.get("front") is not None else "-",
        str(row.get("student") or "-"), str(row.get("method") or "-"),
        fmt_num(row.get("temperature"), 1) if row.get("temperature") is not None else "-",
        fmt_num(row.get("alpha"), 2) if row.get("alpha") is not None else "-",
        str(row.get("batch_size")) if row.get("batch_size") is not None else "-",
        variant, fmt_num(row.get("accuracy")),
        fmt_ci(row.get("seed_mean_accuracy"), row.get("seed_ci_low"), row.get("seed_ci_high"), row.get("n_seeds")),
        fmt_num(row.get("relative_accuracy")), fmt_num(row.get("macro_f1")), fmt_num(row.get("worst_source_accuracy")),
        _est(row, fmt_num(row.get("latency_p50_ms"), 2)), _est(row, fmt_num(row.get("latency_p90_ms"), 2)),
        _est(row, fmt_num(row.get("fps"), 1)), _est(row, fmt_num(row.get("memory_mb"), 1)),
        fmt_num(row.get("size_mb"), 2), fmt_count(row.get("params")), fmt_count(row.get("macs")),
        _figures(row), meets, sig,
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


_RIGHT = {0, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18}


def rows_table(rows: list[dict[str, Any]]) -> str:
    """The per-target table of rows."""
    return markdown_table(TABLE_HEADERS, [_table_cells(r) for r in rows], _RIGHT)


# ---------------------------------------------------------------------------------------- README


def _board_title(board: TargetBoard) -> str:
    return "Accuracy only (no profile results)" if board.name == NO_TARGET else f"Target `{board.name}`"


def _anchor(board: TargetBoard) -> str:
    return "accuracy-only" if board.name == NO_TARGET else f"target-{board.name}".lower()


def _objectives(board: TargetBoard) -> str:
    names = {"accuracy": "test accuracy ↑", "latency_p50_ms": "batch-1 latency p50 ↓", "size_mb": "file size ↓"}
    return ", ".join(names.get(c, c) for c, _ in board.objectives)


def _summary(lb: Leaderboard) -> list[str]:
    out = ["## Summary", "", "Recommended model per target: the most accurate model that meets the target's constraints "
           "(it is Pareto-optimal among the models that meet them; ties go to the faster one).", ""]
    rows = []
    for b in lb.boards:
        r = b.recommended
        if r is None:
            rows.append([b.name, describe_constraints(b.constraints), b.recommendation, "-", "-", "-", "-", "-", "-"])
        else:
            rows.append([b.name, describe_constraints(b.constraints), f"{row_label(r)} (front {r['front']})",
                         fmt_num(r.get("accuracy")),
                         fmt_num(r.get("relative_accuracy")), _est(r, fmt_num(r.get("latency_p50_ms"), 2)),
                         _est(r, fmt_num(r.get("fps"), 1)), _est(r, fmt_num(r.get("memory_mb"), 1)),
                         fmt_num(r.get("size_mb"), 2)])
    out.append(markdown_table(["target", "constraints", "recommended", "test acc", "rel. to teacher", "p50 ms", "fps",
                               "memory MB", "size MB"], rows, {3, 4, 5, 6, 7, 8}))
    out += ["", "**Teacher (reference, not ranked).**"]
    t = lb.teacher
    desc = f"{t.get('arch') or 'teacher'}"
    if t.get("accuracy") is not None:
        desc += f": test accuracy {fmt_num(t['accuracy'])}"
        if t.get("macro_f1") is not None:
            desc += f", macro-F1 {fmt_num(t['macro_f1'])}"
        if t.get("worst_source_accuracy") is not None:
            desc += f", worst-source accuracy {fmt_num(t['worst_source_accuracy'])}"
        desc += f" (from {t.get('source')})"
    else:
        desc += ": test accuracy unknown"
    out += [desc + ".", ""]
    trows = [r for b in lb.boards for r in b.teacher_rows]
    if trows:
        out.append(markdown_table(
            ["target", "variant (precision, runtime)", "test acc", "p50 ms", "p90 ms", "fps", "memory MB", "size MB",
             "params", "MACs", "figures", "meets constraints"],
            [[r.get("target") or "-", variant_label(r),
              fmt_num(r.get("accuracy")), _est(r, fmt_num(r.get("latency_p50_ms"), 2)),
              _est(r, fmt_num(r.get("latency_p90_ms"), 2)), _est(r, fmt_num(r.get("fps"), 1)),
              _est(r, fmt_num(r.get("memory_mb"), 1)), fmt_num(r.get("size_mb"), 2), fmt_count(r.get("params")),
              fmt_count(r.get("macs")), _figures(r) if r.get("measured") else (r.get("note") or "-"),
              r.get("meets_constraints") or "-"] for r in trows],
            {2, 3, 4, 5, 6, 7, 8, 9}))
        out.append("")
    else:
        out += ["The teacher was not exported or profiled, so it has no latency or size here.", ""]
    return out


def render_markdown(lb: Leaderboard, plots: dict[str, str], command: str = "") -> str:
    """README.md of the leaderboard: summary, one section per target, per-method results, statistics, legend."""
    lines = [f"# Leaderboard: study `{lb.study}`", ""]
    inputs = [f"study `{lb.inputs['study']}`"]
    inputs.append(f"export `{lb.inputs['export']}`" if lb.inputs.get("export") else "no export")
    inputs.append(f"profiles `{lb.inputs['profiles']}`" if lb.inputs.get("profiles") else "no profiles")
    lines += [f"Generated by `kdbench leaderboard` from {', '.join(inputs)}."]
    if command:
        lines += ["", f"Regenerate: `{command}`"]
    lines += ["", "Every model is ranked per target by non-dominated sorting over test accuracy (higher is better), "
              "batch-1 latency (lower) and file size (lower), as far as they were measured (each target lists its "
              "objectives): front 1 holds the Pareto-optimal models, which no other model matches or beats on every "
              "objective while beating them on one. Figures marked " + EST + " are **estimated** for an absent target "
              "(latency model, error band in the 'figures' column), not measured. See [Columns](#columns).", ""]
    lines += _summary(lb)
    notes = lb.notes + [f"statistics: {w}" for w in lb.statistics_warnings]
    if notes:
        lines += ["**Notes.**", ""] + [f"- {n}" for n in notes] + [""]
    lines += ["Sections: " + ", ".join(f"[{_board_title(b)}](#{_anchor(b)})" for b in lb.boards)
              + ", [Accuracy per method](#accuracy-per-method), [Columns](#columns).", ""]

    for b in lb.boards:
        lines += [f'<a id="{_anchor(b)}"></a>', "", f"## {_board_title(b)}", ""]
        if b.name != NO_TARGET:
            src = f" (from `{Path(b.constraints_source).name}`)" if b.constraints_source else ""
            lines += [f"Constraints: {describe_constraints(b.constraints)}{src}. Pareto objectives: {_objectives(b)}.", ""]
        else:
            lines += [f"Pareto objectives: {_objectives(b)}.", ""]
        lines += [f"**Recommended:** {b.recommendation}.", ""]
        if b.name in plots:
            lines += [f"![accuracy vs {'latency' if b.name != NO_TARGET else 'size'} on {b.name}]({plots[b.name]})", ""]
        first = [r for r in b.rows if r.get("front") == 1]
        rest = [r for r in b.rows if r.get("front") not in (None, 1)]
        unranked = [r for r in b.rows if r.get("front") is None]
        lines += [f"### Pareto-optimal ({len(first)})", "", rows_table(first) if first else "_none_", ""]
        lines += [f"### The rest ({len(rest)})", "", rows_table(rest) if rest else "_none: every ranked model is Pareto-optimal_", ""]
        if unranked:
            lines += [f"### Not ranked ({len(unranked)})", "", "Missing a figure the ranking needs:", ""]
            lines += [markdown_table(["student", "method", "variant (precision, runtime)", "test acc", "why"],
                                     [[str(r.get("student")), str(r.get("method")),
                                       variant_label(r),
                                       fmt_num(r.get("accuracy")), r.get("note") or "-"] for r in unranked], {3}), ""]

    lines += ['<a id="accuracy-per-method"></a>', "", "## Accuracy per method", "",
              "The best configuration of each method per student (chosen on validation accuracy), its test accuracy "
              "over the seeds of the fp32 training; the KD-vs-scratch comparison is paired over seeds, Holm-corrected "
              "over all comparisons of the study.", ""]
    if "methods" in plots:
        lines += [f"![test accuracy per method and student]({plots['methods']})", ""]
    lines.append(markdown_table(
        ["student", "method", "trial", "test acc seed mean [95% CI] (n)", "per-seed test acc"],
        [[m["student"], m["method"], str(m["trial"]), fmt_ci(m["mean"], m["ci"][0], m["ci"][1], m["n"]),
          ", ".join(f"{s}: {fmt_num(a)}" for s, a in zip(m["seeds"], m["test_accuracies"]))] for m in lb.method_results],
        {2}))
    lines.append("")
    if lb.comparisons:
        lines += ["### Distillation vs scratch, per architecture", "",
                  "Paired over seeds on **test** accuracy (which took no part in choosing the configurations); "
                  "A - B is the mean difference with its 95% BCa bootstrap interval, p the two-sided paired t-test, "
                  "Holm p corrected over every comparison of the study.", ""]
        lines.append(markdown_table(
            ["student", "comparison", "A - B [95% CI]", "P(A>B)", "p", "Holm p", "significant (Holm p < 0.05)", "seeds"],
            [[c.get("student", "-"), c.get("comparison", "-"),
              f"{fmt_num(c.get('diff'))} [{fmt_num(c.get('ci_low'))}, {fmt_num(c.get('ci_high'))}]",
              fmt_num(c.get("p_a_gt_b"), 2), fmt_p(c.get("p_value")), fmt_p(c.get("p_holm")),
              "yes" if c.get("significant") else "no", str(len(c.get("seeds") or []))] for c in lb.comparisons],
            {2, 3, 4, 5, 7}))
        lines.append("")
    if lb.left_out:
        lines += ["## Variants left out", "", "Exported variants that failed (not ranked):", ""]
        lines += [f"- `{v['variant_id']}`: {_cell(v['reason'])}" for v in lb.left_out] + [""]
    lines += ['<a id="columns"></a>', "", "## Columns", "",
              "The test accuracy of a row is measured on the exported file in its runtime, for the checkpoint that was "
              "exported (one seed); the seed mean and its 95% BCa bootstrap interval are over the seeds of the fp32 "
              "training of the same configuration, so the two can differ (quantisation, pruning, seed). "
              f"{EST} marks an estimated latency, fps or memory figure. `leaderboard.csv` holds the same rows with these "
              "columns (empty cell = not available):", ""]
    lines += [f"- `{name}`: {desc}" for name, desc in COLUMNS.items()]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- CSV


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "" if not math.isfinite(value) else format(value, ".6g")
    return str(value)


def render_csv(lb: Leaderboard) -> str:
    """leaderboard.csv: every row of every target, ranked order, the fixed columns of ``COLUMNS``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    names = column_names()
    writer.writerow(names)
    for b in lb.boards:
        for r in b.rows:
            writer.writerow([_csv_value(r.get(c)) for c in names])
    return buf.getvalue()


def write_text(path: Path, text: str) -> None:
    """Write text as UTF-8 with \\n line ends (atomically)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(text.encode("utf-8"))
    tmp.replace(path)
