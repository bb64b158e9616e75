"""kdbench.metrics pinned to values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from kdbench.errors import DataError
from kdbench.metrics import classification_metrics, clip_ids, expected_calibration_error, seed_clip_interval, \
    shortcut_gap

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
    from_logits = classification_metrics(_logits(PREDS), LABELS, SOURCES)
    assert "ece" in from_logits  # logits carry confidences; predictions do not
    del from_logits["ece"]
    assert from_logits == classification_metrics(PREDS, LABELS, SOURCES)


def test_ece_by_hand() -> None:
    # softmax max of [ln k, 0, 0, 0] is k / (k + 3): 9 -> 0.75 (bin 12 of 15), 3 -> 0.5 (bin 8), 27 -> 0.9 (bin 14)
    ln = np.log
    logits = np.array([[ln(9), 0, 0, 0], [ln(9), 0, 0, 0], [ln(3), 0, 0, 0], [0, ln(27), 0, 0]])
    labels = np.array([0, 1, 0, 1])  # hit, miss, hit, hit
    # bin 0.75: acc 1/2, conf 0.75, 2 of 4 frames; bin 0.5: acc 1, conf 0.5; bin 0.9: acc 1, conf 0.9
    expected = 0.5 * 0.25 + 0.25 * 0.5 + 0.25 * 0.1
    assert expected_calibration_error(logits, labels) == pytest.approx(0.275)
    assert classification_metrics(logits, labels)["ece"] == pytest.approx(expected)
    # perfectly confident and right: 0
    assert expected_calibration_error(np.array([[50.0, 0, 0, 0]]), np.array([0])) == pytest.approx(0, abs=1e-12)


CLIP_LOGITS = np.array([[5.0, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0],  # clip a/1, view 0: frames 0, 1, 1
                        [0, 2, 0, 0], [3, 0, 0, 0],  # clip b/2, view 1: frames 1, 0
                        [0, 0, 1, 0]])  # clip c/3, view 2: frame 2
CLIP_LABELS = np.array([0, 0, 0, 1, 1, 2])
CLIPS = np.array(["a/1", "a/1", "a/1", "b/2", "b/2", "c/3"])


def test_clip_accuracy_from_mean_logits_by_hand() -> None:
    m = classification_metrics(CLIP_LOGITS, CLIP_LABELS, clips=CLIPS)
    assert m["accuracy"] == pytest.approx(3 / 6)  # frames right: 1st, 4th, 6th
    # means: a/1 [5/3, 2/3, 0, 0] -> 0 right; b/2 [1.5, 1, 0, 0] -> 0 wrong; c/3 -> 2 right
    assert m["clip_accuracy"] == pytest.approx(2 / 3) and m["n_clips"] == 3
    # clip F1: A2C 2*1/(1+2) = 2/3, A4C 0, PLAX 1
    assert m["clip_macro_f1"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    for key, point in (("accuracy_ci", 0.5), ("clip_accuracy_ci", 2 / 3)):
        low, high = m[key]
        assert 0 <= low <= point <= high <= 1
    assert classification_metrics(CLIP_LOGITS, CLIP_LABELS, clips=CLIPS) == m  # seeded: deterministic
    # predictions only: one vote per frame, the majority per clip (ties to the lower class)
    votes = classification_metrics(CLIP_LOGITS.argmax(1), CLIP_LABELS, clips=CLIPS)
    assert votes["clip_accuracy"] == pytest.approx(1 / 3) and "ece" not in votes  # a/1 votes 1, b/2 ties -> 0


def test_clip_bootstrap_resamples_clips_not_frames() -> None:
    # 10 clips of 50 frames, 5 all right and 5 all wrong: 500 frames but only 10 independent units
    hits = np.repeat(np.arange(10) < 5, 50)
    clips = np.repeat(np.arange(10), 50)
    low, high = seed_clip_interval(hits[None], clips)
    assert high - low > 0.4  # a frame bootstrap would give ~0.09 (2 x 1.96 x sqrt(0.25 / 500))
    # every clip right: no zero width, Clopper-Pearson over 10 clips: (0.025)^(1/10)
    assert seed_clip_interval(np.ones((1, 500)), clips) == pytest.approx((0.025 ** 0.1, 1.0))


def test_seed_clip_interval_adds_the_seed_spread() -> None:
    clips = np.repeat(np.arange(8), 4)
    base = np.tile([True, True, True, False], 8)
    same = seed_clip_interval(np.stack([base] * 3), clips)
    spread = seed_clip_interval(np.stack([base, np.ones(32, bool), np.roll(base, 1) & np.roll(base, 2)]), clips)
    assert spread[1] - spread[0] > same[1] - same[0]


def test_a_clip_with_two_views_is_an_error() -> None:
    with pytest.raises(DataError, match="clip 'a/1' has frames of different views"):
        classification_metrics(CLIP_LOGITS, np.array([0, 1, 0, 1, 1, 2]), clips=CLIPS)
    with pytest.raises(DataError, match="clips have shape"):
        classification_metrics(CLIP_LOGITS, CLIP_LABELS, clips=CLIPS[:2])


def test_per_source_view_recall_and_shortcut_gap_by_hand() -> None:
    m = classification_metrics(PREDS, LABELS, SOURCES)
    # a: frames 0, 1 (A2C right), 7 (PSAX wrong); b: 2 (A2C wrong), 3, 4 (A4C right); c: 5 (PLAX wrong), 6 (PSAX right)
    assert m["per_source_view_recall"] == {"a": {"A2C": 1.0, "PSAX": 0.0}, "b": {"A2C": 0.0, "A4C": 1.0},
                                           "c": {"PLAX": 0.0, "PSAX": 1.0}}
    # A2C (a vs b) and PSAX (c vs a) both gap 1.0: the first view in label order wins
    assert m["shortcut_gap"] == {"view": "A2C", "sources": ["a", "b"], "gap": 1.0}
    recall = {"echonet_dynamic": {"A4C": 0.9}, "echonet_lvh": {"PLAX": 0.95},
              "tmed2": {"A4C": 0.6, "PLAX": 0.8, "A2C": 0.7}}
    assert shortcut_gap(recall) == {"view": "A4C", "sources": ["echonet_dynamic", "tmed2"], "gap": pytest.approx(0.3)}
    assert shortcut_gap({"echonet_dynamic": {"A4C": 1.0}, "echonet_lvh": {"PLAX": 1.0}}) is None
    assert "shortcut_gap" not in classification_metrics(PREDS, LABELS)


def test_clip_ids_from_a_store(tiny_store) -> None:
    rows = np.flatnonzero(tiny_store.splits == "test")
    ids = clip_ids(tiny_store, rows)
    assert ids.shape == rows.shape
    assert ids[0] == f"{tiny_store.sources[rows[0]]}/{tiny_store.videos[rows[0]]}"
    pairs = {(str(s), str(v)) for s, v in zip(tiny_store.sources[rows], tiny_store.videos[rows])}
    assert len(set(ids.tolist())) == len(pairs)
    m = classification_metrics(tiny_store.labels[rows], tiny_store.labels[rows], tiny_store.sources[rows],
                               clips=ids)
    assert m["clip_accuracy"] == 1.0 and m["n_clips"] == len(pairs)


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
