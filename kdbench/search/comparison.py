"""``Comparison``: one row of statistics.json's ``comparisons`` (a distillation method's best configuration
against the best baseline one on one metric), and the reader of those rows.

``kdbench.search.statistics`` computes the rows and writes each through ``Comparison.to_dict``; the
search's status, the API and the leaderboard read them back with ``comparisons_of``. Rows written before
``format_version`` existed read as version 1; engine-specific keys (``se``, ``df``, ``se2_parts``,
``n_clips``, ``n_frames``, ``note``, ...) travel unchanged in ``extra``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from kdbench.errors import DataError

FORMAT_VERSION = 1


@dataclass
class Comparison:
    """Method A (``a``: trial, method, config_id, hparams) vs the baseline B on ``metric`` over paired seeds."""

    student: str
    comparison: str  # "<method> vs <baseline>"
    metric: str
    a: dict[str, Any] = field(default_factory=dict)
    b: dict[str, Any] = field(default_factory=dict)
    best_distillation: bool = False
    seeds: list[int] = field(default_factory=list)
    n: int | None = None
    mean_a: float | None = None
    mean_b: float | None = None
    diff: float | None = None
    sd_diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    ci_method: str | None = None
    p_value: float | None = None
    p_value_method: str | None = None
    p_wilcoxon: float | None = None
    p_holm: float | None = None
    significant: bool | None = None
    engine: str | None = None
    margin: float | None = None
    decision: str | None = None  # kd_better | baseline_better | equivalent | undecided
    verdict: str | None = None
    seeds_needed: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @classmethod
    def from_dict(cls, body: Any, where: str = "statistics.json") -> "Comparison":
        """The record of one comparison row (any version so far); DataError naming ``where`` when it is not one."""
        if not isinstance(body, dict) or any(k not in body for k in ("student", "comparison", "metric")):
            raise DataError(f"{where}: a comparison needs student, comparison and metric (got {body!r:.200})")
        version = body.get("format_version", 1)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise DataError(f"{where}: comparison format_version {version!r} is newer than this kdbench reads "
                            f"({FORMAT_VERSION})")
        named = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in body.items() if k in named},
                   extra={k: v for k, v in body.items() if k not in named})

    def to_dict(self) -> dict[str, Any]:
        """The row as statistics.json holds it (``extra`` keys beside the named ones)."""
        body = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**body, **self.extra}


def comparisons_of(stats: dict[str, Any] | None, metric: str | None = None,
                   where: str = "statistics.json") -> list[Comparison]:
    """The comparisons of a statistics.json body (None: none), only those on ``metric`` when given."""
    rows = [Comparison.from_dict(c, where) for c in (stats or {}).get("comparisons", [])]
    return [c for c in rows if metric is None or c.metric == metric]
