"""The label space kdbench classifies into, and the split and source names used everywhere."""

from __future__ import annotations

from kdbench.data.sources import SOURCE_NAMES

VIEWS: tuple[str, ...] = ("A2C", "A4C", "PLAX", "PSAX")
VIEW_INDEX: dict[str, int] = {v: i for i, v in enumerate(VIEWS)}
SPLITS: tuple[str, ...] = ("train", "val", "test")
SOURCES: tuple[str, ...] = SOURCE_NAMES  # the registry in kdbench/data/sources.py, in its order
