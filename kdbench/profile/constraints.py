"""A target's deployment constraints (from its hardware profile) and the one evaluator of them.

It lives in the profile package (below the search and the leaderboard, which both use it), so neither
profile nor search imports the leaderboard.

``evaluate_constraints`` is used by ``kdbench profile`` (``kdbench.profile.results.check_constraints``)
and by the leaderboard alike. Rules, on batch-1 figures: ``fps >= min_fps``, the model's own memory
(``model_memory_mb``: peak RSS increment over the same runtime running a trivial one-op model;
``memory_mb`` is read where a row has no ``model_memory_mb``) ``< max_memory_mb``, model file
``size_mb < max_file_mb``. Verdicts:

- ``meets``: every constrained figure is known and inside its limit over its whole band;
- ``fails``: some figure is outside its limit over its whole band (a measured figure: its value);
- ``uncertain``: no figure fails but a band straddles a limit (an estimate's error band, or the
  spread of a measurement's fresh-process runs, given as ``fps_low``/``fps_high`` and
  ``model_memory_mb_low``/``model_memory_mb_high``);
- ``unknown``: no figure fails or is uncertain, but a constrained figure is missing;
- ``n/a``: the target defines no constraints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdbench.errors import ConfigError, DataError
from kdbench.manifest import read_json
from kdbench.profile.hardware import load_profile

# constraint key -> (row column, comparison, unit, text of the rule)
RULES: dict[str, tuple[str, str, str]] = {
    "min_fps": ("fps", ">=", "fps"),
    "max_memory_mb": ("model_memory_mb", "<", "MB"),
    "max_file_mb": ("size_mb", "<", "MB"),
}
FALLBACK_COLUMNS = {"model_memory_mb": ("memory_mb",), "size_mb": ("file_size_mb",)}
STATUSES = ("meets", "fails", "uncertain", "unknown", "n/a")
LABELS = {"min_fps": "fps", "max_memory_mb": "memory", "max_file_mb": "file size"}


def load_constraints(target: str, profile_dir: Path | None = None) -> tuple[dict[str, float], str]:
    """The target's constraints and where they came from: its hardware profile TOML, else the profile run's manifest."""
    try:
        prof = load_profile(target)
        return dict(prof.constraints), str(prof.path)
    except ConfigError as err:
        manifest = Path(profile_dir) / target / "manifest.json" if profile_dir else None
        if manifest is None or not manifest.is_file():
            raise ConfigError(f"target {target!r}: {err}; and no {manifest or 'profile manifest.json'} to read "
                              "its constraints from") from None
    try:
        doc = read_json(manifest)
    except ValueError as err:
        raise DataError(f"{manifest}: not valid JSON ({err})") from None
    cons = ((doc.get("target") or {}) if isinstance(doc, dict) else {}).get("constraints")
    if cons is None:
        return {}, str(manifest)
    if not isinstance(cons, dict):
        raise DataError(f"{manifest}: key target.constraints is {type(cons).__name__}; expected an object")
    unknown = sorted(set(cons) - set(RULES))
    if unknown:
        raise DataError(f"{manifest}: target.constraints has unknown key(s) {unknown}; expected some of {sorted(RULES)}")
    return {k: float(v) for k, v in cons.items()}, str(manifest)


def _figure(row: dict[str, Any], column: str) -> tuple[float | None, float | None, float | None]:
    """(value, low, high) of a column; the band defaults to the value itself."""
    for col in (column, *FALLBACK_COLUMNS.get(column, ())):
        value = row.get(col)
        if value is not None:
            low, high = row.get(f"{col}_low"), row.get(f"{col}_high")
            return float(value), float(low if low is not None else value), float(high if high is not None else value)
    return None, None, None


def evaluate_constraints(row: dict[str, Any], constraints: dict[str, float]) -> tuple[str, list[str]]:
    """(status, reasons): status one of STATUSES (see the module docstring); reasons name each figure."""
    if not constraints:
        return "n/a", []
    fails, uncertain, missing = [], [], []
    for key, limit in _ordered(constraints):
        if key not in RULES:
            raise ConfigError(f"constraint {key!r} = {limit!r}: unknown; expected one of {sorted(RULES)}")
        column, op, unit = RULES[key]
        value, low, high = _figure(row, column)
        if value is None:
            missing.append(f"{LABELS[key]} not measured")
            continue
        unit_text = "" if unit == "fps" else f" {unit}"
        banded = f" ({low:.1f}-{high:.1f})" if (low, high) != (value, value) else ""
        if op == ">=":
            ok_all, ok_none, bad = low >= limit, high < limit, "<"
        else:
            ok_all, ok_none, bad = high < limit, low >= limit, ">="
        if ok_none:  # the whole band is outside the limit (an unbanded figure: the value is)
            fails.append(f"{LABELS[key]} {value:.1f}{banded}{unit_text} {bad} {limit:g}{unit_text}")
        elif not ok_all:
            uncertain.append(f"{LABELS[key]} {value:.1f}{banded}{unit_text} straddles {limit:g}{unit_text}")
    if fails:
        return "fails", fails + uncertain + missing
    if uncertain:
        return "uncertain", uncertain + missing
    if missing:
        return "unknown", missing
    return "meets", []


def _ordered(constraints: dict[str, float]) -> list[tuple[str, float]]:
    """Constraints in the fixed order of RULES (fps, memory, file), unknown keys last."""
    order = list(RULES)
    return sorted(constraints.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0]))


def describe_constraints(constraints: dict[str, float]) -> str:
    """The constraints as text, e.g. 'fps >= 30, memory < 50 MB'."""
    if not constraints:
        return "none defined"
    parts = []
    for key, limit in _ordered(constraints):
        _, op, unit = RULES[key]
        parts.append(f"{LABELS[key]} {op} {limit:g}" + ("" if unit == "fps" else f" {unit}"))
    return ", ".join(parts)
