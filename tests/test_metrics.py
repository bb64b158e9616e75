"""kdbench.metrics pinned to values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from kdbench.errors import DataError
from kdbench.metrics import classification_metrics

LABELS = np.array([0, 0, 0, 1, 1, 2, 3, 3])
PREDS = np.array([0, 0, 1, 1, 1, 3, 3, 0])
SOURCES = np.array(["a", "a", "b", "b", "b", "c", "c", "a"])


def _logits(preds: np.ndarray) -> np.ndarray:
    out = np.full((len(preds), 4), -1.0, dtype=np.float32)
    out[np.arange(len(preds)), preds] = 2.0
    return out


def test_hand_computed_values() -> None:
    m = classification_metrics(PREDS, LABELS, SOURCES)
    assert m["n"] == 8
    assert m["accuracy"] == pytest.approx(5 / 8)
    # rows = true class, columns = predicted class
    assert m["confusion"] == [[2, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 1], [1, 0, 0, 1]]
    assert m["per_class_accuracy"] == pytest.approx({"A2C": 2 / 3, "A4C": 1.0, "PLAX": 0.0, "PSAX": 0.5})
    # F1 per class: 2*tp/(n_true+n_pred) = 4/6, 4/5, 0, 2/4
    assert m["macro_f1"] == pytest.approx((4 / 6 + 4 / 5 + 0 + 2 / 4) / 4)
    assert m["per_source_accuracy"] == pytest.approx({"a": 2 / 3, "b": 2 / 3, "c": 0.5})
    assert m["worst_source_accuracy"] == pytest.approx(0.5)


def test_logits_give_the_same_metrics_as_predictions() -> None:
    assert classification_metrics(_logits(PREDS), LABELS, SOURCES) == classification_metrics(
        PREDS, LABELS, SOURCES
    )


def test_absent_class_is_none_and_not_in_macro_f1() -> None:
    # PLAX (2) neither true nor predicted: F1 averages over A2C, A4C, PSAX only
    labels = np.array([0, 1, 1, 3])
    preds = np.array([0, 1, 0, 3])
    m = classification_metrics(preds, labels)
    assert m["per_class_accuracy"]["PLAX"] is None
    assert m["per_class_accuracy"]["A4C"] == pytest.approx(0.5)
    # A2C: tp1, true1, pred2 -> 2/3; A4C: tp1, true2, pred1 -> 2/3; PSAX: 1
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert m["per_source_accuracy"] == {}
    assert m["worst_source_accuracy"] is None


def test_class_only_predicted_counts_in_macro_f1() -> None:
    labels = np.array([0, 0])
    preds = np.array([0, 2])
    m = classification_metrics(preds, labels)
    # A2C F1 = 2*1/(2+1) = 2/3, PLAX (predicted, never true) F1 = 0
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(DataError, match="predictions for 3 labels"):
        classification_metrics(np.array([0, 1]), np.array([0, 1, 2]))
    with pytest.raises(DataError, match=r"labels\[1\] = 7"):
        classification_metrics(np.array([0, 1]), np.array([0, 7]))
    with pytest.raises(DataError, match="0 frames"):
        classification_metrics(np.zeros((0, 4)), np.zeros(0, dtype=np.int64))
    with pytest.raises(DataError, match="sources have shape"):
        classification_metrics(PREDS, LABELS, SOURCES[:3])


def test_agrees_with_scikit_learn_on_random_predictions() -> None:
    metrics_mod = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 200)
    preds = np.where(rng.random(200) < 0.6, labels, rng.integers(0, 4, 200))
    m = classification_metrics(preds, labels)
    assert m["accuracy"] == pytest.approx(metrics_mod.accuracy_score(labels, preds))
    assert m["macro_f1"] == pytest.approx(metrics_mod.f1_score(labels, preds, average="macro"))
    assert m["confusion"] == metrics_mod.confusion_matrix(labels, preds, labels=[0, 1, 2, 3]).tolist()
