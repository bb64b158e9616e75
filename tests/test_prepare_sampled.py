"""prepare decodes only the frames it keeps: the same frames, counts and reasons as decoding every frame."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kdbench.data.harmonise import sample_indices
from kdbench.data.media import read_video, sample_video


def _avi(path, frames: int, size=(96, 80)) -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, size)
    for t in range(frames):
        img = np.zeros((size[1], size[0], 3), np.uint8)
        cv2.circle(img, (20 + t, 40), 10 + t % 5, (40 * (t % 6), 200, 90), -1)
        writer.write(img)
    writer.release()
    return str(path)


@pytest.mark.parametrize("frames", [1, 7, 40])
def test_sampled_frames_equal_the_full_decode(tmp_path, frames: int) -> None:
    path = _avi(tmp_path / "clip.avi", frames)
    every, reason = read_video(path)
    assert reason is None and len(every) == frames
    for k in (1, 4, 16, 64):
        kept, ids, available, why = sample_video(path, k)
        want = sample_indices(frames, k)
        assert why is None and available == frames and np.array_equal(ids, want)
        assert len(kept) == len(want) and all(np.array_equal(a, every[i]) for a, i in zip(kept, want))


def test_unreadable_video_gives_the_same_reason(tmp_path) -> None:
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"not a video at all" * 100)
    frames, reason = read_video(str(bad))
    kept, ids, available, why = sample_video(str(bad), 4)
    assert kept == [] and len(ids) == 0 and why == reason and available == len(frames) == 0
