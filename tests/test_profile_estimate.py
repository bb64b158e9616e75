"""Latency estimator: per-kernel features, the fit, leave-one-out, labelled estimates, calibrate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.errors import ConfigError, DataError
from kdbench.profile.estimate import (
    CALIBRATION_DIR,
    PARAMS,
    Calibration,
    Row,
    fit_constants,
    leave_one_out,
    predict_ms,
)
from kdbench.profile.features import GraphFeatures, graph_features

from profile_fixtures import tiny_cnn, write_profile


def test_features_match_hand_counted_work(tmp_path: Path):
    expected = tiny_cnn(tmp_path / "t.onnx", size=32, width=8, fc_in=16)
    f = graph_features(tmp_path / "t.onnx")
    assert f.input_size == 32
    assert f.macs_dense == expected["macs_dense"]
    assert f.macs_dw == expected["macs_dw"]
    assert f.macs_fc == expected["macs_fc"]
    assert f.weight_bytes == expected["weight_bytes"]
    assert f.n_ops == 6  # conv, relu, dw, pw, gap, gemm (Flatten and Identity are free)


def test_features_follow_the_input_size_of_a_dynamic_model(tmp_path: Path):
    tiny_cnn(tmp_path / "d.onnx", size=None)
    f32, f64 = graph_features(tmp_path / "d.onnx", 32), graph_features(tmp_path / "d.onnx", 64)
    assert f64.macs_dense == 4 * f32.macs_dense and f64.macs_dw == 4 * f32.macs_dw
    assert f64.macs_fc == f32.macs_fc and f64.weight_bytes == f32.weight_bytes
    with pytest.raises(DataError, match="dynamic spatial size"):
        graph_features(tmp_path / "d.onnx")


def test_bad_onnx_is_a_data_error(tmp_path: Path):
    (tmp_path / "x.onnx").write_bytes(b"nope")
    with pytest.raises(DataError, match="x.onnx"):
        graph_features(tmp_path / "x.onnx", 32)


def _synthetic_rows(constants: dict, peak: float) -> list[Row]:
    rows = []
    for i, (d, w, a, wb, n) in enumerate([(2e9, 0, 5e7, 5e7, 20), (2e8, 2e7, 8e7, 2e7, 140), (1.4e8, 4e6, 5e7, 9e6, 140),
                                           (5e7, 8e6, 3e7, 6e6, 120), (1e10, 0, 2e8, 5e8, 40), (3e8, 3e7, 1e8, 1e7, 60)]):
        f = GraphFeatures(macs_dense=d, macs_dw=w, act_bytes=a, weight_bytes=wb, n_ops=n)
        rows.append(Row(f"r{i}", f, predict_ms(constants, peak, f)))
    return rows


def test_fit_recovers_known_constants_from_enough_rows():
    truth = {"eff_dense": 0.3, "eff_dw": 0.05, "bw_gbs": 3.0, "op_overhead_us": 40.0}
    rows = _synthetic_rows(truth, 48.0)
    fitted = fit_constants(rows, 48.0)
    for p in PARAMS:
        assert fitted[p] == pytest.approx(truth[p], rel=0.1), (p, fitted)
    for r in rows:
        assert predict_ms(fitted, 48.0, r.features) == pytest.approx(r.latency_ms, rel=0.02)


def test_depthwise_runs_at_a_lower_share_of_peak_than_dense():
    cal = Calibration.load(CALIBRATION_DIR / "rpi4.json")
    assert cal.constants["eff_dw"] < cal.constants["eff_dense"] / 3
    f_dense = GraphFeatures(macs_dense=1e8)
    f_dw = GraphFeatures(macs_dw=1e8)
    assert predict_ms(cal.constants, cal.peak_gmacs, f_dw) > 3 * predict_ms(cal.constants, cal.peak_gmacs, f_dense)


def test_shipped_calibration_is_reproducible_and_reports_leave_one_out():
    cal = Calibration.load(CALIBRATION_DIR / "rpi4.json")
    data = cal.data
    assert cal.peak_gmacs == 48.0 and cal.threads == 4 and data["proxy"]["used"] is True
    refs = [Row(r["name"], GraphFeatures.from_dict(r["features"]), r["latency_ms"]) for r in data["rows"]]
    assert {r.name for r in refs} == {"mobilenet_v3_large@224", "shufflenet_v2_x1_0@224", "vgg16@224"}
    refit = fit_constants(refs, 48.0)
    for p in PARAMS:
        assert refit[p] == pytest.approx(cal.constants[p], rel=1e-3)
    loo = leave_one_out(refs, 48.0)
    assert [e["model"] for e in loo] == [e["model"] for e in data["leave_one_out"]]
    for mine, shipped in zip(loo, data["leave_one_out"]):
        assert mine["error_pct"] == pytest.approx(shipped["error_pct"], abs=0.5)
    rms = math.sqrt(sum(math.log(1 + e["error_pct"] / 100) ** 2 for e in loo) / 3)
    assert cal.error_band_pct > 100 * (math.exp(rms) - 1)  # the proxy term widens the band
    # the per-kernel model beats one FLOPs ratio on every held-out row
    for e, flops in zip(loo, data["flops_ratio_leave_one_out"]):
        assert abs(e["error_pct"]) < abs(flops["error_pct"])


def test_reference_features_match_an_exported_architecture():
    from kdbench.profile.calibrate import architecture_features

    cal = Calibration.load(CALIBRATION_DIR / "rpi4.json")
    stored = next(r for r in cal.data["rows"] if r["name"] == "shufflenet_v2_x1_0@224")["features"]
    fresh = architecture_features("shufflenet_v2_x1_0", 224)
    assert fresh.macs_dense == pytest.approx(stored["macs_dense"], rel=1e-6)
    assert fresh.macs_dw == pytest.approx(stored["macs_dw"], rel=1e-6)
    assert 140e6 < fresh.macs_dense + fresh.macs_dw + fresh.macs_fc < 150e6  # published: 146 MMACs


def test_profile_estimate_labels_every_figure(tmp_path: Path):
    models = tmp_path / "m"
    tiny_cnn(models / "a.onnx", size=64)
    tiny_cnn(models / "b.onnx", size=64, width=32)
    result = CliRunner().invoke(app, ["profile", "--target", "rpi4", "--models", str(models), "--out",
                                      str(tmp_path / "out"), "--estimate"])
    assert result.exit_code == 0, result.output
    assert "ESTIMATED" in result.output
    recs = json.loads((tmp_path / "out" / "rpi4" / "results.json").read_text())
    assert len(recs) == 2 * 2  # models x batch sizes of rpi4
    cal = Calibration.load(CALIBRATION_DIR / "rpi4.json")
    for r in recs:
        assert r["measured"] is False and r["method"] == "estimated" and r["target"] == "rpi4"
        assert r["error_band"]["pct"] == pytest.approx(cal.error_band_pct, abs=0.1)
        assert "rpi4_published.csv" in r["calibration"]["source"] and r["threads"] == 4
    one = {(r["variant_id"], r["batch"]): r for r in recs}
    assert one[("b", 1)]["latency_ms"]["p50"] > one[("a", 1)]["latency_ms"]["p50"]
    assert one[("a", 4)]["throughput"] > one[("a", 1)]["fps"]  # batching amortises weights and overhead
    assert "meets" in one[("a", 1)]["constraints"]


def test_calibrate_from_user_measurements_changes_the_estimate(tmp_path: Path):
    models = tmp_path / "m"
    for i, w in enumerate((8, 16, 32)):
        tiny_cnn(models / f"n{i}.onnx", size=64, width=w)
    # "measured" on the user's board: 10x the per-op overhead of the shipped constants
    cal = Calibration.load(CALIBRATION_DIR / "rpi4.json")
    slow = {**cal.constants, "op_overhead_us": cal.constants["op_overhead_us"] * 10}
    lines = ["model,input,latency_ms,threads,framework"]
    for i in range(3):
        f = graph_features(models / f"n{i}.onnx")
        lines.append(f"n{i}.onnx,64,{predict_ms(slow, 48.0, f):.5f},4,onnxruntime")
    (tmp_path / "mine.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    runner = CliRunner()
    res = runner.invoke(app, ["profile", "calibrate", "--target", "rpi4", "--results", str(tmp_path / "mine.csv"),
                              "--models", str(models), "--out", str(out), "--no-reference"])
    assert res.exit_code == 0, res.output
    fitted = json.loads((out / "calibration" / "rpi4.json").read_text())
    assert fitted["proxy"]["used"] is False and len(fitted["leave_one_out"]) == 3
    assert fitted["constants"]["op_overhead_us"] > 3 * cal.constants["op_overhead_us"]
    res = runner.invoke(app, ["profile", "--target", "rpi4", "--models", str(models), "--out", str(out), "--estimate"])
    assert res.exit_code == 0, res.output
    rec = next(r for r in json.loads((out / "rpi4" / "results.json").read_text())
               if r["variant_id"] == "n0" and r["batch"] == 1)
    assert rec["calibration"]["file"] == str(out / "calibration" / "rpi4.json")
    f0 = graph_features(models / "n0.onnx")
    assert rec["latency_ms"]["p50"] == pytest.approx(predict_ms(slow, 48.0, f0), rel=0.15)


def test_calibrate_rejects_rows_for_other_thread_counts(tmp_path: Path):
    models = tmp_path / "m"
    tiny_cnn(models / "n.onnx", size=32)
    (tmp_path / "x.csv").write_text("model,input,latency_ms,threads\nn.onnx,32,5.0,2\n")
    res = CliRunner().invoke(app, ["profile", "calibrate", "--target", "rpi4", "--results", str(tmp_path / "x.csv"),
                                   "--models", str(models), "--out", str(tmp_path / "o")])
    assert res.exit_code != 0 and "threads=2" in str(res.exception)


def test_missing_calibration_is_a_config_error(tmp_path: Path):
    tiny_cnn(tmp_path / "m" / "a.onnx")
    prof = write_profile(tmp_path / "p.toml", extra='\n[estimate]\ncalibration = "nowhere"\n')
    res = CliRunner().invoke(app, ["profile", "--target", str(prof), "--models", str(tmp_path / "m"),
                                   "--out", str(tmp_path / "o"), "--estimate"])
    assert isinstance(res.exception, ConfigError) and "nowhere" in str(res.exception)
