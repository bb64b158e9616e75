"""The training recipe kdbench recommends, chosen by measurement (docs/training.md has the numbers), in a module light enough for
the CLI's option defaults: the learning-rate schedule, its warm-up and the weights' moving average.

``TrainConfig``'s own defaults stay the recipe of older records (``cosine_epochs``, no average), so a record
written before these keys existed reads back as what it ran; commands that start new student runs (``kdbench
distill``, the shipped search spaces but paper.toml, the demo) use ``RECOMMENDED``. ``teacher train`` keeps ``LEGACY``:
the VGG16 teacher's 10-epoch recipe is the one measured for it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

LR_SCHEDULES = ("cosine_epochs", "warmup_cosine")


@dataclass(frozen=True)
class Recipe:
    """The recipe's three settings, as ``TrainConfig`` keys."""

    lr_schedule: str
    warmup: float
    ema: float

    def to_dict(self) -> dict[str, object]:
        """The keys as ``TrainConfig`` and a search space's ``[train]`` table take them."""
        return asdict(self)


RECOMMENDED = Recipe(lr_schedule="warmup_cosine", warmup=0.1, ema=0.99)
LEGACY = Recipe(lr_schedule="cosine_epochs", warmup=0.1, ema=0.0)
