"""Structured channel pruning with torch-pruning, then a short fine-tune with the candidate's own
distillation method and cached teacher logits."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from kdbench.errors import ConfigError


def parse_ratios(text: str | None) -> list[float]:
    """Parse ``"0.3,0.5"`` into ``[0.3, 0.5]``; every ratio must lie in (0, 1)."""
    if not text:
        return []
    out: list[float] = []
    for item in text.split(","):
        item = item.strip()
        try:
            ratio = float(item)
        except ValueError:
            raise ConfigError(f"--prune {text!r}: {item!r} is not a number; expected ratios like 0.3,0.5") from None
        if not 0.0 < ratio < 1.0:
            raise ConfigError(f"--prune {text!r}: ratio {ratio} is outside (0, 1); expected e.g. 0.3 for 30% of channels")
        out.append(ratio)
    return out


def variant_name(ratio: float) -> str:
    """The variant name of a pruning ratio: 0.3 -> ``pruned30``, 0.125 -> ``pruned12.5``."""
    pct = round(ratio * 100, 4)
    return f"pruned{int(pct)}" if pct == int(pct) else f"pruned{pct:g}"


class PruningUnsupported(Exception):
    """torch-pruning cannot build or apply a pruning plan for this model's graph."""


def _classifier_layers(model: Any) -> list[Any]:
    """The final classifier: the last Linear or Conv2d layer in module order (kept whole when pruning)."""
    from torch import nn

    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not layers:
        raise ValueError("model has no Linear or Conv2d layer to keep as the classifier")
    return [layers[-1]]


def prune_model(model: Any, ratio: float, input_size: int, round_to: int | None = None) -> Any:
    """A copy of ``model`` with ``ratio`` of the channels of each prunable layer removed (L2 magnitude).

    The final classifier is kept whole, so the output stays ``[B, num_classes]``.
    """
    import torch
    import torch_pruning as tp

    pruned = copy.deepcopy(model).cpu().eval()
    example = torch.rand(1, 1, input_size, input_size)
    with torch.no_grad():
        n_classes = pruned(example).shape[-1]
    try:
        pruner = tp.pruner.MetaPruner(
            pruned, example, importance=tp.importance.MagnitudeImportance(p=2), pruning_ratio=ratio,
            ignored_layers=_classifier_layers(pruned), round_to=round_to,
        )
        pruner.step()
    except Exception as err:  # torch-pruning cannot trace some graphs (e.g. ShuffleNet's channel shuffle)
        raise PruningUnsupported(
            f"torch-pruning could not prune this architecture ({type(err).__name__}: {err}); "
            "its channel dependencies (reshapes such as a channel shuffle) are not supported"
        ) from err
    with torch.no_grad():
        out = pruned(example)
    if out.shape[-1] != n_classes:
        raise ValueError(f"pruned model returns {out.shape[-1]} logits; expected {n_classes}")
    return pruned


def count_params(model: Any) -> int:
    """Number of parameters of a torch model."""
    return int(sum(p.numel() for p in model.parameters()))


def finetune(
    model: Any,
    method_name: str,
    hparams: dict[str, Any],
    store: Any,
    epochs: int,
    teacher_logits: np.ndarray | None,
    base_config: dict[str, Any] | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Fine-tune a pruned model in place with ``fit`` and the candidate's method; returns fit's result as a dict."""
    from dataclasses import fields

    from kdbench.distill.registry import create_method
    from kdbench.train import TrainConfig, fit

    known = {f.name for f in fields(TrainConfig)}
    cfg = {k: v for k, v in (base_config or {}).items() if k in known}
    # a short recovery fine-tune on plain frames: an augmented candidate's [K, N, 4] teacher cache is not at hand here
    cfg.update(epochs=epochs, patience=max(epochs, 1), augment_versions=0)
    if batch_size:
        cfg["batch_size"] = batch_size
    cfg.pop("max_batches_per_epoch", None)
    method = create_method(method_name, **hparams)
    if method.needs_teacher and teacher_logits is None:
        raise ConfigError(
            f"method {method_name!r} needs teacher logits to fine-tune the pruned model: pass --teacher"
        )
    result = fit(model, method, store, TrainConfig(**cfg), teacher_logits=teacher_logits, progress=False)
    if result.status != "ok":
        raise RuntimeError(f"fine-tuning stopped: {result.status} ({result.message})")
    model.cpu().eval()
    return {"epochs_run": result.epochs_run, "best_epoch": result.best_epoch, "lr": cfg.get("lr"),
            "batch_size": cfg.get("batch_size"), "val_accuracy_torch": result.metrics.get("val", {}).get("accuracy")}
