"""A leaderboard row: one (configuration x variant x runtime) on one target, with one to_dict for CSV and JSON."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from kdbench.leaderboard.columns import column_names


@dataclass
class BoardRow:
    """The fields are the leaderboard columns (kdbench.leaderboard.columns.COLUMNS), in order."""

    target: str | None = None
    front: int | None = None
    pareto: str | None = None
    decision: str | None = None  # best | equivalent | worse | undecided (kdbench.leaderboard.decisions)
    decision_note: str | None = None
    decision_ci_low: float | None = None  # 95% interval of best minus this row (validation, paired)
    decision_ci_high: float | None = None
    recommended: str | None = None
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
    measured: str | None = None
    error_band_pct: float | None = None
    stable: bool | None = None
    verdict: str | None = None
    verdict_reasons: str | None = None
    kd_vs_scratch_diff: float | None = None
    kd_vs_scratch_p_holm: float | None = None
    kd_vs_scratch_verdict: str | None = None
    kd_vs_scratch_source: str | None = None
    variant_id: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The row as the CSV and JSON hold it: every column, in order."""
        return {name: getattr(self, name) for name in column_names()}

    def replace(self, **changes: Any) -> "BoardRow":
        """A copy with some columns changed."""
        return dataclasses.replace(self, **changes)
