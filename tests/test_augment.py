"""Echo augmentation with a consistent teacher cache: determinism, geometry, the loader, the cache.

Runs on the real phantom frame store (tests/conftest.py); the teacher is the session's briefly
trained student checkpoint, loaded through ``kdbench.teacher.load_teacher``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from kdbench.data.augment import AugmentConfig, AugmentedLoader, augment_batch, augment_frame, teacher_lookup
from kdbench.distill.augmented_cache import augmented_teacher_logits, load_or_build_augmented_logits
from kdbench.data.harmonise import sector_mask
from kdbench.data.loader import StoreLoader
from kdbench.errors import ConfigError

OFF = AugmentConfig(rotate_deg=0.0, shift=0.0, gain=0.0, contrast=0.0, attenuation=0.0, speckle=0.0)


def _dot_frame(size: int = 64, x: int = 40, y: int = 36) -> np.ndarray:
    frame = np.zeros((size, size), np.uint8)
    frame[y - 1 : y + 2, x - 1 : x + 2] = 255
    return frame


def _centroid(img: np.ndarray) -> tuple[float, float]:
    ys, xs = np.mgrid[0 : img.shape[0], 0 : img.shape[1]] + 0.5  # pixel centres, as the sector mask
    w = img / img.sum()
    return float((xs * w).sum()), float((ys * w).sum())


@pytest.fixture(scope="module")
def teacher_path(tiny_run):
    """The session's briefly trained student stands in for the teacher (its logits are not ~0)."""
    return tiny_run / "best.pt"


def test_versions_are_deterministic_and_differ_by_row_version_and_seed(tiny_store) -> None:
    frame = tiny_store.frames[0]
    a = augment_frame(frame, 0, 1, 7, AugmentConfig())
    assert np.array_equal(a, augment_frame(frame, 0, 1, 7, AugmentConfig()))
    for other in (augment_frame(frame, 0, 2, 7, AugmentConfig()), augment_frame(frame, 1, 1, 7, AugmentConfig()),
                  augment_frame(frame, 0, 1, 8, AugmentConfig())):
        assert np.abs(other - a).mean() > 1e-3
    assert a.dtype == np.float32 and a.shape == frame.shape and 0.0 <= a.min() and a.max() <= 1.0


def test_all_strengths_zero_is_the_plain_frame_and_the_mask_is_kept(tiny_store) -> None:
    frame = tiny_store.frames[3]
    assert np.array_equal(augment_frame(frame, 3, 0, 0, OFF), frame.astype(np.float32) / 255.0)
    outside = sector_mask(tiny_store.size) == 0
    for k in range(4):
        assert not augment_frame(frame, 3, k, 0, AugmentConfig(rotate_deg=20.0, shift=0.2))[outside].any()


def test_rotation_turns_the_image_about_the_sector_apex() -> None:
    size, apex = 64, (32.0, 0.0)
    frame = _dot_frame(size)
    before = _centroid(frame.astype(float))
    radii, angles = [], []
    for k in range(6):
        img = augment_frame(frame, 0, k, 0, AugmentConfig(rotate_deg=15.0, shift=0.0, gain=0.0, contrast=0.0,
                                                           attenuation=0.0, speckle=0.0))
        x, y = _centroid(img)
        radii.append(math.hypot(x - apex[0], y - apex[1]))
        angles.append(math.degrees(math.atan2(x - apex[0], y - apex[1])))
    r0 = math.hypot(before[0] - apex[0], before[1] - apex[1])
    assert radii == pytest.approx([r0] * 6, abs=0.75)  # the distance to the apex is kept
    a0 = math.degrees(math.atan2(before[0] - apex[0], before[1] - apex[1]))
    turns = [a - a0 for a in angles]
    assert max(abs(t) for t in turns) <= 15.5 and max(turns) - min(turns) > 5.0  # it does turn, within bounds


def test_no_flip_unless_asked_and_flip_mirrors_about_the_midline() -> None:
    frame = _dot_frame(64, x=44)
    flip_only = AugmentConfig(rotate_deg=0.0, shift=0.0, gain=0.0, contrast=0.0, attenuation=0.0, speckle=0.0, flip=True)
    mirrored = [k for k in range(12) if _centroid(augment_frame(frame, 0, k, 0, flip_only))[0] < 32]
    assert 0 < len(mirrored) < 12  # about half the versions, seeded
    img = augment_frame(frame, 0, mirrored[0], 0, flip_only)
    assert np.array_equal(img, frame[:, ::-1].astype(np.float32) / 255.0)
    unflipped = AugmentConfig(rotate_deg=5.0, shift=0.02)
    assert all(_centroid(augment_frame(frame, 0, k, 0, unflipped))[0] > 36 for k in range(12))


def test_gain_and_depth_attenuation_stay_within_their_bounds() -> None:
    flat = np.full((64, 64), 128, np.uint8)
    mask = sector_mask(64).astype(bool)
    ratios = [augment_frame(flat, 0, k, 0, AugmentConfig(rotate_deg=0.0, shift=0.0, contrast=0.0, attenuation=0.0,
                                                         speckle=0.0, gain=0.2))[mask].mean() / (128 / 255)
              for k in range(20)]
    assert min(ratios) >= 0.8 - 1e-6 and max(ratios) <= 1.2 + 1e-6 and max(ratios) - min(ratios) > 0.1
    att = AugmentConfig(rotate_deg=0.0, shift=0.0, contrast=0.0, gain=0.0, speckle=0.0, attenuation=0.4)
    img = augment_frame(flat, 0, 1, 0, att)
    near, far = img[4, 32], img[56, 32]  # on the midline, near the apex and deep
    assert near != pytest.approx(far, abs=1e-3)  # brightness changes with depth
    assert far / near == pytest.approx(math.exp(math.log(far / near)), rel=1e-6)
    assert math.exp(-0.4 * 0.9) - 1e-3 <= far / near <= math.exp(0.4 * 0.9) + 1e-3


def test_speckle_is_multiplicative_noise_of_the_set_strength() -> None:
    flat = np.full((64, 64), 128, np.uint8)
    cfg = AugmentConfig(rotate_deg=0.0, shift=0.0, gain=0.0, contrast=0.0, attenuation=0.0, speckle=0.15)
    img = augment_frame(flat, 0, 0, 0, cfg)[sector_mask(64).astype(bool)] / (128 / 255)
    assert img.mean() == pytest.approx(1.0, abs=0.03)
    assert 0.05 < img.std() < 0.15  # upsampling the half-resolution noise smooths it below 0.15


def test_loader_keeps_store_loader_batches_and_cycles_versions(tiny_store) -> None:
    plain = StoreLoader(tiny_store, "train", 8, shuffle=True, seed=3)
    aug = AugmentedLoader(tiny_store, "train", 8, versions=3, seed=3)
    assert len(aug) == len(plain)
    for epoch in range(4):
        plain.set_epoch(epoch)
        aug.set_epoch(epoch)
        for (x0, y0, i0), (x, y, idx, k) in zip(plain, aug):
            assert torch.equal(i0, idx) and torch.equal(y0, y)
            assert x.shape == x0.shape and x.dtype == torch.float32
            assert (k == epoch % 3).all()
            expected = augment_batch(tiny_store.frames[idx.numpy()], idx.numpy(), k.numpy(), 0, AugmentConfig())
            assert np.array_equal(x.numpy(), expected)


def test_random_choice_draws_seeded_versions_per_frame(tiny_store) -> None:
    def versions(seed: int, epoch: int) -> np.ndarray:
        loader = AugmentedLoader(tiny_store, "train", 16, versions=4, seed=seed, choice="random")
        loader.set_epoch(epoch)
        return np.concatenate([k.numpy() for *_, k in loader])

    a = versions(0, 1)
    assert np.array_equal(a, versions(0, 1)) and set(a.tolist()) == {0, 1, 2, 3}
    assert not np.array_equal(a, versions(0, 2))
    with pytest.raises(ConfigError, match="choice='often'"):
        AugmentedLoader(tiny_store, "train", 16, versions=4, choice="often")


def test_cached_logits_are_what_the_teacher_says_about_the_frame_the_student_sees(tiny_store, teacher_path) -> None:
    from kdbench.teacher import load_teacher

    teacher = load_teacher(teacher_path)
    logits = augmented_teacher_logits(tiny_store, teacher, versions=2, seed=0, batch_size=16)
    train = tiny_store.indices("train")
    assert logits.shape == (2, len(tiny_store), 4)
    assert np.isfinite(logits[:, train]).all()
    assert np.isnan(np.delete(logits, train, axis=1)).all()  # only the split's rows are computed
    assert np.abs(logits[0, train] - logits[1, train]).max() > 1e-2  # the versions differ
    loader = AugmentedLoader(tiny_store, "train", 8, versions=2, seed=5)
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        x, _, idx, k = next(iter(loader))
        assert np.allclose(teacher_lookup(logits, idx, k), teacher(x.numpy()), atol=1e-4, rtol=1e-4)


def test_disk_cache_is_reused_and_keyed_by_the_augmentation(tiny_store, teacher_path) -> None:
    a = load_or_build_augmented_logits(tiny_store, teacher_path, versions=2, seed=0)
    files = sorted((tiny_store.path / "teacher_cache").glob("aug-*.npy"))
    assert len(files) == 1
    meta = json.loads(files[0].with_suffix(".json").read_text())
    assert meta["versions"] == 2 and meta["augment"]["flip"] is False and meta["shape"] == [2, len(tiny_store), 4]
    mtime = files[0].stat().st_mtime_ns
    b = load_or_build_augmented_logits(tiny_store, teacher_path, versions=2, seed=0)
    assert np.array_equal(a, b, equal_nan=True) and files[0].stat().st_mtime_ns == mtime  # reused, not rebuilt
    load_or_build_augmented_logits(tiny_store, teacher_path, versions=2, seed=0, config=AugmentConfig(speckle=0.1))
    assert len(list((tiny_store.path / "teacher_cache").glob("aug-*.npy"))) == 2  # another augmentation, another entry
    np.save(files[0], np.zeros((2, len(tiny_store), 4), np.float32))  # corrupt it
    c = load_or_build_augmented_logits(tiny_store, teacher_path, versions=2, seed=0)
    assert np.array_equal(a, c, equal_nan=True)  # detected by its hash and rebuilt


@pytest.mark.parametrize("kwargs,match", [
    ({"rotate_deg": -1.0}, r"augment.rotate_deg=-1.0 is out of range; expected a number in \[0, 45\)"),
    ({"speckle": "lots"}, "augment.speckle='lots' is out of range"),
    ({"flip": "yes"}, "augment.flip='yes' is not a boolean"),
])
def test_bad_augmentation_settings_name_key_and_value(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        AugmentConfig(**kwargs)


def test_config_round_trip_and_unknown_keys() -> None:
    cfg = AugmentConfig(rotate_deg=5.0, flip=True)
    assert AugmentConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match=r"no setting\(s\) \['rotation'\]"):
        AugmentConfig.from_dict({"rotation": 5})


def test_zero_versions_is_a_config_error(tiny_store) -> None:
    with pytest.raises(ConfigError, match="versions=0; expected a whole number >= 1"):
        AugmentedLoader(tiny_store, "train", 8, versions=0)


def test_two_builders_at_once_run_the_teacher_once(tiny_store, teacher_path) -> None:
    """Search workers asking for the same new entry together: one builds under the lock, the other loads it."""
    import threading

    cfg = AugmentConfig(gain=0.1)  # an entry no other test builds
    calls = [[], []]
    results = [None, None]
    start = threading.Barrier(2)

    def build(i: int) -> None:
        start.wait()
        results[i] = load_or_build_augmented_logits(tiny_store, teacher_path, versions=2, seed=4, config=cfg,
                                                    progress=lambda done, total, i=i: calls[i].append(done))

    threads = [threading.Thread(target=build, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(bool(c) for c in calls) == [False, True]  # exactly one ran the teacher
    assert np.array_equal(results[0], results[1], equal_nan=True)
