"""``fp16``: the fp32 ONNX file converted to float16 weights and compute (inputs and outputs stay float32), for GPU
targets; scored on ONNX Runtime's CPU provider."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdbench.export.variants.base import Context, Variant, VariantFailed
from kdbench.export_manifest import VariantRecord

if TYPE_CHECKING:
    from kdbench.export.pipeline import Exporter


def build(ex: Exporter, ctx: Context, rec: VariantRecord) -> None:
    from kdbench.convert.fp16 import convert_fp16

    src = ex.need_fp32(ctx)
    rec.params, rec.macs = ctx.info["params"], ctx.info["macs"]
    try:
        path = convert_fp16(src, ctx.dir / "fp16.onnx")
    except ImportError as err:
        raise VariantFailed(f"fp16 skipped: {err}") from None
    rec.details.update(converter="onnxruntime.transformers.float16", keep_io_types=True,
                          evaluated_on="onnxruntime CPUExecutionProvider")
    ex.finish(ctx, rec, path)


VARIANT = Variant("fp16", "onnxruntime", "fp16", build, lambda options: ["fp16"] if options.fp16 else [])
