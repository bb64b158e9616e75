"""A frame store seen at another input size: frames resized on the fly as batches are read.

The store is prepared once at its (largest) size; a trial at a smaller input size reads the same
rows through ``resized_store(store, size)``. Rows, labels, splits, sources and the store's hash are
the store's own, so the teacher logits cached for the full-size frames still index every row (the
teacher sees the full frame, the student the smaller one). Resizing is bilinear with antialiasing
(``torch.nn.functional.interpolate(..., antialias=True)``), on uint8 values kept as float32 in
[0, 255], so ``StoreLoader``'s division by 255 gives the same [0, 1] range.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kdbench.errors import ConfigError


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """Frames [N, S, S] (any numeric dtype) resized to float32 [N, size, size], values kept in the input's range."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.asarray(frames, dtype=np.float32))[:, None]
    if x.shape[-1] == size and x.shape[-2] == size:
        return x[:, 0].numpy()
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[:, 0].numpy()


class ResizedFrames:
    """Array-like view of a store's frames: indexing returns the rows resized to ``size`` (float32)."""

    def __init__(self, frames: Any, size: int) -> None:
        self.base, self.size = frames, int(size)
        self.shape = (len(frames), self.size, self.size)
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx: Any) -> np.ndarray:
        rows = self.base[idx]
        if np.ndim(rows) == 2:  # one frame
            return resize_frames(rows[None], self.size)[0]
        return resize_frames(rows, self.size)


class ResizedStore:
    """A FrameStore read at ``size`` px: every attribute is the store's, but ``frames`` and ``size``."""

    def __init__(self, store: Any, size: int) -> None:
        self._store = store
        self.size = int(size)
        self.frames = ResizedFrames(store.frames, self.size)
        self.source_size = store.size

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def __len__(self) -> int:
        return len(self._store)

    def __repr__(self) -> str:
        return f"ResizedStore({self._store!r}, size={self.size})"


def resized_store(store: Any, size: int | None) -> Any:
    """The store itself at its own size (or None), else a ResizedStore (ConfigError above the store's size)."""
    if size is None or int(size) == store.size:
        return store
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ConfigError(f"input_size = {size!r}; expected an integer >= 8")
    if size > store.size:
        raise ConfigError(f"input_size = {size} is larger than the store's {store.size} px frames ({store.path}); "
                          f"prepare the store at the largest input size searched")
    return ResizedStore(store, size)
