"""The label space kdbench classifies into, and the split and source names used everywhere."""

from __future__ import annotations

from kdbench.data.sources import SOURCE_NAMES

VIEWS: tuple[str, ...] = ("A2C", "A4C", "PLAX", "PSAX")
VIEW_INDEX: dict[str, int] = {v: i for i, v in enumerate(VIEWS)}
SPLITS: tuple[str, ...] = ("train", "val", "test")  # the labelled splits every trainer and evaluator reads
UNLABELLED = "unlabelled"  # the split (and source) of frames without a view label
STORE_SPLITS: tuple[str, ...] = (*SPLITS, UNLABELLED)  # every split a frame store may hold
NO_LABEL = -1  # FrameStore.labels of unlabelled rows (their index.csv view is empty)
SOURCES: tuple[str, ...] = SOURCE_NAMES  # the registry in kdbench/data/sources.py, in its order


def parse_view(value: str) -> str | None:
    """The canonical view for a name in any case (``a4c`` -> ``A4C``), or None if it is not one of VIEWS."""
    return next((v for v in VIEWS if v.lower() == value.strip().lower()), None)
