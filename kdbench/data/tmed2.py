"""TMED-2 loader: ``DEV479/TMED2_fold{k}_labeledpart.csv`` + ``<SourceFolder>/<query_key>`` PNGs.

Layout (as published): columns
``query_key,view_label,diagnosis_label,SourceFolder,view_classifier_split,diagnosis_classifier_split``;
112x112 grey PNG images; query_key ``<patient>s<study>_<idx>.png`` is unique only together with
SourceFolder. View labels ``PLAX,PSAX,A4C,A2C`` are kept; ``A4CorA2CorOther`` and ``Not_Provided``
are dropped and counted. A kdbench "clip" is the images of one (patient, study, view), in idx order.
"""

from __future__ import annotations

import re
from pathlib import Path

from kdbench.data.clips import Clip, LoadResult, check_folder, check_not_all_missing, missing_entry, parse_split, read_table
from kdbench.data.views import VIEWS
from kdbench.errors import DataError

SOURCE = "tmed2"
COLUMNS = ("query_key", "view_label", "SourceFolder", "view_classifier_split")
DROPPED_LABELS = ("A4CorA2CorOther", "Not_Provided")
FOLDS = (0, 1, 2)
_KEY = re.compile(r"^(?P<patient>[^/\\]+?)s(?P<study>\d+)_(?P<idx>\d+)\.png$")


def csv_path(root: Path, fold: int) -> Path:
    """The labelled-part CSV of one fold."""
    return root / "DEV479" / f"TMED2_fold{fold}_labeledpart.csv"


def load(root: str | Path, fold: int = 0) -> LoadResult:
    """List TMED-2 labelled images as clips of one (patient, study, view) with the view split."""
    if fold not in FOLDS:
        raise DataError(f"TMED-2 fold {fold!r} does not exist; expected one of {FOLDS}")
    root = check_folder(Path(root), "TMED-2", "DEV479")
    path = csv_path(root, fold)
    rows = read_table(path, COLUMNS, "TMED-2 image")

    dropped = {label: 0 for label in DROPPED_LABELS}
    seen: dict[tuple[str, str], tuple[int, str]] = {}  # (folder, key) -> (line, view)
    grouped: dict[tuple[str, str, str, str], list[tuple[int, int, str]]] = {}
    missing: list[dict] = []
    for line, row in rows:
        label = row["view_label"]
        if label in dropped:
            dropped[label] += 1
            continue
        if label not in VIEWS:
            raise DataError(
                f"{path} line {line}, column 'view_label': unknown view {label!r}; expected one of "
                f"{', '.join(VIEWS + DROPPED_LABELS)}"
            )
        key = row["query_key"]
        match = _KEY.match(key)
        if not match:
            raise DataError(
                f"{path} line {line}, column 'query_key': {key!r} is not <patient>s<study>_<idx>.png"
            )
        folder = row["SourceFolder"].strip().strip("/\\")
        if not folder:
            raise DataError(f"{path} line {line}, column 'SourceFolder': empty; expected the image's folder")
        split = parse_split(row["view_classifier_split"], path, line, "view_classifier_split")
        ident = (folder, key)
        if ident in seen:
            first_line, first_view = seen[ident]
            if first_view != label:
                raise DataError(
                    f"{path} lines {first_line} and {line}: image {folder}/{key} is labelled both "
                    f"{first_view!r} and {label!r}; expected one view per image"
                )
        seen[ident] = (line, label)
        image = root / folder / key
        if not image.is_file():
            video = f"{SOURCE}:{match['patient']}s{match['study']}_{label}"
            missing.append(missing_entry(SOURCE, video, image, path, line))
            continue
        clip_key = (match["patient"], match["study"], label, split)
        grouped.setdefault(clip_key, []).append((int(match["idx"]), line, str(image)))
    check_not_all_missing("image", path, missing, len(missing) + sum(len(v) for v in grouped.values()), root)
    if not grouped:
        raise DataError(
            f"{path}: no image has a view label in {', '.join(VIEWS)} (dropped: {dropped}); "
            f"expected labelled images"
        )

    clips = []
    for (patient, study, view, split), items in grouped.items():
        items = sorted(set(items))
        clips.append(
            Clip(
                source=SOURCE,
                patient=f"{SOURCE}:{patient}",
                video=f"{SOURCE}:{patient}s{study}_{view}",
                view=view,
                split=split,
                files=tuple(dict.fromkeys(f for _, _, f in items)),
                kind="images",
                csv=str(path),
                lines=tuple(sorted({ln for _, ln, _ in items})),
            )
        )
    return LoadResult(source=SOURCE, clips=clips, dropped_labels=dropped, inputs=[str(path)], missing=missing)
