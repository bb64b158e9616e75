#!/usr/bin/env python3
"""kdbench measurement agent: time one model file with one runtime and print one JSON line.

Self-contained on purpose: it needs only the Python standard library, numpy and the runtime
(onnxruntime, openvino, or torch for the pytorch runtimes), never kdbench itself, so the same file
runs in a fresh local subprocess and is copied to a remote target (a Raspberry Pi) over ssh.

    python agent.py --model m.onnx --runtime onnxruntime --threads 4 --batch 1 --batch 4
    python agent.py --check --runtime openvino          # is the runtime there? which version?

Measurement rule (single-stream, as MLPerf's single-stream scenario and onnxruntime_perf_test /
OpenVINO benchmark_app in latency mode do it: one query in flight, the next issued when the
previous returns, same input tensor every time, random uniform [0, 1) data):

1. Warm-up, untimed: at least ``--warmup-runs`` (10) queries and ``--warmup-s`` (1 s) of them;
   a model slower than that stops after ``--warmup-max-s`` (10 s) with at least one query.
2. Timed batch-1 queries, each timed alone with ``time.perf_counter``. Stop when all of: at least
   ``--min-queries`` (200) queries, at least ``--min-time-s`` (2 s), and the p90's distribution-free
   95% confidence interval (order statistics, ranks n*0.9 -+ 1.96*sqrt(n*0.9*0.1)) has a half-width
   under ``--p90-rel-ci`` (2%) of the p90. Or stop at ``--max-time-s`` (30 s) with at least
   ``--floor-queries`` (10) queries; the record then says ``stable: false``.
3. Each larger batch: the same loop with the same rule, except min queries 20 and min time 1 s.
   Throughput = images / total timed seconds.

Memory: the baseline is the resident set (VmRSS) after importing numpy and the runtime and before
loading the model; the peak (VmHWM, /proc/self/status) is reset to the baseline first through
/proc/self/clear_refs where the kernel allows it. ``rss_increment_mb`` = peak - baseline.
Exit status: 0 with ``"ok": true``, 3 with ``"ok": false`` and an ``error`` (missing runtime, bad
model, ...), always one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import socket
import sys
import time
import traceback

AGENT_VERSION = "1"
RUNTIMES = ("onnxruntime", "onnxruntime-cuda", "openvino", "openvino-gpu", "pytorch", "pytorch-cuda")


class AgentError(Exception):
    """A problem to report as ``{"ok": false, "kind": ..., "error": ...}``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


# ----------------------------------------------------------------------------- memory


def _status_kb(field: str) -> float | None:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM), or None where there is no /proc."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def rss_mb() -> float | None:
    """Current resident set size in MB."""
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024.0


def peak_rss_mb() -> float | None:
    """Peak resident set size (high-water mark) in MB; falls back to getrusage off Linux."""
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb / 1024.0
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0
    except Exception:  # noqa: BLE001 - no way to read memory here
        return None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, writing 5 to clear_refs); True on success."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


# ----------------------------------------------------------------------------- statistics


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]) of an already sorted list."""
    if not sorted_values:
        return float("nan")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def p90_ci_rel(sorted_values: list[float]) -> float:
    """Relative half-width of a distribution-free 95% CI of the p90 from order statistics."""
    n = len(sorted_values)
    if n < 10:
        return float("inf")
    q = 0.9
    half = 1.96 * math.sqrt(n * q * (1 - q))
    lo = max(int(math.floor(n * q - half)) - 1, 0)
    hi = min(int(math.ceil(n * q + half)) - 1, n - 1)
    p90 = percentile(sorted_values, 90)
    if p90 <= 0:
        return float("inf")
    return (sorted_values[hi] - sorted_values[lo]) / 2.0 / p90


# ----------------------------------------------------------------------------- runtimes


def _input_spec(shape: list, dtype_name: str, batch: int, input_size: int | None) -> tuple[tuple[int, ...], str]:
    """Concrete input shape for a batch: dynamic dims filled from ``batch`` / ``input_size``."""
    dims = []
    for i, d in enumerate(shape):
        if isinstance(d, int) and d > 0:
            if i == 0 and d != batch:
                raise AgentError("fixed_batch", f"model input has a fixed batch of {d}; cannot run batch {batch}")
            dims.append(d)
        elif i == 0:
            dims.append(batch)
        elif i == 1:
            dims.append(1)
        else:
            if not input_size:
                raise AgentError("dynamic_size", "model input has a dynamic spatial size; pass --input-size")
            dims.append(int(input_size))
    return tuple(dims), dtype_name


class Runner:
    """Common interface: ``prepare(batch)`` builds the input, ``run()`` does one query."""

    name = ""
    version = ""
    device = "cpu"
    input_name = ""
    input_shape: list = []
    input_dtype = "float32"

    def prepare(self, batch: int, input_size: int | None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self) -> object:  # pragma: no cover - abstract
        raise NotImplementedError


class OrtRunner(Runner):
    """ONNX Runtime InferenceSession, the way onnxruntime_perf_test configures it."""

    def __init__(self, runtime: str, threads: int) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise AgentError("missing_runtime", f"onnxruntime is not installed for {sys.executable}: {err}") from None
        self.ort = ort
        self.name = runtime
        self.version = ort.__version__
        self.threads = threads
        if runtime == "onnxruntime-cuda":
            available = ort.get_available_providers()
            if "CUDAExecutionProvider" not in available:
                raise AgentError(
                    "missing_runtime",
                    f"onnxruntime {ort.__version__} has no CUDAExecutionProvider here (providers: {available})",
                )
            self.providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
            self.device = "cuda"
        else:
            self.providers = ["CPUExecutionProvider"]

    def load(self, path: str) -> None:
        """Create the session."""
        so = self.ort.SessionOptions()
        so.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = self.ort.ExecutionMode.ORT_SEQUENTIAL
        if self.threads > 0:
            so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        try:
            self.sess = self.ort.InferenceSession(path, sess_options=so, providers=self.providers)
        except Exception as err:  # noqa: BLE001 - the runtime's own message is the useful part
            raise AgentError("bad_model", f"onnxruntime could not load {os.path.basename(path)}: {err}") from None
        if self.device == "cuda" and "CUDAExecutionProvider" not in self.sess.get_providers():
            raise AgentError("missing_runtime", "CUDAExecutionProvider failed to initialise (see onnxruntime log)")
        inp = self.sess.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = [d if isinstance(d, int) else None for d in inp.shape]
        self.input_dtype = {"tensor(float16)": "float16", "tensor(uint8)": "uint8", "tensor(int8)": "int8"}.get(
            inp.type, "float32"
        )

    def prepare(self, batch: int, input_size: int | None) -> None:
        """Build the feed for a batch."""
        import numpy as np

        shape, dtype = _input_spec(self.input_shape, self.input_dtype, batch, input_size)
        self.shape = shape
        self.feed = {self.input_name: np.random.default_rng(0).random(shape, dtype=np.float32).astype(dtype)}

    def run(self) -> object:
        """One query."""
        return self.sess.run(None, self.feed)


class OpenVinoRunner(Runner):
    """OpenVINO compiled model with a latency hint, as benchmark_app -hint latency -api sync."""

    def __init__(self, runtime: str, threads: int) -> None:
        try:
            import openvino as ov
        except ImportError as err:
            raise AgentError("missing_runtime", f"openvino is not installed for {sys.executable}: {err}") from None
        self.ov = ov
        self.core = ov.Core()
        self.name = runtime
        self.version = ov.get_version()
        self.threads = threads
        self.device = "GPU" if runtime == "openvino-gpu" else "CPU"
        if self.device not in self.core.available_devices:
            raise AgentError(
                "missing_runtime",
                f"openvino {self.version} has no {self.device} device here (devices: {self.core.available_devices})",
            )

    def load(self, path: str) -> None:
        """Read and compile the model."""
        config: dict = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
        if self.threads > 0 and self.device == "CPU":
            config["INFERENCE_NUM_THREADS"] = str(self.threads)
        try:
            model = self.core.read_model(path)
            inp = model.inputs[0]
            pshape = inp.get_partial_shape()
            self.input_shape = [d.get_length() if d.is_static else None for d in pshape]
            self.input_name = inp.get_any_name()
            self.input_dtype = {"f16": "float16", "u8": "uint8", "i8": "int8"}.get(inp.get_element_type().get_type_name(), "float32")
            self.model = model
            self.compiled = None
            self.config = config
        except Exception as err:  # noqa: BLE001
            raise AgentError("bad_model", f"openvino could not read {os.path.basename(path)}: {err}") from None

    def prepare(self, batch: int, input_size: int | None) -> None:
        """Reshape to the batch, compile, and build the input tensor."""
        import numpy as np

        shape, dtype = _input_spec(self.input_shape, self.input_dtype, batch, input_size)
        self.shape = shape
        try:
            self.model.reshape({self.model.inputs[0]: list(shape)})
            self.compiled = self.core.compile_model(self.model, self.device, self.config)
        except Exception as err:  # noqa: BLE001
            raise AgentError("bad_model", f"openvino could not compile for shape {list(shape)}: {err}") from None
        self.request = self.compiled.create_infer_request()
        self.data = np.random.default_rng(0).random(shape, dtype=np.float32).astype(dtype)
        self.request.set_input_tensor(self.ov.Tensor(self.data))

    def run(self) -> object:
        """One synchronous query."""
        return self.request.infer()


class TorchRunner(Runner):
    """PyTorch eager: a ``.pt2`` exported program, or a kdbench checkpoint where kdbench is importable."""

    def __init__(self, runtime: str, threads: int, precision: str) -> None:
        try:
            import torch
        except ImportError as err:
            raise AgentError("missing_runtime", f"torch is not installed for {sys.executable}: {err}") from None
        self.torch = torch
        self.name = runtime
        self.version = torch.__version__
        self.device = "cuda" if runtime == "pytorch-cuda" else "cpu"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise AgentError("missing_runtime", f"torch {torch.__version__} sees no CUDA device here")
        if threads > 0:
            torch.set_num_threads(threads)
        if precision not in ("fp32", "fp16"):
            raise AgentError("bad_precision", f"pytorch runtime runs fp32 or fp16, not {precision}")
        if precision == "fp16" and self.device == "cpu":
            raise AgentError("bad_precision", "fp16 eager inference is for CUDA; use precision fp32 on CPU")
        self.precision = precision

    def load(self, path: str) -> None:
        """Load the module and move it to the device and precision."""
        torch = self.torch
        try:
            if path.endswith(".pt2"):
                module = torch.export.load(path).module()
                shape = None
            else:
                from kdbench.models.checkpoint import load_checkpoint  # only where kdbench is installed

                module, meta = load_checkpoint(path)
                shape = (meta or {}).get("input_size")
        except ImportError:
            raise AgentError("bad_model", "a .pt checkpoint needs kdbench installed; export a .pt2 for remote targets") from None
        except Exception as err:  # noqa: BLE001
            raise AgentError("bad_model", f"torch could not load {os.path.basename(path)}: {err}") from None
        dtype = torch.float16 if self.precision == "fp16" else torch.float32
        self.module = module.to(self.device, dtype)
        if hasattr(self.module, "eval"):
            try:
                self.module.eval()
            except Exception:  # noqa: BLE001 - exported GraphModules may refuse eval()
                pass
        self.dtype = dtype
        self.input_shape = [None, 1, shape, shape]
        self.input_name = "x"
        self.input_dtype = self.precision

    def prepare(self, batch: int, input_size: int | None) -> None:
        """Build the input on the device."""
        shape, _ = _input_spec(self.input_shape, "float32", batch, input_size)
        self.shape = shape
        self.x = self.torch.rand(shape, device=self.device, dtype=self.dtype)

    def run(self) -> object:
        """One query, synchronised so the time covers the device work."""
        with self.torch.inference_mode():
            out = self.module(self.x)
        if self.device == "cuda":
            self.torch.cuda.synchronize()
        return out


def make_runner(runtime: str, threads: int, precision: str) -> Runner:
    """Import the runtime and return its runner (AgentError when it is missing)."""
    if runtime in ("onnxruntime", "onnxruntime-cuda"):
        return OrtRunner(runtime, threads)
    if runtime in ("openvino", "openvino-gpu"):
        return OpenVinoRunner(runtime, threads)
    if runtime in ("pytorch", "pytorch-cuda"):
        return TorchRunner(runtime, threads, precision)
    raise AgentError("bad_runtime", f"unknown runtime {runtime!r}; expected one of {list(RUNTIMES)}")


# ----------------------------------------------------------------------------- timing


def warm_up(run, runs: int, min_s: float, max_s: float) -> dict:
    """Untimed warm-up: at least ``runs`` queries and ``min_s`` seconds, at most ``max_s``."""
    start = time.perf_counter()
    n = 0
    while True:
        run()
        n += 1
        elapsed = time.perf_counter() - start
        if (n >= runs and elapsed >= min_s) or elapsed >= max_s:
            return {"runs": n, "seconds": round(elapsed, 4)}


def time_queries(run, min_queries: int, min_time_s: float, max_time_s: float, rel_ci: float, floor_queries: int) -> dict:
    """Single-stream timed loop following the module's measurement rule; returns latencies in ms."""
    clock = time.perf_counter
    lat: list[float] = []
    append = lat.append
    start = clock()
    next_check = min_queries
    ci = float("inf")
    stable = False
    while True:
        t0 = clock()
        run()
        t1 = clock()
        append(t1 - t0)
        n = len(lat)
        elapsed = t1 - start
        if n >= next_check and elapsed >= min_time_s:
            ci = p90_ci_rel(sorted(lat))
            if ci < rel_ci:
                stable = True
                break
            next_check = n + max(10, n // 10)
        if elapsed >= max_time_s and n >= floor_queries:
            ci = p90_ci_rel(sorted(lat))
            stable = ci < rel_ci and n >= min_queries
            break
    total = sum(lat)
    ms = sorted(x * 1000.0 for x in lat)
    return {
        "n": len(ms),
        "wall_s": round(clock() - start, 4),
        "timed_s": round(total, 4),
        "latency_ms": {
            "p50": percentile(ms, 50),
            "p90": percentile(ms, 90),
            "p99": percentile(ms, 99),
            "mean": total * 1000.0 / len(ms),
            "min": ms[0],
            "max": ms[-1],
        },
        "p90_ci_rel": ci if math.isfinite(ci) else None,
        "stable": stable,
    }


def host_info() -> dict:
    """Who ran the measurement."""
    return {
        "hostname": socket.gethostname(),
        "machine": platform.machine(),
        "system": platform.system(),
        "release": platform.release(),
        "processor": platform.processor() or _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def _cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, or ''."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def measure(args: argparse.Namespace) -> dict:
    """Load the model, warm up and time every requested batch; returns the JSON-able result."""
    import numpy as np  # noqa: F401 - part of the baseline, as in a deployed app

    runner = make_runner(args.runtime, args.threads, args.precision)
    baseline = rss_mb()
    hwm_reset = reset_peak_rss()
    if not os.path.isfile(args.model):
        raise AgentError("bad_model", f"model file not found: {args.model}")
    t0 = time.perf_counter()
    runner.load(args.model)
    load_s = time.perf_counter() - t0
    size = os.path.getsize(args.model)
    if args.model.endswith(".xml"):
        bin_path = args.model[:-4] + ".bin"
        if os.path.isfile(bin_path):
            size += os.path.getsize(bin_path)
    result: dict = {
        "ok": True,
        "agent_version": AGENT_VERSION,
        "model": os.path.basename(args.model),
        "file_size_mb": size / 1e6,
        "runtime": runner.name,
        "runtime_version": runner.version,
        "device": runner.device,
        "threads": args.threads,
        "precision": args.precision,
        "input_name": runner.input_name,
        "load_s": round(load_s, 4),
        "host": host_info(),
        "rule": {
            "warmup_runs": args.warmup_runs,
            "warmup_s": args.warmup_s,
            "warmup_max_s": args.warmup_max_s,
            "min_queries": args.min_queries,
            "min_time_s": args.min_time_s,
            "max_time_s": args.max_time_s,
            "p90_rel_ci": args.p90_rel_ci,
            "floor_queries": args.floor_queries,
        },
        "batches": [],
    }
    for batch in sorted(set(args.batch)):
        entry: dict = {"batch": batch}
        try:
            runner.prepare(batch, args.input_size)
            entry["input_shape"] = list(runner.shape)
            entry["warmup"] = warm_up(runner.run, args.warmup_runs, args.warmup_s, args.warmup_max_s)
            if batch == 1:
                timing = time_queries(
                    runner.run, args.min_queries, args.min_time_s, args.max_time_s, args.p90_rel_ci, args.floor_queries
                )
            else:
                timing = time_queries(
                    runner.run, min(20, args.min_queries), min(1.0, args.min_time_s), args.max_time_s,
                    args.p90_rel_ci, min(3, args.floor_queries),
                )
            entry.update(timing)
            entry["throughput"] = batch * timing["n"] / timing["timed_s"] if timing["timed_s"] > 0 else None
            entry["ok"] = True
        except AgentError as err:
            entry.update({"ok": False, "kind": err.kind, "error": str(err)})
        entry["peak_rss_mb"] = peak_rss_mb()  # high-water mark so far: batch 1 runs first
        result["batches"].append(entry)
        if batch == 1 and "input_shape" in entry:
            result["input_size"] = entry["input_shape"][-1]
    if "input_size" not in result:
        result["input_size"] = args.input_size
    # The deployment figure is the peak while serving batch 1 (the first batch timed); larger
    # batches carry their own high-water mark in their entry.
    peak = result["batches"][0].get("peak_rss_mb") if result["batches"] else peak_rss_mb()
    result["baseline_rss_mb"] = baseline
    result["peak_rss_mb"] = peak
    result["peak_reset"] = hwm_reset
    result["rss_increment_mb"] = (peak - baseline) if (peak is not None and baseline is not None) else None
    return result


def check(args: argparse.Namespace) -> dict:
    """Report whether the runtime imports here, with its version and the host."""
    runner = make_runner(args.runtime, args.threads, args.precision)
    import numpy as np

    return {
        "ok": True,
        "agent_version": AGENT_VERSION,
        "runtime": runner.name,
        "runtime_version": runner.version,
        "device": runner.device,
        "numpy_version": np.__version__,
        "host": host_info(),
    }


def build_parser() -> argparse.ArgumentParser:
    """The agent's command line."""
    p = argparse.ArgumentParser(description="kdbench measurement agent (prints one JSON line)")
    p.add_argument("--model", help="model file (.onnx, .xml, .pt2)")
    p.add_argument("--runtime", required=True, choices=RUNTIMES)
    p.add_argument("--check", action="store_true", help="only check that the runtime imports")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = runtime default)")
    p.add_argument("--precision", default="fp32", help="fp32|fp16|int8 (pytorch: casts the model)")
    p.add_argument("--batch", type=int, action="append", default=None, help="batch size (repeatable)")
    p.add_argument("--input-size", type=int, default=None, help="spatial size when the model's is dynamic")
    p.add_argument("--warmup-runs", type=int, default=10)
    p.add_argument("--warmup-s", type=float, default=1.0)
    p.add_argument("--warmup-max-s", type=float, default=10.0)
    p.add_argument("--min-queries", type=int, default=200)
    p.add_argument("--min-time-s", type=float, default=2.0)
    p.add_argument("--max-time-s", type=float, default=30.0)
    p.add_argument("--p90-rel-ci", type=float, default=0.02)
    p.add_argument("--floor-queries", type=int, default=10)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the agent; print exactly one JSON line; exit 0 (ok) or 3 (error)."""
    args = build_parser().parse_args(argv)
    if args.batch is None:
        args.batch = [1]
    try:
        if args.check:
            out = check(args)
        else:
            if not args.model:
                raise AgentError("usage", "--model is required unless --check")
            out = measure(args)
        code = 0
    except AgentError as err:
        out = {"ok": False, "kind": err.kind, "error": str(err), "runtime": args.runtime, "host": host_info()}
        code = 3
    except Exception as err:  # noqa: BLE001 - report, never a bare traceback on a remote
        out = {
            "ok": False,
            "kind": "crash",
            "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(limit=5),
            "runtime": args.runtime,
            "host": host_info(),
        }
        code = 3
    sys.stdout.write(json.dumps(out, default=float) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
