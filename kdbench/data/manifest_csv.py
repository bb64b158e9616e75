"""Your own labelled archive (``--manifest labels.csv``): one CSV row per file, plus an optional view map.

Columns: ``path`` (relative to the CSV's folder, or absolute), ``view``, ``split`` (train/val/test,
any case), ``patient_id``; optional ``clip_id`` (rows sharing it form one clip, stills in row order;
default: the file, so each file is its own clip). Files: videos (AVI...), stills (PNG/JPG...) and
DICOM (``kdbench/data/media.py``). ``view`` is A2C/A4C/PLAX/PSAX in any case, or a name the view map
(``--view-map``, columns ``name,view``, names in any case) renames; a name mapped to an empty view,
and any other name, is dropped and counted (the dropped rows' files need not exist).

Every check runs here, before any decoding: a missing column, an empty cell, a bad split, a missing
or unsupported file, a file listed twice, a video among a clip's stills or a clip whose rows disagree
is one DataError naming the CSV and its line; patients in two splits are caught by ``kdbench.data.splits`` with the lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kdbench.data.clips import Clip, LoadResult, check_file, parse_split, read_table
from kdbench.data.media import KINDS_HELP, media_kind
from kdbench.data.sources import OWN
from kdbench.data.views import VIEWS, parse_view
from kdbench.errors import DataError

SOURCE = OWN
COLUMNS = ("path", "view", "split", "patient_id")
OPTIONAL = ("clip_id",)
MAP_COLUMNS = ("name", "view")


@dataclass(frozen=True)
class Row:
    """One kept row of the labels CSV, checked."""

    line: int
    file: str  # absolute path
    view: str
    split: str
    patient: str
    clip: str


def load(root: str | Path, view_map: str | Path | None = None) -> LoadResult:
    """List the labelled files of a labels CSV as clips (one per clip_id, default one per file)."""
    path = check_file(Path(root), "--manifest labels CSV")
    names = read_view_map(check_file(Path(view_map), "--view-map CSV")) if view_map is not None else {}
    rows, dropped = [], {}
    for line, cells in read_table(path, COLUMNS, "labelled file", OPTIONAL):
        view = resolve_view(_cell(path, line, cells, "view"), names)
        if view:
            rows.append(_checked_row(path, line, cells, view))
        else:
            dropped[cells["view"]] = dropped.get(cells["view"], 0) + 1
    if not rows:
        raise DataError(f"{path}: no row has a view in {', '.join(VIEWS)} (dropped: {dropped}); expected "
                        f"labelled files, or a --view-map that names their views")
    _check_files_once(path, rows)
    inputs = [str(path)] + ([str(Path(view_map).expanduser().resolve())] if view_map is not None else [])
    return LoadResult(source=SOURCE, clips=_clips(path, rows), dropped_labels=dict(sorted(dropped.items())),
                      inputs=inputs)


def resolve_view(name: str, names: dict[str, str]) -> str:
    """The view a label names: the view map's entry first, then A2C/A4C/PLAX/PSAX in any case; "" = dropped."""
    key = name.strip().lower()
    if key in names:
        return names[key]
    return parse_view(name) or ""


def read_view_map(path: Path) -> dict[str, str]:
    """{name in lower case: view, or "" to drop it} from a view map CSV with columns name,view."""
    out: dict[str, tuple[str, int]] = {}
    for line, cells in read_table(path, MAP_COLUMNS, "view name"):
        name = _cell(path, line, cells, "name").lower()
        view = parse_view(cells["view"]) if cells["view"] else ""
        if view is None:
            raise DataError(f"{path} line {line}, column 'view': {cells['view']!r} is not one of {', '.join(VIEWS)} "
                            f"(any case); leave it empty to drop the name")
        if name in out and out[name][0] != view:
            raise DataError(f"{path} lines {out[name][1]} and {line}: {cells['name']!r} is mapped to both "
                            f"{out[name][0] or 'nothing'!r} and {view or 'nothing'!r}; expected one view per name")
        out[name] = (view, line)
    return {name: view for name, (view, _) in out.items()}


def _cell(path: Path, line: int, cells: dict[str, str], column: str) -> str:
    """A required cell's value; DataError naming the line and column when it is empty."""
    if not cells.get(column):
        raise DataError(f"{path} line {line}, column '{column}': empty; expected a value in every row")
    return cells[column]


def _checked_row(path: Path, line: int, cells: dict[str, str], view: str) -> Row:
    """A kept row with its split, patient and file checked (DataError naming the line)."""
    split = parse_split(_cell(path, line, cells, "split"), path, line, "split")
    patient = _cell(path, line, cells, "patient_id")
    file = _existing_file(path, line, _cell(path, line, cells, "path"))
    clip = cells.get("clip_id") or Path(cells["path"]).as_posix()
    return Row(line=line, file=file, view=view, split=split, patient=patient, clip=clip)


def _existing_file(path: Path, line: int, value: str) -> str:
    """The absolute path of a listed file; DataError when it is absent, a folder or not a supported format."""
    file = Path(value).expanduser()
    file = file if file.is_absolute() else path.parent / file
    if not file.is_file():
        state = "is a folder" if file.is_dir() else "does not exist"
        raise DataError(f"{path} line {line}, column 'path': {file} {state}; expected {KINDS_HELP}")
    if media_kind(file) is None:
        raise DataError(f"{path} line {line}, column 'path': {file} is not {KINDS_HELP}")
    return str(file.resolve())


def _check_files_once(path: Path, rows: list[Row]) -> None:
    """DataError naming both lines when one file is listed twice (its frames would count twice)."""
    first: dict[str, int] = {}
    for row in rows:
        if row.file in first:
            raise DataError(f"{path} lines {first[row.file]} and {row.line}: {row.file} is listed twice; "
                            f"expected each file once")
        first[row.file] = row.line


def _clips(path: Path, rows: list[Row]) -> list[Clip]:
    """One clip per clip_id (rows in CSV order); DataError when a clip's rows disagree on view, split or patient."""
    grouped: dict[str, list[Row]] = {}
    for row in rows:
        grouped.setdefault(row.clip, []).append(row)
    return [_clip(path, clip, members) for clip, members in grouped.items()]


def _clip(path: Path, clip: str, rows: list[Row]) -> Clip:
    """The clip of rows sharing a clip_id: one file (all its frames) or several stills."""
    head = rows[0]
    video = next((r for r in rows if media_kind(r.file) == "video"), None) if len(rows) > 1 else None
    if video is not None:
        raise DataError(f"{path} line {video.line}, column 'clip_id': {video.file} is a video, but clip_id {clip!r} "
                        f"groups {len(rows)} files as stills; give the video a clip_id of its own")
    for field in ("view", "split", "patient"):
        other = next((r for r in rows if getattr(r, field) != getattr(head, field)), None)
        if other is not None:
            raise DataError(f"{path} lines {head.line} and {other.line}: clip_id {clip!r} has {field} "
                            f"{getattr(head, field)!r} and {getattr(other, field)!r}; expected one {field} per clip")
    return Clip(source=SOURCE, patient=f"{SOURCE}:{head.patient}", video=f"{SOURCE}:{clip}", view=head.view,
                split=head.split, files=tuple(r.file for r in rows), kind="video" if len(rows) == 1 else "images",
                csv=str(path), lines=tuple(r.line for r in rows))
