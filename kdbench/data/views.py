"""The label space kdbench classifies into, and the split and source names used everywhere."""

from __future__ import annotations

VIEWS: tuple[str, ...] = ("A2C", "A4C", "PLAX", "PSAX")
VIEW_INDEX: dict[str, int] = {v: i for i, v in enumerate(VIEWS)}
SPLITS: tuple[str, ...] = ("train", "val", "test")
SOURCES: tuple[str, ...] = ("echonet_dynamic", "echonet_lvh", "tmed2")
