"""What one search trial trains: a student, a method with its settings, and a ``TrainConfig``.

``TrialConfig`` is the record behind a trial's user attributes, its ``trial.json`` and every seed
run: ``to_dict()`` gives the plain form (``train`` holds the space's training keys only, with
``max_batches_per_epoch = 0`` for "the whole split"), ``from_dict()`` reads it back, and
``seed_config(seed, device)`` is the ``TrainConfig`` of one seed run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from kdbench.search.space import AUGMENT_KEYS, TRAIN_KEYS, grid_id
from kdbench.train import TrainConfig


@dataclass
class TrialConfig:
    """One configuration of a study: student, method, method settings and training settings."""

    student: str
    method: str
    hparams: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    config_id: str = ""

    def __post_init__(self) -> None:
        if not self.config_id:
            self.config_id = grid_id({"method": self.method, "hparams": self.hparams, "train": self.train_dict()})

    def train_dict(self) -> dict[str, Any]:
        """The training settings a search space controls, as plain values (0 batches = whole split)."""
        out = {key: getattr(self.train, key) for key in TRAIN_KEYS}
        out["max_batches_per_epoch"] = out["max_batches_per_epoch"] or 0
        if out.get("input_size") is None:  # the store's size: not part of the configuration's id
            out.pop("input_size", None)
        if not out["unlabelled"]:  # no unlabelled frames: not part of the id (older ids unchanged)
            out.pop("unlabelled")
        if out["lr_schedule"] == "cosine_epochs":  # the recipe of older studies: not part of the id
            out.pop("lr_schedule")
            out.pop("warmup")
        if not out["ema"]:
            out.pop("ema")
        if not out["augment_versions"]:  # no augmentation: its settings are not part of the id (older ids unchanged)
            for key in AUGMENT_KEYS:
                out.pop(key)
        else:
            out["augment"] = self.train.augment.to_dict()
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form: student, method, hparams, train (the space's keys) and config_id."""
        return {"student": self.student, "method": self.method, "hparams": dict(self.hparams),
                "train": self.train_dict(), "config_id": self.config_id}

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> TrialConfig:
        """Read ``to_dict()``'s form (or a space's suggestion plus ``student``) back."""
        train = {key: value for key, value in (body.get("train") or {}).items() if key in TRAIN_KEYS}
        train["max_batches_per_epoch"] = train.get("max_batches_per_epoch") or None
        return cls(student=body["student"], method=body["method"], hparams=dict(body.get("hparams") or {}),
                   train=TrainConfig(**train), config_id=body.get("config_id", ""))

    def seed_config(self, seed: int, device: str) -> TrainConfig:
        """The TrainConfig of one seed run of this configuration."""
        return dataclasses.replace(self.train, seed=seed, device=device)
