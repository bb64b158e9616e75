"""The batch augmentation gives augment_frame's values bit for bit (the augmented teacher cache is keyed by them)."""

from __future__ import annotations

import numpy as np
import pytest

from kdbench.data.augment import AugmentConfig, augment_batch, augment_batch_reference, augment_frame

CONFIGS = [
    AugmentConfig(),
    AugmentConfig(flip=True),
    AugmentConfig(rotate_deg=30.0, shift=0.3, gain=0.9, contrast=1.9, attenuation=4.5, speckle=0.9, flip=True),
    AugmentConfig(speckle=0.0),
    AugmentConfig(rotate_deg=0.0, shift=0.0, gain=0.0, contrast=0.0, attenuation=0.0, speckle=0.0),
    AugmentConfig(contrast=0.0, speckle=0.5),
]


def _frames(n: int, size: int, seed: int) -> np.ndarray:
    """Frames with every grey level, smooth regions and sharp edges (the warp's rounding shows on edges)."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    frames[: n // 2, size // 4 : size // 2] = 255
    frames[: n // 2, :, : size // 3] //= 3
    return frames


@pytest.mark.parametrize("config", CONFIGS, ids=range(len(CONFIGS)))
@pytest.mark.parametrize("size", [112, 63, 8])
def test_batch_equals_the_per_frame_reference(config: AugmentConfig, size: int) -> None:
    n = 37  # not a multiple of the chunk: a partial last chunk
    frames = _frames(n, size, size)
    rng = np.random.default_rng(size)
    rows = rng.integers(0, 400_000, n)
    versions = rng.integers(0, 50, n)
    for seed in (0, 12345):
        got = augment_batch(frames, rows, versions, seed, config)
        want = augment_batch_reference(frames, rows, versions, seed, config)
        assert got.dtype == np.float32 and got.shape == (n, 1, size, size)
        assert np.array_equal(got, want)


def test_store_frames_and_edge_batches(tiny_store) -> None:
    rows = np.arange(len(tiny_store), dtype=np.int64)[::3]
    frames = tiny_store.frames[rows]
    for k in range(3):
        versions = np.full(len(rows), k, np.int64)
        assert np.array_equal(augment_batch(frames, rows, versions, 7, AugmentConfig()),
                              augment_batch_reference(frames, rows, versions, 7, AugmentConfig()))
    one = augment_batch(frames[:1], rows[:1], np.array([2]), 7, AugmentConfig())
    assert np.array_equal(one[0, 0], augment_frame(frames[0], int(rows[0]), 2, 7, AugmentConfig()))
    assert augment_batch(frames[:0], rows[:0], rows[:0], 7, AugmentConfig()).shape == (0, 1, *frames.shape[1:])


@pytest.mark.parametrize("config", CONFIGS, ids=range(len(CONFIGS)))
def test_torch_finish_is_within_float_rounding(config: AugmentConfig) -> None:
    """The device path (draws on the CPU, arithmetic in torch): values within 1e-5 of the CPU's (a grey level is
    1/255 ~ 4e-3; fp16, the GPU step's precision, resolves ~5e-4 near 1)."""
    import torch

    from kdbench.data.augment import batch_draws, finish_batch_torch

    frames = _frames(40, 112, 1)
    rows, versions = np.arange(40) * 7919, np.arange(40) % 5
    d = batch_draws(frames, rows, versions, 3, config, upsample=False)
    got = finish_batch_torch(torch.from_numpy(d.moved), torch.from_numpy(d.u),
                             None if d.noise is None else torch.from_numpy(d.noise), config).numpy()
    want = augment_batch(frames, rows, versions, 3, config)
    assert got.shape == want.shape and np.abs(got - want).max() <= 1e-5


def test_frames_of_a_resized_store_are_augmented_as_before(tiny_store) -> None:
    """Through ``input_size`` the frames are float32 in [0, 255]: the batch gives the per-frame values there too."""
    from kdbench.data.resized import resized_store

    store = resized_store(tiny_store, 40)
    rows = np.arange(0, len(store), 5)
    frames = store.frames[rows]
    versions = rows % 3
    assert frames.dtype == np.float32
    assert np.array_equal(augment_batch(frames, rows, versions, 1, AugmentConfig()),
                          augment_batch_reference(frames, rows, versions, 1, AugmentConfig()))


@pytest.mark.parametrize("config", CONFIGS[:3], ids=range(3))
def test_resized_frames_take_the_batch_path_on_both_devices(tiny_store, config: AugmentConfig) -> None:
    """A resized store's float frames: posed on the CPU as float32, finished in numpy bit for bit, in torch within
    float rounding; the per-frame code is no longer what runs (the warp sees float frames, not uint8)."""
    import torch

    from kdbench.data.augment import batch_draws, finish_batch_torch
    from kdbench.data.resized import resized_store

    store = resized_store(tiny_store, 24)
    rows = np.arange(len(store))
    frames, versions = store.frames[rows], rows % 4
    d = batch_draws(frames, rows, versions, 5, config, upsample=False)
    assert d.moved.dtype == np.float32 and d.moved.shape == (len(rows), 24, 24)
    want = augment_batch_reference(frames, rows, versions, 5, config)
    assert np.array_equal(augment_batch(frames, rows, versions, 5, config), want)
    got = finish_batch_torch(torch.from_numpy(d.moved), torch.from_numpy(d.u),
                             None if d.noise is None else torch.from_numpy(d.noise), config).numpy()
    assert got.shape == want.shape and np.abs(got - want).max() <= 1e-5
