#!/usr/bin/env python3
"""kdbench measurement agent: time one model file with one runtime and print one JSON line.

Self-contained on purpose: it needs only the Python standard library, numpy and the runtime
(onnxruntime, openvino, or torch for the pytorch runtimes), never kdbench itself, so the same file
runs in a fresh local subprocess and is copied to a remote target (a Raspberry Pi) over ssh.

    python agent.py --model m.onnx --runtime onnxruntime --threads 4 --batch 1 --batch 4
    python agent.py --check --runtime openvino          # is the runtime there? which version?
    python agent.py --serve --runtime onnxruntime       # fork server: one JSON request per stdin line
    python agent.py --kernels suite.tar --runtime onnxruntime --threads 4   # micro-benchmarks (profile calibrate)

Fork server (``--serve``, Linux and macOS): the server imports numpy and the runtime once, then for
each request line ``{"id", "args": [the arguments above], "timeout_s"}`` forks a child that runs
exactly what a fresh process runs (``run_argv``), writes its JSON result through a pipe and leaves
with ``os._exit``; the server answers one JSON line per request (``request_id`` added). The child's
stdout and stderr go to a scratch file, so nothing the runtime prints reaches the protocol. A
child killed by a signal (a segfault, the out-of-memory killer) or exiting without a result is one
``{"ok": false, "kind": "died"}`` answer naming the signal; one still running at ``timeout_s`` is
killed (``"kind": "timeout"``); the server carries on either way and ends when stdin closes.
Every result says how its process was made: ``"process": {"mode": "fresh"|"fork-server", "pid"}``
(+ ``server_pid`` and ``fork_rss_mb``, the child's RSS when it started).

Measurement rule (single-stream, as MLPerf's single-stream scenario and onnxruntime_perf_test /
OpenVINO benchmark_app in latency mode do it: one query in flight, the next issued when the
previous returns, same input tensor every time). The input is real frames (``--frames``: a saved
``.npy`` sample of the store's uint8 frames ``[N, S, S]``), resized to the model's size and cast to
its input type (float: /255; uint8: as is; int8: minus 128); without frames, a labelled synthetic
ramp, never zeros:

1. Warm-up, untimed: at least ``--warmup-runs`` (10) queries and ``--warmup-s`` (1 s) of them;
   a model slower than that stops after ``--warmup-max-s`` (10 s) with at least one query.
2. Timed batch-1 queries, each timed alone with ``time.perf_counter``. Stop when all of: at least
   ``--min-queries`` (200) queries, at least ``--min-time-s`` (2 s), and the p90's distribution-free
   95% confidence interval (order statistics, ranks n*0.9 -+ 1.96*sqrt(n*0.9*0.1)) has a half-width
   under ``--p90-rel-ci`` (2%) of the p90. Or stop at ``--max-time-s`` (30 s) with at least
   ``--floor-queries`` (10) queries; the record then says ``stable: false``.
3. Each larger batch: the same loop with the same rule, except min queries 20 and min time 1 s.
   Throughput = images / total timed seconds.

Memory, one definition (the same as the estimator's): the runtime is imported and first runs a
trivial one-op model (a 4x4 Relu; its session stays open), then the resident set is read
(``runtime_baseline_rss_mb``) and the peak (VmHWM, /proc/self/status) is reset to it through
/proc/self/clear_refs. ``model_memory_mb`` = peak while loading the model and serving batch 1 -
that baseline: the model's weights, its activation arena and its session, not the runtime itself.
``process_peak_rss_mb`` is the process's peak RSS (runtime included). Without a peak reset (old
kernels) ``model_memory_mb`` is None rather than a figure that includes the import. In a fork
server's child the same steps run in the child (the one-op model, the baseline, the reset), so
``model_memory_mb`` keeps its meaning; the child's RSS, though, holds only the pages it mapped
itself, so ``runtime_baseline_rss_mb`` and ``process_peak_rss_mb`` leave out library pages that
only the server touched (about 10-15 MB for onnxruntime and OpenVINO).

Conditions recorded before and after timing: load average, CPU frequency, and on a Raspberry Pi the
SoC temperature and ``vcgencmd get_throttled``. ``--raw-frame HxWxC`` also times the numpy-only
frame preprocessing (grey, crop, area resize, mask) on a raw frame of the source's resolution, so
the record can state the fps of the whole frame path beside the model's.
Exit status: 0 with ``"ok": true``, 3 with ``"ok": false`` and an ``error`` (missing runtime, bad
model, ...), always one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import socket
import sys
import time
import traceback
from types import ModuleType

AGENT_VERSION = "3"
# The runtimes this agent can run: model formats each reads, its device and, for OpenVINO, the
# inference precision set explicitly (INFERENCE_PRECISION_HINT; f32 unless the name asks otherwise).
RUNTIME_TABLE: dict[str, dict] = {
    "onnxruntime": {"formats": ("onnx",), "device": "cpu"},
    "onnxruntime-cuda": {"formats": ("onnx",), "device": "cuda"},
    "openvino": {"formats": ("onnx", "openvino"), "device": "CPU", "inference_precision": "f32"},
    "openvino-bf16": {"formats": ("onnx", "openvino"), "device": "CPU", "inference_precision": "bf16"},
    "openvino-fp16": {"formats": ("onnx", "openvino"), "device": "CPU", "inference_precision": "f16"},
    "openvino-gpu": {"formats": ("onnx", "openvino"), "device": "GPU", "inference_precision": "f32"},
    "pytorch": {"formats": ("pt2",), "device": "cpu"},
    "pytorch-cuda": {"formats": ("pt2",), "device": "cuda"},
}
RUNTIMES = tuple(RUNTIME_TABLE)
# A one-op ONNX model (Relu on [1, 1, 4, 4], opset 13): the runtime's own footprint is measured on it.
TRIVIAL_ONNX_B64 = (
    "CAcSB2tkYmVuY2g6UQoMCgF4EgF5IgRSZWx1Egd0cml2aWFsWhsKAXgSFgoUCAESEAoCCAEKAggBCgIIBAoCCARiGwoBeRIWChQIARIQCgIIAQoCCAEKAggECgIIBEIECgAQDQ=="
)
_PRECISION_NAMES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


class AgentError(Exception):
    """A problem to report as ``{"ok": false, "kind": ..., "error": ...}``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _import_runtime(module: str) -> ModuleType:
    """Import a runtime's Python package, or AgentError("missing_runtime") naming this interpreter."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise AgentError("missing_runtime", f"{module} is not installed for {sys.executable}: {err}") from None


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


def make_input(shape: tuple[int, ...], dtype: str, frames: object) -> object:
    """The input tensor: frames (uint8 [N, S, S]) cycled over the batch and resized, cast to ``dtype``."""
    import numpy as np

    b, c, h, w = shape
    if frames is None:  # a deterministic ramp in [0, 1): not zeros for any dtype
        ramp = (np.arange(h * w, dtype=np.float32).reshape(h, w) % 251) * np.float32(255.0 / 251)
        src = np.broadcast_to(ramp, (b, c, h, w))
    else:
        f = np.asarray(frames)
        idx = np.arange(b) % len(f)
        ys = (np.arange(h) * f.shape[1] // h)
        xs = (np.arange(w) * f.shape[2] // w)
        src = f[idx][:, ys][:, :, xs].astype(np.float32)[:, None].repeat(c, axis=1)
    if dtype == "uint8":
        return np.ascontiguousarray(src.astype(np.uint8))
    if dtype == "int8":
        return np.ascontiguousarray((src - 128.0).astype(np.int8))
    return np.ascontiguousarray((src / 255.0).astype(dtype))


class Runner:
    """Common interface: ``trivial()`` runs the one-op baseline, ``prepare(batch)`` builds the input, ``run()`` one query."""

    name = ""
    version = ""
    device = "cpu"
    input_name = ""
    input_shape: list = []
    input_dtype = "float32"
    frames: object = None
    inference_precision: str | None = None

    def trivial(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare(self, batch: int, input_size: int | None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self) -> object:  # pragma: no cover - abstract
        raise NotImplementedError


class OrtRunner(Runner):
    """ONNX Runtime InferenceSession, the way onnxruntime_perf_test configures it."""

    def __init__(self, runtime: str, threads: int) -> None:
        ort = _import_runtime("onnxruntime")
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

    def _options(self) -> object:
        """Session options as onnxruntime_perf_test sets them."""
        so = self.ort.SessionOptions()
        so.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = self.ort.ExecutionMode.ORT_SEQUENTIAL
        if self.threads > 0:
            so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        return so

    def trivial(self) -> None:
        """Load and run the one-op model; its session stays open (part of the runtime baseline)."""
        import numpy as np

        self.trivial_sess = self.ort.InferenceSession(trivial_model(), sess_options=self._options(),
                                                      providers=self.providers)
        for _ in range(3):
            self.trivial_sess.run(None, {"x": np.ones((1, 1, 4, 4), np.float32)})

    def load(self, path: str) -> None:
        """Create the session."""
        try:
            self.sess = self.ort.InferenceSession(path, sess_options=self._options(), providers=self.providers)
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
        self.feed = {self.input_name: make_input(shape, dtype, self.frames)}

    def run(self) -> object:
        """One query."""
        return self.sess.run(None, self.feed)


class OpenVinoRunner(Runner):
    """OpenVINO compiled model with a latency hint, as benchmark_app -hint latency -api sync."""

    def __init__(self, runtime: str, threads: int) -> None:
        ov = _import_runtime("openvino")
        self.ov = ov
        self.core = ov.Core()
        self.name = runtime
        self.version = ov.get_version()
        self.threads = threads
        self.device = RUNTIME_TABLE[runtime]["device"]
        self.hint = RUNTIME_TABLE[runtime].get("inference_precision")
        if self.device not in self.core.available_devices:
            raise AgentError(
                "missing_runtime",
                f"openvino {self.version} has no {self.device} device here (devices: {self.core.available_devices})",
            )

    def _config(self) -> dict:
        """Latency hint, one stream, the thread count and the explicit inference precision."""
        config: dict = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
        if self.threads > 0 and self.device == "CPU":
            config["INFERENCE_NUM_THREADS"] = str(self.threads)
        if self.hint:
            config["INFERENCE_PRECISION_HINT"] = self.hint
        return config

    def trivial(self) -> None:
        """Compile and run the one-op model (kept alive: part of the runtime baseline)."""
        import tempfile

        import numpy as np

        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "trivial.onnx")
            with open(path, "wb") as fh:
                fh.write(trivial_model())
            self.trivial_compiled = self.core.compile_model(self.core.read_model(path), self.device, self._config())
        req = self.trivial_compiled.create_infer_request()
        for _ in range(3):
            req.infer({0: np.ones((1, 1, 4, 4), np.float32)})

    def load(self, path: str) -> None:
        """Read and compile the model."""
        config = self._config()
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
        self.data = make_input(shape, dtype, self.frames)
        self.request.set_input_tensor(self.ov.Tensor(self.data))
        try:
            ran = self.compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        except Exception:  # noqa: BLE001 - a device without the property
            ran = None
        self.inference_precision = _PRECISION_NAMES.get(ran, ran)

    def run(self) -> object:
        """One synchronous query."""
        return self.request.infer()


class TorchRunner(Runner):
    """PyTorch eager: a ``.pt2`` exported program, or a kdbench checkpoint where kdbench is importable."""

    def __init__(self, runtime: str, threads: int, precision: str) -> None:
        torch = _import_runtime("torch")
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
        self.inference_precision = precision

    def trivial(self) -> None:
        """One tiny op on the device (the runtime baseline)."""
        x = self.torch.ones((1, 1, 4, 4), device=self.device)
        for _ in range(3):
            self.torch.relu(x)

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
        self.x = self.torch.from_numpy(make_input(shape, "float32", self.frames)).to(self.device, self.dtype)

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
    if runtime.startswith("openvino") and runtime in RUNTIME_TABLE:
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


def _read(path: str) -> str | None:
    """A small text file's content, or None."""
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def cpu_mhz() -> float | None:
    """Mean current CPU frequency in MHz (cpufreq, else /proc/cpuinfo), or None."""
    vals = []
    for i in range(os.cpu_count() or 1):
        v = _read(f"/sys/devices/system/cpu/cpu{i}/cpufreq/scaling_cur_freq")
        if v and v.isdigit():
            vals.append(int(v) / 1000.0)
    if not vals:
        for line in (_read("/proc/cpuinfo") or "").splitlines():
            if line.lower().startswith("cpu mhz"):
                vals.append(float(line.split(":", 1)[1]))
    return round(sum(vals) / len(vals), 1) if vals else None


def conditions() -> dict:
    """Host state now: load average, CPU MHz; on a Pi also SoC temperature and the throttling flags."""
    import shutil
    import subprocess

    out: dict = {"time": round(time.time(), 3), "cpu_mhz": cpu_mhz()}
    try:
        out["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        out["load_avg"] = None
    temp = _read("/sys/class/thermal/thermal_zone0/temp")
    out["temperature_c"] = int(temp) / 1000.0 if temp and temp.lstrip("-").isdigit() else None
    out["throttled"] = None
    if shutil.which("vcgencmd"):
        try:
            text = subprocess.run(["vcgencmd", "get_throttled"], capture_output=True, text=True, timeout=5).stdout
            out["throttled"] = text.strip().split("=", 1)[-1] or None
        except (OSError, subprocess.SubprocessError):
            pass
    return out


# ----------------------------------------------------------------------------- frame preprocessing

LUMA_BGR = (0.114, 0.587, 0.299)


def area_matrix(n_in: int, n_out: int) -> object:
    """[n_out, n_in] weights of area interpolation (each output pixel averages the input it covers)."""
    import numpy as np

    m = np.zeros((n_out, n_in), np.float32)
    scale = n_in / n_out
    for o in range(n_out):
        lo, hi = o * scale, (o + 1) * scale
        for i in range(int(math.floor(lo)), min(int(math.ceil(hi)), n_in)):
            m[o, i] = (min(hi, i + 1) - max(lo, i)) / scale
    return m


def fan_mask(size: int) -> object:
    """The harmonisation's fan mask (apex top centre, radius 0.96 * size, half-angle 32 degrees)."""
    import numpy as np

    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx = xs - size / 2.0
    angle = np.degrees(np.arctan2(np.abs(dx), ys))
    return ((np.hypot(dx, ys) <= 0.96 * size) & (angle <= 32.0)).astype(np.float32)


def time_preprocess(raw_shape: tuple[int, ...], size: int, min_s: float = 0.5, min_n: int = 20) -> dict:
    """Time grey -> square crop -> area resize -> mask -> [0, 1] on a raw frame, numpy only (p50 ms)."""
    import numpy as np

    frame = np.random.default_rng(0).integers(0, 256, raw_shape, dtype=np.uint8)
    h, w = raw_shape[:2]
    side = min(h, w)
    left = (w - side) // 2
    rh, rw = area_matrix(side, size), area_matrix(side, size).T.copy()
    mask = fan_mask(size) / np.float32(255.0)
    luma = np.array(LUMA_BGR, np.float32)

    def one() -> object:
        square = frame[:side, left:left + side]
        grey = square @ luma if square.ndim == 3 else square.astype(np.float32)
        return (rh @ grey @ rw) * mask

    lat = []
    start = time.perf_counter()
    while len(lat) < min_n or time.perf_counter() - start < min_s:
        t0 = time.perf_counter()
        one()
        lat.append((time.perf_counter() - t0) * 1000.0)
    lat.sort()
    return {"raw_shape": list(raw_shape), "size": size, "n": len(lat), "p50_ms": percentile(lat, 50),
            "p90_ms": percentile(lat, 90), "steps": "grey, square crop, area resize, fan mask (numpy)"}


def load_frames(path: str | None) -> tuple[object, str]:
    """The saved frame sample (uint8 [N, S, S]) and a label of where the input comes from."""
    if not path:
        return None, "synthetic ramp (no frames given)"
    import numpy as np

    try:
        frames = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise AgentError("bad_frames", f"--frames {os.path.basename(path)}: not a readable .npy: {err}") from None
    if frames.ndim != 3 or len(frames) == 0:
        raise AgentError("bad_frames", f"--frames {os.path.basename(path)}: shape {frames.shape}; expected [N, S, S]")
    if frames.dtype != np.uint8:
        frames = np.clip(frames * (255.0 if frames.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return frames, f"frames {os.path.basename(path)} ({len(frames)} x {frames.shape[1]}x{frames.shape[2]})"


def host_info() -> dict:
    """Who ran the measurement (worked out once per process: a fork server's children inherit it)."""
    global _HOST_INFO
    if _HOST_INFO is None:
        _HOST_INFO = _read_host_info()
    return dict(_HOST_INFO)


_HOST_INFO: dict | None = None


def _read_host_info() -> dict:
    """Host name, machine, system, processor, CPUs, Python."""
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
    runner.frames, input_source = load_frames(args.frames)
    if not os.path.isfile(args.model):
        raise AgentError("bad_model", f"model file not found: {args.model}")
    runner.trivial()
    before_reset_peak = peak_rss_mb()
    baseline = rss_mb()
    hwm_reset = reset_peak_rss()
    cond_before = conditions()
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
        "input_source": input_source,
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
    result["conditions"] = {"before": cond_before, "after": conditions()}
    ran = runner.inference_precision
    # an int8 file runs its quantised layers in int8 and the rest at the runtime's inference precision
    result["inference_precision"] = (f"int8+{ran}" if args.precision == "int8" and ran and ran != "int8"
                                     else ran or args.precision)
    # The deployment figure is the peak while serving batch 1 (the first batch timed); larger
    # batches carry their own high-water mark in their entry.
    peak = result["batches"][0].get("peak_rss_mb") if result["batches"] else peak_rss_mb()
    result["runtime_baseline_rss_mb"] = baseline
    result["peak_reset"] = hwm_reset
    result["model_memory_mb"] = (peak - baseline) if (hwm_reset and peak is not None and baseline is not None) else None
    result["process_peak_rss_mb"] = max(v for v in (peak, before_reset_peak) if v is not None) if peak else before_reset_peak
    if args.raw_frame and result.get("input_size"):
        try:
            raw = tuple(int(v) for v in args.raw_frame.lower().split("x"))
        except ValueError:
            raise AgentError("usage", f"--raw-frame {args.raw_frame!r}: expected HxW or HxWxC") from None
        result["preprocess"] = time_preprocess(raw, int(result["input_size"]))
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


# ----------------------------------------------------------------------------- fork server

SERVE_GRACE_S = 5.0  # a child that closed its pipe gets this long to exit before it is killed
_CHANNEL_FD: int | None = None  # the server's protocol output; a child closes its copy


def runtime_module(runtime: str) -> str:
    """The Python package a runtime imports."""
    if runtime.startswith("onnxruntime"):
        return "onnxruntime"
    return "openvino" if runtime.startswith("openvino") else "torch"


def preload(runtime: str) -> dict:
    """Import numpy, the runtime's package and what a measurement imports, once, before any fork."""
    import base64  # noqa: F401 - the children's trivial model
    import shutil  # noqa: F401 - conditions()
    import subprocess  # noqa: F401 - conditions()
    import tempfile  # noqa: F401 - OpenVINO's trivial model

    import numpy  # noqa: F401

    host_info()
    try:
        _import_runtime(runtime_module(runtime))
        error = None
    except AgentError as err:  # each child then reports it, as a fresh process would
        error = str(err)
    return {"runtime_module": runtime_module(runtime), "import_error": error}


def serve(runtime: str) -> int:
    """Fork server: read one JSON request per stdin line, answer one JSON result per stdout line.

    A request is ``{"id": ..., "args": [agent arguments], "timeout_s": 600}``; each one is measured in
    a child forked for it (``fork_measure``). Runs until stdin closes."""
    if not hasattr(os, "fork"):
        sys.stdout.write(json.dumps({"ready": False, "error": "os.fork is not available here"}) + "\n")
        return 3
    global _CHANNEL_FD
    channel = os.fdopen(os.dup(1), "w")  # the protocol; stray prints of the runtime go to stderr
    _CHANNEL_FD = channel.fileno()
    os.dup2(2, 1)
    info = preload(runtime)
    import warnings

    # Python >= 3.12 warns on forking with native threads alive: here the idle pools of numpy's BLAS and of the
    # runtime's import. A child that hung on one would be killed at its timeout; the tests check children measure.
    warnings.filterwarnings("ignore", message=".*multi-threaded.*fork", category=DeprecationWarning)
    _send(channel, {"ready": True, "pid": os.getpid(), "runtime": runtime, **info})
    for line in iter(sys.stdin.readline, ""):
        if line.strip():
            _send(channel, handle_request(line))
    return 0


def _send(channel, obj: dict) -> None:
    """One JSON line on the protocol channel."""
    channel.write(json.dumps(obj, default=float) + "\n")
    channel.flush()


def handle_request(line: str) -> dict:
    """Parse one request line and measure it in a forked child."""
    try:
        req = json.loads(line)
        argv = [str(a) for a in req["args"]]
        timeout_s = float(req.get("timeout_s", 600.0))
    except (ValueError, KeyError, TypeError) as err:
        return {"ok": False, "kind": "usage", "error": f"bad request {line.strip()[:200]!r}: {err}"}
    result = fork_measure(argv, timeout_s, req.get("test_signal"))
    result["request_id"] = req.get("id")
    return result


def fork_measure(argv: list[str], timeout_s: float, test_signal: int | None = None) -> dict:
    """One measurement in a forked child: its result, or why it has none (a signal, an exit, the timeout).

    ``test_signal`` (tests only) makes the child send itself that signal before measuring."""
    import tempfile

    with tempfile.TemporaryFile() as log:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            _child(argv, write_fd, log.fileno(), test_signal)
        os.close(write_fd)
        data, finished = _read_all(read_fd, time.monotonic() + timeout_s)
        os.close(read_fd)
        status = _reap(pid, time.monotonic() + (SERVE_GRACE_S if finished else 0.0))
        result = _child_result(data, status, finished, timeout_s, log)
    result.setdefault("process", {"mode": "fork-server", "pid": pid, "server_pid": os.getpid()})
    return result


def _child(argv: list[str], write_fd: int, log_fd: int, test_signal: int | None) -> None:
    """In the forked child: measure, write the result to the pipe, leave with os._exit (never returns)."""
    code = 70
    try:
        fork_rss = rss_mb()  # before anything of this measurement: what the child shares with the server
        _detach_from_protocol(log_fd)
        if test_signal:
            os.kill(os.getpid(), int(test_signal))
        out, code = run_argv(argv)
        out["process"] = {"mode": "fork-server", "pid": os.getpid(), "server_pid": os.getppid(), "fork_rss_mb": fork_rss}
        data = (json.dumps(out, default=float) + "\n").encode()
        while data:
            data = data[os.write(write_fd, data):]
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _detach_from_protocol(log_fd: int) -> None:
    """In a child: stdin from /dev/null, stdout and stderr to the log, no copy of the server's output channel
    (a child outliving a dead server must not keep its client waiting)."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    if _CHANNEL_FD is not None:
        os.close(_CHANNEL_FD)


def _read_all(fd: int, deadline: float) -> tuple[bytes, bool]:
    """Everything written to a pipe until its end (True) or the deadline (False)."""
    import select

    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return b"".join(chunks), False
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)


def _reap(pid: int, deadline: float) -> int:
    """Wait for a child until the deadline, then kill it; its wait status."""
    import signal

    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.005)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return os.waitpid(pid, 0)[1]


def _child_result(data: bytes, status: int, finished: bool, timeout_s: float, log) -> dict:
    """The child's JSON result, or an error dict saying how it ended instead."""
    if not finished:
        return {"ok": False, "kind": "timeout", "error": f"agent did not finish within {timeout_s:.0f} s"}
    for line in reversed(data.decode(errors="replace").strip().splitlines()):
        try:
            return json.loads(line)
        except ValueError:
            break
    return {"ok": False, "kind": "died", "error": f"agent {_how_it_ended(status)} without a result: {_tail(log)}"}


def _how_it_ended(status: int) -> str:
    """'was killed by SIGSEGV' or 'exited with status N' from a wait status."""
    import signal

    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        oom = " (the out-of-memory killer sends SIGKILL)" if sig == signal.SIGKILL else ""
        return f"process was killed by {name}{oom}"
    return f"exited with status {os.WEXITSTATUS(status) if os.WIFEXITED(status) else status}"


def _tail(log) -> str:
    """The last line the child wrote to its stdout/stderr, or '(no stderr)'."""
    log.seek(0, os.SEEK_END)
    log.seek(max(0, log.tell() - 4096))
    lines = log.read().decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "(no stderr)"


def _kernel_files(path: str) -> tuple[list[tuple[str, str]], str | None]:
    """(stem, path) of the .onnx files of a folder or of a .tar (extracted next to it), sorted; the scratch folder."""
    import tarfile
    import tempfile

    folder, scratch = path, None
    if path.endswith(".tar"):
        scratch = folder = tempfile.mkdtemp(prefix="kdbench-kernels-")
        with tarfile.open(path) as tar:
            if hasattr(tarfile, "data_filter"):  # Python >= 3.12 and the security releases before it
                tar.extractall(folder, filter="data")
            else:
                tar.extractall(folder)  # our own archive of .onnx files
    names = sorted(n for n in os.listdir(folder) if n.endswith(".onnx"))
    return [(n[:-5], os.path.join(folder, n)) for n in names], scratch


def time_kernels(args: argparse.Namespace) -> dict:
    """Micro-benchmarks: each ONNX file of ``--kernels`` timed in this process (one session at a time, the same
    warm input, at least ``--kernel-runs`` runs and ``--kernel-min-s`` seconds), plus the trivial model (the
    session's own per-run cost). Microseconds per file: the median (``kernels_us``) and the fastest run
    (``kernels_min_us``, the less disturbed by other load)."""
    import shutil

    import numpy as np

    if args.runtime not in ("onnxruntime",):
        raise AgentError("usage", f"--kernels times ONNX Runtime micro-benchmarks; got --runtime {args.runtime}")
    runner = make_runner(args.runtime, args.threads, "fp32")
    options = runner._options()
    if args.graph_level == "extended":  # without the layout transformers (x86's NCHWc): the graph an ARM CPU runs
        options.graph_optimization_level = runner.ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    files, scratch = _kernel_files(args.kernels)
    try:
        sources = [("trivial", trivial_model())] + files
        us, fastest, started = {}, {}, time.perf_counter()
        for stem, src in sources:
            sess = runner.ort.InferenceSession(src, sess_options=options, providers=runner.providers)
            feed = {i.name: np.random.default_rng(0).random([d if isinstance(d, int) else 1 for d in i.shape]
                                                             ).astype(np.float32) for i in sess.get_inputs()}
            lat = _run_times_s(lambda: sess.run(None, feed), args.kernel_runs, args.kernel_min_s)
            us[stem], fastest[stem] = percentile(lat, 50) * 1e6, lat[0] * 1e6
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    return {"ok": True, "runtime": args.runtime, "version": runner.version, "threads": args.threads,
            "graph_level": args.graph_level, "kernels_us": us, "kernels_min_us": fastest,
            "wall_s": round(time.perf_counter() - started, 2), "host": host_info(),
            "conditions": conditions()}


def trivial_model() -> bytes:
    """The trivial one-op model's bytes (the runtimes' memory baseline, the kernel suite's per-run cost)."""
    import base64

    return base64.b64decode(TRIVIAL_ONNX_B64)


def _run_times_s(run, min_runs: int, min_s: float) -> list[float]:
    """Sorted seconds of single calls: 3 untimed calls, then at least ``min_runs`` timed ones over ``min_s``."""
    for _ in range(3):
        run()
    lat: list[float] = []
    start = time.perf_counter()
    while len(lat) < min_runs or time.perf_counter() - start < min_s:
        t0 = time.perf_counter()
        run()
        lat.append(time.perf_counter() - t0)
    return sorted(lat)


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
    p.add_argument("--frames", default=None, help="saved frame sample (.npy, uint8 [N, S, S]) used as input")
    p.add_argument("--raw-frame", default=None, help="HxW[xC] of the source's raw frames: also time preprocessing")
    p.add_argument("--pid-file", default=None, help="write this process's id here (lets a caller stop it)")
    p.add_argument("--kernels", default=None,
                   help="micro-benchmarks: time every .onnx in this folder or .tar in-process (kdbench profile calibrate)")
    p.add_argument("--kernel-runs", type=int, default=20, help="--kernels: at least this many timed runs per file")
    p.add_argument("--kernel-min-s", type=float, default=0.05, help="--kernels: and at least this many seconds")
    p.add_argument("--graph-level", choices=("all", "extended"), default="all",
                   help="--kernels: ONNX Runtime's graph optimisation level (extended: no layout transformers)")
    p.add_argument("--serve", action="store_true",
                   help="fork server: import the runtime once, then measure each request line (JSON) in a forked child")
    return p


def run_argv(argv: list[str]) -> tuple[dict, int]:
    """One measurement (or ``--check``) from agent arguments: the JSON-able result and the exit status (0 or 3)."""
    args = build_parser().parse_args(argv)
    if args.batch is None:
        args.batch = [1]
    try:
        if args.check:
            return check(args), 0
        if args.kernels:
            return time_kernels(args), 0
        if not args.model:
            raise AgentError("usage", "--model is required unless --check")
        return measure(args), 0
    except AgentError as err:
        return {"ok": False, "kind": err.kind, "error": str(err), "runtime": args.runtime, "host": host_info()}, 3
    except Exception as err:  # noqa: BLE001 - report, never a bare traceback on a remote
        return {
            "ok": False,
            "kind": "crash",
            "error": f"{type(err).__name__}: {err}",
            "traceback": traceback.format_exc(limit=5),
            "runtime": args.runtime,
            "host": host_info(),
        }, 3


def main(argv: list[str] | None = None) -> int:
    """Run the agent; print exactly one JSON line; exit 0 (ok) or 3 (error). ``--serve``: the fork server."""
    args = build_parser().parse_args(argv)
    if args.serve:
        return serve(args.runtime)
    if args.pid_file:
        with open(args.pid_file, "w") as fh:
            fh.write(str(os.getpid()))
    out, code = run_argv(sys.argv[1:] if argv is None else argv)
    out["process"] = {"mode": "fresh", "pid": os.getpid()}
    sys.stdout.write(json.dumps(out, default=float) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
