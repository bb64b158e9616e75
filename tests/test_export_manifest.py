"""EXPORT/manifest.json has one reader, kdbench.export_manifest.ExportManifest: old manifests read, bad ones are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdbench.errors import DataError
from kdbench.export_manifest import FORMAT_VERSION, MANIFEST, ExportManifest, VariantRecord
from kdbench.manifest import write_json
from kdbench.profile.results import discover_models

# A manifest as the first `kdbench export` wrote it (commit 6a4cf14): entries without trial, seed, predictions,
# failure or inputs_hash; the second entry, as a hand-made one, without precision.
OLD_MANIFEST = {
    "stage": "export", "format_version": 1, "kdbench_version": "0.1.0", "store": "/data/store", "store_hash": "s",
    "teacher": None, "config": {"opset": 18}, "config_hash": "c",
    "candidates": [{"id": "mnv3", "checkpoint": "runs/x/best.pt", "student": "mobilenet_v3_small"}],
    "variants": [
        {"id": "mnv3/fp32", "candidate": "mnv3", "student": "mobilenet_v3_small", "method": "vanilla",
         "variant": "fp32", "runtime": "onnxruntime", "precision": "fp32", "file": "mnv3/fp32.onnx",
         "files": ["mnv3/fp32.onnx"], "size_mb": 6.1, "params": 1500000, "macs": 20000000, "input_size": 112,
         "status": "ok", "reason": None, "metrics": {"val": {"accuracy": 0.9}}, "details": {}, "resumed": False,
         "elapsed_s": 3.0, "max_abs_diff": 1e-5},
        {"id": "mnv3/int8_ort", "candidate": "mnv3", "variant": "int8_ort", "file": "mnv3/int8_ort.onnx",
         "status": "ok"},
        {"id": "mnv3/pruned30", "candidate": "mnv3", "variant": "pruned30", "status": "failed", "reason": "x"},
    ],
}


def _write(folder: Path, doc: dict) -> Path:
    write_json(folder / MANIFEST, doc)
    return folder


def test_an_old_manifest_reads_and_round_trips(tmp_path: Path) -> None:
    manifest = ExportManifest.read(_write(tmp_path, OLD_MANIFEST))
    assert [v.id for v in manifest.ok_variants()] == ["mnv3/fp32", "mnv3/int8_ort"]
    fp32, int8, _ = manifest.variants
    assert (fp32.trial, fp32.seed, fp32.predictions, fp32.params) == (None, None, None, 1500000)
    assert int8.precision == "int8"  # named from the variant where the entry does not say
    assert manifest.store == "/data/store" and manifest.candidates[0]["id"] == "mnv3"
    assert ExportManifest.from_dict(json.loads(json.dumps(manifest.to_dict()))) == manifest
    assert manifest.format_version == FORMAT_VERSION


def test_profile_discovers_an_old_manifests_models_through_it(tmp_path: Path) -> None:
    for name in ("fp32", "int8_ort"):
        (tmp_path / "mnv3").mkdir(exist_ok=True)
        (tmp_path / "mnv3" / f"{name}.onnx").write_bytes(b"onnx")
    entries = discover_models(_write(tmp_path, OLD_MANIFEST))
    assert [(e.variant_id, e.precision, e.input_size) for e in entries] == [("mnv3/fp32", "fp32", 112),
                                                                           ("mnv3/int8_ort", "int8", None)]
    assert entries[0].meta == {"candidate": "mnv3", "student": "mobilenet_v3_small", "method": "vanilla",
                               "variant": "fp32"}


@pytest.mark.parametrize("change, message", [
    ({"stage": "profile"}, "not an export manifest"),
    ({"format_version": FORMAT_VERSION + 1}, "format_version"),
    ({"variants": {}}, "key 'variants' missing or not a list"),
    ({"colour": "red"}, r"unknown key\(s\) \['colour'\]"),
    ({"variants": [{"id": "a"}]}, r"variants\[0\] has no key 'candidate'"),
])
def test_a_bad_manifest_is_named(tmp_path: Path, change: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        ExportManifest.read(_write(tmp_path, {**OLD_MANIFEST, **change}))


def test_a_bad_variant_can_be_left_out_for_the_export_to_redo(tmp_path: Path) -> None:
    bad: list[DataError] = []
    doc = {**OLD_MANIFEST, "variants": [*OLD_MANIFEST["variants"], {"id": "x", "candidate": "x", "variant": "fp32",
                                                                     "status": "ok", "seed": 1.5}]}
    manifest = ExportManifest.read(_write(tmp_path, doc), on_bad=bad.append)
    assert len(manifest.variants) == 3 and "variants[3]: seed = 1.5" in str(bad[0])


def test_a_missing_or_broken_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        ExportManifest.read(tmp_path)
    (tmp_path / MANIFEST).write_text("{")
    with pytest.raises(DataError, match="not valid JSON"):
        ExportManifest.read(tmp_path)


def test_the_record_is_what_the_export_writes() -> None:
    rec = VariantRecord(id="c/fp32", candidate="c", variant="fp32", status="ok")
    doc = ExportManifest(variants=[rec], store="s").to_dict()
    assert doc["stage"] == "export" and doc["variants"] == [rec.to_dict()]
    assert set(doc) == {"stage", "format_version", "kdbench_version", "store", "store_hash", "teacher", "config",
                        "config_hash", "candidates", "variants"}
