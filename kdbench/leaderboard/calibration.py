"""ECE on the leaderboard: its clip-bootstrap interval and the noise floor for a split's size.

``ece_interval``: a 95% interval of the (seed-mean) expected calibration error from clip resamples (frames
of one clip move together; the same 15 equal-width bins as ``kdbench.metrics.expected_calibration_error``).
ECE is biased upward on a finite split and a resample's ECE more so (resampling adds noise, and |gap| turns
noise into error), so percentiles of the resampled ECE would sit above the estimate; the basic (reverse
percentile) bootstrap interval [2 ECE - q_hi, 2 ECE - q_lo], clipped at 0, removes that shift. The interval
is still read against the noise floor.

``ece_noise_floor(n)``: what a perfectly calibrated model scores on n frames: confidences drawn evenly from
[1/K, 1] (K views), each frame correct with probability equal to its confidence, ECE computed as above;
median and 95th percentile over ``N_SIM`` simulated splits, one fixed seed, cached in-process. ECE values
or differences below it are noise. Frames are simulated independent: correlated frames of a clip would
raise the floor further.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from kdbench.data.views import VIEWS
from kdbench.metrics import ECE_BINS, softmax

N_SIM = 2000
N_RESAMPLES = 1000


def _bins(conf: np.ndarray, n_bins: int) -> np.ndarray:
    return np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


@lru_cache(maxsize=64)
def ece_noise_floor(n_frames: int, n_classes: int = len(VIEWS), n_bins: int = ECE_BINS, seed: int = 0
                    ) -> tuple[float, float]:
    """(median, 95th percentile) ECE of a perfectly calibrated model on ``n_frames`` frames (see the module docstring)."""
    n = int(n_frames)
    if n < 1:
        raise ValueError(f"n_frames = {n_frames}; expected at least 1")
    rng = np.random.default_rng(seed)
    n_sim = int(min(N_SIM, max(200, 4_000_000 // n)))
    values = np.empty(n_sim)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_sim, chunk):
        m = min(chunk, n_sim - start)
        conf = rng.uniform(1.0 / n_classes, 1.0, size=(m, n))
        hit = rng.random((m, n)) < conf
        idx = _bins(conf, n_bins) + n_bins * np.arange(m)[:, None]
        gap = (np.bincount(idx.ravel(), weights=(hit - conf).ravel(), minlength=m * n_bins).reshape(m, n_bins))
        values[start:start + m] = np.abs(gap).sum(axis=1) / n
    return float(np.median(values)), float(np.quantile(values, 0.95))


def ece_interval(logits: list[np.ndarray], labels: np.ndarray, clips: np.ndarray, level: float = 0.95,
                 n_bins: int = ECE_BINS, n_resamples: int = N_RESAMPLES, seed: int = 0) -> tuple[float, float] | None:
    """Basic clip-bootstrap interval of the seed-mean ECE of ``logits`` (one [N, C] array per seed; see the module
    docstring); None with fewer than 2 clips."""
    _, inv = np.unique(np.asarray(clips).astype(str), return_inverse=True)
    inv = inv.reshape(-1)
    k = int(inv.max()) + 1 if len(inv) else 0
    if k < 2:
        return None
    labels = np.asarray(labels)
    weights = np.random.default_rng(seed).multinomial(k, np.full(k, 1.0 / k), size=n_resamples).astype(np.float64)
    frames = weights @ np.bincount(inv, minlength=k).astype(np.float64)  # frames in each resample
    values = np.zeros(n_resamples)
    estimate = 0.0
    for lg in logits:
        p = softmax(np.asarray(lg, dtype=np.float64))
        conf = p.max(axis=1)
        gap = (p.argmax(axis=1) == labels) - conf
        cells = inv * n_bins + _bins(conf, n_bins)
        per_clip_bin = np.bincount(cells, weights=gap, minlength=k * n_bins).reshape(k, n_bins)
        values += np.abs(weights @ per_clip_bin).sum(axis=1) / frames
        estimate += float(np.abs(per_clip_bin.sum(axis=0)).sum() / len(inv))
    values /= len(logits)
    estimate /= len(logits)
    alpha = (1 - level) / 2
    q_low, q_high = np.quantile(values, alpha), np.quantile(values, 1 - alpha)
    return max(0.0, float(2 * estimate - q_high)), max(0.0, float(2 * estimate - q_low))
