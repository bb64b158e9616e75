"""Tiny hand-made datasets in the three official on-disk formats, for loader and prepare tests.

Frames are small fans of speckle drawn with OpenCV (32-64 px), so tests stay fast; each writer
takes explicit rows so a test can plant exactly the defect it checks for.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

DYN_HEADER = ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS", "NumberOfFrames", "Split"]
LVH_HEADER = ["", "HashedFileName", "Calc", "CalcValue", "Frame", "X1", "X2", "Y1", "Y2", "Frames", "FPS", "Width", "Height", "split"]
TMED_HEADER = ["query_key", "view_label", "diagnosis_label", "SourceFolder", "view_classifier_split", "diagnosis_classifier_split"]


def fan_frames(n: int, h: int, w: int, seed: int = 0, half_angle: float = 40.0, depth: float = 0.9,
               apex_y: int = 1, text: bool = False) -> list[np.ndarray]:
    """n grey frames [h, w]: a speckled fan (apex top centre) whose brightness pulses over time."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), np.uint8)
    radius = int(depth * (h - apex_y))
    cv2.ellipse(mask, (w // 2, apex_y), (radius, radius), 0, 90 - half_angle, 90 + half_angle, 1, -1)
    frames = []
    for t in range(n):
        img = (rng.uniform(60, 200, (h, w)) * (0.8 + 0.2 * np.sin(t))).astype(np.uint8) * mask
        if text:  # a label in a corner and an ECG-like line, away from the fan
            cv2.putText(img, "HR", (1, h - 3), cv2.FONT_HERSHEY_PLAIN, 0.6, 255, 1)
        frames.append(img)
    return frames


def write_avi(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    """Write grey frames as an MJPG AVI with the grey copied to 3 channels (EchoNet style)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened(), f"cannot write {path}"
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    writer.release()
    return path


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    """Write a CSV with a header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def make_dynamic(root: Path, videos: list[tuple[str, str]], frames: int = 8, size: int = 32,
                 write_videos: bool = True) -> Path:
    """EchoNet-Dynamic layout: FileList.csv + Videos/<name>.avi for (name, SPLIT) pairs."""
    rows = []
    for i, (name, split) in enumerate(videos):
        rows.append([name, 55.0, 40.0, 90.0, size, size, 50, frames, split])
        if write_videos:
            write_avi(root / "Videos" / f"{name}.avi", fan_frames(frames, size, size, seed=i, half_angle=45))
    (root / "Videos").mkdir(parents=True, exist_ok=True)
    write_csv(root / "FileList.csv", DYN_HEADER, rows)
    write_csv(root / "VolumeTracings.csv", ["FileName", "X1", "Y1", "X2", "Y2", "Frame"],
              [[f"{n}.avi", 1, 2, 3, 4, 0] for n, _ in videos])
    return root


def make_lvh(root: Path, videos: list[tuple[str, str, int, int]], frames: int = 8,
             shape: tuple[int, int] = (48, 64)) -> Path:
    """EchoNet-LVH layout: MeasurementsList.csv (index column, rows per measurement) + BatchN/."""
    rows, k = [], 0
    for i, (name, split, batch, n_rows) in enumerate(videos):
        h, w = shape[0] + 8 * (i % 2), shape[1] + 16 * (i % 2)  # native, varying resolution
        write_avi(root / f"Batch{batch}" / f"{name}.avi",
                  fan_frames(frames, h, w, seed=100 + i, half_angle=38, depth=0.75, apex_y=4, text=True))
        for calc in ["IVSd", "LVIDd", "LVPWd"][:n_rows]:
            rows.append([k, name, calc, 1.0, 3, 10, 20, 10, 20, frames, 50, w, h, split])
            k += 1
    write_csv(root / "MeasurementsList.csv", LVH_HEADER, rows)
    return root


def make_tmed(root: Path, images: list[tuple[str, str, str, str]], fold: int = 0, size: int = 32) -> Path:
    """TMED-2 layout: DEV479/TMED2_fold{fold}_labeledpart.csv + <folder>/<query_key> PNGs."""
    rows = []
    for i, (folder, key, view, split) in enumerate(images):
        path = root / folder / key
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), fan_frames(1, size, size, seed=200 + i, half_angle=42, depth=0.95)[0])
        rows.append([key, view, "no_AS", folder, split, split])
    write_csv(root / "DEV479" / f"TMED2_fold{fold}_labeledpart.csv", TMED_HEADER, rows)
    return root


def make_all(base: Path, n: int = 3, frames: int = 8) -> dict[str, Path]:
    """All three sources, each with train/val/test clips; returns {source: root}."""
    splits = ["TRAIN", "VAL", "TEST"]
    dyn = make_dynamic(base / "dyn", [(f"0X{i:016X}", splits[i % 3]) for i in range(n)], frames=frames)
    lvh = make_lvh(base / "lvh", [(f"0X{0xABC00 + i:X}", splits[i % 3].lower(), 1 + i % 4, 1 + i % 3)
                                  for i in range(n)], frames=frames)
    images = []
    for p in range(n):
        for view in ("A2C", "PSAX", "PLAX", "A4C"):
            for idx in range(3):
                images.append((f"labeled_{p % 2}", f"{100 + p}s1_{idx + 4 * ('A2C', 'PSAX', 'PLAX', 'A4C').index(view)}.png",
                               view, splits[p % 3].lower()))
    images.append(("labeled_0", "100s1_99.png", "A4CorA2CorOther", "train"))
    images.append(("labeled_0", "100s1_98.png", "Not_Provided", "train"))
    tmed = make_tmed(base / "tmed", images)
    return {"echonet_dynamic": dyn, "echonet_lvh": lvh, "tmed2": tmed}
