"""The export variants, in export order. Adding a variant: one module in this package (its ``build`` and ``VARIANT``),
one line here."""

from __future__ import annotations

from typing import Any

from kdbench.errors import ConfigError
from kdbench.export.variants import fp16, fp32, int8_openvino, int8_ort, pruned
from kdbench.export.variants.base import Context, Variant, VariantFailed

VARIANTS: tuple[Variant, ...] = (
    fp32.VARIANT,
    int8_ort.VARIANT,
    int8_openvino.VARIANT,
    fp16.VARIANT,
    pruned.VARIANT,
)

__all__ = ["VARIANTS", "Context", "Variant", "VariantFailed", "planned", "variant_of"]


def planned(options: Any) -> list[str]:
    """The variant names an ExportOptions plans, in export order."""
    return [name for v in VARIANTS for name in v.names(options)]


def variant_of(name: str, options: Any) -> Variant:
    """The registry entry that plans variant ``name`` under ``options``."""
    for v in VARIANTS:
        if name in v.names(options):
            return v
    raise ConfigError(f"variant {name!r} is not planned; planned: {', '.join(planned(options))}")
