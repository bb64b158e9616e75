"""results.json is read through one owner: load_results gives ProfileRecords, older files included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdbench.errors import DataError
from kdbench.manifest import write_json
from kdbench.profile.hardware import load_profile
from kdbench.profile.results import (LEGACY_MEMORY_DEFINITION, RECORD_VERSION, ProfileRecord, ResultsWriter,
                                     load_results)
from profile_fixtures import write_profile

# A measured record as kdbench wrote it before the one memory definition (no format_version; commit 43f4343).
OLD_RECORD = {
    "variant_id": "mnv3/fp32", "file": "fp32.onnx", "target": "tiny", "runtime": "onnxruntime",
    "runtime_version": "1.17.0", "threads": 4, "precision": "fp32", "batch": 1, "input_size": 112, "measured": True,
    "method": "local", "host": {"hostname": "pi"}, "device": "cpu", "rule": {"min_queries": 50},
    "latency_ms": {"p50": 10.0, "p90": 11.0, "p99": 12.0, "mean": 10.5}, "throughput": 95.2, "fps": 95.2,
    "n_queries": 200, "timed_s": 2.1, "p90_ci_rel": 0.02, "stable": True, "peak_rss_mb": 61.0,
    "rss_increment_mb": 21.5, "baseline_rss_mb": 39.5, "file_size_mb": 6.1, "status": "ok", "error": None,
    "constraints": {"min_fps": 30.0, "meets": True, "violations": []}, "timestamp": "2025-01-01T00:00:00+0000",
}


def test_an_old_record_reads_with_todays_memory_fields(tmp_path: Path) -> None:
    path = tmp_path / "tiny" / "results.json"
    write_json(path, [OLD_RECORD])
    [rec] = load_results(path)
    assert isinstance(rec, ProfileRecord) and rec.format_version == RECORD_VERSION
    assert (rec.model_memory_mb, rec.process_peak_rss_mb, rec.runtime_baseline_rss_mb) == (21.5, 61.0, 39.5)
    assert rec.latency_ms["p50"] == 10.0 and rec.fps == 95.2 and rec.measured and rec.stable
    assert rec.meta["legacy"] == {"p90_ci_rel": 0.02, "timed_s": 2.1}  # kept, under meta
    assert rec.memory_definition == LEGACY_MEMORY_DEFINITION  # not today's: its agent measured without a trivial model
    assert ProfileRecord.from_dict(rec.to_dict()) == rec


def test_todays_key_wins_over_its_legacy_name() -> None:
    rec = ProfileRecord.from_dict({**OLD_RECORD, "model_memory_mb": 20.0})
    assert rec.model_memory_mb == 20.0 and "rss_increment_mb" not in rec.meta.get("legacy", {})


def test_a_rerun_rewrites_old_records_in_todays_form(tmp_path: Path) -> None:
    write_json(tmp_path / "tiny" / "results.json", [OLD_RECORD])
    prof = load_profile(write_profile(tmp_path / "tiny.toml"))
    writer = ResultsWriter(tmp_path, prof)
    writer.add([ProfileRecord(variant_id="other/fp32", file="fp32.onnx", target="tiny", runtime="onnxruntime",
                              method="local").to_dict()])
    saved = json.loads((tmp_path / "tiny" / "results.json").read_text())
    assert [r["variant_id"] for r in saved] == ["mnv3/fp32", "other/fp32"]
    assert saved[0]["model_memory_mb"] == 21.5 and "rss_increment_mb" not in saved[0]
    assert all(r["format_version"] == RECORD_VERSION for r in saved)


@pytest.mark.parametrize("record, message", [
    ({k: v for k, v in OLD_RECORD.items() if k != "variant_id"}, r"record 0 has no key 'variant_id'"),
    ({**OLD_RECORD, "format_version": RECORD_VERSION + 1}, "format_version"),
    ({**OLD_RECORD, "format_version": RECORD_VERSION}, r"unknown key\(s\)"),  # today's records are strict
    ("not a record", "record 0 is str"),
])
def test_bad_records_name_the_file_and_record(tmp_path: Path, record, message) -> None:
    path = tmp_path / "results.json"
    write_json(path, [record])
    with pytest.raises(DataError, match=message):
        load_results(path)


def test_external_data_scan_is_read_once_per_file_version(tmp_path: Path, monkeypatch):
    """A model's files are asked for by every record: the ONNX file is parsed once, and again when it changes."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from kdbench.profile import entries

    def save(path: Path, external: bool) -> None:
        w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
        graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
        onnx.save(helper.make_model(graph), str(path), save_as_external_data=external, location="m.weights",
                  size_threshold=0)

    path = tmp_path / "m.onnx"
    save(path, external=False)
    loads = []
    real_load = onnx.load
    monkeypatch.setattr(onnx, "load", lambda *a, **k: loads.append(a[0]) or real_load(*a, **k))
    entry = entries.ModelEntry("m", path)
    assert [entry.files() for _ in range(4)] == [[path]] * 4
    assert len(loads) == 1
    save(path, external=True)  # the same path, now with its weights beside it: read again
    assert entry.files() == [path, tmp_path / "m.weights"]
    assert len(loads) == 2
