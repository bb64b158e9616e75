"""``prunedNN``: torch-pruning at a channel ratio (magnitude L2), briefly fine-tuned with the candidate's distillation
method and teacher logits, then exported and parity-checked like fp32."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdbench.distill.feed import needs_teacher
from kdbench.export.prune import variant_name
from kdbench.export.variants.base import Context, Variant, VariantFailed
from kdbench.export_manifest import VariantRecord

if TYPE_CHECKING:
    from kdbench.export.pipeline import Exporter


def build(ex: Exporter, ctx: Context, rec: VariantRecord) -> None:
    from kdbench.export.prune import PruningUnsupported, finetune, prune_model
    from kdbench.models import model_info

    ratio = next(r for r in ex.options.prune if variant_name(r) == rec.variant)
    try:
        pruned = prune_model(ctx.model, ratio, rec.input_size)
    except PruningUnsupported as err:
        raise VariantFailed(str(err)) from None
    info = model_info(pruned, rec.input_size)
    rec.params, rec.macs = info["params"], info["macs"]
    details = rec.details
    details.update(ratio=ratio, importance="magnitude-L2", tool="torch_pruning.MetaPruner",
                   params_before=ctx.info["params"], macs_before=ctx.info["macs"])
    if ex.options.finetune_epochs > 0:
        method = ctx.cand.method or "scratch"
        details["finetune_method"] = method
        if not ctx.cand.method:
            details["finetune_note"] = "candidate has no metrics.json method; fine-tuned with plain cross-entropy"
        teacher_logits = ex.teacher_logits(ctx.cand) if needs_teacher(method) else None
        details["finetune"] = finetune(
            pruned, method, ctx.cand.hparams if ctx.cand.method else {}, ctx.store,
            ex.options.finetune_epochs, teacher_logits, ctx.cand.config, ex.options.finetune_batch_size)
    path = ctx.dir / f"{rec.variant}.onnx"
    ex.export_checked(ctx, pruned, path, rec)
    ex.finish(ctx, rec, path)


VARIANT = Variant("pruned", "onnxruntime", "fp32", build, lambda options: [variant_name(r) for r in options.prune])
