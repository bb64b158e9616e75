"""``int8_ort``: ONNX Runtime static QDQ quantisation of the fp32 ONNX file, per-channel and per-tensor tried on the
validation frames and the better kept."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kdbench.convert.runtimes import load_runner
from kdbench.export.evaluate import evaluate_file, evaluate_runner
from kdbench.export.variants.base import Context, Variant, VariantFailed
from kdbench.export_manifest import VariantRecord

if TYPE_CHECKING:
    from kdbench.export.pipeline import Exporter

Tried = tuple[dict[str, dict[str, Any]], dict[str, tuple[Path, dict[str, Any], dict[str, Any]]]]


def build(ex: Exporter, ctx: Context, rec: VariantRecord) -> None:
    """Quantise both ways, keep the better on validation, score it on test."""
    from kdbench.convert.ort_int8 import preprocess

    src = ex.need_fp32(ctx)
    rec.params, rec.macs = ctx.info["params"], ctx.info["macs"]
    frames = ex.calibration(ctx)
    pre = ctx.dir / "fp32.preprocessed.onnx"
    details = rec.details
    details.update(format="QDQ", activation_type="QInt8", weight_type="QInt8", calibration="MinMax",
                   calibration_frames=int(len(frames)))
    try:
        quant_input = preprocess(src, pre)
        details["preprocessed"] = True
    except Exception as err:  # quantise the plain model rather than nothing; say so
        quant_input = src
        details.update(preprocessed=False, preprocess_error=f"{type(err).__name__}: {err}"[:500])
    tried, results = _quantize_both(ex, ctx, quant_input, frames)
    pre.unlink(missing_ok=True)
    details["tried"] = tried
    if not results:
        raise VariantFailed("ORT static quantisation failed both per-channel ("
                            f"{tried['per_channel']['error']}) and per-tensor ({tried['per_tensor']['error']})")
    chosen = max(results, key=lambda k: (results[k][1]["val"]["accuracy"], k == "per_channel"))
    details["chosen"] = chosen
    final = ctx.dir / "int8_ort.onnx"
    shutil.move(str(results[chosen][0]), final)
    for label, (path, _, _) in results.items():
        if label != chosen:
            path.unlink(missing_ok=True)
    test_logits: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    test = evaluate_file(final, "onnxruntime", ctx.store, ("test",), ex.options.eval_batch_size, test_logits)
    ex.finish(ctx, rec, final, {**results[chosen][1], **test}, {**results[chosen][2], **test_logits})


def _quantize_both(ex: Exporter, ctx: Context, quant_input: Path, frames: np.ndarray) -> Tried:
    """Per-channel and per-tensor QDQ files with their validation metrics and logits (a failure: its error)."""
    from kdbench.convert.ort_int8 import quantize_ort

    tried: dict[str, dict[str, Any]] = {}
    results: dict[str, tuple[Path, dict[str, Any], dict[str, Any]]] = {}
    for label, per_channel in (("per_channel", True), ("per_tensor", False)):
        path = ctx.dir / f"int8_ort.{label}.onnx"
        try:
            quantize_ort(quant_input, path, frames, per_channel=per_channel)
            kept: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            val = evaluate_runner(load_runner(path, "onnxruntime"), ctx.store, ("val",), ex.options.eval_batch_size,
                                  kept)
            tried[label] = {"val_accuracy": val["val"]["accuracy"], "error": None}
            results[label] = (path, val, kept)
        except Exception as err:
            tried[label] = {"val_accuracy": None, "error": f"{type(err).__name__}: {err}"[:500]}
            path.unlink(missing_ok=True)
    return tried, results


VARIANT = Variant("int8_ort", "onnxruntime", "int8", build, lambda options: ["int8_ort"] if "ort" in options.int8 else [])
