"""EchoNet-Dynamic loader: ``FileList.csv`` + ``Videos/<FileName>.avi``; every video is A4C.

Layout (as published): ``FileList.csv`` with columns
``FileName,EF,ESV,EDV,FrameHeight,FrameWidth,FPS,NumberOfFrames,Split``, FileName without ``.avi``,
Split ``TRAIN|VAL|TEST``; one patient per video. ``VolumeTracings.csv`` (FileName *with* ``.avi``)
holds segmentation tracings and is not needed for view labels, so it is not read.
"""

from __future__ import annotations

from pathlib import Path

from kdbench.data.clips import (LoadResult, check_folder, check_not_all_missing, missing_entry, parse_split,
                                read_table, video_clips)
from kdbench.errors import DataError

SOURCE = "echonet_dynamic"
VIEW = "A4C"
COLUMNS = ("FileName", "Split")  # the columns kdbench needs; the others are carried but unused


def load(root: str | Path) -> LoadResult:
    """List every EchoNet-Dynamic video as an A4C clip with its official split."""
    root = check_folder(Path(root), "EchoNet-Dynamic", "FileList.csv")
    csv_path = root / "FileList.csv"
    rows = read_table(csv_path, COLUMNS, "EchoNet-Dynamic video")
    videos_dir = root / "Videos"
    if not videos_dir.is_dir():
        raise DataError(f"EchoNet-Dynamic folder {root} has no Videos/ folder; expected Videos/<FileName>.avi")
    present = {p.name for p in videos_dir.iterdir()}

    grouped: dict[tuple[str, str], list[int]] = {}
    missing: list[dict] = []
    for line, row in rows:
        name = row["FileName"]
        if not name:
            raise DataError(f"{csv_path} line {line}, column 'FileName': empty; expected e.g. 0X100009310A3BD7FC")
        if name.lower().endswith(".avi"):
            name = name[:-4]
        split = parse_split(row["Split"], csv_path, line, "Split")
        if f"{name}.avi" not in present:
            missing.append(missing_entry(SOURCE, f"{SOURCE}:{name}", videos_dir / f"{name}.avi", csv_path, line))
            continue
        grouped.setdefault((name, split), []).append(line)
    check_not_all_missing("video", csv_path, missing, len(grouped) + len(missing), videos_dir)
    clips = video_clips(SOURCE, VIEW, csv_path, grouped, {n: videos_dir / f"{n}.avi" for n, _ in grouped})
    return LoadResult(source=SOURCE, clips=clips, inputs=[str(csv_path)], missing=missing)
