"""The export and profile stages as library calls (kdbench.export_variants, kdbench.profile_models): the CLI only
parses and prints around them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import kdbench
from kdbench.errors import ConfigError
from kdbench.export_manifest import ExportManifest
from profile_fixtures import tiny_cnn


def test_profile_models_estimates_and_writes_the_records(tmp_path: Path) -> None:
    tiny_cnn(tmp_path / "models" / "a.onnx", size=32)
    seen: list[dict] = []
    run = kdbench.profile_models("rpi4", tmp_path / "models", tmp_path / "out", estimate=True, on_records=seen.extend)
    assert run.method == "estimated" and run.records and seen == run.records
    assert "ESTIMATED" in run.title and "expected error" in run.notes[0]
    saved = json.loads((tmp_path / "out" / "rpi4" / "results.json").read_text())
    assert [r["variant_id"] for r in saved] == [r["variant_id"] for r in run.records] and run.path.is_file()


def test_profile_models_checks_its_options_before_any_work(tmp_path: Path) -> None:
    tiny_cnn(tmp_path / "models" / "a.onnx", size=32)
    with pytest.raises(ConfigError, match="--runtimes 'tensorrt'"):
        kdbench.profile_models("x86", tmp_path / "models", tmp_path / "out", runtimes="tensorrt")
    assert not (tmp_path / "out").exists()


def test_export_variants_exports_a_run_and_returns_its_manifest(tiny_store, tiny_run, tmp_path: Path) -> None:
    planned: list[tuple[int, list[str]]] = []
    manifest = kdbench.export_variants(tiny_store.path, tmp_path / "export", run=tiny_run, int8=(),
                                       on_plan=lambda cands, names: planned.append((len(cands), names)))
    assert planned == [(1, ["fp32"])]
    assert isinstance(manifest, ExportManifest) and [v.variant for v in manifest.ok_variants()] == ["fp32"]
    assert ExportManifest.read(tmp_path / "export") == manifest
    with pytest.raises(ConfigError, match="exactly one of"):
        kdbench.export_variants(tiny_store.path, tmp_path / "export", int8=())
