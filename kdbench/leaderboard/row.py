"""A leaderboard row: one (configuration x variant x runtime) on one target, with one to_dict for CSV and JSON.

Every field holds its declared type whatever is assigned to it (``cell_value``): a flag is a bool, a number a
finite int/float or None (text such as '-' or 'n/a' becomes None), text is text or None; an interval end is cut to
its metric's range (``kdbench.leaderboard.columns.RANGES``). ``typed_row`` reads a row back from the files.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from kdbench.leaderboard.columns import RANGES, column_names

_TRUE = ("true", "yes", "uncertain")  # 'yes' / 'uncertain': the flags of leaderboards written before format 2


@dataclass
class BoardRow:
    """The fields are the leaderboard columns (kdbench.leaderboard.columns.COLUMNS), in order."""

    target: str | None = None
    front: int | None = None
    pareto: bool = False
    decision: str | None = None  # best | equivalent | worse | undecided (kdbench.leaderboard.decisions)
    decision_note: str | None = None
    decision_ci_low: float | None = None  # 95% interval of best minus this row (validation, paired)
    decision_ci_high: float | None = None
    recommended: bool = False
    recommended_uncertain: bool = False
    model: str | None = None  # '<student>.<method>_trial<n>_<variant>' (kdbench.leaderboard.collect.model_name)
    student: str | None = None
    method: str | None = None
    temperature: float | None = None
    alpha: float | None = None
    train_batch_size: int | None = None
    trial: int | None = None
    seed: int | None = None
    variant: str | None = None
    precision: str | None = None
    runtime: str | None = None
    runtime_version: str | None = None
    threads: int | None = None
    infer_img_size: int | None = None
    infer_batch_size: int | None = None
    infer_samples_per_sec: float | None = None
    infer_step_time: float | None = None
    val_accuracy: float | None = None
    val_accuracy_low: float | None = None
    val_accuracy_high: float | None = None
    test_accuracy: float | None = None
    test_accuracy_low: float | None = None
    test_accuracy_high: float | None = None
    test_clip_accuracy: float | None = None
    test_clip_accuracy_low: float | None = None
    test_clip_accuracy_high: float | None = None
    test_macro_f1: float | None = None
    test_clip_macro_f1: float | None = None
    test_ece: float | None = None
    test_ece_low: float | None = None
    test_ece_high: float | None = None
    test_worst_source_accuracy: float | None = None
    shortcut_view: str | None = None
    shortcut_sources: str | None = None
    shortcut_gap: float | None = None
    test_frames: int | None = None
    test_clips: int | None = None
    seed_mean_val_accuracy: float | None = None
    seed_mean_test_accuracy: float | None = None
    seed_test_low: float | None = None
    seed_test_high: float | None = None
    seed_interval: str | None = None
    n_seeds: int | None = None
    relative_accuracy: float | None = None
    seed_relative_accuracy: float | None = None  # seed-mean test accuracy / the teacher's, paired seed+clip interval
    seed_relative_low: float | None = None
    seed_relative_high: float | None = None
    latency_p50_ms: float | None = None
    latency_p50_low_ms: float | None = None
    latency_p50_high_ms: float | None = None
    latency_p90_ms: float | None = None
    fps: float | None = None
    fps_low: float | None = None
    fps_high: float | None = None
    frame_fps: float | None = None
    model_memory_mb: float | None = None
    model_memory_mb_low: float | None = None
    model_memory_mb_high: float | None = None
    peak_rss_mb: float | None = None
    size_mb: float | None = None
    param_count: float | None = None
    infer_gmacs: float | None = None
    estimated: bool = False
    error_band_pct: float | None = None
    unstable: bool = False
    verdict: str | None = None
    verdict_reasons: str | None = None
    kd_vs_scratch_diff: float | None = None
    kd_vs_scratch_p_holm: float | None = None
    kd_vs_scratch_verdict: str | None = None
    kd_vs_scratch_source: str | None = None
    variant_id: str | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        """Assign ``value`` as the field's type (``cell_value``), cut to the column's range."""
        if name in KINDS:
            value = clip(cell_value(KINDS[name], value), RANGES.get(name))
        super().__setattr__(name, value)

    def to_dict(self) -> dict[str, Any]:
        """The row as the CSV and JSON hold it: every column, in order."""
        return {name: getattr(self, name) for name in column_names()}

    def replace(self, **changes: Any) -> "BoardRow":
        """A copy with some columns changed."""
        return dataclasses.replace(self, **changes)


KINDS: dict[str, str] = {f.name: str(f.type).split(" ")[0] for f in dataclasses.fields(BoardRow)}  # bool|int|float|str


def number(value: Any) -> float | None:
    """A finite float from a number or numeric text; None for anything else (None, '', '-', 'n/a', NaN, inf)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def cell_value(kind: str, value: Any) -> Any:
    """``value`` as a column of ``kind`` holds it: bool (never None), int, float or str (None when absent)."""
    if kind == "bool":
        return value if isinstance(value, bool) else str(value).strip().lower() in _TRUE
    if kind == "str":
        return None if value is None or value == "" else str(value)
    x = number(value)
    return int(x) if kind == "int" and x is not None and x.is_integer() else x


def clip(value: float | None, bounds: tuple[float, float] | None) -> float | None:
    """``value`` cut to ``bounds`` (None: unbounded)."""
    if value is None or bounds is None:
        return value
    return min(max(value, bounds[0]), bounds[1])


def clip_interval(interval: tuple[Any, Any], bounds: tuple[float, float]) -> tuple[float | None, float | None]:
    """Both ends of an interval as finite numbers cut to ``bounds``."""
    low, high = interval
    return clip(number(low), bounds), clip(number(high), bounds)


def _guess(value: Any) -> Any:
    """A cell of a column this version does not know: text as int, float, None (empty) or text; others as they are."""
    if not isinstance(value, str):
        return value
    if value == "":
        return None
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def typed_row(cells: dict[str, Any]) -> dict[str, Any]:
    """A row read back from leaderboard.csv (text) or leaderboard.json: every known column as its type."""
    return {k: cell_value(KINDS[k], v) if k in KINDS else _guess(v) for k, v in cells.items()}
