"""Kernel-level calibration on a device: ``kdbench profile calibrate --kernels`` (local, or ``--remote`` over ssh).

1. Write the micro-benchmark suite (``kernels.micro_models``: one-kernel ONNX graphs at the shapes 32-224 px
   students have) and the calibration models (``kernels.CALIBRATION_ARCHS`` as students, 1 channel and 4
   classes, at ``CALIBRATION_SIZES``) into one ``.tar``.
2. Time them all with the measurement agent on the device, in one process (``agent.py --kernels``): the
   agent file travels to a Raspberry Pi as it does for ``kdbench profile --remote``.
3. Fit the per-kernel costs on the suite; the calibration models, not fitted on, give the error band
   (``kernels.calibrate_from_times``).

The measured calibration models are also the user rows of the per-class constants (``calibrate.py``), so
the same file serves graphs the kernel model does not cover (int8, OpenVINO), labelled as such.
"""

from __future__ import annotations

import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from kdbench.convert.onnx_export import graph_export
from kdbench.errors import KdbenchError
from kdbench.profile.estimate import Row
from kdbench.profile.kernel_memory import memory_models
from kdbench.profile.features import graph_features
from kdbench.profile.kernels import (
    CALIBRATION_ARCHS,
    CALIBRATION_SIZES,
    DISPATCH_STEM,
    SUITE_PER_KIND,
    WHOLE_PREFIX,
    Kernel,
    KernelCalibration,
    calibrate_from_times,
    dispatch_model,
    graph_kernels,
    write_suite,
)
from kdbench.profile.local import AGENT_PATH, run_agent
from kdbench.profile.remote import RemoteSession, SshTarget

SUITE_TIMEOUT_S = 1800.0
STATISTICS = {"median": "kernels_us", "fastest": "kernels_min_us"}  # the agent's keys


class CalibrationError(KdbenchError):
    """The device did not time the suite."""


def build_suite(folder: Path, seed: int = 0, per_kind: dict[str, int] | None = None,
                archs: tuple[str, ...] = CALIBRATION_ARCHS, sizes: tuple[int, ...] = CALIBRATION_SIZES,
                memory: bool = True) -> tuple[dict[str, list[Kernel]], dict[str, list[Kernel]], dict[str, Any]]:
    """Write the suite, the dispatch chain, the memory chains (``memory``) and the calibration models into
    ``folder``: (kernels per suite file, kernels per calibration model ``arch@size``, graph features per calibration
    model)."""
    import onnx

    suite = {p.stem: graph_kernels(p) for p in write_suite(folder, seed, per_kind)}
    for stem, model in [(DISPATCH_STEM, dispatch_model())] + (memory_models() if memory else []):
        onnx.save(model, str(folder / f"{stem}.onnx"))
    whole, features = {}, {}
    for arch in archs:
        for size in sizes:
            path = graph_export(arch, folder / f"{WHOLE_PREFIX}{arch}@{size}.onnx", size)
            whole[f"{arch}@{size}"] = graph_kernels(path, size)
            features[f"{arch}@{size}"] = graph_features(path, size)
    return suite, whole, features


def pack(folder: Path, tar: Path) -> Path:
    """The folder's .onnx files in one gzip archive (one upload to a remote target; the memory chains' repeating
    weights shrink about 100x)."""
    with tarfile.open(tar, "w:gz", compresslevel=1) as out:
        for path in sorted(folder.glob("*.onnx")):
            out.add(path, arcname=path.name)
    return tar


def time_suite(tar: Path, runtime: str, threads: int, remote: SshTarget | None = None,
               remote_python: str = "python3", min_s: float = 0.05, graph_level: str = "all") -> dict[str, Any]:
    """The agent's ``--kernels`` result for the archive (median of each file over at least ``min_s``, ONNX Runtime
    at ``graph_level``), run here or on ``remote``."""
    args = ["--kernels", "", "--runtime", runtime, "--threads", str(threads), "--kernel-min-s", str(min_s),
            "--graph-level", graph_level]
    if remote is None:
        args[1] = str(tar)
        out = run_agent([sys.executable, str(AGENT_PATH), *args], SUITE_TIMEOUT_S)
    else:
        session = RemoteSession(remote, remote_python)
        try:
            session.open()
            args[1] = session.upload(tar, "kernels.tar")
            out, _ = session.agent(args, SUITE_TIMEOUT_S)
        finally:
            session.close()
    if not out.get("ok"):
        raise CalibrationError(f"timing the kernel suite failed ({out.get('kind')}): {out.get('error')}")
    return out


def calibrate_kernels(runtime: str, threads: int, remote: SshTarget | None = None, remote_python: str = "python3",
                      seed: int = 0, per_kind: dict[str, int] | None = None, archs: tuple[str, ...] = CALIBRATION_ARCHS,
                      sizes: tuple[int, ...] = CALIBRATION_SIZES, on_step: Callable[[str], None] | None = None,
                      graph_level: str = "all", statistic: str = "median", memory: bool = True,
                      ) -> tuple[KernelCalibration, list[Row], dict[str, Any]]:
    """Build, time and fit: (the kernel calibration, the calibration models as per-class rows, the agent's host).
    ``statistic``: each file's median run (as ``kdbench profile`` reports p50) or its fastest ("fastest");
    ``memory``: time the memory chains too (``kernel_memory``; without them no weight is priced as cold)."""
    step = on_step or (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="kdbench-kernels-") as tmp:
        folder = Path(tmp) / "suite"
        step("writing the micro-benchmark suite and exporting the calibration models")
        suite, whole, features = build_suite(folder, seed, per_kind, archs, sizes, memory)
        tar = pack(folder, Path(tmp) / "kernels.tar")
        step(f"timing {len(suite)} kernels and {len(whole)} models on {remote.host if remote else 'this host'}")
        started = time.perf_counter()
        result = time_suite(tar, runtime, threads, remote, remote_python, graph_level=graph_level)
    cal = calibrate_from_times(result[STATISTICS[statistic]], suite, whole, threads)
    cal.model.runtime = runtime
    cal.suite = {"seed": seed, "per_kind": dict(per_kind or SUITE_PER_KIND), "kernels": len(suite),
                 "calibration_models": sorted(whole), "timing_wall_s": result.get("wall_s"),
                 "wall_s": round(time.perf_counter() - started, 1), "runtime_version": result.get("version"),
                 "graph_level": graph_level, "statistic": statistic, "memory_chains": memory,
                 "times_us": {k: round(v, 3) for k, v in result[STATISTICS[statistic]].items()}}
    rows = [Row(name, features[name], ms, threads, "fp32", name.split("@")[0], "kernel calibration: measured")
            for name, ms in cal.whole_ms.items()]
    return cal, rows, result.get("host") or {}
