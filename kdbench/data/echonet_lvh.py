"""EchoNet-LVH loader: ``MeasurementsList.csv`` + ``Batch1..4/<HashedFileName>.avi``; all PLAX.

Layout (as published): ``MeasurementsList.csv`` with an unnamed leading index column, then
``HashedFileName,Calc,CalcValue,Frame,X1,X2,Y1,Y2,Frames,FPS,Width,Height,split`` (split lowercase),
one row per measurement, so several rows per video; videos at native, varying resolution in one of
the folders ``Batch1`` .. ``Batch4``. The dataset has no patient ids, so each video is its own patient.
"""

from __future__ import annotations

from pathlib import Path

from kdbench.data.clips import (LoadResult, check_folder, check_not_all_missing, missing_entry, parse_split,
                                read_table, video_clips)
from kdbench.errors import DataError

SOURCE = "echonet_lvh"
VIEW = "PLAX"
COLUMNS = ("HashedFileName", "split")
BATCHES = ("Batch1", "Batch2", "Batch3", "Batch4")


def _video_index(root: Path) -> dict[str, Path]:
    """Map ``<name>.avi`` to its path over the Batch folders present (first batch wins)."""
    found: dict[str, Path] = {}
    for batch in BATCHES:
        folder = root / batch
        if folder.is_dir():
            for entry in folder.iterdir():
                found.setdefault(entry.name, entry)
    return found


def load(root: str | Path) -> LoadResult:
    """List every EchoNet-LVH video once (rows deduplicated) as a PLAX clip with its split."""
    root = check_folder(Path(root), "EchoNet-LVH", "MeasurementsList.csv")
    csv_path = root / "MeasurementsList.csv"
    rows = read_table(csv_path, COLUMNS, "EchoNet-LVH measurement")
    batches = [b for b in BATCHES if (root / b).is_dir()]
    if not batches:
        raise DataError(
            f"EchoNet-LVH folder {root} has none of the folders {', '.join(BATCHES)}; expected the "
            f"videos in Batch1/ .. Batch4/<HashedFileName>.avi"
        )
    videos = _video_index(root)

    grouped: dict[tuple[str, str], list[int]] = {}
    missing: dict[str, dict] = {}  # one record per video, at its first row
    for line, row in rows:
        name = row["HashedFileName"]
        if not name:
            raise DataError(f"{csv_path} line {line}, column 'HashedFileName': empty; expected a video name")
        if name.lower().endswith(".avi"):
            name = name[:-4]
        split = parse_split(row["split"], csv_path, line, "split")
        if f"{name}.avi" not in videos:
            absent = f"{name}.avi is in none of " + ", ".join(str(root / b) for b in batches)
            missing.setdefault(name, missing_entry(SOURCE, f"{SOURCE}:{name}", f"{name}.avi", csv_path, line, absent))
            continue
        grouped.setdefault((name, split), []).append(line)
    n_listed = len({name for name, _ in grouped}) + len(missing)
    check_not_all_missing("video", csv_path, list(missing.values()), n_listed, root)
    clips = video_clips(SOURCE, VIEW, csv_path, grouped, {n: videos[f"{n}.avi"] for n, _ in grouped})
    return LoadResult(source=SOURCE, clips=clips, inputs=[str(csv_path)], missing=list(missing.values()))
