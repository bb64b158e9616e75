"""A target's deployment constraints (from its hardware profile) and whether a leaderboard row meets them.

The rules are those of ``kdbench profile`` (``kdbench.profile.results.check_constraints``), applied
to batch-1 figures: ``fps >= min_fps``, model memory (RSS increment over the runtime) ``<
max_memory_mb``, model file ``< max_file_mb``. A constrained figure that was not measured makes the
verdict ``unknown``, never ``yes``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdbench.errors import ConfigError, DataError
from kdbench.manifest import read_json

# constraint key -> (row column, comparison, unit, text of the rule)
RULES: dict[str, tuple[str, str, str]] = {
    "min_fps": ("fps", ">=", "fps"),
    "max_memory_mb": ("memory_mb", "<", "MB"),
    "max_file_mb": ("size_mb", "<", "MB"),
}
LABELS = {"min_fps": "fps", "max_memory_mb": "memory", "max_file_mb": "file size"}


def load_constraints(target: str, profile_dir: Path | None = None) -> tuple[dict[str, float], str]:
    """The target's constraints and where they came from: its hardware profile TOML, else the profile run's manifest."""
    from kdbench.profile.hardware import load_profile

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


def evaluate_constraints(row: dict[str, Any], constraints: dict[str, float]) -> tuple[str, list[str]]:
    """('yes' | 'no' | 'unknown' | 'n/a', reasons): 'n/a' without constraints, 'unknown' when a figure is missing."""
    if not constraints:
        return "n/a", []
    violations, missing = [], []
    for key, limit in _ordered(constraints):
        if key not in RULES:
            raise ConfigError(f"constraint {key!r} = {limit!r}: unknown; expected one of {sorted(RULES)}")
        column, op, unit = RULES[key]
        value = row.get(column)
        if value is None:
            missing.append(f"{LABELS[key]} not measured")
            continue
        ok = value >= limit if op == ">=" else value < limit
        if not ok:
            bad = "<" if op == ">=" else ">="
            unit_text = "" if unit == "fps" else f" {unit}"
            violations.append(f"{LABELS[key]} {value:.1f}{unit_text} {bad} {limit:g}{unit_text}")
    if violations:
        return "no", violations + missing
    if missing:
        return "unknown", missing
    return "yes", []


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
