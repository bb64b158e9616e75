"""Kernel-level latency model: kernels read from graphs (golden counts by hand), the fit recovers known costs, the
agent times a suite, a calibration file with kernels drives --estimate, and the suite runs over real ssh."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kdbench.convert.onnx_export import graph_export
from kdbench.profile.calibrate_kernels import calibrate_kernels, pack, time_suite
from kdbench.profile.estimate import Calibration, estimate_records
from kdbench.profile.features import graph_features
from kdbench.profile.hardware import load_profile
from kdbench.profile.kernels import (
    Kernel,
    KernelCalibration,
    KernelModel,
    band_from_errors,
    graph_kernels,
    micro_models,
)
from kdbench.profile.remote import SshTarget
from kdbench.profile.results import discover_models

from profile_fixtures import write_profile

TINY_SUITE = {"conv1x1": 3, "dwconv3x3": 2, "unary": 2, "fc": 1}


def _w(name: str, dims: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.full(dims, 0.01, np.float32), name)


def _block(path: Path) -> Path:
    """x[1,8,16,16] -> Conv3x3(8->16)+Relu -> depthwise 3x3 s2 -> Add(itself) -> GAP -> Flatten -> Gemm(16->4)."""
    v = helper.make_tensor_value_info
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1] * 4, name="conv"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1] * 4, strides=[2, 2], group=16,
                         name="dw"),
        helper.make_node("Add", ["c2", "c2"], ["a"], name="add"),
        helper.make_node("GlobalAveragePool", ["a"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["y"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(nodes, "block", [v("x", TensorProto.FLOAT, [1, 8, 16, 16])], [v("y", TensorProto.FLOAT, [1, 4])],
                              [_w("w1", [16, 8, 3, 3]), _w("b1", [16]), _w("w2", [16, 1, 3, 3]), _w("w3", [4, 16]),
                               _w("b3", [4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), str(path))
    return path


def test_graph_kernels_fuses_the_activation_and_counts_work_by_hand(tmp_path: Path):
    ks = graph_kernels(_block(tmp_path / "b.onnx"))
    assert [k.kind for k in ks] == ["conv3x3", "dwconv3x3", "eltwise", "gpool", "fc"]  # Relu fused, Flatten free
    conv, dw, add, gap, fc = ks
    assert conv.macs == 16 * 16 * 16 * 8 * 9 and conv.in_elems == 8 * 256 and conv.out_elems == 16 * 256
    assert conv.weight_elems == 16 * 8 * 9 and conv.shape == {"cin": 8, "cout": 16, "hw": 16, "k": 3, "stride": 1,
                                                              "groups": 1}
    assert dw.macs == 16 * 8 * 8 * 9 and dw.out_elems == 16 * 64 and dw.shape["stride"] == 2
    assert add.in_elems == 2 * 16 * 64 and add.out_elems == 16 * 64
    assert gap.in_elems == 16 * 64 and gap.out_elems == 16
    assert fc.macs == 16 * 4 and fc.weight_elems == 64


def test_shuffle_exported_by_torchscript_is_sized(tmp_path: Path):
    # The TorchScript exporter computes the channel split from Shape: ONNX's inference leaves it unsized,
    # ONNX Runtime's symbolic inference sizes it (the hardware-aware search prices shufflenet through this path).
    path = graph_export("shufflenet_v2_x0_5", tmp_path / "s.onnx", 32)
    f = graph_features(path, 32)
    ks = graph_kernels(path, 32)
    assert f.macs_dense > 0 and f.macs_dw > 0
    assert {"conv1x1", "dwconv3x3", "transpose"} <= {k.kind for k in ks}


def test_fit_recovers_known_kernel_costs():
    rng = np.random.default_rng(0)
    truth = {"conv1x1": [2.0, 1e-5, 2e-5, 3e-5, 1e-4], "unary": [0.5, 0.0, 1e-4, 0.0, 0.0]}
    samples = []
    for kind, coef in truth.items():
        for _ in range(12):
            k = Kernel(kind, float(rng.uniform(1e4, 1e7)) if kind == "conv1x1" else 0.0, float(rng.uniform(1e2, 1e5)),
                       float(rng.uniform(1e2, 1e5)), float(rng.uniform(1e2, 1e5)) if kind == "conv1x1" else 0.0)
            samples.append(([k], 3.0 + sum(c * x for c, x in zip(coef, k.features()))))
    model = KernelModel.fit(samples, run_us=3.0, threads=1)
    for kernels, us in samples:
        assert model.predict_ms(kernels) * 1000 == pytest.approx(us, rel=1e-6)
    again = KernelModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again == model


def test_band_is_the_log_rms_of_the_errors():
    assert band_from_errors([]) == 50.0
    assert band_from_errors([10.0, -10.0]) == pytest.approx(100 * (math.exp(math.sqrt(
        (math.log(1.1) ** 2 + math.log(0.9) ** 2) / 2)) - 1))


def test_suite_is_reproducible_and_each_model_is_one_kernel_of_its_kind():
    a, b = micro_models(3, TINY_SUITE), micro_models(3, TINY_SUITE)
    assert [m.SerializeToString() for _, m in a] == [m.SerializeToString() for _, m in b]
    for stem, model in a:
        ks = graph_kernels(model)
        assert len(ks) == 1 and stem.startswith(ks[0].kind), (stem, ks)


def test_agent_times_a_suite_in_one_process(tmp_path: Path):
    folder = tmp_path / "suite"
    folder.mkdir()
    for stem, model in micro_models(0, TINY_SUITE):
        onnx.save(model, str(folder / f"{stem}.onnx"))
    out = time_suite(pack(folder, tmp_path / "k.tar"), "onnxruntime", 1, min_s=0.01)
    assert set(out["kernels_us"]) == {"trivial"} | {p.stem for p in folder.glob("*.onnx")}
    assert all(v > 0 for v in out["kernels_us"].values())


@pytest.fixture(scope="module")
def tiny_calibration() -> KernelCalibration:
    cal, rows, _ = calibrate_kernels("onnxruntime", 1, per_kind=TINY_SUITE, archs=("mobilenet_v3_small", "resnet18"),
                                     sizes=(32,))
    assert len(rows) == 2 and all(r.latency_ms > 0 for r in rows)
    return cal


def test_calibration_fits_on_the_suite_and_checks_on_the_whole_models(tiny_calibration: KernelCalibration):
    cal = tiny_calibration
    assert set(cal.whole_ms) == {"mobilenet_v3_small@32", "resnet18@32"}
    assert [e["model"] for e in cal.validation] == sorted(cal.whole_ms) and cal.band_pct > 0
    for e in cal.validation:  # predicted from the kernels alone, never fitted on the whole model
        assert e["error_pct"] == pytest.approx(100 * (e["predicted_ms"] / e["observed_ms"] - 1))
    assert band_from_errors([e["error_pct"] for e in cal.validation]) == pytest.approx(cal.band_pct)
    assert cal.suite["kernels"] == sum(TINY_SUITE.values()) and len(cal.suite["times_us"]) == cal.suite["kernels"] + 3
    assert KernelCalibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal


def test_estimate_uses_the_kernel_model_for_fp32_onnx(tmp_path: Path, tiny_calibration: KernelCalibration):
    shipped = json.loads(Path(Calibration.load.__globals__["CALIBRATION_DIR"] / "rpi4.json").read_text())
    path = tmp_path / "cal.json"
    path.write_text(json.dumps({**shipped, "kernels": tiny_calibration.to_dict()}))
    cal = Calibration.load(path)
    models = tmp_path / "models"
    graph_export("mobilenet_v3_small", models / "m.onnx", 32)
    prof = load_profile(write_profile(tmp_path / "p.toml", runtimes='["onnxruntime", "openvino"]', batches="[1, 2]"))
    recs = estimate_records(discover_models(models), prof, cal)
    by = {(r["runtime"], r["batch"]): r for r in recs}
    kernel = by[("onnxruntime", 1)]
    assert kernel["calibration"]["method"].startswith("kernel-level")
    expected = tiny_calibration.predict_ms(graph_kernels(models / "m.onnx", 32))
    assert kernel["latency_ms"]["p50"] == pytest.approx(expected)
    assert kernel["error_band"]["pct"] == pytest.approx(round(tiny_calibration.band_pct, 1))
    for key in (("openvino", 1), ("onnxruntime", 2)):  # not what the suite measured: the per-class constants
        assert by[key]["calibration"]["method"] == "per-class constants"


def test_a_calibration_file_with_a_broken_kernels_key_is_one_line(tmp_path: Path):
    shipped = json.loads(Path(Calibration.load.__globals__["CALIBRATION_DIR"] / "rpi4.json").read_text())
    path = tmp_path / "cal.json"
    path.write_text(json.dumps({**shipped, "kernels": {"model": {}}}))
    with pytest.raises(Exception, match="key 'kernels'"):
        Calibration.load(path)


@pytest.mark.ssh
@pytest.mark.skipif(not os.environ.get("KDBENCH_TEST_SSH_CONFIG"), reason="needs the loopback sshd (tests/ssh)")
def test_kernel_suite_runs_over_real_ssh():
    target = SshTarget("kdbench-test", os.environ["KDBENCH_TEST_SSH_CONFIG"])
    cal, _, host = calibrate_kernels("onnxruntime", 1, target, sys.executable, per_kind=TINY_SUITE,
                                     archs=("mobilenet_v3_small",), sizes=(32,))
    assert host.get("hostname") and cal.whole_ms["mobilenet_v3_small@32"] > 0


def test_kernels_for_another_cpu_must_run_on_it(tmp_path: Path):
    cli = [sys.executable, "-c", "from kdbench.cli import main; main()"]
    done = subprocess.run([*cli, "profile", "calibrate", "--target", "rpi4", "--kernels",
                           "-o", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2 and "give --remote user@host" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "calibration").exists()
