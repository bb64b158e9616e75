"""Echo augmentation that keeps the teacher-logit cache: K fixed augmented versions of every frame.

Caching the teacher's logits makes a KD trial cost what a scratch trial costs, but the teacher
must see the frame the student sees. So augmentation here is a pure function of
``(frame row, version k, seed)``: version k of a frame is the same array whenever and wherever it
is made, the teacher runs once over the K versions of the training frames
(``kdbench.distill.augmented_cache.augmented_teacher_logits`` -> ``[K, N, 4]``), and the student sees version ``epoch mod K`` (or a
seeded random version) of each frame, looking its teacher logits up as ``logits[k, row]``.

The augmentations suit harmonised echo frames (apex at the top centre, one fixed fan mask):

- probe pose: a small rotation about the sector apex and a small shift of the apex (the image
  moves under the fixed mask, whose outline stays identical for every frame);
- gain (overall brightness), contrast (a gamma curve), depth attenuation (``exp(-a * r)`` with r
  the distance from the apex, a of either sign: time-gain compensation set too low or too high);
- speckle: multiplicative noise, drawn at half resolution and upsampled so it is spatially
  correlated like real speckle.

No left-right flip unless ``flip=True``: a mirrored apical view is not the same view as seen by
the usual probe convention, and a classifier should not learn that it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields
from functools import lru_cache, partial
from typing import Any

import cv2
import numpy as np
import torch

from kdbench.data.harmonise import sector_mask
from kdbench.data.loader import StoreLoader
from kdbench.data.store import FrameStore
from kdbench.errors import ConfigError

log = logging.getLogger(__name__)

AUGMENT_VERSION = 1  # bump when the pixels a (row, k, seed, config) gives change: old caches then miss
CHOICES = ("cycle", "random")
_CHUNK = 16  # frames whose pixel arithmetic is done together (a few MB: the chunk's arrays stay in cache)
_UNIT_LEVELS = np.divide(np.arange(256, dtype=np.uint8), np.float32(255.0), dtype=np.float32)  # uint8 level / 255


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each augmentation (0 turns one off); every draw is uniform in +-the value."""

    rotate_deg: float = 8.0  # rotation of the probe pose about the sector apex, degrees
    shift: float = 0.04  # shift of the apex (sideways and in depth), fraction of the frame size
    gain: float = 0.2  # brightness factor in [1 - gain, 1 + gain]
    contrast: float = 0.25  # gamma exponent exp(u), u in [-contrast, contrast]
    attenuation: float = 0.4  # depth attenuation exp(-a * r), a in [-attenuation, attenuation]
    speckle: float = 0.15  # standard deviation of the multiplicative speckle noise
    flip: bool = False  # mirror left-right with probability 1/2 (off: a mirrored view is another view)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "flip":
                if not isinstance(value, bool):
                    raise ConfigError(f"augment.flip={value!r} is not a boolean (true/false)")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < _LIMITS[f.name]:
                raise ConfigError(f"augment.{f.name}={value!r} is out of range; expected a number in [0, {_LIMITS[f.name]:g})")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentConfig:
        """Build from a dict (e.g. a TOML table); unknown keys are a ConfigError naming them."""
        return settings_from_dict(cls, data, "augment")


def settings_from_dict(cls: type, data: dict[str, Any], table: str) -> Any:
    """``cls(**data)`` for a settings dataclass; keys it does not have are a ConfigError naming ``table`` and them."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{table} has no setting(s) {unknown}; allowed: {sorted(known)}")
    return cls(**data)


_LIMITS = {"rotate_deg": 45.0, "shift": 0.5, "gain": 1.0, "contrast": 2.0, "attenuation": 5.0, "speckle": 1.0}


@lru_cache(maxsize=8)
def _depth_map(size: int) -> np.ndarray:
    """Distance of each pixel from the sector apex (top centre), in frame sizes, float32 [S, S]."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    depth = np.hypot(xs - size / 2.0, ys) / size
    depth.setflags(write=False)
    return depth


def frame_rng(row: int, version: int, seed: int) -> np.random.Generator:
    """The random generator of version ``version`` of store row ``row`` under ``seed``."""
    return np.random.default_rng([AUGMENT_VERSION, int(seed), int(version), int(row)])


def augment_frame(frame: np.ndarray, row: int, version: int, seed: int, config: AugmentConfig) -> np.ndarray:
    """Version ``version`` of one uint8 frame [S, S] as float32 [S, S] in [0, 1] (deterministic)."""
    rng = frame_rng(row, version, seed)
    size = frame.shape[0]
    u = rng.uniform(-1.0, 1.0, size=7)  # one draw per parameter, always all, so settings never shift streams
    flip = config.flip and u[6] > 0
    apex = (size / 2.0 - 0.5, -0.5)  # top centre; OpenCV puts pixel centres at integers
    matrix = cv2.getRotationMatrix2D(apex, float(u[0] * config.rotate_deg), 1.0)
    matrix[:, 2] += (u[1] * config.shift * size, u[2] * config.shift * size)
    if flip:  # mirror about the midline after the pose change
        matrix = np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([matrix, [0.0, 0.0, 1.0]])
    moved = cv2.warpAffine(np.ascontiguousarray(frame), matrix, (size, size), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    img = np.divide(moved, np.float32(255.0), dtype=np.float32)  # as StoreLoader: un-augmented frames match exactly
    img **= np.float32(np.exp(u[3] * config.contrast))
    img *= np.float32(1.0 + u[4] * config.gain) * np.exp(np.float32(-u[5] * config.attenuation) * _depth_map(size))
    if config.speckle > 0:
        half = max(1, size // 2)
        noise = rng.standard_normal((half, half), dtype=np.float32)
        noise = cv2.resize(noise, (size, size), interpolation=cv2.INTER_LINEAR)
        img *= np.maximum(np.float32(1.0) + np.float32(config.speckle) * noise, np.float32(0.0))
    img *= sector_mask(size)
    return np.clip(img, 0.0, 1.0, out=img)


def augment_batch_reference(frames: np.ndarray, rows: np.ndarray, versions: np.ndarray, seed: int,
                            config: AugmentConfig) -> np.ndarray:
    """``augment_batch`` one frame at a time through ``augment_frame``: what the batch code is tested against."""
    out = np.empty((len(frames), 1, *frames.shape[1:]), np.float32)
    for i, (frame, row, k) in enumerate(zip(frames, rows, versions)):
        out[i, 0] = augment_frame(frame, int(row), int(k), seed, config)
    return out


@dataclass
class BatchDraws:
    """A batch's augmentation before the pixel arithmetic: the posed frames (uint8; float32 from a resized store)
    and each frame's random draws."""

    moved: np.ndarray  # uint8 [B, S, S] (float32 in [0, 255] for a resized store's frames): each frame after its
    # rotation, shift (and flip), as augment_frame's warp
    u: np.ndarray  # float64 [B, 7]: each frame's uniform draws (see augment_frame)
    noise: np.ndarray | None  # float32 [B, S, S]: each frame's speckle draw, upsampled (None: speckle off)


def batch_draws(frames: np.ndarray, rows: np.ndarray, versions: np.ndarray, seed: int,
                config: AugmentConfig, upsample: bool = True) -> BatchDraws:
    """Each frame's draws from its own ``frame_rng`` and its warp (per frame: the exact streams and OpenCV's warp);
    ``upsample=False`` leaves the speckle at half resolution (for ``finish_batch_torch``)."""
    n, size = len(frames), frames.shape[-1]
    half = max(1, size // 2)
    moved = np.empty((n, size, size), np.uint8 if frames.dtype == np.uint8 else np.float32)
    u = np.empty((n, 7), np.float64)
    side = size if upsample else half
    noise = np.empty((n, side, side), np.float32) if config.speckle > 0 else None
    for i in range(n):
        rng = frame_rng(int(rows[i]), int(versions[i]), seed)
        u[i] = rng.uniform(-1.0, 1.0, size=7)
        if noise is not None and upsample:  # OpenCV's resize per frame: frames passed as channels round differently
            cv2.resize(rng.standard_normal((half, half), dtype=np.float32), (size, size), dst=noise[i],
                       interpolation=cv2.INTER_LINEAR)
        elif noise is not None:
            noise[i] = rng.standard_normal((half, half), dtype=np.float32)
        cv2.warpAffine(np.ascontiguousarray(frames[i]), _pose_matrix(u[i], size, config), (size, size),
                       dst=moved[i], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return BatchDraws(moved, u, noise)


def _pose_matrix(u: np.ndarray, size: int, config: AugmentConfig) -> np.ndarray:
    """The 2x3 warp of one frame's probe pose (rotation about the apex, shift, optional flip), as augment_frame's."""
    matrix = cv2.getRotationMatrix2D((size / 2.0 - 0.5, -0.5), float(u[0] * config.rotate_deg), 1.0)
    matrix[:, 2] += (u[1] * config.shift * size, u[2] * config.shift * size)
    if config.flip and u[6] > 0:
        matrix = np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0]]) @ np.vstack([matrix, [0.0, 0.0, 1.0]])
    return matrix


def augment_batch(frames: np.ndarray, rows: np.ndarray, versions: np.ndarray, seed: int,
                  config: AugmentConfig) -> np.ndarray:
    """Augmented float32 [B, 1, S, S] in [0, 1] for frames [B, S, S] of store ``rows`` (uint8, or float32 in
    [0, 255] from a resized store): the same values as ``augment_frame`` frame by frame (tested bit for bit), the
    pixel arithmetic done on chunks of the batch small enough to stay in the CPU's cache."""
    if frames.dtype != np.uint8:  # a resized store's frames: float32 in [0, 255]
        frames = np.asarray(frames, dtype=np.float32)
    out = np.empty((len(frames), 1, *frames.shape[1:]), np.float32)
    for start in range(0, len(frames), _CHUNK):
        part = slice(start, start + _CHUNK)
        finish_batch(batch_draws(frames[part], rows[part], versions[part], seed, config), config, out=out[part, 0])
    return out


def finish_batch(draws: BatchDraws, config: AugmentConfig, out: np.ndarray | None = None) -> np.ndarray:
    """The pixel arithmetic of augment_frame on a batch of draws (numpy, float32, same operations): [B, S, S]."""
    n, size = draws.moved.shape[0], draws.moved.shape[-1]
    img = np.empty((n, size, size), np.float32) if out is None else out
    exponents = np.exp(draws.u[:, 3] * config.contrast).astype(np.float32)
    if draws.moved.dtype == np.uint8:
        # contrast: a uint8 pixel has 256 values, so a frame's gamma curve is a 256-entry table (the same powf calls)
        tables = _UNIT_LEVELS[None, :] ** exponents[:, None]
        for i in range(n):
            cv2.LUT(draws.moved[i], tables[i], dst=img[i])
    else:  # a resized store's float frames: the curve on every pixel, as augment_frame
        np.divide(draws.moved, np.float32(255.0), out=img, dtype=np.float32)
        for i in range(n):
            img[i] **= exponents[i]
    shading = np.multiply((-draws.u[:, 5] * config.attenuation).astype(np.float32)[:, None, None], _depth_map(size))
    np.exp(shading, out=shading)
    shading *= (1.0 + draws.u[:, 4] * config.gain).astype(np.float32)[:, None, None]
    img *= shading
    if draws.noise is not None:
        speckle = draws.noise
        speckle *= np.float32(config.speckle)
        speckle += np.float32(1.0)
        img *= np.maximum(speckle, np.float32(0.0), out=speckle)
    img *= _float_mask(size)
    return np.clip(img, 0.0, 1.0, out=img)


def finish_batch_torch(moved: torch.Tensor, u: torch.Tensor, noise: torch.Tensor | None,
                       config: AugmentConfig) -> torch.Tensor:
    """``finish_batch`` in torch, on the tensors' device (a GPU): ``moved`` [B, S, S] (uint8, or float32 in [0, 255]
    from a resized store), float64 ``u`` [B, 7],
    half-resolution float32 ``noise`` [B, S/2, S/2] (``batch_draws(..., upsample=False)``) -> float32 [B, 1, S, S].
    The same operations; exp, pow and the bilinear upsampling round as the device's kernels do, so values may differ
    from ``augment_batch``'s by float32 rounding (a few 1e-7 on [0, 1], tested), far below one grey level (1/255)
    and below fp16's resolution, in which a GPU step reads them."""
    size, device = moved.shape[-1], moved.device
    exponents = torch.exp(u[:, 3] * config.contrast).to(torch.float32)
    if moved.dtype == torch.uint8:
        tables = torch.tensor(_UNIT_LEVELS, device=device)[None, :] ** exponents[:, None]
        img = torch.gather(tables, 1, moved.reshape(len(moved), -1).long()).reshape(moved.shape)
    elif moved.dtype == torch.float32:  # a resized store's frames, in [0, 255]
        img = (moved / 255.0) ** exponents[:, None, None]
    else:
        raise TypeError(f"finish_batch_torch takes uint8 or float32 posed frames, got {moved.dtype}")
    depth = torch.tensor(_depth_map(size), device=device)
    slopes = (-u[:, 5] * config.attenuation).to(torch.float32)[:, None, None]
    img *= torch.exp(slopes * depth) * (1.0 + u[:, 4] * config.gain).to(torch.float32)[:, None, None]
    if noise is not None:
        speckle = torch.nn.functional.interpolate(noise[:, None], size=(size, size), mode="bilinear",
                                                  align_corners=False)[:, 0]
        img *= (speckle * config.speckle + 1.0).clamp_(min=0.0)
    img *= torch.tensor(_float_mask(size), device=device)
    return img.clamp_(0.0, 1.0)[:, None]


@lru_cache(maxsize=8)
def _float_mask(size: int) -> np.ndarray:
    """The sector mask as float32 0/1 (multiplying by it equals multiplying by the uint8 mask)."""
    mask = sector_mask(size).astype(np.float32)
    mask.setflags(write=False)
    return mask


def check_versions(versions: int) -> int:
    """``versions`` as a whole number >= 1, else ConfigError."""
    if isinstance(versions, bool) or not isinstance(versions, (int, np.integer)) or versions < 1:
        raise ConfigError(f"augmentation versions={versions!r}; expected a whole number >= 1 (0 turns augmentation off)")
    return int(versions)


def versions_beyond_epochs(versions: int, choices: list[str], epochs: int, versions_key: str, epochs_key: str) -> str | None:
    """K augmented versions against the most epochs a run can train: ConfigError when K > epochs and a run may
    cycle (the student sees version epoch mod K, so versions past the epochs are never seen, yet each costs a
    teacher pass over the training frames); a warning (returned) when the choice is only random; else None.
    ``versions_key``/``epochs_key``: how the user wrote them, e.g. "train.augment_versions = 1000", "--epochs 20"."""
    if not versions or versions <= epochs:
        return None
    if "cycle" in choices:
        raise ConfigError(f"{versions_key} is more than the {epochs} epoch(s) ({epochs_key}) can use: with augment_choice "
                          f"'cycle' the student sees version epoch mod K, so versions past the epochs are never seen, "
                          f"yet each costs a teacher pass; expected at most {epochs} (or more epochs)")
    return (f"{versions_key} with {epochs} epoch(s) ({epochs_key}): with augment_choice 'random' each frame sees at most "
            f"{epochs} of its {versions} versions, yet the teacher runs {versions} passes; at most {epochs} would do")


class AugmentedLoader:
    """Iterate (x float32 [B,1,S,S], y int64 [B], idx int64 [B], k int64 [B]) over augmented frames.

    Same batches and shuffle as ``StoreLoader`` (same seed, epoch and unlabelled share give the same rows); each
    frame comes as augmented version ``k``: ``epoch mod versions`` (``choice="cycle"``) or a
    version drawn per frame and epoch from the seed (``choice="random"``). Teacher logits for the
    batch are ``augmented_logits[k, idx]`` (see ``teacher_lookup``).
    """

    def __init__(self, store: FrameStore, split: str | None, batch_size: int, versions: int, seed: int = 0,
                 config: AugmentConfig | None = None, shuffle: bool = True, drop_last: bool = False,
                 choice: str = "cycle", augment_seed: int | None = None, unlabelled: float = 0.0) -> None:
        """``seed`` orders the batches; ``augment_seed`` (default: 0) fixes the versions and must match the cache's;
        ``unlabelled`` adds that share of the unlabelled rows to every epoch, as ``StoreLoader`` does."""
        if choice not in CHOICES:
            raise ConfigError(f"augmentation choice={choice!r}; expected one of {list(CHOICES)}")
        self.order_loader = StoreLoader(store, split, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
                                        unlabelled=unlabelled)
        self.store, self.versions, self.choice = store, check_versions(versions), choice
        self.config = config or AugmentConfig()
        self.seed, self.augment_seed = int(seed), int(0 if augment_seed is None else augment_seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select this epoch's order and versions."""
        self.epoch = int(epoch)
        self.order_loader.set_epoch(epoch)

    def __len__(self) -> int:
        """Number of batches per epoch."""
        return len(self.order_loader)

    def epoch_versions(self, order: np.ndarray) -> np.ndarray:
        """The version of each row of ``order`` (the epoch's row order) for the current epoch."""
        if self.choice == "cycle":
            return np.full(len(order), self.epoch % self.versions, np.int64)
        rng = np.random.default_rng([self.seed, self.epoch, 0x5EED])
        return rng.integers(0, self.versions, size=len(order), dtype=np.int64)

    def __iter__(self) -> Iterator[tuple[Any, Any, Any, Any]]:
        """Yield the augmented batches of the current epoch."""
        return (job() for job in self.batch_jobs())

    def batch_jobs(self) -> Iterator[Callable[[], tuple[Any, Any, Any, Any]]]:
        """The current epoch's batches as functions that make them, in order (threads may run them at once:
        ``kdbench.data.prefetch``); calling each gives ``__iter__``'s batch."""
        return self._jobs(self._batch)

    def draw_jobs(self) -> Iterator[Callable[[], tuple[Any, Any, Any, Any]]]:
        """``batch_jobs`` stopping before the pixel arithmetic: each gives ((moved uint8, u, half-size noise | None),
        y, idx, k) for ``finish_drawn`` on a device (a GPU: the CPU draws and warps, the GPU does the rest)."""
        return self._jobs(self._drawn)

    def _jobs(self, make: Callable[[np.ndarray, np.ndarray], Any]) -> Iterator[Callable[[], Any]]:
        """``make(rows, versions)`` for each batch of the epoch, in order (rows sorted within a batch)."""
        order = self.order_loader.order()
        ks = self.epoch_versions(order)
        size = self.order_loader.batch_size
        for b in range(len(self)):
            pick = np.argsort(order[b * size : (b + 1) * size], kind="stable") + b * size
            yield partial(make, order[pick], ks[pick])

    def _drawn(self, idx: np.ndarray, k: np.ndarray) -> tuple[Any, Any, Any, Any]:
        """One batch's draws (see ``draw_jobs``): a resized store's frames are resized here, on the CPU, and travel
        posed as float32 at their (smaller) size."""
        frames = self.store.frames[idx]
        d = batch_draws(frames, idx, k, self.augment_seed, self.config, upsample=False)
        noise = None if d.noise is None else torch.from_numpy(d.noise)
        drawn = (torch.from_numpy(d.moved), torch.from_numpy(d.u), noise)
        return drawn, torch.from_numpy(self.store.labels[idx]), torch.from_numpy(idx), torch.from_numpy(k)

    def finish_drawn(self, batch: tuple[Any, Any, Any, Any]) -> tuple[Any, Any, Any, Any]:
        """A ``draw_jobs`` batch (its draws on the device) as the (x, y, idx, k) batch: ``finish_batch_torch``."""
        (moved, u, noise), *rest = batch
        return (finish_batch_torch(moved, u, noise, self.config), *rest)

    def _batch(self, idx: np.ndarray, k: np.ndarray) -> tuple[Any, Any, Any, Any]:
        """One batch of store rows ``idx`` as versions ``k``."""
        x = augment_batch(self.store.frames[idx], idx, k, self.augment_seed, self.config)
        return (torch.from_numpy(x), torch.from_numpy(self.store.labels[idx]), torch.from_numpy(idx),
                torch.from_numpy(k))


def teacher_lookup(augmented_logits: np.ndarray, idx: Any, k: Any) -> np.ndarray:
    """The cached teacher logits [B, 4] of a batch: ``augmented_logits[k, idx]`` (k, idx: [B])."""
    idx, k = np.asarray(idx), np.asarray(k)
    return augmented_logits[k, idx]
