"""StoreLoader: training batches straight from a FrameStore's memmap, no per-item Python work.

Each batch is one numpy fancy-indexing read of sorted row indices (sequential-ish reads from the
memmap), one vectorised uint8 -> float32 / 255 conversion handed to torch without a copy, and no
worker processes. The shuffle is a
permutation drawn from ``numpy.random.default_rng((seed, epoch))``, so it is the same for a given
seed and epoch on every machine and changes with ``set_epoch``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from kdbench.data.store import FrameStore
from kdbench.errors import ConfigError

_255 = np.float32(255.0)


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
    ) -> None:
        """Batches of ``split`` (None: every row of the store, e.g. to cache teacher logits)."""
        if batch_size < 1:
            raise ConfigError(f"batch_size {batch_size}; expected at least 1")
        self.store = store
        self.split = split
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.epoch = 0
        self.rows = store.indices(split) if split is not None else np.arange(len(store), dtype=np.int64)

    def set_epoch(self, epoch: int) -> None:
        """Reseed the shuffle for this epoch."""
        self.epoch = int(epoch)

    def order(self) -> np.ndarray:
        """The row order of the current epoch (the split's rows, permuted if shuffling)."""
        if not self.shuffle:
            return self.rows
        rng = np.random.default_rng((self.seed, self.epoch))
        return self.rows[rng.permutation(len(self.rows))]

    def __len__(self) -> int:
        """Number of batches per epoch."""
        n = len(self.rows)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield the batches of the current epoch."""
        order = self.order()
        frames, labels = self.store.frames, self.store.labels
        for b in range(len(self)):
            idx = np.sort(order[b * self.batch_size : (b + 1) * self.batch_size])
            # uint8 -> float32 / 255 in numpy, then shared with torch without a copy. The same
            # result as torch's .float().div_(255) bit for bit, but torch's intra-op thread pool
            # made this ~20x slower on a busy 2-core machine (thread hand-off > the work itself).
            x = torch.from_numpy(np.divide(frames[idx][:, None], _255, dtype=np.float32))
            yield x, torch.from_numpy(labels[idx]), torch.from_numpy(idx)
