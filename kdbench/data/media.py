"""Reading the frames of one file, whatever its format: videos (OpenCV), stills (OpenCV) and DICOM (pydicom).

Every reader returns grey uint8 frames and, instead of raising, a one-line reason when the file is
unreadable, so ``kdbench data prepare`` can skip and count it (``--strict``: stop). The frames then
go through the same harmonisation (``kdbench/data/harmonise.py``) whatever the format.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdbench.data.harmonise import sample_indices, to_grey

VIDEO_SUFFIXES = (".avi", ".mp4", ".mov", ".mkv")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom")
DICOM_MAGIC_OFFSET = 128  # a DICOM file: 128-byte preamble, then b"DICM"
KINDS_HELP = "a video (.avi/.mp4/.mov/.mkv), an image (.png/.jpg/.bmp/.tif) or DICOM (.dcm or the DICM preamble)"


def has_dicom_preamble(path: str | Path) -> bool:
    """True when the file holds b"DICM" after the 128-byte preamble (DICOM files without a .dcm suffix)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(DICOM_MAGIC_OFFSET + 4)
    except OSError:
        return False
    return head[DICOM_MAGIC_OFFSET:] == b"DICM"


def media_kind(path: str | Path) -> str | None:
    """"dicom", "image" or "video" by suffix (DICOM also by its preamble); None for anything else."""
    suffix = Path(path).suffix.lower()
    for kind, suffixes in (("dicom", DICOM_SUFFIXES), ("image", IMAGE_SUFFIXES), ("video", VIDEO_SUFFIXES)):
        if suffix in suffixes:
            return kind
    return "dicom" if has_dicom_preamble(path) else None


def read_frames(path: str) -> tuple[list[np.ndarray], str | None]:
    """All frames of one file (a video, a still or a DICOM cine loop) as grey arrays, and a reason if unreadable."""
    kind = media_kind(path)
    if kind == "dicom":
        from kdbench.data.dicom import read_dicom

        return read_dicom(path)
    if kind == "image":
        frame, reason = read_image(path)
        return ([] if frame is None else [frame]), reason
    return read_video(path)


def read_still(path: str) -> tuple[np.ndarray | None, str | None]:
    """One still (an image or a single-frame DICOM) as a grey array, or None and the reason."""
    frames, reason = read_frames(path)
    if reason is not None:
        return None, reason
    if len(frames) != 1:
        return None, f"holds {len(frames)} frames; a clip of several files takes one still per file"
    return frames[0], None


def read_image(path: str) -> tuple[np.ndarray | None, str | None]:
    """A PNG/JPG/... still as a grey array, or None and the reason."""
    import cv2

    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        return None, f"unreadable image (corrupt {Path(path).suffix[1:].upper() or 'file'})"
    return to_grey(img), None


def read_video(path: str) -> tuple[list[np.ndarray], str | None]:
    """All frames of a video as grey arrays, and a reason string if it is unreadable or truncated."""
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            return [], "cannot be opened as a video (corrupt or not an AVI)"
        header = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(to_grey(frame))
    finally:
        cap.release()
    if not frames:
        return [], "no decodable frames (corrupt video)"
    if header > 0 and len(frames) < header - 1:  # one frame of slack for off-by-one headers
        return frames, f"truncated: decoded {len(frames)} of the {header} frames its header lists"
    return frames, None


def sample_video(path: str, k: int) -> tuple[list[np.ndarray], np.ndarray, int, str | None]:
    """The ``k`` frames of a video that ``sample_indices`` picks, as grey arrays, decoding only those (the others are
    grabbed, not converted) and holding only those: (frames, their indices, frames available, reason | None).
    The same frames, count and reasons as ``read_video`` followed by sampling; a header that miscounts the frames
    costs a second pass, never more memory."""
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        cap.release()
        return [], np.zeros(0, np.int64), 0, "cannot be opened as a video (corrupt or not an AVI)"
    header = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    kept, n = _grab_frames(cap, set(sample_indices(header, k).tolist()) if header > 0 else set())
    if not n:
        return [], np.zeros(0, np.int64), 0, "no decodable frames (corrupt video)"
    ids = sample_indices(n, k)
    missing = {int(i) for i in ids} - set(kept)
    if missing:  # the header's count was wrong: fetch the frames the true count picks
        again = cv2.VideoCapture(path)
        kept.update(_grab_frames(again, missing)[0])
    frames = [kept[int(i)] for i in ids if int(i) in kept]
    if len(frames) < len(ids):
        return [], np.zeros(0, np.int64), n, "no decodable frames (corrupt video)"
    if header > 0 and n < header - 1:  # one frame of slack for off-by-one headers
        return frames, ids, n, f"truncated: decoded {n} of the {header} frames its header lists"
    return frames, ids, n, None


def _grab_frames(cap, wanted: set[int]) -> tuple[dict[int, np.ndarray], int]:
    """Walk an opened capture to its end (then release it): the grey frames at ``wanted`` indices, and the count."""
    kept: dict[int, np.ndarray] = {}
    n = 0
    try:
        while cap.grab():
            if n in wanted:
                ok, frame = cap.retrieve()
                if not ok:
                    break
                kept[n] = to_grey(frame)
            n += 1
    finally:
        cap.release()
    return kept, n
