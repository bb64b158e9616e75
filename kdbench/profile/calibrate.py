"""Fit the estimator's constants: from the published reference rows and/or the user's measurements.

Reference rows (the packaged ``calibration/rpi4_published.csv``: ``model,input,framework,threads,
clock_ghz,precision,latency_ms,stat,source,library,note``) name torchvision architectures (timm where
``library`` is ``timm``); their graph features come from exporting the architecture (1000 classes,
RGB input) to ONNX in a temp folder. The shipped ``calibration/rpi4.json`` keeps those features
(``reference_features``, keyed ``model@input``), so refitting needs no export.

User rows come from a ``results.json`` written by ``kdbench profile`` (measured, ok, batch-1
records; matched to model files by ``variant_id`` in ``--models``) or a CSV with columns
``model,input,latency_ms`` (+ optional ``threads``, ``precision``, ``framework``) where ``model`` is
a file under ``--models``, a variant id, or a torchvision architecture name.
"""

from __future__ import annotations

import csv
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from kdbench.errors import ConfigError, DataError
from kdbench.manifest import write_json
from kdbench.profile.calibrate_kernels import calibrate_kernels
from kdbench.profile.estimate import (
    REFERENCE_CSV,
    DEFAULT_PRIORS,
    INT8_ACT_FACTOR,
    OBS_SIGMA_LOG,
    PARAMS,
    PROXY_SIGMA_LOG,
    Row,
    error_band_pct,
    error_summary,
    find_calibration,
    fit_constants,
    flops_ratio_loao,
    leave_one_architecture_out,
    predict_ms,
)
from kdbench.profile.features import GraphFeatures, graph_features
from kdbench.profile.hardware import load_profile
from kdbench.profile.remote import SshTarget
from kdbench.profile.results import ModelEntry, ProfileRecord, discover_models, load_results

REFERENCE_COLUMNS = ("model", "input", "framework", "threads", "clock_ghz", "precision", "latency_ms", "stat", "source")
MEASURED_FRAMEWORKS = ("onnxruntime", "openvino")


def architecture_features(arch: str, size: int, library: str = "torchvision") -> GraphFeatures:
    """Graph features of a torchvision (or timm) architecture (1000 classes, RGB) exported at ``size`` px."""
    import torch

    from kdbench.compat import torchvision

    if library == "timm":
        import timm

        net = timm.create_model(arch, pretrained=False, num_classes=1000).eval()
    elif hasattr(torchvision.models, arch):
        net = getattr(torchvision.models, arch)(num_classes=1000).eval()
    else:
        raise DataError(f"model {arch!r} is neither a file under --models nor a torchvision architecture")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{arch}.onnx"
        torch.onnx.export(net, (torch.rand(1, 3, size, size),), str(path), dynamo=True, external_data=True,
                          optimize=True, verbose=False)
        return graph_features(path, size)


def read_reference_csv(path: str | Path) -> list[dict[str, Any]]:
    """Rows of the published-reference CSV, validated (DataError naming row and column)."""
    path = Path(path)
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("model", "input", "latency_ms") if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; expected at least model,input,latency_ms")
        rows = []
        for i, r in enumerate(reader, start=2):
            try:
                size = int(r["input"])
                lat = float(r["latency_ms"])
            except (TypeError, ValueError):
                raise DataError(f"{path}: row {i}: input={r.get('input')!r}, latency_ms={r.get('latency_ms')!r}; "
                                "expected an integer size and a number of ms") from None
            if lat <= 0 or size <= 0:
                raise DataError(f"{path}: row {i}: latency_ms={lat}, input={size}; expected positive values")
            prec = (r.get("precision") or "fp32").strip()
            if prec not in ("fp32", "fp16", "int8"):
                raise DataError(f"{path}: row {i}: precision={prec!r}; expected fp32, fp16 or int8")
            try:
                row_threads = int(r["threads"]) if r.get("threads") else None
            except ValueError:
                raise DataError(f"{path}: row {i}: threads={r.get('threads')!r}; expected an integer") from None
            rows.append({"model": r["model"].strip(), "input": size, "latency_ms": lat, "threads": row_threads,
                         "precision": prec, "library": (r.get("library") or "torchvision").strip(),
                         "framework": (r.get("framework") or "").strip(), "source": (r.get("source") or str(path)).strip(),
                         "line": i})
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def _entry_lookup(models_dir: str | Path | None) -> dict[str, ModelEntry]:
    """Model entries keyed by variant id, file name and relative path."""
    if models_dir is None:
        return {}
    out: dict[str, ModelEntry] = {}
    for e in discover_models(models_dir):
        for key in (e.variant_id, e.path.name, e.path.relative_to(Path(models_dir)).as_posix()):
            out.setdefault(key, e)
    return out


def _measured_row(results: Path, i: int, r: ProfileRecord, entries: dict[str, ModelEntry],
                  models_dir: str | Path | None, threads: int) -> Row:
    """The fitting row of one measured results.json record (its model file read for the layers)."""
    vid = str(r.variant_id)
    entry = entries.get(vid) or entries.get(str(r.file))
    if entry is None:
        raise DataError(f"{results}: record {i}: variant_id {vid!r} has no model file under --models "
                        f"{models_dir} (needed to read its layers)")
    lat = (r.latency_ms or {}).get("mean") or (r.latency_ms or {}).get("p50")
    if not lat or lat <= 0:
        raise DataError(f"{results}: record {i}: latency_ms missing or not positive")
    f = graph_features(entry.path, r.input_size or entry.input_size)
    return Row(f"{vid}@{f.input_size}/{r.runtime}", f, float(lat), int(r.threads or threads), f.precision, vid,
               f"{results} ({r.runtime})")


def user_rows(results: str | Path, models_dir: str | Path | None, target: str, threads: int) -> list[Row]:
    """Fitting rows from the user's measurements (results.json or CSV)."""
    results = Path(results)
    if not results.is_file():
        raise DataError(f"--results {results}: file not found")
    entries = _entry_lookup(models_dir)
    rows: list[Row] = []
    if results.suffix == ".json":
        rows = [_measured_row(results, i, r, entries, models_dir, threads) for i, r in enumerate(load_results(results))
                if r.measured and r.status == "ok" and r.batch == 1 and r.target == target]
        if not rows:
            raise DataError(f"{results}: no measured, ok, batch-1 records for target {target!r}")
        return rows
    for r in read_reference_csv(results):
        entry = entries.get(r["model"])
        f = graph_features(entry.path, r["input"]) if entry else architecture_features(r["model"], r["input"], r["library"])
        rows.append(Row(f"{r['model']}@{r['input']}", f, r["latency_ms"], r["threads"] or threads,
                        r["precision"] if entry is None else f.precision, r["model"], f"{results} line {r['line']}"))
    return rows


def reference_rows(path: str | Path, known: dict[str, dict[str, Any]] | None = None) -> list[Row]:
    """The published rows of a reference CSV; features from ``known`` (keyed model@input) or by exporting."""
    known = dict(known or {})
    rows = []
    for r in read_reference_csv(path):
        key = f"{r['model']}@{r['input']}"
        if key not in known:
            known[key] = architecture_features(r["model"], r["input"], r["library"]).to_dict()
        f = GraphFeatures.from_dict(known[key])
        if r["precision"] == "int8":  # the same architecture quantised: int8 weights
            f = GraphFeatures.from_dict({**known[key], "weight_bytes": known[key]["weight_bytes"] / 4,
                                         "param_bytes": known[key]["param_bytes"] / 4, "precision": "int8"})
        rows.append(Row(f"{key}/{r['threads']}t/{r['precision']}", f, r["latency_ms"], r["threads"] or 4, r["precision"],
                        r["model"], f"{r['framework']}: {r['source']}".strip(": ")))
    return rows


def build_calibration(
    target: str, core_gmacs: float, threads: int, reference: list[Row], user: list[Row], source: str,
    memory: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Fit, leave-one-architecture-out, error bands: the calibration file's content."""
    rows = reference + user
    if len({r.arch or r.name for r in rows}) < 2:
        raise ConfigError(f"calibration for {target}: {len(rows)} row(s) of one architecture; need two architectures "
                          "to fit and cross-check")
    constants = fit_constants(rows, core_gmacs)
    loao = leave_one_architecture_out(rows, core_gmacs)
    summary = error_summary(loao)
    proxy = bool(reference)  # ncnn rows stand in for ONNX Runtime
    bands = {p: error_band_pct(v["log_rms_pct"], proxy) for p, v in summary.items()}
    bands.setdefault("fp32", max(bands.values()))
    features = {f"{r.arch}@{r.features.input_size}": r.features.to_dict() for r in reference if r.precision == "fp32"}
    return {
        "target": target, "core_gmacs": core_gmacs, "threads": threads, "precisions": sorted(summary),
        "constants": constants, "priors": DEFAULT_PRIORS, "obs_sigma_log": OBS_SIGMA_LOG,
        "int8_act_factor": INT8_ACT_FACTOR,
        "rows": [{**r.to_dict(), "kind": "reference" if r in reference else "user",
                  "predicted_ms": predict_ms(constants, core_gmacs, r.features, 1, r.threads, r.precision)} for r in rows],
        "reference_features": features,
        "leave_one_architecture_out": loao,
        "loao_summary": summary,
        "flops_ratio_loao": flops_ratio_loao(rows),
        "proxy": {"used": proxy, "sigma_log": PROXY_SIGMA_LOG if proxy else 0.0,
                  "note": ("published ncnn (benchncnn) latencies used as a proxy for ONNX Runtime/OpenVINO on the "
                           "target; an assumed +-40% runtime gap is folded into the error band (not measured)")
                  if proxy else "fitted on the user's own runtime measurements only"},
        "error_band_pct": bands,
        "error_band_note": "+-% per precision (about one standard deviation): LOAO log-RMS combined with the proxy term",
        "memory": memory or {},
        "source": source,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "params": list(PARAMS),
    }


def write_calibration(path: str | Path, data: dict[str, Any]) -> Path:
    """Write the calibration JSON atomically."""
    path = Path(path)
    write_json(path, data)
    return path


def _core_and_threads(prof: Any) -> tuple[float, int]:
    """One core's GMAC/s and the threads of a hardware profile (ConfigError naming what is missing)."""
    if "clock_ghz" not in prof.cpu or "fma_per_cycle" not in prof.cpu:
        raise ConfigError(f"hardware profile {prof.path}: calibrating needs cpu.clock_ghz and cpu.fma_per_cycle")
    return float(prof.cpu["clock_ghz"]) * float(prof.cpu["fma_per_cycle"]), prof.threads or int(prof.cpu.get("cores", 1))


def calibrate_target(target: str, results: str | Path | None, models: str | Path | None, out: str | Path,
                     reference: bool = True, reference_csv: str | Path | None = None, kernels: bool = False,
                     remote: str | None = None, remote_python: str | None = None, ssh_config: str | Path | None = None,
                     on_step: Any = None) -> tuple[dict[str, Any], Path]:
    """``kdbench profile calibrate``: fit, write ``<out>/calibration/<target>.json``; (its content, its path)."""
    prof = load_profile(target)
    core, threads = _core_and_threads(prof)
    ref_rows, sources, memory, shipped = [], [], {}, None
    try:
        shipped = find_calibration(prof.calibration or prof.name)
        memory = {rt: m.to_dict() for rt, m in shipped.memory.items()}
    except ConfigError:
        pass
    if reference:
        csv_path = reference_csv or REFERENCE_CSV
        ref_rows = reference_rows(csv_path, (shipped.data or {}).get("reference_features") if shipped else None)
        sources.append(str(csv_path) if reference_csv else shipped.source if shipped else str(csv_path))
    usr = user_rows(results, models, prof.name, threads) if results is not None else []
    if usr:
        sources.append(f"user measurements {results}")
    kernel_cal = None
    if kernels:
        kernel_cal, rows, host = _kernel_rows(prof, threads, remote, remote_python, ssh_config, on_step)
        usr += rows
        sources.append(f"kernel micro-benchmarks on {host.get('hostname') or remote or 'this host'}")
    data = build_calibration(prof.name, core, threads, ref_rows, usr, "; ".join(sources), memory)
    if kernel_cal is not None:
        data["kernels"] = kernel_cal.to_dict()
    return data, write_calibration(Path(out) / "calibration" / f"{prof.name}.json", data)


def _kernel_rows(prof: Any, threads: int, remote: str | None, remote_python: str | None,
                 ssh_config: str | Path | None, on_step: Any) -> tuple[Any, list[Row], dict[str, Any]]:
    """Run the kernel suite on the target (here, or ``remote`` over ssh) with its first ONNX Runtime."""
    runtime = next((r for r in prof.runtimes if r == "onnxruntime"), None)
    if runtime is None:
        raise ConfigError(f"hardware profile {prof.path}: --kernels times ONNX Runtime on the CPU; add 'onnxruntime' "
                          "to [run] runtimes")
    arch = str(prof.cpu.get("arch", "")).lower()
    if not remote and arch and arch != platform.machine().lower():
        raise ConfigError(f"hardware profile {prof.path} is an {arch} CPU and this machine is {platform.machine()}: "
                          "--kernels times the suite on the target itself; give --remote user@host")
    ssh = SshTarget(remote, str(ssh_config) if ssh_config else None) if remote else None
    python = (remote_python or prof.remote_python) if remote else "python3"
    return calibrate_kernels(runtime, threads, ssh, python, on_step=on_step)
