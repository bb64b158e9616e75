"""Frame harmonisation: every source's frames leave here with the same framing and mask.

The three datasets frame the ultrasound sector differently (EchoNet-Dynamic: cropped 112x112,
already masked; EchoNet-LVH: native resolution with margins, text and ECG; TMED-2: 112x112 stills).
A classifier could learn the source (and through it the view) from the framing alone, so every clip
goes through the same steps:

1. grey (BGR -> luma; grey frames unchanged);
2. find the sector: the largest connected bright region of the clip's max-intensity projection
   (text, calipers and ECG traces are separate, smaller regions and fall away);
3. take the square whose side is the sector's height, top-aligned and centred on the sector, so
   the apex sits at the top centre and the sector depth fills the square, whatever the sector's
   angle or the source's resolution (zero padding where the square leaves the image);
4. resize to ``size`` with area interpolation;
5. multiply by one fixed fan mask (apex top centre, radius 0.96 * size, half-angle 32 degrees),
   narrower than the sectors of all three sources, so the mask outline is identical for every
   frame of every source.

The crop box is computed once per clip (all sampled frames share it) so a clip does not jitter.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

MASK_RADIUS = 0.96  # fraction of the output size
MASK_HALF_ANGLE_DEG = 32.0
CONTENT_THRESHOLD = 10  # grey level above which a max-projection pixel counts as content
HARMONISE_VERSION = 1  # bump when the output of harmonise_clip changes (invalidates stores)


def to_grey(frame: np.ndarray) -> np.ndarray:
    """A uint8 2-D grey frame from a grey, BGR or BGRA frame."""
    if frame.ndim == 2:
        grey = frame
    elif frame.ndim == 3 and frame.shape[2] == 1:
        grey = frame[:, :, 0]
    elif frame.ndim == 3 and frame.shape[2] == 3:
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    elif frame.ndim == 3 and frame.shape[2] == 4:
        grey = cv2.cvtColor(frame, cv2.COLOR_BGRA2GRAY)
    else:
        raise ValueError(f"expected a 2-D grey or 3-D colour frame, got shape {frame.shape}")
    if grey.dtype != np.uint8:
        grey = cv2.normalize(grey, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    return np.ascontiguousarray(grey)


def sample_indices(n: int, k: int) -> np.ndarray:
    """k frame indices spread evenly over n frames (centres of k equal segments); all n if n <= k."""
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    if n <= k:
        return np.arange(n, dtype=np.int64)
    return np.floor((np.arange(k) + 0.5) * n / k).astype(np.int64)


def content_box(frames: np.ndarray, threshold: int = CONTENT_THRESHOLD) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), exclusive ends, of the largest bright region of the frames' max projection."""
    proj = frames.max(axis=0) if frames.ndim == 3 else frames
    binary = (proj > threshold).astype(np.uint8)
    k = max(3, (min(binary.shape) // 50) | 1)  # closes speckle gaps; 3 px at 112 px, 13 at 600 px
    binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 1:  # nothing bright: keep the whole frame
        return 0, 0, proj.shape[1], proj.shape[0]
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[best, :4])
    return x, y, x + w, y + h


def square_box(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """The square, side = box height, top-aligned and horizontally centred on the box."""
    x0, y0, x1, y1 = box
    side = max(1, y1 - y0)
    cx2 = x0 + x1  # twice the centre, to stay in integers
    left = (cx2 - side) // 2
    return left, y0, left + side, y0 + side


def crop_padded(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The frame's pixels inside box, zero where the box leaves the frame."""
    x0, y0, x1, y1 = box
    out = np.zeros((y1 - y0, x1 - x0), dtype=frame.dtype)
    h, w = frame.shape[:2]
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = frame[sy0:sy1, sx0:sx1]
    return out


@lru_cache(maxsize=8)
def sector_mask(size: int) -> np.ndarray:
    """The fixed fan mask (uint8 0/1, [size, size]) applied to every harmonised frame."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    dx, dy = xs - size / 2.0, ys
    radius = np.hypot(dx, dy)
    angle = np.degrees(np.arctan2(np.abs(dx), dy))
    mask = (radius <= MASK_RADIUS * size) & (angle <= MASK_HALF_ANGLE_DEG)
    mask.setflags(write=False)
    return mask.astype(np.uint8)


def harmonise_clip(frames: np.ndarray | list[np.ndarray], size: int) -> np.ndarray:
    """Harmonise the frames of one clip (same size, grey or colour) to uint8 [T, size, size]."""
    grey = np.stack([to_grey(f) for f in frames]) if len(frames) else np.zeros((0, size, size), np.uint8)
    if len(grey) == 0:
        return grey
    box = square_box(content_box(grey))
    mask = sector_mask(size)
    out = np.empty((len(grey), size, size), dtype=np.uint8)
    for i, frame in enumerate(grey):
        square = crop_padded(frame, box)
        out[i] = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA) * mask
    return out
