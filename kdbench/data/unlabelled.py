"""Unlabelled frames (``--unlabelled DIR``): every video, still and DICOM file under a folder, one clip each.

The folder is searched recursively (hidden files and folders skipped; other files are ignored and
counted in a log line). Each file is a clip of split ``unlabelled``, source ``unlabelled``, view ""
(label -1 in the store), video and patient ``unlabelled:<path relative to DIR>``: the folder says
nothing about patients, so the patient-level split check cannot link these frames to labelled ones.
A still is a one-frame clip, so every still is kept (TMED-2's unlabelled PNGs, passed as a folder,
become one clip per image). Frames are harmonised exactly like labelled ones; unreadable files are
skipped and counted. The folder's listing (paths, sizes, modification times) is the store's input
fingerprint, so adding or replacing files rebuilds the store.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from kdbench.data.clips import Clip, LoadResult
from kdbench.data.media import KINDS_HELP, media_kind
from kdbench.data.sources import UNLABELLED_SOURCE
from kdbench.data.views import UNLABELLED
from kdbench.errors import DataError
from kdbench.manifest import config_hash

log = logging.getLogger(__name__)
SOURCE = UNLABELLED_SOURCE


def load(root: str | Path) -> LoadResult:
    """List every media file under root as one unlabelled clip."""
    root = _check_root(Path(root))
    files, ignored = media_files(root)
    if ignored:
        log.warning("--unlabelled %s: ignored %d file(s) that are not videos, images or DICOM (e.g. %s)", root,
                    len(ignored), ignored[0])
    if not files:
        raise DataError(f"--unlabelled folder {root} holds no files that are {KINDS_HELP} "
                        f"({len(ignored)} other files); expected cine loops or stills")
    clips = [_clip(root, f) for f in files]
    return LoadResult(source=SOURCE, clips=clips, fingerprints={f"{root} (listing)": listing_hash(root, files)})


def media_files(root: Path) -> tuple[list[Path], list[Path]]:
    """(media files, other files) under root, recursively, sorted; hidden files and folders are left out."""
    found, ignored = [], []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(n for n in names if not n.startswith(".")):
            path = Path(folder) / name
            (found if media_kind(path) is not None else ignored).append(path)
    return found, ignored


def listing_hash(root: Path, files: list[Path]) -> str:
    """A hash of each file's relative path, size and modification time: changes when files come, go or change."""
    entries = []
    for f in files:
        st = f.stat()
        entries.append([f.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns])
    return config_hash(entries)


def _check_root(root: Path) -> Path:
    """The resolved folder; DataError if it is missing or a file."""
    root = root.expanduser()
    if not root.exists():
        raise DataError(f"--unlabelled folder {root} does not exist; expected a folder of cine loops and stills")
    if not root.is_dir():
        raise DataError(f"--unlabelled path {root} is a file; expected a folder of cine loops and stills")
    return root.resolve()


def _clip(root: Path, file: Path) -> Clip:
    """One file as an unlabelled clip named by its path relative to root."""
    name = f"{SOURCE}:{file.relative_to(root).as_posix()}"
    return Clip(source=SOURCE, patient=name, video=name, view="", split=UNLABELLED, files=(str(file),),
                kind="video", csv=str(root), lines=())
