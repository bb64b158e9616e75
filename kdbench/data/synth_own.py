"""Phantom archives in the bring-your-own formats: a labelled one (``Own/labels.csv``) and an unlabelled pool.

``write_own(root, clips_per_view, ...)`` writes ``labels.csv`` (path, view, split, patient_id,
clip_id), ``view_map.csv`` and the files under ``files/``, in a cycle of formats: AVI, multi-frame
DICOM (MONOCHROME2, RGB, and one without a suffix, found by its DICM preamble), a clip of several
PNG stills sharing a clip_id, a single-frame YBR_FULL DICOM and a JPG still. View names are written
in mixed case and in site spellings the view map renames (AP2, AP4, 4CH, SAX); one SUBCOSTAL row
(mapped to nothing) and one A5C row (unknown) are dropped by prepare. Each patient has one clip per
view; splits are patient-level.

``write_unlabelled(root, n, ...)`` writes n files (AVI, PNG, multi-frame and single-frame DICOM,
grey and RGB) in study folders, plus a README.txt that prepare ignores. Same seed, same files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from kdbench.data.dicom import write_dicom
from kdbench.data.phantom import render_clip
from kdbench.data.synth import _assign_splits, _fractions, _rng, _write_csv, write_avi
from kdbench.data.views import VIEWS
from kdbench.errors import DataError

OWN_FORMATS = ("avi", "dcm_mono", "png_stills", "dcm_rgb", "dcm_still", "jpg", "dcm_nosuffix")
POOL_FORMATS = ("avi", "png", "dcm_mono", "dcm_still", "dcm_rgb")
SPELLINGS = {"A2C": ("AP2", "a2c", "A2C"), "A4C": ("A4C", "AP4", "4ch"), "PLAX": ("plax", "PLAX", "Plax"),
             "PSAX": ("SAX", "psax", "PSAX")}  # written as SPELLINGS[view][(patient + view index) % 3]
VIEW_MAP = (("AP2", "A2C"), ("AP4", "A4C"), ("4CH", "A4C"), ("SAX", "PSAX"), ("SUBCOSTAL", ""))
DROPPED = (("SUBCOSTAL", "A4C"), ("A5C", "A4C"))  # (label written, view drawn) of the rows prepare drops
SHAPES = ((112, 112), (96, 128), (120, 160))  # (H, W): native sizes vary, as in real archives
FPS = 30.0
OWN_COLUMNS = ("path", "view", "split", "patient_id", "clip_id")


def write_own(root: Path, clips_per_view: int, seed: int, frames: int, difficulty: float,
              tick: Callable[[], None], holdout: float | None = None) -> dict:
    """Write a labelled archive: labels.csv, view_map.csv and files/ in mixed formats; return its summary."""
    patients = [f"P{i:03d}" for i in range(clips_per_view)]
    split_of = _assign_splits(patients, _rng(seed, "own", -1), *_fractions(holdout, 0.15))
    rows, items = [], []
    for i, patient in enumerate(patients):
        for v, view in enumerate(VIEWS):
            k = 4 * i + v
            item = _write_item(root, k, view, OWN_FORMATS[k % len(OWN_FORMATS)], patient, _rng(seed, "own", k),
                               frames, difficulty, seed)
            label = SPELLINGS[view][(i + v) % len(SPELLINGS[view])]
            rows += [(path, label, split_of[patient], patient, item["clip_id"]) for path in item["paths"]]
            items.append({**item, "view": view, "split": split_of[patient], "patient": patient})
            tick()
    for j, (label, drawn) in enumerate(DROPPED):
        item = _write_item(root, 10_000 + j, drawn, "png", patients[0], _rng(seed, "own", 10_000 + j), frames,
                           difficulty, seed)
        rows += [(path, label, split_of[patients[0]], patients[0], item["clip_id"]) for path in item["paths"]]
    _write_csv(root / "labels.csv", OWN_COLUMNS, rows)
    _write_csv(root / "view_map.csv", ("name", "view"), VIEW_MAP)
    return _own_summary(root, items, rows)


def _own_summary(root: Path, items: list[dict], rows: list[tuple]) -> dict:
    """What write_own wrote: clips per view and per split x view, formats, dropped labels, the CSVs."""
    views = {v: sum(1 for it in items if it["view"] == v) for v in VIEWS}
    splits: dict[str, dict[str, int]] = {}
    for it in items:
        cell = splits.setdefault(it["split"], {})
        cell[it["view"]] = cell.get(it["view"], 0) + 1
    formats: dict[str, int] = {}
    for it in items:
        formats[it["format"]] = formats.get(it["format"], 0) + 1
    return {"path": str(root), "labels_csv": str(root / "labels.csv"), "view_map": str(root / "view_map.csv"),
            "clips": len(items), "files": len(rows), "views": views, "splits": dict(sorted(splits.items())),
            "formats": dict(sorted(formats.items())), "dropped": {label: 1 for label, _ in DROPPED},
            "items": [{k: it[k] for k in ("clip_id", "view", "split", "patient", "format", "frames")} for it in items]}


def write_unlabelled(root: Path, n: int, seed: int, frames: int, difficulty: float,
                     tick: Callable[[], None]) -> dict:
    """Write n unlabelled files (mixed formats, random views) in study folders; return a summary."""
    formats: dict[str, int] = {}
    for k in range(n):
        rng = _rng(seed, "unlabelled", k)
        view = VIEWS[int(rng.integers(len(VIEWS)))]
        fmt = POOL_FORMATS[k % len(POOL_FORMATS)]
        _write_item(root, k, view, fmt, f"study{k // 4:03d}", rng, frames, difficulty, seed)
        formats[fmt] = formats.get(fmt, 0) + 1
        tick()
    (root / "README.txt").write_text("phantom unlabelled pool written by kdbench data synth\n")
    return {"path": str(root), "files": n, "formats": dict(sorted(formats.items()))}


def _write_item(root: Path, k: int, view: str, fmt: str, folder: str, rng: np.random.Generator, frames: int,
                difficulty: float, seed: int) -> dict:
    """Render one clip of view and write it in format fmt under root/files/<folder>/; its paths and clip_id."""
    h, w = SHAPES[k % len(SHAPES)]
    n = max(2, frames // 4) if fmt == "png_stills" else 1 if fmt in ("dcm_still", "jpg", "png") else frames
    clip, _ = render_clip(view, rng, n, h, w, FPS, difficulty)
    stem = Path("files") / folder / f"clip{k:05d}"
    paths = _write_format(root, stem, fmt, clip, uid_seed=f"{seed}/{stem.as_posix()}", patient=folder)
    clip_id = stem.as_posix() if fmt == "png_stills" else ""
    return {"paths": [p.relative_to(root).as_posix() for p in paths], "clip_id": clip_id, "format": fmt,
            "frames": n}


def _write_format(root: Path, stem: Path, fmt: str, clip: np.ndarray, uid_seed: str, patient: str) -> list[Path]:
    """Write frames [T, H, W] as fmt at root/stem(.suffix); the files written."""
    base = root / stem
    base.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "avi":
        write_avi(base.with_suffix(".avi"), clip, FPS)
        return [base.with_suffix(".avi")]
    if fmt in ("png_stills", "png", "jpg"):
        suffix = ".jpg" if fmt == "jpg" else ".png"
        paths = [base.with_name(f"{base.name}_{i}{suffix}") for i in range(len(clip))]
        return [_write_still(p, f) for p, f in zip(paths, clip)]
    photometric = {"dcm_rgb": "RGB", "dcm_still": "YBR_FULL"}.get(fmt, "MONOCHROME2")
    path = base if fmt == "dcm_nosuffix" else base.with_suffix(".dcm")
    pixels = clip[0] if fmt == "dcm_still" else clip
    return [write_dicom(path, pixels, photometric, uid_seed=uid_seed, patient_id=patient, fps=FPS)]


def _write_still(path: Path, frame: np.ndarray) -> Path:
    """Write one grey still with OpenCV (PNG or JPG by suffix)."""
    import cv2

    if not cv2.imwrite(str(path), frame):
        raise DataError(f"{path}: OpenCV could not write the image")
    return path
