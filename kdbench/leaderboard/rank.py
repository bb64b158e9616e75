"""Ranking a target's rows on validation figures: Pareto fronts, statistical ties with the best, the recommendation.

Every choice here reads validation accuracy (and latency, size); test figures are only reported. Two
models are "statistically tied" when their 95% validation intervals overlap (a conservative reading: a
lead inside the noise is no win).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdbench.leaderboard.pareto import pareto_fronts
from kdbench.leaderboard.row import BoardRow

if TYPE_CHECKING:
    from kdbench.leaderboard.collect import TargetBoard

ELIGIBLE = ("meets", "n/a")


def _num(value: float | None, sign: float = 1.0) -> float:
    return sign * float(value) if value is not None else float("inf")


def sort_key(row: BoardRow) -> tuple:
    """Ranked rows first by front, then by validation accuracy (down), latency, size and names."""
    return (row.front if row.front is not None else 10**9, _num(row.val_accuracy, -1.0), _num(row.latency_p50_ms),
            _num(row.size_mb), str(row.variant_id or ""), str(row.student or ""), str(row.method or ""),
            str(row.runtime or ""))


def _best_key(row: BoardRow) -> tuple:
    """Most accurate on validation first; ties go to the faster, then the smaller model."""
    return (-float(row.val_accuracy or 0.0), row.latency_p50_ms if row.latency_p50_ms is not None else 0.0,
            row.size_mb if row.size_mb is not None else 0.0, sort_key(row))


def overlaps(a: BoardRow, b: BoardRow) -> bool | None:
    """Whether the validation intervals of two rows overlap (None when one has no interval)."""
    if None in (a.val_accuracy_low, a.val_accuracy_high, b.val_accuracy_low, b.val_accuracy_high):
        return None
    return a.val_accuracy_low <= b.val_accuracy_high and b.val_accuracy_low <= a.val_accuracy_high


def mark_ties(ranked: list[BoardRow]) -> None:
    """'best' on the most accurate ranked row, yes/no on the others: does its interval overlap the best's."""
    if not ranked:
        return
    best = min(ranked, key=_best_key)
    for r in ranked:
        tied = overlaps(r, best)
        r.tied = "best" if r is best else (None if tied is None else ("yes" if tied else "no"))


def rank_rows(rows: list[BoardRow], objectives: list[tuple[str, str]]) -> list[BoardRow]:
    """Set front, pareto and tied on the rows that have every objective; return all rows, ranked first."""
    rankable = [r for r in rows if all(getattr(r, c) is not None for c, _ in objectives)]
    fronts = pareto_fronts([[getattr(r, c) for c, _ in objectives] for r in rankable], [s for _, s in objectives])
    for r, f in zip(rankable, fronts):
        r.front, r.pareto = f, "yes" if f == 1 else "no"
    for r in rows:
        if r.front is None:
            missing = [c for c, _ in objectives if getattr(r, c) is None]
            r.pareto = None
            r.note = r.note or f"not ranked: no {', '.join(missing)}"
    mark_ties(rankable)
    return sorted(rows, key=sort_key)


def row_label(row: BoardRow) -> str:
    """A short name of a row: student / method / variant @ runtime."""
    runtime = f" @ {row.runtime}" if row.runtime else ""
    return f"{row.student} / {row.method} / {row.variant}{runtime}"


def _acc(row: BoardRow) -> str:
    ci = (f" [{row.val_accuracy_low:.3f}, {row.val_accuracy_high:.3f}]"
          if row.val_accuracy_low is not None and row.val_accuracy_high is not None else "")
    return f"validation accuracy {row.val_accuracy:.3f}{ci}"


def _no_model_text(board: "TargetBoard", ranked: list[BoardRow]) -> str:
    """Why nothing is recommended, and the fastest model with what it breaks."""
    unknown = [r for r in ranked if r.verdict == "unknown"]
    fastest = min(ranked, key=lambda r: (_num(r.latency_p50_ms), sort_key(r)))
    text = f"no model meets the constraints on {board.name}"
    if unknown:
        text += f" ({len(unknown)} could not be checked: a constrained figure was not measured)"
    if fastest.fps is not None:
        text += f"; the fastest is {row_label(fastest)} at {fastest.fps:.1f} fps ({fastest.verdict_reasons or 'no violation'})"
    return text


def recommend(board: "TargetBoard", include_unstable: bool = False) -> None:
    """The most accurate (validation) ranked model that meets the constraints; an uncertain one only flagged as such."""
    ranked = [r for r in board.rows if r.front is not None]
    if not ranked:
        board.recommendation = "no model could be ranked on this target (see the notes in the table)"
        return
    usable = [r for r in ranked if include_unstable or r.stable is not False]
    board.left_out_unstable = len(ranked) - len(usable)
    eligible = [r for r in usable if r.verdict in ELIGIBLE]
    uncertain = [r for r in usable if r.verdict == "uncertain"]
    if not eligible and not uncertain:
        board.recommendation = _no_model_text(board, ranked)
        return
    flagged = not eligible
    best = min(eligible or uncertain, key=_best_key)
    best.recommended = "uncertain" if flagged else "yes"
    board.recommended = best
    if flagged:
        text = (f"UNCERTAIN: {row_label(best)}, {_acc(best)}: no model surely meets the constraints; this one's "
                f"estimate band straddles a limit ({best.verdict_reasons}): measure it on the target before relying on it")
    elif best.verdict == "meets":
        text = f"{row_label(best)}: the most accurate model on validation that meets every constraint ({_acc(best)})"
    else:
        text = f"{row_label(best)}: the most accurate model on validation ({_acc(best)}; no constraints on this target)"
    tied = [r for r in (eligible or uncertain) if r is not best and overlaps(r, best)
            and _num(r.latency_p50_ms) < _num(best.latency_p50_ms)]
    if tied:
        text += f"; {len(tied)} faster model(s) are statistically tied with it (fastest: {row_label(min(tied, key=lambda r: _num(r.latency_p50_ms)))})"
    better_uncertain = [r for r in uncertain if not flagged and r.val_accuracy > best.val_accuracy]
    if better_uncertain:
        text += f"; {len(better_uncertain)} more accurate model(s) are uncertain on the constraints (not recommended)"
    board.recommendation = text
