"""The clip record every dataset loader returns, and the checked CSV reader the loaders share."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from kdbench.checks import read_text_utf8
from kdbench.data.sources import marker_hint
from kdbench.data.views import SPLITS
from kdbench.errors import DataError



@dataclass(frozen=True)
class Clip:
    """One video (or, for TMED-2, the images of one patient/study/view) headed for the store."""

    source: str  # a registered source name: "echonet_dynamic" | "echonet_lvh" | "tmed2" | "own" | "unlabelled"
    patient: str  # namespaced by source, e.g. "echonet_lvh:0X1A..."
    video: str  # namespaced by source
    view: str  # one of VIEWS, or "" for an unlabelled clip
    split: str  # "train" | "val" | "test" | "unlabelled"
    files: tuple[str, ...]  # one file (any frames: AVI, DICOM, a still), or the clip's stills in frame order
    kind: str  # "video" (one file, all its frames) | "images" (one still per file)
    csv: str  # the CSV the clip was listed in
    lines: tuple[int, ...] = field(default=())  # 1-based line numbers in that CSV (header = 1)

    def origin(self) -> str:
        """Where the clip was listed, e.g. ``FileList.csv lines 2, 7``."""
        shown = ", ".join(str(n) for n in self.lines[:5]) + (", ..." if len(self.lines) > 5 else "")
        word = "line" if len(self.lines) == 1 else "lines"
        return f"{self.csv} {word} {shown}"


@dataclass
class LoadResult:
    """What a loader found: the clips, labels it dropped on purpose, listed-but-absent files, the CSVs read."""

    source: str
    clips: list[Clip]
    dropped_labels: dict[str, int] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)  # CSV files whose content defines the clips
    missing: list[dict] = field(default_factory=list)  # missing_entry() records, in CSV order
    fingerprints: dict[str, str] = field(default_factory=dict)  # other inputs' hashes, e.g. a folder's listing


def check_folder(root: Path, what: str, marker: str) -> Path:
    """Resolve a dataset root; DataError if it is missing, empty or holds another dataset."""
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"{what} folder {root} does not exist; expected a folder containing {marker}")
    if not root.is_dir():
        raise DataError(f"{what} path {root} is a file; expected a folder containing {marker}")
    entries = sorted(p.name for p in root.iterdir())
    if not entries:
        raise DataError(f"{what} folder {root} is empty; expected a folder containing {marker}")
    if not (root / marker).exists():
        hint = marker_hint(set(entries), marker)
        shown = ", ".join(entries[:8]) + (", ..." if len(entries) > 8 else "")
        raise DataError(
            f"{what} folder {root} has no {marker} (found: {shown}){hint}; expected a folder "
            f"containing {marker}"
        )
    return root.resolve()


def check_file(path: Path, what: str) -> Path:
    """Resolve a CSV file given on the command line; DataError if it is missing or a folder."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{what} {path} does not exist; expected a CSV file")
    if path.is_dir():
        raise DataError(f"{what} {path} is a folder; expected a CSV file")
    return path.resolve()


def read_table(path: Path, required: tuple[str, ...], what: str,
               optional: tuple[str, ...] = ()) -> list[tuple[int, dict[str, str]]]:
    """Read a CSV into (line number, row) pairs of the required columns (and optional ones the header has)."""
    if not path.is_file():
        raise DataError(f"{what}: {path} not found")
    reader = csv.reader(io.StringIO(read_text_utf8(path, "CSV file"), newline=""))
    try:
        header = [h.strip() for h in next(reader)]
        pos = _column_positions(path, header, required)
        pos.update({c: header.index(c) for c in optional if c in header})
        rows = []
        for line, values in enumerate(reader, start=2):
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) < len(header):
                raise DataError(f"{path} line {line}: {len(values)} fields, expected {len(header)} (columns {header})")
            rows.append((line, {c: values[i].strip() for c, i in pos.items()}))
    except StopIteration:
        raise DataError(f"{path} is empty; expected a header with columns {', '.join(required)}") from None
    except csv.Error as err:
        raise DataError(f"{path} line {reader.line_num}: not a readable CSV row ({err})") from None
    if not rows:
        raise DataError(f"{path} lists no rows; expected one row per {what} entry")
    return rows


def _column_positions(path: Path, header: list[str], required: tuple[str, ...]) -> dict[str, int]:
    """Index of each required column in the header; DataError naming missing ones (with case hints)."""
    missing = [c for c in required if c not in header]
    if missing:
        near = {c: h for c in missing for h in header if h.lower() == c.lower()}
        hint = "".join(f"; column '{h}' should be named '{c}'" for c, h in near.items())
        raise DataError(f"{path} line 1 (header): missing column(s) {', '.join(repr(c) for c in missing)}{hint}; "
                        f"found columns {header}; expected {list(required)}")
    return {c: header.index(c) for c in required}


def parse_split(value: str, path: Path, line: int, column: str) -> str:
    """Lowercase an official split name; DataError naming the cell if it is not train/val/test."""
    split = value.strip().lower()
    if split not in SPLITS:
        raise DataError(
            f"{path} line {line}, column '{column}': split {value!r} is not one of "
            f"{', '.join(SPLITS)} (any case)"
        )
    return split


def missing_entry(source: str, video: str, file: Path | str, csv_path: Path, line: int, absent: str = "") -> dict:
    """The record of a listed-but-absent video or image: skipped and counted, an error under --strict."""
    return {"source": source, "video": video, "file": str(file), "csv": str(csv_path), "line": int(line),
            "reason": f"listed in {csv_path} line {line} but {absent or f'{file} does not exist'}"}


def check_not_all_missing(what: str, csv_path: Path, missing: list[dict], n_listed: int, where: str) -> None:
    """DataError when every listed item is absent: the folder is surely the wrong one, not a partial copy."""
    if missing and len(missing) == n_listed:
        raise DataError(f"{csv_path}: none of the {n_listed} {what}s it lists exist in {where} (first: "
                        f"{missing[0]['file']}); expected the dataset's files beside the CSV")


def video_clips(source: str, view: str, csv_path: Path, grouped: dict[tuple[str, str], list[int]],
                video_path: dict[str, Path]) -> list[Clip]:
    """One clip per (video name, split) for datasets where every video is its own patient."""
    return [
        Clip(source=source, patient=f"{source}:{name}", video=f"{source}:{name}", view=view, split=split,
             files=(str(video_path[name]),), kind="video", csv=str(csv_path), lines=tuple(lines))
        for (name, split), lines in grouped.items()
    ]
