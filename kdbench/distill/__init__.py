"""Distillation methods on logits (one module each), their registry, and the teacher-logit cache."""

from __future__ import annotations

from kdbench.distill.base import DistillMethod
from kdbench.distill.registry import METHODS, create_method, method_defaults

__all__ = ["METHODS", "DistillMethod", "create_method", "method_defaults"]
