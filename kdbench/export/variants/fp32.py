"""``fp32``: the candidate as ONNX (dynamo exporter, TorchScript as fallback), parity-checked against PyTorch on real
frames; every other ONNX variant starts from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdbench.export.variants.base import Context, Variant
from kdbench.export_manifest import VariantRecord

if TYPE_CHECKING:
    from kdbench.export.pipeline import Exporter


def build(ex: Exporter, ctx: Context, rec: VariantRecord) -> None:
    path = ctx.dir / "fp32.onnx"
    rec.params, rec.macs = ctx.info["params"], ctx.info["macs"]
    ex.export_checked(ctx, ctx.model, path, rec)
    ex.finish(ctx, rec, path)


VARIANT = Variant("fp32", "onnxruntime", "fp32", build, lambda options: ["fp32"])
