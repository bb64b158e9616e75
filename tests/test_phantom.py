"""The procedural echo phantom: sector geometry, motion, determinism, view separability, difficulty."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from kdbench.data.phantom import (
    CONFUSABLE,
    Geometry,
    render_clip,
    render_frames,
    sample_clip,
    scene_at,
    systole_at,
)
from kdbench.data.views import VIEWS
from kdbench.errors import ConfigError


@pytest.mark.parametrize("view", VIEWS)
def test_frames_are_sector_masked_uint8(view: str) -> None:
    frames, params = render_clip(view, np.random.default_rng(3), 4, 96, 128, fps=30.0)
    assert frames.shape == (4, 96, 128) and frames.dtype == np.uint8
    # outside the fan (top corners, just below the apex row) the image is black
    assert frames[:, 2:12, :8].max() == 0 and frames[:, 2:12, -8:].max() == 0
    # inside the fan there is signal: speckled tissue, bright walls, dark blood
    geo = Geometry(params, 96, 128)
    ax, ay = geo.apex
    ys, xs = np.mgrid[0:96, 0:128]
    r = np.hypot(xs - ax, ys - ay) / geo.depth_px
    theta = np.abs(np.arctan2(xs - ax, ys - ay))
    fan = (r > 0.1) & (r < 0.95) & (theta < params.half_angle - 0.05)
    outside = (r > 1.05) | (theta > params.half_angle + 0.05)
    assert (frames[:, fan] > 0).mean() > 0.9
    assert frames[:, outside].max() == 0
    assert frames[:, fan].std() > 15 and frames.max() > 150


def test_same_generator_state_gives_identical_frames() -> None:
    a, pa = render_clip("PLAX", np.random.default_rng(11), 5)
    b, pb = render_clip("PLAX", np.random.default_rng(11), 5)
    c, _ = render_clip("PLAX", np.random.default_rng(12), 5)
    assert pa == pb
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_heart_contracts_to_the_requested_volume_ratio() -> None:
    params = sample_clip("A4C", np.random.default_rng(0), difficulty=0.0, esv_ratio=0.4)
    # search one beat for the most relaxed and most contracted instants
    beat = 60.0 / params.heart_rate
    ts = np.linspace(0.0, beat, 400)
    s = np.array([systole_at(params, t) for t in ts])
    ed, es = scene_at(params, ts[s.argmin()]), scene_at(params, ts[s.argmax()])
    vol = {k: math.pi * sc.landmarks["LV"].au ** 2 * sc.landmarks["LV"].av for k, sc in (("ed", ed), ("es", es))}
    assert s.min() < 0.01 and s.max() > 0.99
    assert vol["es"] / vol["ed"] == pytest.approx(0.4, rel=0.03)
    # and the rendered frames move: ED and ES frames differ inside the heart
    frames = render_frames(params, np.array([ts[s.argmin()], ts[s.argmax()]]))
    assert np.abs(frames[0].astype(int) - frames[1].astype(int)).mean() > 3


def test_views_have_their_anatomy() -> None:
    rng = np.random.default_rng(5)
    scenes = {}
    for view in VIEWS:
        params = sample_clip(view, rng, difficulty=0.0)
        assert params.drawn_as == view  # no ambiguous clips at difficulty 0
        scenes[view] = scene_at(params, 0.0)
    assert {"LV", "LA", "RV", "RA"} <= set(scenes["A4C"].landmarks)
    assert {"LV", "LA"} <= set(scenes["A2C"].landmarks) and "RV" not in scenes["A2C"].landmarks
    assert {"LV", "RV", "Ao", "LA"} <= set(scenes["PLAX"].landmarks)
    plax_lv = scenes["PLAX"].landmarks["LV"]
    assert plax_lv.au > 2 * plax_lv.av  # long axis lies across the image
    apical_lv = scenes["A4C"].landmarks["LV"]
    assert apical_lv.av > 1.5 * apical_lv.au  # long axis points down from the apex
    psax_lv = scenes["PSAX"].landmarks["LV"]
    assert 0.8 < psax_lv.au / psax_lv.av < 1.25  # round cross-section


def test_geometry_round_trip() -> None:
    params = sample_clip("A2C", np.random.default_rng(9), difficulty=1.0)
    geo = Geometry(params, 112, 140)
    u, v = np.array([0.1, -0.2, 0.0]), np.array([0.3, 0.6, 0.9])
    x, y = geo.to_pixels(u, v)
    u2, v2 = geo.to_anatomy(x, y)
    np.testing.assert_allclose(u2, u, atol=1e-9)
    np.testing.assert_allclose(v2, v, atol=1e-9)


def _nearest_centroid_accuracy(difficulty: float, n: int = 24, size: int = 48) -> float:
    """Train/test a nearest-centroid classifier on blurred single frames of the four views."""
    def draw(seed: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for k, view in enumerate(VIEWS):
            for i in range(n):
                f, _ = render_clip(view, np.random.default_rng([seed, k, i]), 1, size, size,
                                   difficulty=difficulty)
                xs.append(cv2.GaussianBlur(f[0].astype(np.float32) / 255, (0, 0), 1.5).ravel())
                ys.append(k)
        return np.array(xs), np.array(ys)

    xtr, ytr = draw(1)
    xte, yte = draw(2)
    centroids = np.stack([xtr[ytr == k].mean(0) for k in range(len(VIEWS))])
    pred = ((xte[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    return float((pred == yte).mean())


def test_views_differ_and_difficulty_makes_them_harder() -> None:
    easy, hard = _nearest_centroid_accuracy(0.0), _nearest_centroid_accuracy(1.0)
    assert easy > 0.8  # view means are far apart relative to the within-view spread
    assert hard < easy - 0.2


def test_difficulty_widens_pose_and_adds_ambiguity() -> None:
    def stats(d: float) -> tuple[float, float, float]:
        rng = np.random.default_rng(0)
        ps = [sample_clip(v, rng, difficulty=d) for _ in range(150) for v in VIEWS]
        rot = float(np.std([p.rotation for p in ps]))
        ambiguous = float(np.mean([p.drawn_as != p.view for p in ps]))
        rv = float(np.mean([p.anatomy.rv_visibility for p in ps if p.drawn_as == "A4C"]))
        return rot, ambiguous, rv

    rot0, amb0, rv0 = stats(0.0)
    rot1, amb1, rv1 = stats(1.0)
    assert rot1 > 2.5 * rot0
    assert amb0 == 0.0 and amb1 > 0.02
    assert rv0 == 1.0 and rv1 < 0.8  # A4C right heart fades: A4C looks more like A2C
    assert all(CONFUSABLE[CONFUSABLE[v]] == v for v in VIEWS)


def test_bad_arguments_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="PLAXX"):
        sample_clip("PLAXX", np.random.default_rng(0))
    with pytest.raises(ConfigError, match="difficulty"):
        sample_clip("A4C", np.random.default_rng(0), difficulty=1.5)
    with pytest.raises(ConfigError, match="too small"):
        render_clip("A4C", np.random.default_rng(0), 1, 8, 8)
