"""Tiny ONNX models and profiles for the profile tests, built directly with onnx.helper (fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def tiny_cnn(path: Path, size: int | None = 32, batch: int | str = "batch", width: int = 8, fc_in: int = 16,
             big_weight_mb: float = 0.0) -> dict:
    """Write a small CNN: dense 3x3 conv 1->W, ReLU, depthwise 3x3, 1x1 conv W->16, GAP, Gemm 16->4.

    Returns the hand-computed work at ``size`` (batch 1) for checking the feature extractor.
    ``big_weight_mb`` adds an extra (unused-by-shape) Gemm weight to make the model's memory large.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    s = size if size is not None else "S"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 1, s, s])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 4])
    w1 = numpy_helper.from_array(rng.standard_normal((width, 1, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((width, 1, 3, 3)).astype(np.float32), "w2")
    w3 = numpy_helper.from_array(rng.standard_normal((fc_in, width, 1, 1)).astype(np.float32), "w3")
    wf = numpy_helper.from_array(rng.standard_normal((4, fc_in)).astype(np.float32) * 0.1, "wf")
    bf = numpy_helper.from_array(np.zeros(4, np.float32), "bf")
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=width, name="dw"),
        helper.make_node("Conv", ["c2", "w3"], ["c3"], name="pw"),
        helper.make_node("GlobalAveragePool", ["c3"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits0"], transB=1, name="fc"),
    ]
    inits = [w1, w2, w3, wf, bf]
    if big_weight_mb > 0:
        n = int(big_weight_mb * 1e6 / 4 / 4)
        big = numpy_helper.from_array(rng.standard_normal((4, n)).astype(np.float32) * 1e-6, "big")
        ones = numpy_helper.from_array(np.ones((n,), np.float32), "ones")
        # logits = logits0 + MatMul(big, ones) (a [4] vector): touches every weight once per query.
        nodes += [helper.make_node("MatMul", ["big", "ones"], ["extra"], name="bigmm"),
                  helper.make_node("Add", ["logits0", "extra"], ["logits"], name="add")]
        inits += [big, ones]
    else:
        nodes.append(helper.make_node("Identity", ["logits0"], ["logits"], name="out"))
    graph = helper.make_graph(nodes, "tiny", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    hw = size or 0
    return {
        "macs_dense": hw * hw * width * 9 + hw * hw * fc_in * width,
        "macs_dw": hw * hw * width * 9,
        "macs_fc": fc_in * 4,
        "weight_bytes": 4 * (width * 9 + width * 9 + fc_in * width + 4 * fc_in),
    }


def write_profile(path: Path, name: str = "tiny", runtimes: str = '["onnxruntime"]', threads: int = 1,
                  batches: str = "[1, 2]", extra: str = "") -> Path:
    """Write a small hardware profile TOML."""
    path.write_text(
        f'name = "{name}"\ndevice = "cpu"\n\n[cpu]\ncores = 4\nclock_ghz = 1.5\nfma_per_cycle = 8\n\n'
        f"[run]\nruntimes = {runtimes}\nthreads = {threads}\nbatch_sizes = {batches}\n\n"
        f"[constraints]\nmin_fps = 30.0\nmax_memory_mb = 50.0\n{extra}"
    )
    return path


FAST_RULE = dict(warmup_runs=3, warmup_s=0.05, warmup_max_s=1.0, min_queries=30, min_time_s=0.1, max_time_s=2.0,
                 p90_rel_ci=0.5, floor_queries=5, runs=1)
FAST_CLI = ["--min-queries", "30", "--min-time", "0.1", "--max-time", "2", "--p90-ci", "0.5", "--warmup", "0.05",
            "--runs", "1"]


def tiny_qdq(src: Path, dst: Path) -> Path:
    """Quantise an fp32 tiny_cnn to an int8 QDQ model with ONNX Runtime's static quantiser (real frames-like input)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    import onnx

    size = onnx.load(str(src)).graph.input[0].type.tensor_type.shape.dim[2].dim_value or 32

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.batches = iter([{"x": rng.random((1, 1, size, size), dtype=np.float32)} for _ in range(4)])

        def get_next(self):  # noqa: ANN201 - onnxruntime's interface
            return next(self.batches, None)

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    return dst
