"""Where a run's teacher logits come from, decided in one place: ``TeacherFeed``.

A run that distils reads its teacher one of two ways:

- **cached** (the default): the teacher's logits of every store frame, ``[N, 4]``
  (``kdbench.distill.cache``), and, when the run augments, the logits of the K fixed augmented
  versions, ``[K, N, 4]`` (``kdbench.distill.augmented_cache``), built once per store, teacher and
  augmentation and shared by every seed and trial of the process (a run that adds unlabelled frames,
  ``TrainConfig.unlabelled`` > 0, reads an augmented entry covering them too: ``augmented_split``);
- **live** (``cache=False``, for comparison): the teacher runs on every training batch, on the very
  frames the student sees (augmented or not), and evaluation has no teacher figures.

A method that needs no teacher (``needs_teacher``: scratch) trains without it; its evaluation still reads the
cached plain logits, so its teacher figures pair with a KD run's.
The CLI, the search, confirm and export all open a feed and hand it to ``kdbench.train.train_student``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kdbench.data.store import FrameStore

Progress = Callable[[int, int], None]


def augmented_split(config: Any) -> str:
    """The rows a run's augmented teacher cache must cover: the training split, plus the unlabelled pool when
    ``config.unlabelled`` > 0 (a method with a teacher then trains on them)."""
    return "train+unlabelled" if config.unlabelled else "train"


def needs_teacher(method: str) -> bool:
    """Whether the registered method ``method`` distils from a teacher (the one rule; scratch does not)."""
    from kdbench.distill.registry import METHODS

    return METHODS[method].needs_teacher


@dataclass
class TeacherFeed:
    """A teacher as the runs of one process read it: cached logits, or the live model (exactly one of them)."""

    path: Path
    logits: np.ndarray | None = None  # [N, 4]: the cache of the plain frames (None: live)
    model: Callable[..., Any] | None = None  # the live teacher (None: cached)
    augmented: dict[tuple, np.ndarray] = field(default_factory=dict)  # [K, N, 4] per augmentation, built once

    @classmethod
    def open(cls, store: FrameStore, path: str | Path, cache: bool = True, device: str = "cpu",
             progress: Progress | None = None) -> TeacherFeed:
        """The teacher at ``path`` for runs on ``store``: its cached logits (built on first use), or the live model."""
        if not cache:
            from kdbench.teacher import live_teacher

            return cls(Path(path), model=live_teacher(path, device))
        from kdbench.distill.cache import load_or_build_teacher_logits

        return cls(Path(path), logits=load_or_build_teacher_logits(store, path, progress=progress))

    def augmented_logits(self, store: FrameStore, config: Any, progress: Progress | None = None) -> np.ndarray | None:
        """The [K, N, 4] logits of ``config``'s augmentation over ``augmented_split(config)``'s rows (None:
        augmentation off, or a live teacher, which sees the augmented frames itself); built or loaded once per
        augmentation."""
        if not config.augment_versions or self.logits is None:
            return None
        from kdbench.distill.augmented_cache import load_or_build_augmented_logits

        split = augmented_split(config)
        key = (store.store_hash, config.augment_versions, config.augment_seed,
               tuple(sorted(config.augment.to_dict().items())), split)
        if key not in self.augmented:
            self.augmented[key] = load_or_build_augmented_logits(
                store, self.path, config.augment_versions, seed=config.augment_seed, config=config.augment,
                split=split, device=str(config.resolved_device()), progress=progress)
        return self.augmented[key]

    def for_run(self, method: str, store: FrameStore, config: Any, progress: Progress | None = None) -> dict[str, Any]:
        """``train.fit``'s teacher arguments for one run of ``method`` with ``config``. A method without a teacher
        (scratch) still gets the cached plain logits: its evaluation's teacher figures (agreement, relative
        accuracy) then pair with a KD run's."""
        if not needs_teacher(method):
            return {"teacher_logits": self.logits, "teacher_model": None, "augmented_logits": None}
        return {"teacher_logits": self.logits, "teacher_model": self.model,
                "augmented_logits": self.augmented_logits(store, config, progress)}
