"""A procedural echocardiogram phantom: sector-scan frames of the A2C, A4C, PLAX and PSAX views.

Each view is a small function that places chambers (a dark blood pool inside a bright myocardial
wall), valve leaflets and bright interfaces in *anatomy coordinates* (``u`` lateral, ``v`` depth,
both in units of the sector depth, apex of the sector at ``(0, 0)``) for one instant of the
cardiac cycle. A shared renderer maps those shapes through a random probe pose into pixels and
adds what makes an ultrasound image look like one: the fan-shaped sector mask, multiplicative
Rayleigh speckle, depth attenuation and time-gain compensation, near-field clutter, gain and
contrast. ``difficulty`` in ``[0, 1]`` scales noise, pose variability, how much A2C and A4C look
alike and the fraction of deliberately ambiguous clips.

Everything is vectorised numpy; a 112x112 frame costs about a millisecond.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from kdbench.errors import ConfigError

# ---------------------------------------------------------------------------------------------
# Shapes and scenes
# ---------------------------------------------------------------------------------------------

BLOOD = 0.03  # echo level of blood
TISSUE = 0.20  # echo level of background tissue
MYOCARDIUM = 0.62
BRIGHT = 0.95  # pericardium, valve leaflets, chest wall


@dataclass(frozen=True)
class Ellipse:
    """An ellipse in anatomy coordinates: centre, semi-axes along its own u/v axes, rotation."""

    cu: float
    cv: float
    au: float
    av: float
    angle: float = 0.0  # radians, counter-clockwise in the (u, v) plane

    def grown(self, d: float) -> "Ellipse":
        """The same ellipse with both semi-axes grown by ``d``."""
        return Ellipse(self.cu, self.cv, self.au + d, self.av + d, self.angle)

    def point(self, s: float, t: float) -> tuple[float, float]:
        """The point at ``(s * au, t * av)`` in the ellipse's own frame, in anatomy coordinates."""
        c, n = math.cos(self.angle), math.sin(self.angle)
        du, dv = s * self.au, t * self.av
        return self.cu + c * du - n * dv, self.cv + n * du + c * dv


@dataclass(frozen=True)
class Segment:
    """A thick line segment (a valve leaflet, an interface) in anatomy coordinates."""

    u0: float
    v0: float
    u1: float
    v1: float
    half_width: float


Shape = Ellipse | Segment


@dataclass
class Scene:
    """What one view looks like at one instant: shapes in paint order, plus named landmarks."""

    layers: list[tuple[Shape, float]] = field(default_factory=list)
    landmarks: dict[str, Ellipse] = field(default_factory=dict)

    def chamber(self, name: str, cavity: Ellipse, wall: float, wall_level: float = MYOCARDIUM,
                blood: float = BLOOD, walls: bool = True, cavities: bool = True) -> None:
        """Add a chamber: its wall (a grown ellipse) and/or its blood pool."""
        if walls:
            self.layers.append((cavity.grown(wall), wall_level))
        if cavities:
            self.layers.append((cavity, blood))
        self.landmarks[name] = cavity

    def add(self, shape: Shape, level: float) -> None:
        """Add one shape painted with an echo level."""
        self.layers.append((shape, level))


def leaflet(hinge: tuple[float, float], length: float, closed: float, opened: float,
            openness: float, half_width: float = 0.008) -> Segment:
    """A valve leaflet hinged at ``hinge``, swinging from angle ``closed`` to ``opened`` (radians)."""
    a = closed + (opened - closed) * float(np.clip(openness, 0.0, 1.0))
    u0, v0 = hinge
    return Segment(u0, v0, u0 + length * math.cos(a), v0 + length * math.sin(a), half_width)


def _coverage_ellipse(e: Ellipse, U: np.ndarray, V: np.ndarray, px: float) -> np.ndarray:
    """Anti-aliased inside-ness of an ellipse on the pixel grid (1 inside, 0 outside)."""
    c, s = math.cos(e.angle), math.sin(e.angle)
    du, dv = U - e.cu, V - e.cv
    x = (c * du + s * dv) / e.au
    y = (-s * du + c * dv) / e.av
    d = np.sqrt(x * x + y * y)
    # distance to the boundary in anatomy units ~ (1 - d) * mean radius
    edge = (1.0 - d) * (0.5 * (e.au + e.av)) / px
    return np.clip(edge + 0.5, 0.0, 1.0)


def _coverage_segment(g: Segment, U: np.ndarray, V: np.ndarray, px: float) -> np.ndarray:
    """Anti-aliased coverage of a thick segment."""
    du, dv = g.u1 - g.u0, g.v1 - g.v0
    L2 = du * du + dv * dv + 1e-12
    t = np.clip(((U - g.u0) * du + (V - g.v0) * dv) / L2, 0.0, 1.0)
    dist = np.hypot(U - (g.u0 + t * du), V - (g.v0 + t * dv))
    return np.clip((g.half_width - dist) / px + 0.5, 0.0, 1.0)


def paint(scene: Scene, U: np.ndarray, V: np.ndarray, px: float, base: np.ndarray) -> np.ndarray:
    """Paint the scene's layers in order over ``base`` (an echo-level map)."""
    img = base.copy()
    for shape, level in scene.layers:
        cov = (_coverage_ellipse(shape, U, V, px) if isinstance(shape, Ellipse)
               else _coverage_segment(shape, U, V, px))
        img += cov * (level - img)
    return img


# ---------------------------------------------------------------------------------------------
# The cardiac cycle
# ---------------------------------------------------------------------------------------------


def cycle(phase: float) -> tuple[float, float, float]:
    """Systolic contraction, mitral and aortic valve openness (each 0..1) at a cycle phase 0..1."""
    p = phase % 1.0
    systole = math.sin(math.pi * p / 0.40) ** 2 if p < 0.40 else 0.0
    # mitral: early (E) and atrial (A) filling waves during diastole
    mitral = 0.0
    if 0.42 <= p < 0.70:
        mitral = math.sin(math.pi * (p - 0.42) / 0.28)
    elif 0.76 <= p < 0.97:
        mitral = 0.7 * math.sin(math.pi * (p - 0.76) / 0.21)
    aortic = math.sin(math.pi * (p - 0.03) / 0.30) if 0.03 <= p < 0.33 else 0.0
    return systole, mitral, aortic


@dataclass(frozen=True)
class Anatomy:
    """Per-clip anatomy: size jitter, contraction strength and A2C/A4C confusability knobs."""

    size: float = 1.0  # overall heart size factor
    aspect: float = 1.0  # lateral stretch of the ventricles
    esv_ratio: float = 0.45  # ESV / EDV, i.e. 1 - EF/100
    wall: float = 1.0  # wall thickness factor
    rv_visibility: float = 1.0  # A4C: how clearly the right heart shows (0 = like A2C)
    ghost: float = 0.0  # A2C: strength of a partial extra chamber at the edge (0 = none)


def _ventricle(center_u: float, base_v: float, au: float, av: float, angle: float,
               systole: float, esv_ratio: float) -> Ellipse:
    """A ventricle whose base stays near ``base_v`` while it contracts towards the apex."""
    f_u = esv_ratio ** 0.42  # lateral shortening dominates; f_u^2 * f_v = esv_ratio
    f_v = esv_ratio ** 0.16
    a_u = au * (1.0 - systole * (1.0 - f_u))
    a_v = av * (1.0 - systole * (1.0 - f_v))
    base = base_v - 0.03 * systole  # the base descends towards the apex in systole
    return Ellipse(center_u + math.sin(angle) * a_v, base - math.cos(angle) * a_v, a_u, a_v, angle)


def _apical(s: float, mitral: float, g: Anatomy, four: bool) -> Scene:
    """Shared apical long-axis layout: A4C has a right heart, A2C only the left."""
    k, w = g.size, g.wall
    wall_v = 0.034 * w * (1.0 + 0.35 * s)
    lv_u = 0.12 * k if four else 0.0
    lv = _ventricle(lv_u, 0.66 * k + 0.02, 0.112 * k * g.aspect, 0.245 * k, -0.06 if four else 0.0,
                    s, g.esv_ratio)
    la = Ellipse(lv_u + 0.01, 0.79 * k + 0.02, 0.105 * k * (1 + 0.12 * s), 0.095 * k * (1 + 0.12 * s))
    sc = Scene()
    right: list[tuple[str, Ellipse, float]] = []
    if four:
        rv = _ventricle(-0.12 * k, 0.64 * k + 0.02, 0.075 * k * g.aspect, 0.19 * k, 0.12, s,
                        min(0.9, g.esv_ratio + 0.1))
        ra = Ellipse(-0.125 * k, 0.79 * k + 0.02, 0.088 * k * (1 + 0.12 * s), 0.095 * k * (1 + 0.12 * s))
        right = [("RV", rv, 0.022 * w), ("RA", ra, 0.014)]
    elif g.ghost > 0:
        # a partial, faint chamber at the lateral edge: foreshortened or off-axis A2C
        right = [("ghost", Ellipse(-0.27 * k, 0.50 * k, 0.06 * k, 0.16 * k, 0.25), 0.02)]
    left = [("LV", lv, wall_v), ("LA", la, 0.015)]
    vis = {"RV": g.rv_visibility, "RA": g.rv_visibility, "ghost": g.ghost}
    for name, cav, wall in left + right:  # walls first, so neighbouring walls form the septa
        lvl = MYOCARDIUM * (1.0 if name in ("LV", "RV") else 0.8)
        sc.add(cav.grown(wall), TISSUE + vis.get(name, 1.0) * (lvl - TISSUE))
    for name, cav, _ in left + right:
        sc.add(cav, TISSUE + vis.get(name, 1.0) * (BLOOD - TISSUE))
        sc.landmarks[name] = cav
    # atrioventricular valves hinge on the ventricular base
    hinge_l, hinge_r = lv.point(-0.85, 1.0), lv.point(0.85, 1.0)
    ln = 0.075 * k
    sc.add(leaflet(hinge_l, ln, 0.15, -1.30, mitral), BRIGHT)
    sc.add(leaflet(hinge_r, ln, math.pi - 0.15, -math.pi + 1.30, mitral), BRIGHT)
    if four:
        rv = sc.landmarks["RV"]
        h_l, h_r = rv.point(-0.85, 1.0), rv.point(0.85, 1.0)
        vis_level = TISSUE + g.rv_visibility * (BRIGHT - TISSUE)
        sc.add(leaflet(h_l, 0.06 * k, 0.15, -1.30, mitral), vis_level)
        sc.add(leaflet(h_r, 0.06 * k, math.pi - 0.15, -math.pi + 1.30, mitral), vis_level)
    return sc


def view_a4c(s: float, mitral: float, aortic: float, g: Anatomy) -> Scene:
    """Apical four-chamber: LV, RV, LA, RA, septa, mitral and tricuspid valves."""
    return _apical(s, mitral, g, four=True)


def view_a2c(s: float, mitral: float, aortic: float, g: Anatomy) -> Scene:
    """Apical two-chamber: LV and LA only, mitral valve."""
    return _apical(s, mitral, g, four=False)


def view_plax(s: float, mitral: float, aortic: float, g: Anatomy) -> Scene:
    """Parasternal long axis: RV on top, horizontal LV, aortic root and LA behind it."""
    k, w = g.size, g.wall
    sc = Scene()
    sc.add(Segment(-0.6, 0.17 * k, 0.6, 0.15 * k, 0.022 * k), 0.75)  # anterior chest wall
    rv = Ellipse(-0.04, 0.28 * k, 0.30 * k, 0.06 * k * (1 - 0.2 * s), -0.04)
    f = g.esv_ratio ** 0.5
    lv_av = 0.105 * k * (1 - s * (1 - f))
    lv_wall = 0.038 * w * (1 + 0.35 * s)
    lv = Ellipse(-0.12 * k, 0.505 * k, 0.31 * k * (1 - 0.08 * s) * g.aspect, lv_av, 0.06)
    ao = Ellipse(0.27 * k, 0.395 * k, 0.14 * k, 0.052 * k, -0.10)
    la = Ellipse(0.31 * k, 0.625 * k, 0.115 * k * (1 + 0.12 * s), 0.085 * k * (1 + 0.12 * s), 0.05)
    dao = Ellipse(0.17 * k, 0.80 * k, 0.032 * k, 0.032 * k)
    for cav, wall in ((rv, 0.02), (lv, lv_wall), (ao, 0.02), (la, 0.015), (dao, 0.012)):
        sc.add(cav.grown(wall), MYOCARDIUM)
    sc.add(Segment(-0.45 * k, 0.69 * k, 0.50 * k, 0.735 * k, 0.016 * k), BRIGHT)  # pericardium
    for name, cav in (("RV", rv), ("LV", lv), ("Ao", ao), ("LA", la), ("DAo", dao)):
        sc.add(cav, BLOOD)
        sc.landmarks[name] = cav
    # aortic valve: two cusps hinged on the root walls, opening along the root axis
    top, bot = ao.point(-0.72, -0.95), ao.point(-0.72, 0.95)
    sc.add(leaflet(top, 0.05 * k, 1.35, 0.05, aortic), BRIGHT)
    sc.add(leaflet(bot, 0.05 * k, -1.35, -0.05, aortic), BRIGHT)
    # mitral valve: anterior leaflet from the aortic root, posterior from the LA/LV junction
    ant, post = (0.16 * k, 0.47 * k), (0.20 * k, 0.60 * k)
    sc.add(leaflet(ant, 0.085 * k, 1.9, math.pi - 0.35, mitral), BRIGHT)
    sc.add(leaflet(post, 0.06 * k, -1.9, math.pi + 0.45, mitral), BRIGHT)
    return sc


def view_psax(s: float, mitral: float, aortic: float, g: Anatomy) -> Scene:
    """Parasternal short axis (mid-papillary): circular LV ring, papillary muscles, RV crescent."""
    k, w = g.size, g.wall
    sc = Scene()
    sc.add(Segment(-0.6, 0.17 * k, 0.6, 0.16 * k, 0.022 * k), 0.75)  # anterior chest wall
    rv = Ellipse(-0.07 * k, 0.36 * k, 0.25 * k, 0.10 * k * (1 - 0.25 * s), 0.30)
    sc.chamber("RV", rv, 0.02)
    r = 0.145 * k * (1 - s * (1 - g.esv_ratio ** 0.5))
    lv = Ellipse(0.02 * k, 0.53 * k, r * g.aspect, r)
    wall = 0.045 * w * (1 + 0.4 * s)
    sc.chamber("LV", lv, wall)
    sc.add(Ellipse(0.02 * k, 0.53 * k + r + wall + 0.03 * k, 0.2 * k, 0.015 * k), BRIGHT)  # pericardium
    for side in (-1.0, 1.0):  # antero-lateral and postero-medial papillary muscles
        pu, pv = lv.point(0.55 * side, 0.55)
        sc.add(Ellipse(pu, pv, 0.032 * k * (1 + 0.3 * s), 0.026 * k * (1 + 0.3 * s), 0.6 * side),
               MYOCARDIUM * 0.9)
    return sc


VIEW_FUNCTIONS: dict[str, Callable[[float, float, float, Anatomy], Scene]] = {
    "A2C": view_a2c,
    "A4C": view_a4c,
    "PLAX": view_plax,
    "PSAX": view_psax,
}
# the view a deliberately ambiguous clip is drawn as
CONFUSABLE: dict[str, str] = {"A2C": "A4C", "A4C": "A2C", "PLAX": "PSAX", "PSAX": "PLAX"}

# ---------------------------------------------------------------------------------------------
# Probe pose, acquisition settings and the renderer
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipParams:
    """Everything random about one clip, drawn once; rendering a clip is deterministic given it."""

    view: str  # the labelled view
    drawn_as: str  # the anatomy actually drawn (differs for ambiguous clips)
    anatomy: Anatomy
    heart_rate: float  # beats per minute
    phase0: float  # cycle phase at t = 0
    rotation: float  # probe rotation (radians)
    shift_u: float
    shift_v: float
    scale: float
    half_angle: float  # sector half-angle (radians)
    depth: float  # sector depth as a fraction of the image height
    apex_x: float  # apex position as a fraction of the image width
    attenuation: float
    tgc: tuple[float, float, float]  # amplitude, frequency, phase of the time-gain ripple
    gain: float
    gamma: float
    speckle: float  # 0 = no speckle, 1 = fully developed
    noise: float  # additive noise std
    clutter: float  # near-field haze strength
    seed: int  # for the speckle and the texture


def sample_clip(view: str, rng: np.random.Generator, difficulty: float = 0.5,
                esv_ratio: float | None = None, phase0: float | None = None) -> ClipParams:
    """Draw the random pose, anatomy and acquisition settings of one clip of ``view``.

    ``esv_ratio`` (ESV/EDV) and ``phase0`` (cycle phase at t=0; 0 = end-diastole) are drawn
    when not given.
    """
    if view not in VIEW_FUNCTIONS:
        raise ConfigError(f"phantom view {view!r} is unknown; expected one of {sorted(VIEW_FUNCTIONS)}")
    if not 0.0 <= difficulty <= 1.0:
        raise ConfigError(f"difficulty = {difficulty!r} is out of range; expected a number in [0, 1]")
    d = float(difficulty)
    drawn_as = CONFUSABLE[view] if rng.random() < _ambiguity(view, d) else view
    if esv_ratio is None:
        esv_ratio = float(np.clip(rng.normal(0.42, 0.10), 0.2, 0.85))
    rv_visibility, ghost = 1.0, 0.0
    if drawn_as == "A4C":  # foreshortened / off-axis A4C: the right heart fades
        rv_visibility = float(rng.uniform(1.0 - 0.95 * d, 1.0))
    if drawn_as == "A2C" and rng.random() < 0.8 * d:  # partial structures at the edge
        ghost = float(rng.uniform(0.2, 0.2 + 0.7 * d))
    anatomy = Anatomy(
        size=float(rng.uniform(0.9, 1.1)),
        aspect=float(rng.uniform(0.88, 1.14)),
        esv_ratio=esv_ratio,
        wall=float(rng.uniform(0.8, 1.4)),
        rv_visibility=rv_visibility,
        ghost=ghost,
    )
    return ClipParams(
        view=view,
        drawn_as=drawn_as,
        anatomy=anatomy,
        heart_rate=float(rng.uniform(50, 110)),
        phase0=float(rng.random()) if phase0 is None else float(phase0),
        rotation=float(rng.normal(0.0, math.radians(3 + 12 * d))),
        shift_u=float(rng.normal(0.0, 0.015 + 0.05 * d)),
        shift_v=float(rng.normal(0.0, 0.01 + 0.04 * d)),
        scale=float(rng.uniform(1.0 - 0.05 - 0.15 * d, 1.0 + 0.05 + 0.15 * d)),
        half_angle=math.radians(float(rng.uniform(34, 45))),
        depth=float(rng.uniform(0.88, 0.97)),
        apex_x=float(0.5 + rng.normal(0.0, 0.01)),
        attenuation=float(rng.uniform(0.2, 0.6 + 0.6 * d)),
        tgc=(float(rng.uniform(0.0, 0.08 + 0.2 * d)), float(rng.uniform(0.5, 2.5)),
             float(rng.uniform(0, 2 * math.pi))),
        gain=float(rng.uniform(1.0 - 0.15 - 0.2 * d, 1.0 + 0.15 + 0.2 * d)),
        gamma=float(rng.uniform(0.8, 1.25)),
        speckle=float(rng.uniform(0.5, 0.7) + 0.3 * d),
        noise=float(rng.uniform(0.005, 0.015 + 0.04 * d)),
        clutter=float(rng.uniform(0.05, 0.2 + 0.3 * d)),
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def _ambiguity(view: str, d: float) -> float:
    """Probability that a clip of ``view`` is drawn as its confusable partner."""
    return (0.12 if view in ("A2C", "A4C") else 0.03) * d


@dataclass(frozen=True)
class Geometry:
    """Pixel <-> anatomy mapping of one clip on one image size."""

    params: ClipParams
    height: int
    width: int

    @property
    def depth_px(self) -> float:
        """Sector depth in pixels."""
        return self.params.depth * self.height

    @property
    def apex(self) -> tuple[float, float]:
        """Pixel position (x, y) of the sector apex."""
        return self.params.apex_x * self.width, 1.0

    def to_anatomy(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates to anatomy coordinates (u, v)."""
        p = self.params
        ax, ay = self.apex
        X, Y = (x - ax) / self.depth_px - p.shift_u, (y - ay) / self.depth_px - p.shift_v - 0.5
        c, s = math.cos(-p.rotation), math.sin(-p.rotation)
        return (c * X - s * Y) / p.scale, (s * X + c * Y) / p.scale + 0.5

    def to_pixels(self, u: np.ndarray | float, v: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Anatomy coordinates to pixel coordinates (x, y)."""
        p = self.params
        u, v = np.asarray(u, dtype=np.float64) * p.scale, (np.asarray(v, dtype=np.float64) - 0.5) * p.scale
        c, s = math.cos(p.rotation), math.sin(p.rotation)
        X, Y = c * u - s * v + p.shift_u, s * u + c * v + p.shift_v + 0.5
        ax, ay = self.apex
        return ax + X * self.depth_px, ay + Y * self.depth_px


def scene_at(params: ClipParams, t: float) -> Scene:
    """The anatomy of a clip at time ``t`` (seconds)."""
    phase = params.phase0 + t * params.heart_rate / 60.0
    systole, mitral, aortic = cycle(phase)
    return VIEW_FUNCTIONS[params.drawn_as](systole, mitral, aortic, params.anatomy)


def systole_at(params: ClipParams, t: float) -> float:
    """Contraction (0 = end-diastole, 1 = end-systole) of a clip at time ``t`` (seconds)."""
    return cycle(params.phase0 + t * params.heart_rate / 60.0)[0]


def _speckle_field(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Complex Gaussian field, blurred more laterally than axially (an anisotropic PSF)."""
    import cv2

    z = rng.standard_normal((2, h, w)).astype(np.float32)
    return np.stack([cv2.GaussianBlur(c, (0, 0), sigmaX=1.1, sigmaY=0.6) for c in z])


def render_frames(params: ClipParams, times: np.ndarray, height: int = 112, width: int = 112) -> np.ndarray:
    """Render a clip at the given times (seconds) as uint8 grey frames ``[T, height, width]``."""
    import cv2

    if height < 16 or width < 16:
        raise ConfigError(f"phantom image size {width}x{height} is too small; expected at least 16x16")
    rng = np.random.default_rng(params.seed)
    geo = Geometry(params, height, width)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    U, V = geo.to_anatomy(xs, ys)
    U, V = U.astype(np.float32), V.astype(np.float32)
    px = 1.0 / (geo.depth_px * params.scale)  # anatomy units per pixel

    ax, ay = geo.apex
    r = np.hypot(xs - ax, ys - ay) / geo.depth_px  # 0 at the apex, 1 at the sector's far edge
    theta = np.arctan2(xs - ax, ys - ay)
    edge_r = np.clip((1.0 - r) * geo.depth_px, 0.0, 1.0)
    edge_t = np.clip((params.half_angle - np.abs(theta)) * r * geo.depth_px, 0.0, 1.0)
    sector = (edge_r * edge_t * (r > 0.02)).astype(np.float32)
    # lateral fall-off near the sector edges, depth attenuation, time-gain ripple, near-field haze
    lateral = 0.75 + 0.25 * np.sqrt(np.maximum(np.cos(np.clip(theta / params.half_angle, -1, 1) * 1.5), 0.0))
    amp, freq, ph = params.tgc
    depth_gain = np.exp(-params.attenuation * r) * (1.0 + amp * np.cos(2 * math.pi * freq * r + ph))
    haze = params.clutter * np.exp(-r / 0.08)

    # static tissue texture: low-frequency variation of the background echo level
    tex = cv2.GaussianBlur(rng.standard_normal((height, width)).astype(np.float32), (0, 0), 4.0)
    base = (TISSUE * (1.0 + 1.5 * tex)).astype(np.float32)
    static = _speckle_field(rng, height, width)

    out = np.empty((len(times), height, width), dtype=np.uint8)
    for i, t in enumerate(np.asarray(times, dtype=np.float64)):
        img = paint(scene_at(params, float(t)), U, V, px, base)
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=0.9, sigmaY=0.5)  # the imaging system's PSF
        # speckle decorrelates partly from frame to frame as tissue moves
        z = 0.85 * static + 0.53 * _speckle_field(rng, height, width)
        mag = np.hypot(z[0], z[1])
        mag /= mag.mean() + 1e-6
        img = img * (1.0 - params.speckle + params.speckle * mag)
        img = img * depth_gain * lateral + haze
        img = params.gain * np.clip(img, 0.0, None) ** params.gamma
        img += params.noise * rng.standard_normal(img.shape).astype(np.float32)
        out[i] = np.clip(img * sector * 255.0, 0, 255).astype(np.uint8)
    return out


def render_clip(view: str, rng: np.random.Generator, frames: int, height: int = 112, width: int = 112,
                fps: float = 50.0, difficulty: float = 0.5, esv_ratio: float | None = None,
                phase0: float | None = None) -> tuple[np.ndarray, ClipParams]:
    """Draw a clip of ``view`` and render ``frames`` frames at ``fps``: (uint8 [T, H, W], params)."""
    params = sample_clip(view, rng, difficulty, esv_ratio, phase0)
    return render_frames(params, np.arange(frames) / float(fps), height, width), params
