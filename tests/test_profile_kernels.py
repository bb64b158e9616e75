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
from kdbench.profile.kernel_memory import MIB, MemoryModel, memory_models, memory_plan
from kdbench.profile.kernels import (
    DISPATCH_STEM,
    Kernel,
    KernelCalibration,
    KernelModel,
    band_from_errors,
    calibrate_from_times,
    dense_conv_features,
    dispatch_model,
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


def test_a_dense_convolution_is_priced_as_its_gemm_by_hand():
    # 1x1, 32 -> 64 channels, 2x2 output: n = 4 pixels, padded to one 16-column panel; one pass over the weights.
    k = Kernel("conv1x1", 64 * 32 * 4, 32 * 4, 64 * 4, 64 * 32, {"cin": 32, "cout": 64, "hw": 2, "k": 1, "stride": 1,
                                                              "groups": 1})
    assert dense_conv_features(k) == [1.0, 1, 64 * 32 * 16, 32 * 16, 64 * 32 * 1, 64 * 4, 0.0]
    # 3x3 grouped, 64 -> 64 channels in 4 groups, 12x12 output: n = 144 -> 144 columns (9 panels), 2 passes of 128.
    g = Kernel("conv3x3", 0.0, 0.0, 64 * 144, 64 * 16 * 9, {"cin": 64, "cout": 64, "hw": 12, "k": 3, "stride": 1,
                                                           "groups": 4})
    assert dense_conv_features(g) == [1.0, 4, 4 * 16 * 144 * 144, 4 * 144 * 144, 4 * 16 * 144 * 2, 64 * 144, 0.0]
    # A 1x1 output is a matrix-vector product: its weights, not padded MACs.
    v = Kernel("conv3x3", 0.0, 0.0, 256.0, 256 * 64 * 9, {"cin": 64, "cout": 256, "hw": 1, "k": 3, "stride": 1,
                                                         "groups": 1})
    assert dense_conv_features(v) == [1.0, 1, 0.0, 64 * 9, 0.0, 256.0, 256 * 64 * 9]
    assert v.features(1) == [1.0, 0.0, 0.0, 256.0, 256 * 64 * 9]  # a version 1 calibration prices it as before
    assert Kernel("conv1x1", 5.0, 1.0, 2.0, 3.0).features() == [1.0, 5.0, 1.0, 2.0, 3.0]  # no shape: as before
    dw = Kernel("dwconvkxk", 96 * 25 * 49, 96 * 49, 96 * 49, 96 * 25, {"cin": 96, "cout": 96, "hw": 7, "k": 5,
                                                                       "stride": 1, "groups": 96})
    # per channel; from version 3 its taps x output rows: 25 x 7 per channel
    assert dw.features() == [1.0, 96, 96 * 25 * 49, 96 * 49, 96 * 49, 96 * 25 * 7] and dw.key == "dwconvkxk"
    assert dw.features(2) == dw.features()[:5] and dw.features(1)[-1] == 96 * 25


def test_the_suite_samples_grouped_convolutions_and_the_smallest_maps():
    shapes = {stem: graph_kernels(m)[0].shape for stem, m in micro_models(0)
              if stem.startswith(("conv3x3", "dwconvkxk"))}
    grouped = [s for stem, s in shapes.items() if stem.startswith("conv3x3") and 1 < s["groups"] < s["cin"]]
    assert len(grouped) >= 10 and all(s["cin"] == s["cout"] for s in grouped)
    assert {1, 2} <= {s["hw"] for s in shapes.values()}  # 3x3 and 5x5/7x7 kernels on a 32 px student's last maps


def _memory_times(warm: float, cold: float, cold_from_mib: float) -> dict[str, float]:
    """Synthetic chain times (us per run, 5 us of it the session's): ``warm`` / ``cold`` us per 256 KiB layer, the
    working set cold from ``cold_from_mib``; other layer sizes cost 2 us + 1 us per 16 KiB warm, 3x that cold."""
    us = {"trivial": 5.0}
    for stem, (kib, n) in memory_plan().items():
        if "__ws_" in stem:
            per = cold if kib * n / 1024 >= cold_from_mib else warm
        else:
            per = (2 + kib / 16) * (3 if "__cold_" in stem else 1)
        us[stem] = 5.0 + n * per
    return us


def test_memory_model_reads_the_working_set_curve_and_the_cold_cost_by_hand():
    model = MemoryModel.fit(_memory_times(20.0, 56.0, 16), run_us=5.0)
    assert [f for _, f in model.curve] == [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    assert [s for s, _ in model.curve] == [1, 4, 8, 12, 16, 24, 32, 48]
    assert model.cold_fraction(0.5) == 0.0 and model.cold_fraction(100) == 1.0
    assert model.cold_fraction(math.sqrt(12 * 16)) == pytest.approx(0.5)  # log-interpolated between 12 and 16 MiB
    # extra when cold: 256 KiB layers 56 - 20 = 36 us; others 2 * (2 + KiB / 16) = 4 + 2 * bytes / 16384, the same
    # line (4 + 32 = 36 at 256 KiB): the fit recovers it.
    c0, c1 = model.cold_us
    assert c0 == pytest.approx(4.0) and c1 * 16384 == pytest.approx(2.0)
    weights = [Kernel("conv1x1", weight_elems=MIB / 4), Kernel("dwconv3x3", weight_elems=9 * 64), Kernel("unary")]
    assert model.penalty_us(weights) == 0.0  # a working set of 1 MiB and a little stays in the cache
    # 1 MiB of weights and 32 MiB of activations: all cold; the depthwise and the weightless kernels pay nothing.
    big = weights + [Kernel("unary", in_elems=16 * MIB / 4, out_elems=16 * MIB / 4)]
    assert model.penalty_us(big) == pytest.approx(c0 + c1 * MIB)
    half = MemoryModel([[1.0, 0.0], [16.0, 0.5], [64.0, 1.0]], [3.0, 1e-6])
    assert half.cold_fraction(32.0) == pytest.approx(0.75) and half.cold_fraction(8.0) == pytest.approx(0.375)
    working_set = (MIB + 9 * 64 * 4 + 32 * MIB) / MIB
    assert half.penalty_us(big) == pytest.approx((0.5 + 0.5 * math.log(working_set / 16) / math.log(4)) * (3.0 + 1e-6 * MIB))
    again = MemoryModel.from_dict(json.loads(json.dumps(model.to_dict())))
    assert again == model and MemoryModel.fit({"trivial": 5.0}, 5.0) is None


def test_a_curve_only_rises_and_a_kernel_model_without_chains_has_no_memory_term():
    times = _memory_times(20.0, 40.0, 16)
    times["memory__ws_024"] = 5.0 + 96 * 29.0  # a noisy dip in the cold part: 0.45 after 1.0
    model = MemoryModel.fit(times, run_us=5.0)
    assert [f for _, f in model.curve] == [0.0, 0.0, 0.0, 0.0, 0.725, 0.725, 1.0, 1.0]  # pooled, not lifted or sunk
    times["memory__ws_001"] = 5.0 + 4 * 29.0  # a noisy first point no longer lifts every small working set:
    noisy = MemoryModel.fit(times, run_us=5.0)  # pooled with the warm ones (22.25 us), the curve's new 0
    assert [f for _, f in noisy.curve] == pytest.approx([0.0] * 4 + [12.25 / 17.75] * 2 + [1.0] * 2, abs=1e-4)  # rounded to 4 places
    k = KernelModel({"conv1x1": [1.0, 0, 0, 0, 0, 0, 0]}, 5.0, 1)
    heavy = [Kernel("conv1x1", weight_elems=16 * MIB, shape={"cin": 4096, "cout": 1024, "hw": 1, "k": 1, "stride": 1,
                                                             "groups": 1}, out_elems=1024)]
    assert k.predict_ms(heavy) == pytest.approx(0.006)
    k.memory = model
    assert k.predict_ms(heavy) == pytest.approx(0.006 + model.penalty_us(heavy) / 1000) and model.penalty_us(heavy) > 0
    assert KernelModel.from_dict(json.loads(json.dumps(k.to_dict()))) == k


def test_a_version_1_kernel_model_predicts_as_it_did():
    v1 = {"coefficients": {"conv3x3": [1.0, 1e-5, 0.0, 0.0, 1e-4]}, "run_us": 5.0, "threads": 1,
          "runtime": "onnxruntime", "precision": "fp32", "format_version": 1}
    model = KernelModel.from_dict(v1)
    k = Kernel("conv3x3", 1e6, 10.0, 10.0, 1e4, {"cin": 64, "cout": 256, "hw": 1, "k": 3, "stride": 1, "groups": 1})
    assert model.memory is None and model.predict_ms([k]) == pytest.approx((5.0 + 1.0 + 10.0 + 1.0) / 1000)


def test_a_version_2_kernel_model_predicts_as_it_did():
    v2 = {"coefficients": {"dwconvkxk": [1.0, 0.5, 1e-3, 0.0, 0.0]}, "run_us": 5.0, "threads": 1,
          "runtime": "onnxruntime", "precision": "fp32", "format_version": 2}
    model = KernelModel.from_dict(v2)
    dw = Kernel("dwconvkxk", 96 * 25 * 49, 96 * 49, 96 * 49, 96 * 25, {"cin": 96, "cout": 96, "hw": 7, "k": 5,
                                                                       "stride": 1, "groups": 96}, variant="5x5")
    # five regressors, the kind's coefficients (no 5x5 variant in the file), no dispatch term for the second kernel
    one = 1.0 + 0.5 * 96 + 1e-3 * 96 * 25 * 49
    assert model.node_us == 0.0 and model.predict_ms([dw, dw]) == pytest.approx((5.0 + 2 * one) / 1000)


def test_memory_chains_are_distinct_weights_that_pack_small(tmp_path: Path):
    models = dict(memory_models())
    assert set(models) == set(memory_plan())
    for stem, (kib, n) in memory_plan().items():
        inits = models[stem].graph.initializer
        assert len(inits) == n and all(math.prod(i.dims) * 4 == kib * 1024 for i in inits)
    chain = models["memory__warm_00064"].graph.initializer
    assert len({i.raw_data for i in chain}) == len(chain)  # no two layers share their bytes
    folder = tmp_path / "chains"
    folder.mkdir()
    for stem in ("memory__ws_004", "memory__cold_00064"):
        onnx.save(models[stem], str(folder / f"{stem}.onnx"))
    raw = sum(p.stat().st_size for p in folder.glob("*.onnx"))
    assert pack(folder, tmp_path / "k.tar").stat().st_size < raw / 20


def test_the_agent_times_the_memory_chains_and_the_fit_reads_them(tmp_path: Path):
    folder = tmp_path / "chains"
    folder.mkdir()
    for stem, model in memory_models():
        onnx.save(model, str(folder / f"{stem}.onnx"))
    out = time_suite(pack(folder, tmp_path / "k.tar"), "onnxruntime", 1, min_s=0.01)
    model = MemoryModel.fit(out["kernels_us"], out["kernels_us"]["trivial"])
    fractions = [f for _, f in model.curve]
    # Rising, from 0 to 1: the pooled ends (a noisy-high 32 MiB point pooled with 48 MiB once gave a top of 0.87
    # when the ends were the raw extremes).
    assert fractions == sorted(fractions) and (fractions[0], fractions[-1]) in ((0.0, 1.0), (0.0, 0.0))
    assert all(c >= 0 for c in model.cold_us) and any(c > 0 for c in model.cold_us)


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
                                     sizes=(32,), memory=False)
    assert len(rows) == 2 and all(r.latency_ms > 0 for r in rows)
    return cal


def test_calibration_fits_on_the_suite_and_checks_on_the_whole_models(tiny_calibration: KernelCalibration):
    cal = tiny_calibration
    assert set(cal.whole_ms) == {"mobilenet_v3_small@32", "resnet18@32"}
    assert [e["model"] for e in cal.validation] == sorted(cal.whole_ms) and cal.band_pct > 0
    for e in cal.validation:  # predicted from the kernels alone, never fitted on the whole model
        assert e["error_pct"] == pytest.approx(100 * (e["predicted_ms"] / e["observed_ms"] - 1))
    assert band_from_errors([e["error_pct"] for e in cal.validation]) == pytest.approx(cal.band_pct)
    # timed: the kernels, the trivial baseline, the dispatch chain and the two whole models
    assert cal.suite["kernels"] == sum(TINY_SUITE.values()) and len(cal.suite["times_us"]) == cal.suite["kernels"] + 4
    assert cal.model.memory is None and cal.suite["memory_chains"] is False
    # each further node: a fraction of a microsecond to a few (0.23 us on the 2-core EPYC)
    assert 0.01 < cal.model.node_us < 20 and DISPATCH_STEM in cal.suite["times_us"]
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


def _se_scale_graph() -> onnx.ModelProto:
    """x -> HardSwish -> GlobalAveragePool -> Sigmoid -> Mul(x, scale) -> Add(., constant) -> Gelu."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])
    nodes = [helper.make_node("HardSwish", ["x"], ["h"], name="hs"), helper.make_node("GlobalAveragePool", ["h"], ["p"]),
             helper.make_node("Sigmoid", ["p"], ["s"], name="sig"), helper.make_node("Mul", ["h", "s"], ["m"], name="scale"),
             helper.make_node("Add", ["m", "b"], ["a"], name="bias"), helper.make_node("Gelu", ["a"], ["y"], name="gelu")]
    b = numpy_helper.from_array(np.ones((1, 8, 1, 1), np.float32), "b")
    graph = helper.make_graph(nodes, "se", [x], [y], initializer=[b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=9)


def test_unary_and_broadcast_kernels_are_priced_by_their_own_variant():
    ks = {k.name: k for k in graph_kernels(_se_scale_graph())}
    assert ks["hs"].key == "unary:HardSwish" and ks["sig"].key == "unary:Sigmoid"
    assert ks["scale"].key == "eltwise:broadcast"  # an activation 8x1x1 scales 8x4x4: SE's channel scale
    assert ks["bias"].key == "eltwise" and ks["gelu"].key == "unary"  # a constant's broadcast; an op the suite lacks
    # Fit: HardSwish costs 3x Relu per element; the kind's own costs are fitted on both, for ops the suite lacks.
    samples = []
    for n in (1e3, 4e3, 1.6e4, 6.4e4):
        samples += [([Kernel("unary", 0.0, n, n, variant="Relu")], 5.0 + 1.0 + 1e-4 * n),
                    ([Kernel("unary", 0.0, n, n, variant="HardSwish")], 5.0 + 1.0 + 3e-4 * n)]
    model = KernelModel.fit(samples, run_us=5.0, threads=1)
    assert set(model.coefficients) == {"unary", "unary:Relu", "unary:HardSwish"}
    assert model.kernel_us(Kernel("unary", 0.0, 1e4, 1e4, variant="HardSwish")) == pytest.approx(4.0)
    assert model.kernel_us(Kernel("unary", 0.0, 1e4, 1e4, variant="Relu")) == pytest.approx(2.0)
    between = model.kernel_us(Kernel("unary", 0.0, 1e4, 1e4, variant="Gelu"))
    assert 2.0 < between < 4.0  # not timed alone: the kind's costs, fitted on every unary op
    # A version 2 calibration has no variants: every unary kernel pays the kind's costs, as it did.
    v2 = KernelModel.from_dict({**model.to_dict(), "format_version": 2,
                                "coefficients": {"unary": model.coefficients["unary"]}})
    assert v2.kernel_us(Kernel("unary", 0.0, 1e4, 1e4, variant="HardSwish")) == pytest.approx(between)


def test_the_suite_times_each_priced_unary_op_and_the_broadcast_scale():
    keys = [graph_kernels(m)[0].key for _, m in micro_models(0)]
    for key in ("unary:Relu", "unary:HardSwish", "unary:HardSigmoid", "unary:Sigmoid", "eltwise:broadcast"):
        assert keys.count(key) >= 8, key  # enough rows for its three regressors (intercept, input, output)


def test_each_further_kernel_pays_the_dispatch_the_chain_measured():
    relu = Kernel("unary", 0.0, 16.0, 16.0, variant="Relu")
    suite = {f"unary_{i:03d}": [Kernel("unary", 0.0, n, n, variant="Relu")] for i, n in enumerate((1e3, 1e4, 1e5))}
    us = {"trivial": 5.0, DISPATCH_STEM: 5.0 + 63 * 0.5, **{s: 5.0 + 1.0 + 1e-4 * k[0].in_elems for s, k in suite.items()}}
    model = calibrate_from_times(us, suite, {}, 1).model
    assert model.node_us == pytest.approx(0.5)  # (36.5 - 5) / 63 further Relus
    one = model.predict_ms([relu]) * 1000
    assert model.predict_ms([relu] * 3) * 1000 == pytest.approx(5.0 + 3 * (one - 5.0) + 2 * 0.5)
    assert calibrate_from_times({k: v for k, v in us.items() if k != DISPATCH_STEM}, suite, {}, 1).model.node_us == 0.0
    assert dispatch_model().graph.node[-1].name == "relu63" and len(dispatch_model().graph.node) == 64
