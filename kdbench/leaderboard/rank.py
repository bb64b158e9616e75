"""Ranking a target's rows on validation figures: Pareto fronts, decisions against the best, the recommendation.

Every choice here reads validation accuracy (and latency, size); test figures are only reported. Each ranked
row gets a decision against the target's best row at the equivalence margin (best / equivalent / worse /
undecided: kdbench.leaderboard.decisions, a paired comparison on the same validation frames). The
recommendation is the fastest (then smallest) model that is best or equivalent and meets the constraints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdbench.leaderboard.decisions import ValHits, compare, fmt_margin
from kdbench.pareto import pareto_fronts
from kdbench.leaderboard.row import BoardRow
from kdbench.search.space import DEFAULT_MARGIN

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


def hits_key(row: BoardRow) -> str:
    """The key of a row's validation predictions: its exported variant, else its trial (seed means)."""
    return str(row.variant_id) if row.variant_id else f"{row.student}/trial {row.trial}"


NO_PREDICTIONS = "no per-frame validation predictions were given for this row"


def not_ranked(why: str) -> str:
    """The decision_note of a row that cannot be ranked: 'not ranked: <why>'."""
    return f"not ranked: {why}"


def mark_decisions(ranked: list[BoardRow], predictions: dict[str, ValHits] | None = None,
                   margin: float = DEFAULT_MARGIN) -> BoardRow | None:
    """Set decision (best / equivalent / worse / undecided), its note and interval on every ranked row; the best row."""
    if not ranked:
        return None
    predictions = predictions or {}
    best = min(ranked, key=_best_key)
    ref = predictions.get(hits_key(best)) or ValHits(missing=NO_PREDICTIONS)
    for r in ranked:
        if r is best:
            r.decision, r.decision_note = "best", f"the most accurate ranked model on validation (margin ±{margin:.3f})"
            if ref.missing:
                r.decision_note += f"; no model can be compared with it: {ref.missing}"
            r.decision_ci_low = r.decision_ci_high = None
        elif r.variant_id and r.variant_id == best.variant_id:
            r.decision, r.decision_note = "equivalent", "the same exported file as the best, in another runtime"
            r.decision_ci_low = r.decision_ci_high = None
        else:
            d = compare(ref, predictions.get(hits_key(r)) or ValHits(missing=NO_PREDICTIONS), margin)
            r.decision, r.decision_note, r.decision_ci_low, r.decision_ci_high = d.verdict, d.note, d.ci_low, d.ci_high
    return best


def rank_rows(rows: list[BoardRow], objectives: list[tuple[str, str]], predictions: dict[str, ValHits] | None = None,
              margin: float = DEFAULT_MARGIN) -> list[BoardRow]:
    """Set front, pareto and decision on the rows that have every objective; return all rows, ranked first.

    A row not ranked keeps the reason it came with in its decision_note (``not_ranked``), else gets the missing
    objectives. ``predictions``: validation hits by ``hits_key`` (missing: those rows are undecided, saying so)."""
    rankable = [r for r in rows if all(getattr(r, c) is not None for c, _ in objectives)]
    fronts = pareto_fronts([[getattr(r, c) for c, _ in objectives] for r in rankable], [s for _, s in objectives])
    for r, f in zip(rankable, fronts):
        r.front, r.pareto = f, f == 1
    for r in rows:
        if r.front is None:
            missing = [c for c, _ in objectives if getattr(r, c) is None]
            r.pareto = False
            r.decision_note = r.decision_note or not_ranked(f"no {', '.join(missing)}")
    mark_decisions(rankable, predictions, margin)
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
    """Why nothing is recommended (no model meets the constraints, or those that do were measured unstably), and
    the fastest model with what it breaks."""
    unknown = [r for r in ranked if r.verdict == "unknown"]
    fastest = min(ranked, key=lambda r: (_num(r.latency_p50_ms), sort_key(r)))
    unstable = [r for r in ranked if r.unstable and r.verdict in ELIGIBLE + ("uncertain",)]  # left out, else chosen
    if unstable:
        text = (f"no model is recommended on {board.name}: the {len(unstable)} that meet the constraints (or may) were "
                f"measured unstably (rerun `kdbench profile` on a quieter machine, or pass --include-unstable)")
    else:
        text = f"no model meets the constraints on {board.name}"
    if unknown:
        text += f" ({len(unknown)} could not be checked: a constrained figure was not measured)"
    if fastest.fps is not None:
        text += f"; the fastest is {row_label(fastest)} at {fastest.fps:.1f} fps ({fastest.verdict_reasons or 'no violation'})"
    return text


KEEPS = ("best", "equivalent")  # decisions that keep the accuracy of the best


def _speed_key(row: BoardRow) -> tuple:
    """The fastest first, then the smallest, then the most accurate on validation."""
    return (_num(row.latency_p50_ms), _num(row.size_mb), _num(row.val_accuracy, -1.0), sort_key(row))


def selection_note(row: BoardRow) -> str:
    """'selection-biased: chosen on these frames; seed mean 0.884' for a chosen row's validation figure."""
    seed = (f"; seed mean {row.seed_mean_val_accuracy:.3f} over {row.n_seeds} seeds"
            if row.seed_mean_val_accuracy is not None and row.variant != "checkpoint" else "")
    return f"selection-biased: chosen on these frames{seed}"


def decision_counts(ranked: list[BoardRow]) -> str:
    """'1 best, 3 equivalent, 10 worse, 5 undecided'."""
    return ", ".join(f"{sum(r.decision == v for r in ranked)} {v}" for v in ("best", "equivalent", "worse", "undecided"))


def recommend(board: "TargetBoard", include_unstable: bool = False) -> None:
    """The fastest (then smallest) ranked model that is best or equivalent to the best on validation and meets the
    constraints; without one, the most accurate that meets them. An uncertain one only when nothing surely meets,
    flagged."""
    ranked = [r for r in board.rows if r.front is not None]
    if not ranked:
        board.recommendation = "no model could be ranked on this target (see the notes in the table)"
        return
    margin = getattr(board, "margin", DEFAULT_MARGIN)
    best_row = next((r for r in ranked if r.decision == "best"), None)
    usable = [r for r in ranked if include_unstable or not r.unstable]
    board.left_out_unstable = len(ranked) - len(usable)
    eligible = [r for r in usable if r.verdict in ELIGIBLE]
    uncertain = [r for r in usable if r.verdict == "uncertain"]
    if not eligible and not uncertain:
        board.recommendation = _no_model_text(board, ranked)
        return
    flagged = not eligible
    pool = eligible or uncertain
    keep = [r for r in pool if r.decision in KEEPS]
    chosen = min(keep, key=_speed_key) if keep else min(pool, key=_best_key)
    chosen.recommended, chosen.recommended_uncertain = True, flagged
    board.recommended = chosen
    acc = f"{_acc(chosen)}, {selection_note(chosen)}"
    rule = f"margin δ = {fmt_margin(margin)}, paired on the same validation frames"
    if chosen.decision == "best":
        how = f"the best on validation ({rule})"
    else:
        how = f"{chosen.decision} to the best on validation ({rule}: {chosen.decision_note})"
    meets = chosen.verdict == "meets"
    if flagged:
        text = (f"UNCERTAIN: {row_label(chosen)}, {acc}: no model surely meets the constraints; this one's estimate band "
                f"straddles a limit ({chosen.verdict_reasons}): measure it on the target before relying on it; "
                f"decision: {how}")
    elif keep:
        text = (f"{row_label(chosen)}: the fastest (then smallest) model that is best or equivalent to the best"
                f"{' and meets every constraint' if meets else ' (no constraints on this target)'}; decision: {how}; {acc}")
    else:
        text = (f"{row_label(chosen)}: no {'model that meets every constraint' if meets else 'usable model'} is best or "
                f"equivalent to the best ({row_label(best_row) if best_row else '-'}) at δ = {fmt_margin(margin)}; this "
                f"is the most accurate one that {'meets them' if meets else 'is'}: {acc}; decision: {chosen.decision} "
                f"({chosen.decision_note})")
    text += f"; decisions against the best: {decision_counts(ranked)}"
    better_uncertain = [r for r in uncertain if not flagged and r.val_accuracy > chosen.val_accuracy]
    if better_uncertain:
        text += f"; {len(better_uncertain)} more accurate model(s) are uncertain on the constraints (not recommended)"
    board.recommendation = text
