"""Classification metrics shared by training, export and profiling: accuracy, macro-F1, per-class
and per-source accuracy and the confusion matrix, computed from numpy predictions and labels."""

from __future__ import annotations

from typing import Any

import numpy as np

from kdbench.data.views import VIEWS
from kdbench.errors import DataError


def predictions_from(logits_or_preds: np.ndarray) -> np.ndarray:
    """Class indices from logits ``[N, C]`` (argmax) or from predictions ``[N]`` (as is)."""
    arr = np.asarray(logits_or_preds)
    if arr.ndim == 2:
        if arr.shape[1] == 0:
            raise DataError(f"logits have shape {arr.shape}; expected [N, C] with C >= 1")
        return arr.argmax(axis=1).astype(np.int64)
    if arr.ndim == 1:
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.equal(np.mod(arr, 1), 0)):
                raise DataError(
                    f"predictions have non-integer values (dtype {arr.dtype}); expected class "
                    "indices [N] or logits [N, C]"
                )
        return arr.astype(np.int64)
    raise DataError(f"predictions have shape {arr.shape}; expected logits [N, C] or class indices [N]")


def classification_metrics(
    logits_or_preds: np.ndarray,
    labels: np.ndarray,
    sources: np.ndarray | None = None,
    *,
    class_names: tuple[str, ...] = VIEWS,
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class/per-source accuracy, worst-source accuracy and confusion matrix.

    ``per_class_accuracy`` is the recall of each class (``None`` for a class absent from
    ``labels``). ``macro_f1`` averages F1 over the classes that occur in ``labels`` or in the
    predictions (scikit-learn's default). ``confusion[i][j]`` counts frames of true class ``i``
    predicted as ``j``. ``per_source_accuracy`` and ``worst_source_accuracy`` are empty / ``None``
    when ``sources`` is not given.
    """
    preds = predictions_from(logits_or_preds)
    y = np.asarray(labels)
    if y.ndim != 1:
        raise DataError(f"labels have shape {y.shape}; expected a 1-D array of class indices")
    y = y.astype(np.int64)
    n = int(y.shape[0])
    if preds.shape[0] != n:
        raise DataError(f"{preds.shape[0]} predictions for {n} labels; expected one per label")
    if n == 0:
        raise DataError("no labels to score: got 0 frames, expected at least one")
    k = len(class_names)
    for name, arr in (("labels", y), ("predictions", preds)):
        bad = (arr < 0) | (arr >= k)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{name}[{i}] = {int(arr[i])} is not a class index; expected 0..{k - 1} "
                f"({', '.join(class_names)})"
            )

    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (y, preds), 1)
    correct = np.diag(confusion)
    true_count = confusion.sum(axis=1)
    pred_count = confusion.sum(axis=0)

    per_class: dict[str, float | None] = {}
    f1s: list[float] = []
    for c, name in enumerate(class_names):
        per_class[name] = float(correct[c] / true_count[c]) if true_count[c] else None
        if true_count[c] or pred_count[c]:
            f1s.append(float(2 * correct[c] / (true_count[c] + pred_count[c])))

    per_source: dict[str, float] = {}
    if sources is not None:
        src = np.asarray(sources)
        if src.shape != (n,):
            raise DataError(f"sources have shape {src.shape}; expected ({n},), one per label")
        hit = preds == y
        for s in sorted({str(v) for v in src.tolist()}):
            mask = src.astype(str) == s
            per_source[s] = float(hit[mask].mean())

    return {
        "accuracy": float(correct.sum() / n),
        "macro_f1": float(np.mean(f1s)),
        "per_class_accuracy": per_class,
        "per_source_accuracy": per_source,
        "worst_source_accuracy": min(per_source.values()) if per_source else None,
        "confusion": confusion.tolist(),
        "n": n,
    }
