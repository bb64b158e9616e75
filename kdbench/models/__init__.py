"""Teacher and student models for grey echo frames: ``create_model``, ``model_info``, checkpoints."""

from __future__ import annotations

from kdbench.models.info import model_info
from kdbench.models.registry import REGISTRY, create_model, list_models

__all__ = ["REGISTRY", "create_model", "list_models", "model_info"]
