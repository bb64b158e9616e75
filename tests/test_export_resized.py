"""kdbench export of a student trained below the store's size (a hardware-aware search's input_size):
exported at the trained size, scored and calibrated on store frames resized exactly as in training."""

from __future__ import annotations

import numpy as np
import pytest

SIZE = 32  # the tiny store holds 64 px frames


@pytest.fixture(scope="module")
def small_run(tiny_store, tmp_path_factory):
    """A mobilenet_v3_small trained (1 epoch, 2 batches) at 32 px on the 64 px store: best.pt + metrics.json."""
    from kdbench.train import TrainConfig, train_student

    out = tmp_path_factory.mktemp("small_run")
    train_student(tiny_store, "mobilenet_v3_small", "scratch", {},
                  TrainConfig(epochs=1, batch_size=16, max_batches_per_epoch=2, input_size=SIZE, seed=0, device="cpu"),
                  out_dir=out, progress=False)
    return out


@pytest.fixture(scope="module")
def exported(tiny_store, small_run, tmp_path_factory):
    """fp32 and ORT int8 of the 32 px run; (out dir, manifest)."""
    from kdbench.export.candidates import resolve_candidates
    from kdbench.export.pipeline import ExportOptions, export_candidates

    out = tmp_path_factory.mktemp("export_resized")
    options = ExportOptions(int8=("ort",), calibration_frames=16)
    return out, export_candidates(resolve_candidates(run=small_run), tiny_store, out, options)


def test_the_onnx_input_is_the_trained_size_and_its_logits_match_pytorch_on_resized_frames(exported, tiny_store,
                                                                                            small_run):
    import onnxruntime as ort
    import torch

    from kdbench.data.loader import StoreLoader
    from kdbench.data.resized import resized_store
    from kdbench.models.checkpoint import load_checkpoint

    out, manifest = exported
    recs = {r["variant"]: r for r in manifest["variants"]}
    assert recs["fp32"]["status"] == "ok", recs["fp32"]["reason"]
    assert recs["fp32"]["input_size"] == SIZE and recs["int8_ort"]["input_size"] == SIZE
    for variant in ("fp32", "int8_ort"):
        session = ort.InferenceSession(str(out / recs[variant]["file"]), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].shape[1:] == [1, SIZE, SIZE]
    # the very tensors training fed the student: the store's val batches at 32 px
    x, _, idx = next(iter(StoreLoader(resized_store(tiny_store, SIZE), "val", 64)))
    assert tuple(x.shape[1:]) == (1, SIZE, SIZE)
    model, meta = load_checkpoint(small_run / "best.pt")
    assert meta["input_size"] == SIZE
    with torch.no_grad():
        want = model.eval()(x).numpy()
    session = ort.InferenceSession(str(out / recs["fp32"]["file"]), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert got.shape == want.shape and np.abs(got - want).max() <= 1e-4 + 1e-3 * np.abs(want).max()
    # at full size the graph refuses the frames: nothing silently runs at the wrong resolution
    with pytest.raises(Exception):
        session.run(None, {session.get_inputs()[0].name: np.zeros((1, 1, 64, 64), np.float32)})


def test_metrics_come_from_resized_frames_and_profile_reads_the_size_from_the_record(exported, tiny_store):
    from kdbench.export.evaluate import evaluate_file
    from kdbench.export_manifest import VariantRecord
    from kdbench.profile.results import discover_models

    out, manifest = exported
    rec = VariantRecord.from_dict(next(r for r in manifest["variants"] if r["variant"] == "fp32"))
    assert rec.metrics["val"]["n"] == len(tiny_store.indices("val"))
    from kdbench.data.resized import resized_store

    again = evaluate_file(out / rec.file, "onnxruntime", resized_store(tiny_store, SIZE), ("val",))
    assert again["val"]["accuracy"] == rec.metrics["val"]["accuracy"]
    assert rec.details["parity_frames"] > 0 and rec.max_abs_diff <= rec.details["parity_allowed"]
    entries = {e.variant_id: e for e in discover_models(out)}
    assert {e.input_size for e in entries.values()} == {SIZE}  # from the record, not from a path


def test_a_checkpoint_larger_than_the_store_fails_with_its_reason(tiny_store, tmp_path):
    from kdbench.export.candidates import Candidate
    from kdbench.export.pipeline import ExportOptions, export_candidates
    from kdbench.models import create_model
    from kdbench.models.checkpoint import save_checkpoint

    ckpt = save_checkpoint(create_model("mobilenet_v3_small", num_classes=4), tmp_path / "big.pt",
                           arch="mobilenet_v3_small", num_classes=4, input_size=96)
    manifest = export_candidates([Candidate(id="big", checkpoint=ckpt)], tiny_store, tmp_path / "out",
                                 ExportOptions(int8=()))
    (rec,) = manifest["variants"]
    assert rec["status"] == "failed" and "trained at 96 px but store" in rec["reason"]
    assert "holds 64 px frames" in rec["reason"]
