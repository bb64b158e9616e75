"""StoreLoader: training batches straight from a FrameStore's memmap, no per-item Python work.

Each batch is one numpy fancy-indexing read of sorted row indices (sequential-ish reads from the
memmap), one vectorised uint8 -> float32 / 255 conversion handed to torch without a copy, and no
worker processes. The shuffle is a
permutation drawn from ``numpy.random.default_rng((seed, epoch))``, so it is the same for a given
seed and epoch on every machine and changes with ``set_epoch``.

``unlabelled`` (a share in [0, 1]) adds the store's unlabelled rows (split ``unlabelled``, label -1)
to every epoch, shuffled in with the split's rows: all of them at 1, else ``unlabelled_count`` of
them drawn per epoch from ``default_rng((seed, epoch, UNLABELLED_SALT))`` (the same on every machine).
At 0 the batches are exactly those without the option.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from kdbench.data.resized import ResizedFrames
from kdbench.data.store import FrameStore
from kdbench.data.views import UNLABELLED
from kdbench.errors import ConfigError

_255 = np.float32(255.0)
UNLABELLED_SALT = 0x0FF1AB  # separates the epoch's draw of unlabelled rows from its shuffle


def check_share(value: object, key: str = "unlabelled") -> float:
    """A share of the unlabelled pool per epoch as a float in [0, 1]; ConfigError naming ``key`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not 0 <= value <= 1:
        raise ConfigError(f"{key}={value!r}; expected a share in [0, 1] of the store's unlabelled frames added to "
                          "each training epoch (0 = off, 1 = all of them)")
    return float(value)


def unlabelled_pool(store: FrameStore, share: float) -> np.ndarray:
    """The store's unlabelled rows; a ConfigError naming the store when a share > 0 asks for some and it has none."""
    pool = store.indices(UNLABELLED)
    if share > 0 and not len(pool):
        raise ConfigError(f"unlabelled={share:g}, but frame store {store.path} has no unlabelled frames; add a folder "
                          "with `kdbench data prepare --unlabelled DIR`, or set unlabelled to 0")
    return pool


def unlabelled_count(share: float, pool: int) -> int:
    """How many of ``pool`` unlabelled rows an epoch adds at ``share``: round(share x pool), at least 1 when share > 0."""
    return 0 if share <= 0 or pool == 0 else max(1, min(pool, round(share * pool)))


class StoreLoader:
    """Iterate (x float32 [B,1,S,S] in [0,1], y int64 [B], idx int64 [B]) over one split."""

    def __init__(
        self,
        store: FrameStore,
        split: str | None,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
        unlabelled: float = 0.0,
    ) -> None:
        """Batches of ``split`` (None: every row of the store, e.g. to cache teacher logits), plus a share of the
        unlabelled rows every epoch (``unlabelled``, see the module's docstring)."""
        if batch_size < 1:
            raise ConfigError(f"batch_size {batch_size}; expected at least 1")
        share = check_share(unlabelled)
        if share and split in (None, UNLABELLED):
            raise ConfigError(f"unlabelled={share:g} adds unlabelled rows to a labelled split; split {split!r} is not one")
        self.store = store
        self.split = split
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.epoch = 0
        self.rows = store.indices(split) if split is not None else np.arange(len(store), dtype=np.int64)
        self.pool = unlabelled_pool(store, share) if share else np.zeros(0, np.int64)
        self.n_unlabelled = unlabelled_count(share, len(self.pool))

    def set_epoch(self, epoch: int) -> None:
        """Reseed the shuffle for this epoch."""
        self.epoch = int(epoch)

    def epoch_rows(self) -> np.ndarray:
        """The current epoch's rows: the split's, then its draw of unlabelled rows (sorted), if any."""
        if not self.n_unlabelled:
            return self.rows
        drawn = self.pool
        if self.n_unlabelled < len(drawn):
            rng = np.random.default_rng((self.seed, self.epoch, UNLABELLED_SALT))
            drawn = np.sort(rng.choice(drawn, self.n_unlabelled, replace=False))
        return np.concatenate([self.rows, drawn])

    def order(self) -> np.ndarray:
        """The row order of the current epoch (its rows, permuted if shuffling)."""
        rows = self.epoch_rows()
        if not self.shuffle:
            return rows
        rng = np.random.default_rng((self.seed, self.epoch))
        return rows[rng.permutation(len(rows))]

    def __len__(self) -> int:
        """Number of batches per epoch."""
        n = len(self.rows) + self.n_unlabelled
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batch_rows(self) -> Iterator[np.ndarray]:
        """The sorted store rows of each batch of the current epoch."""
        order = self.order()
        for b in range(len(self)):
            yield np.sort(order[b * self.batch_size : (b + 1) * self.batch_size])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield the batches of the current epoch."""
        frames, labels = self.store.frames, self.store.labels
        for idx in self.batch_rows():
            # uint8 -> float32 / 255 in numpy, then shared with torch without a copy. The same
            # result as torch's .float().div_(255) bit for bit, but torch's intra-op thread pool
            # made this ~20x slower on a busy 2-core machine (thread hand-off > the work itself).
            x = torch.from_numpy(np.divide(frames[idx][:, None], _255, dtype=np.float32))
            yield x, torch.from_numpy(labels[idx]), torch.from_numpy(idx)

    def raw_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The batches of ``__iter__`` before the resize (through a resized store) and the division by 255: uint8
        frames [B, S0, S0] as stored, so they travel to a GPU at a quarter of the bytes and are resized to
        ``store.size`` and divided there (``kdbench.data.prefetch.to_device``)."""
        frames, labels = self.store.frames, self.store.labels
        frames = frames.base if isinstance(frames, ResizedFrames) else frames  # the store's own uint8 frames
        for idx in self.batch_rows():
            x = torch.from_numpy(np.ascontiguousarray(frames[idx]))
            yield x, torch.from_numpy(labels[idx]), torch.from_numpy(idx)
