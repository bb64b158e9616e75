"""kdbench export on a real student trained briefly on the phantom store: every variant exported,
run in its own runtime, measured and recorded; reruns resume."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from kdbench.convert.runtimes import frames_as_input, ort_runner
from kdbench.export.candidates import resolve_candidates
from kdbench.export.evaluate import evaluate_file
from kdbench.export.pipeline import ExportOptions, Exporter, export_candidates
from kdbench.export_manifest import VariantRecord
from kdbench.manifest import read_json
from kdbench.metrics import classification_metrics

OPTIONS = ExportOptions(int8=("ort", "openvino"), prune=(0.3,), fp16=True, finetune_epochs=1,
                        calibration_frames=16)
PLAN = ["fp32", "int8_ort", "int8_openvino", "fp16", "pruned30"]


@pytest.fixture(scope="module")
def exported(tiny_store, tiny_run, tmp_path_factory):
    """One export of the tiny run with every kind of variant; returns (out dir, manifest)."""
    out = tmp_path_factory.mktemp("export")
    manifest = export_candidates(resolve_candidates(run=tiny_run), tiny_store, out, OPTIONS)
    return out, manifest


def _by_variant(manifest: dict) -> dict[str, dict]:
    return {r["variant"]: r for r in manifest["variants"]}


def test_every_planned_variant_is_exported_and_ok(exported, tiny_run) -> None:
    out, manifest = exported
    recs = _by_variant(manifest)
    assert sorted(recs) == sorted(PLAN)
    for name, rec in recs.items():
        assert rec["status"] == "ok", (name, rec["reason"])
        assert rec["id"] == f"{tiny_run.name}/{name}"
        assert rec["student"] == "mobilenet_v3_small" and rec["method"] == "scratch"
        assert rec["trial"] is None and rec["seed"] == 0  # a plain run: no study trial; its seed from metrics.json
        assert VariantRecord.from_dict(rec).to_dict() == rec
        assert rec["input_size"] == 64
        for f in rec["files"]:
            assert (out / f).is_file()
    assert read_json(out / "manifest.json") == manifest
    assert recs["int8_openvino"]["runtime"] == "openvino"
    assert {recs[v]["runtime"] for v in ("fp32", "int8_ort", "fp16", "pruned30")} == {"onnxruntime"}


def test_fp32_onnx_matches_pytorch_with_a_dynamic_batch(exported, tiny_store, tiny_run) -> None:
    import onnx
    import torch

    from kdbench.models.checkpoint import load_checkpoint

    out, manifest = exported
    rec = _by_variant(manifest)["fp32"]
    assert rec["max_abs_diff"] <= rec["details"]["parity_allowed"]
    assert rec["details"]["parity_allowed"] == pytest.approx(
        OPTIONS.parity_tol + OPTIONS.parity_rtol * rec["details"]["max_abs_logit"])
    assert rec["details"]["exporter"] in ("dynamo", "torchscript")
    path = out / rec["file"]
    graph = onnx.load(str(path))
    assert [i.name for i in graph.graph.input] == ["input"]
    assert [o.name for o in graph.graph.output] == ["logits"]
    assert max(op.version for op in graph.opset_import if op.domain in ("", "ai.onnx")) >= 17
    assert rec["files"] == [rec["file"]]  # one self-contained file
    model, _ = load_checkpoint(tiny_run / "best.pt")
    run = ort_runner(path)
    for n in (1, 5):
        x = frames_as_input(tiny_store, tiny_store.indices("test")[:n])
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = run(x)
        assert got.shape == (n, 4)
        np.testing.assert_allclose(got, ref, atol=1e-4)


def test_accuracies_are_measured_by_running_each_file(exported, tiny_store) -> None:
    out, manifest = exported
    for rec in manifest["variants"]:
        for split in ("val", "test"):
            m = rec["metrics"][split]
            rows = tiny_store.indices(split)
            assert m["n"] == len(rows)
            assert set(m["per_source_accuracy"]) == set(tiny_store.sources[rows].tolist())
            assert sum(map(sum, m["confusion"])) == len(rows)
            # clip-level figures and intervals: the store's clips are its videos
            clips = {(s, v) for s, v in zip(tiny_store.sources[rows], tiny_store.videos[rows])}
            assert m["n_clips"] == len(clips) and 0 <= m["clip_accuracy"] <= 1 and 0 <= m["ece"] <= 1
            low, high = m["accuracy_ci"]
            assert low <= m["accuracy"] <= high and m["clip_accuracy_ci"][0] <= m["clip_accuracy"] <= m["clip_accuracy_ci"][1]
        # the recorded numbers are what the file gives in its runtime
        again = evaluate_file(out / rec["file"], rec["runtime"], tiny_store)
        for split in ("val", "test"):
            assert again[split]["accuracy"] == pytest.approx(rec["metrics"][split]["accuracy"])
            assert again[split]["confusion"] == rec["metrics"][split]["confusion"]


def test_fp32_metrics_equal_pytorch_metrics(exported, tiny_store, tiny_run) -> None:
    import torch

    from kdbench.models.checkpoint import load_checkpoint

    _, manifest = exported
    model, _ = load_checkpoint(tiny_run / "best.pt")
    rows = tiny_store.indices("test")
    with torch.no_grad():
        logits = model(torch.from_numpy(frames_as_input(tiny_store, rows))).numpy()
    ref = classification_metrics(logits, tiny_store.labels[rows], tiny_store.sources[rows])
    assert _by_variant(manifest)["fp32"]["metrics"]["test"]["confusion"] == ref["confusion"]


def test_sizes_params_and_macs(exported) -> None:
    out, manifest = exported
    recs = _by_variant(manifest)
    for rec in recs.values():
        assert rec["size_mb"] == pytest.approx(sum(os.path.getsize(out / f) for f in rec["files"]) / 1e6)
    fp32 = recs["fp32"]
    # fp32 weights are 4 bytes each: the file holds at least the parameters
    assert fp32["size_mb"] >= 4 * fp32["params"] / 1e6
    assert fp32["macs"] > 0
    # OpenVINO IR = .xml + .bin, both counted
    assert sorted(Path(f).suffix for f in recs["int8_openvino"]["files"]) == [".bin", ".xml"]
    for name in ("int8_ort", "int8_openvino"):
        assert recs[name]["size_mb"] < 0.6 * fp32["size_mb"], name
        assert recs[name]["params"] == fp32["params"]
    assert recs["fp16"]["size_mb"] < 0.7 * fp32["size_mb"]
    pruned = recs["pruned30"]
    assert pruned["params"] < 0.8 * fp32["params"]
    assert pruned["macs"] < fp32["macs"]
    assert pruned["size_mb"] < fp32["size_mb"]
    assert pruned["max_abs_diff"] <= pruned["details"]["parity_allowed"]
    assert pruned["details"]["params_before"] == fp32["params"]
    assert pruned["details"]["finetune"]["epochs_run"] == 1


def test_ort_int8_tries_per_channel_and_per_tensor_and_keeps_the_better(exported) -> None:
    out, manifest = exported
    rec = _by_variant(manifest)["int8_ort"]
    tried = rec["details"]["tried"]
    assert set(tried) == {"per_channel", "per_tensor"}
    accs = {k: v["val_accuracy"] for k, v in tried.items() if v["error"] is None}
    assert accs, tried
    chosen = rec["details"]["chosen"]
    assert accs[chosen] == max(accs.values())
    assert rec["metrics"]["val"]["accuracy"] == pytest.approx(accs[chosen])
    assert rec["details"]["preprocessed"] is True
    # QDQ format: the kept file has QuantizeLinear/DequantizeLinear nodes; the loser was removed
    import onnx

    ops = {n.op_type for n in onnx.load(str(out / rec["file"])).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert sorted(p.name for p in (out / rec["candidate"]).glob("int8_ort*")) == ["int8_ort.onnx"]


def test_rerun_resumes_without_redoing_variants(exported, tiny_store, tiny_run, tmp_path) -> None:
    out, manifest = exported
    copy = tmp_path / "export"
    shutil.copytree(out, copy)
    mtimes = {p: p.stat().st_mtime_ns for p in copy.rglob("*.onnx")}
    again = export_candidates(resolve_candidates(run=tiny_run), tiny_store, copy, OPTIONS)
    assert all(r["resumed"] for r in again["variants"])
    assert {p: p.stat().st_mtime_ns for p in copy.rglob("*.onnx")} == mtimes
    assert [r["metrics"] for r in again["variants"]] == [r["metrics"] for r in manifest["variants"]]


def test_a_broken_candidate_is_recorded_and_does_not_stop_the_others(exported, tiny_store, tiny_run, tmp_path) -> None:
    out, _ = exported
    copy = tmp_path / "export"
    shutil.copytree(out, copy)
    import torch

    broken = tmp_path / "broken" / "best.pt"  # right format, weights of another model
    broken.parent.mkdir()
    torch.save({"arch": "mobilenet_v3_small", "num_classes": 4, "input_size": 64,
                "state_dict": {"head.weight": torch.zeros(4, 8)}}, broken)
    cands = resolve_candidates(checkpoint=broken) + resolve_candidates(run=tiny_run)
    manifest = export_candidates(cands, tiny_store, copy, OPTIONS)
    bad = [r for r in manifest["variants"] if r["candidate"] == cands[0].id]
    good = [r for r in manifest["variants"] if r["candidate"] == tiny_run.name]
    assert len(bad) == len(PLAN) and all(r["status"] == "failed" for r in bad)
    assert all("does not match arch 'mobilenet_v3_small'" in r["reason"] for r in bad)
    assert len(good) == len(PLAN) and all(r["status"] == "ok" for r in good)


def test_parity_failure_fails_fp32_and_the_variants_built_from_it(tiny_store, tiny_run, tmp_path) -> None:
    # a tolerance below any float error: the fp32 parity check must fail and say so, and the
    # quantised variant (built from fp32) must be recorded as failed for that reason, not crash
    options = ExportOptions(int8=("ort",), parity_tol=0.0, parity_rtol=0.0)
    manifest = export_candidates(resolve_candidates(run=tiny_run), tiny_store, tmp_path / "out", options)
    recs = _by_variant(manifest)
    if recs["fp32"]["max_abs_diff"] == 0.0:
        pytest.skip("ONNX and PyTorch logits were bit-identical; parity cannot fail at tolerance 0")
    assert recs["fp32"]["status"] == "failed"
    assert "parity failed" in recs["fp32"]["reason"]
    assert recs["fp32"]["metrics"]["val"]["n"] == len(tiny_store.indices("val"))  # still measured
    assert recs["int8_ort"]["status"] == "failed"
    assert "needs the fp32 ONNX model" in recs["int8_ort"]["reason"]


def test_accuracy_collapse_marks_a_variant_failed(tiny_store, tmp_path) -> None:
    exporter = Exporter(tiny_store, tmp_path, ExportOptions(max_drop=0.10))
    ctx = type("Ctx", (), {})()

    def record(variant: str, acc: float) -> VariantRecord:
        return VariantRecord(id=f"c/{variant}", candidate="c", variant=variant, status="ok",
                             metrics={"val": {"accuracy": acc}})

    ctx.fp32 = record("fp32", 0.90)
    collapsed, fine = record("int8_ort", 0.70), record("int8_openvino", 0.85)
    exporter._check_drop(ctx, collapsed)
    exporter._check_drop(ctx, fine)
    assert collapsed.accuracy_drop == pytest.approx(0.20)
    assert "accuracy collapsed" in collapsed.reason and "20.0 points" in collapsed.reason
    assert fine.reason is None and fine.accuracy_drop == pytest.approx(0.05)


@pytest.mark.slow
def test_pruned_fine_tune_uses_the_candidates_method_and_cached_teacher_logits(tiny_store, tiny_run, tmp_path) -> None:
    import json

    from kdbench.distill.cache import cache_key, cache_paths

    # a distilled candidate: the tiny run's weights, recorded as trained with vanilla KD from a
    # stand-in teacher (the same student checkpoint), the way `kdbench distill` records it
    run = tmp_path / "vanilla_run"
    run.mkdir()
    shutil.copy(tiny_run / "best.pt", run / "best.pt")
    meta = json.loads((tiny_run / "metrics.json").read_text())
    meta.update(method="vanilla", hparams={"temperature": 2.0, "alpha": 0.5}, teacher="teacher.pt")
    meta["config"]["augment_versions"] = 2  # trained with augmentation: the fine-tune runs on plain frames
    (run / "metrics.json").write_text(json.dumps(meta))
    shutil.copy(tiny_run / "best.pt", run / "teacher.pt")  # relative teacher path, found beside the run
    options = ExportOptions(int8=(), prune=(0.5,), finetune_epochs=1)
    manifest = export_candidates(resolve_candidates(run=run), tiny_store, tmp_path / "out", options)
    rec = _by_variant(manifest)["pruned50"]
    assert rec["status"] == "ok", rec["reason"]
    assert rec["method"] == "vanilla" and rec["details"]["finetune_method"] == "vanilla"
    assert rec["details"]["finetune"]["epochs_run"] == 1
    key, _ = cache_key(run / "teacher.pt", tiny_store)
    assert cache_paths(tiny_store, key)[0].is_file()  # the fine-tune distilled from cached logits
    assert rec["params"] < 0.5 * _by_variant(manifest)["fp32"]["params"]


def test_a_new_variant_is_one_module_and_one_registry_entry(tiny_store, tiny_run, tmp_path, monkeypatch) -> None:
    """A toy variant (the fp32 file with its logits doubled: an Add node's worth of work) registered like the real
    ones is planned, built, scored in its runtime and recorded; nothing else in the pipeline knows about it."""
    import onnx

    from kdbench.export import variants
    from kdbench.export.variants import Variant

    def build(ex, ctx, rec) -> None:
        model = onnx.load(str(ex.need_fp32(ctx)))
        graph = model.graph
        graph.node[-1].output[0] = "half"
        graph.node.append(onnx.helper.make_node("Add", ["half", "half"], [graph.output[0].name]))
        path = ctx.dir / "toy.onnx"
        onnx.save(model, str(path))
        ex.finish(ctx, rec, path)

    toy = Variant("toy", "onnxruntime", "fp32", build, lambda options: ["toy"])
    monkeypatch.setattr(variants, "VARIANTS", (*variants.VARIANTS, toy))
    manifest = export_candidates(resolve_candidates(run=tiny_run), tiny_store, tmp_path, ExportOptions(int8=()))
    recs = _by_variant(manifest)
    assert list(recs) == ["fp32", "toy"] and recs["toy"]["status"] == "ok", recs["toy"]["reason"]
    assert recs["toy"]["metrics"]["val"]["accuracy"] == recs["fp32"]["metrics"]["val"]["accuracy"]  # argmax kept
    assert recs["toy"]["accuracy_drop"] == 0 and (tmp_path / recs["toy"]["predictions"]).is_file()
