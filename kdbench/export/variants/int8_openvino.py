"""``int8_openvino``: NNCF post-training quantisation of the fp32 ONNX file, saved as OpenVINO IR (.xml + .bin)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdbench.export.variants.base import Context, Variant
from kdbench.export_manifest import VariantRecord

if TYPE_CHECKING:
    from kdbench.export.pipeline import Exporter


def build(ex: Exporter, ctx: Context, rec: VariantRecord) -> None:
    from kdbench.convert.openvino_int8 import quantize_openvino

    src = ex.need_fp32(ctx)
    rec.params, rec.macs = ctx.info["params"], ctx.info["macs"]
    frames = ex.calibration(ctx)
    import nncf
    import openvino

    rec.details.update(tool="nncf.quantize", nncf_version=nncf.__version__,
                          openvino_version=openvino.__version__, device="CPU", calibration_frames=int(len(frames)))
    path = quantize_openvino(src, ctx.dir / "int8_openvino.xml", frames)
    ex.finish(ctx, rec, path)


VARIANT = Variant("int8_openvino", "openvino", "int8", build,
                  lambda options: ["int8_openvino"] if "openvino" in options.int8 else [])
