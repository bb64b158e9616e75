"""Fit the estimator's constants: from the published reference rows and/or the user's measurements.

Reference rows (``shared/reference/rpi4_published.csv``: ``model,input,framework,threads,
clock_ghz,precision,latency_ms,stat,source``) name torchvision architectures; their graph features
are computed by exporting the architecture (1000 classes, 3-channel input) to ONNX in a temp folder.
The shipped ``calibration/rpi4.json`` keeps those features, so refitting needs no export.

User rows come from a ``results.json`` written by ``kdbench profile`` (measured, ok, batch-1
records; matched to model files by ``variant_id`` in ``--models``) or a CSV with columns
``model,input,latency_ms`` (+ optional ``threads``, ``framework``, ``precision``) where ``model``
is a file under ``--models``, a variant id, or a torchvision architecture name.
"""

from __future__ import annotations

import csv
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from kdbench.errors import ConfigError, DataError
from kdbench.manifest import write_json
from kdbench.profile.estimate import (
    DEFAULT_PRIORS,
    OBS_SIGMA_LOG,
    PARAMS,
    PROXY_SIGMA_LOG,
    Calibration,
    Row,
    error_band_pct,
    fit_constants,
    flops_ratio_loo,
    leave_one_out,
    predict_ms,
)
from kdbench.profile.features import GraphFeatures, graph_features
from kdbench.profile.results import ModelEntry, discover_models, load_results

REFERENCE_COLUMNS = ("model", "input", "framework", "threads", "clock_ghz", "precision", "latency_ms", "stat", "source")
MEASURED_FRAMEWORKS = ("onnxruntime", "openvino")


def default_reference_csv() -> Path | None:
    """``../shared/reference/rpi4_published.csv`` next to the repository (or the cwd), if present."""
    for base in (Path(__file__).resolve().parents[3], Path.cwd().parent, Path.cwd()):
        p = base / "shared" / "reference" / "rpi4_published.csv"
        if p.is_file():
            return p
    return None


def architecture_features(arch: str, size: int) -> GraphFeatures:
    """Graph features of a torchvision architecture (1000 classes, RGB) exported at ``size`` px."""
    import torch

    from kdbench.compat import torchvision

    if not hasattr(torchvision.models, arch):
        raise DataError(f"model {arch!r} is neither a file under --models nor a torchvision architecture")
    net = getattr(torchvision.models, arch)(num_classes=1000).eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{arch}.onnx"
        torch.onnx.export(net, (torch.rand(1, 3, size, size),), str(path), dynamo=True, external_data=True,
                          optimize=True, verbose=False)
        return graph_features(path, size)


def read_reference_csv(path: str | Path, threads: int | None = None) -> list[dict[str, Any]]:
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
            row_threads = int(r["threads"]) if r.get("threads") else None
            if threads is not None and row_threads is not None and row_threads != threads:
                raise DataError(f"{path}: row {i}: threads={row_threads}; the calibration is for {threads} threads")
            rows.append({"model": r["model"].strip(), "input": size, "latency_ms": lat,
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


def user_rows(results: str | Path, models_dir: str | Path | None, target: str, threads: int) -> list[Row]:
    """Fitting rows from the user's measurements (results.json or CSV)."""
    results = Path(results)
    if not results.is_file():
        raise DataError(f"--results {results}: file not found")
    entries = _entry_lookup(models_dir)
    rows: list[Row] = []
    if results.suffix == ".json":
        recs = load_results(results)
        for i, r in enumerate(recs):
            if not r.get("measured") or r.get("status") != "ok" or r.get("batch") != 1:
                continue
            if r.get("target") != target:
                continue
            if r.get("threads") not in (threads, None):
                raise DataError(f"{results}: record {i} ({r.get('variant_id')}) has threads={r.get('threads')}; "
                                f"the {target} calibration is for {threads} threads")
            vid = str(r.get("variant_id"))
            entry = entries.get(vid) or entries.get(str(r.get("file")))
            if entry is None:
                raise DataError(f"{results}: record {i}: variant_id {vid!r} has no model file under --models "
                                f"{models_dir} (needed to read its layers)")
            lat = (r.get("latency_ms") or {}).get("mean") or (r.get("latency_ms") or {}).get("p50")
            if not lat or lat <= 0:
                raise DataError(f"{results}: record {i}: latency_ms missing or not positive")
            f = graph_features(entry.path, r.get("input_size") or entry.input_size)
            rows.append(Row(f"{vid}@{f.input_size}/{r.get('runtime')}", f, float(lat), f"{results} ({r.get('runtime')})"))
        if not rows:
            raise DataError(f"{results}: no measured, ok, batch-1 records for target {target!r}")
        return rows
    for r in read_reference_csv(results, threads):
        entry = entries.get(r["model"])
        f = graph_features(entry.path, r["input"]) if entry else architecture_features(r["model"], r["input"])
        rows.append(Row(f"{r['model']}@{r['input']}", f, r["latency_ms"], f"{results} line {r['line']}"))
    return rows


def reference_rows_from_calibration(cal: Calibration) -> list[Row]:
    """The published rows stored in a calibration file (features included)."""
    out = []
    for r in (cal.data or {}).get("rows", []):
        if r.get("kind") == "reference":
            out.append(Row(r["name"], GraphFeatures.from_dict(r["features"]), float(r["latency_ms"]), r["source"]))
    return out


def reference_rows_from_csv(path: str | Path, threads: int) -> list[Row]:
    """The published rows of a reference CSV, with features from exported torchvision architectures."""
    return [Row(f"{r['model']}@{r['input']}", architecture_features(r["model"], r["input"]), r["latency_ms"],
                f"{r['framework']}: {r['source']}".strip(": "))
            for r in read_reference_csv(path, threads)]


def build_calibration(
    target: str, peak_gmacs: float, threads: int, reference: list[Row], user: list[Row], source: str
) -> dict[str, Any]:
    """Fit, leave-one-out, error band: the calibration file's content."""
    rows = reference + user
    if len(rows) < 2:
        raise ConfigError(f"calibration for {target}: {len(rows)} row(s); need at least 2 to fit and cross-check")
    constants = fit_constants(rows, peak_gmacs)
    loo = leave_one_out(rows, peak_gmacs)
    proxy = bool(reference)  # ncnn rows stand in for ONNX Runtime
    band = error_band_pct(loo, proxy)
    loo_rms = math.sqrt(sum(math.log(1 + e["error_pct"] / 100) ** 2 for e in loo) / len(loo))
    return {
        "target": target,
        "peak_gmacs": peak_gmacs,
        "threads": threads,
        "precision": "fp32",
        "constants": constants,
        "priors": DEFAULT_PRIORS,
        "obs_sigma_log": OBS_SIGMA_LOG,
        "rows": [
            {"name": r.name, "kind": "reference" if r in reference else "user", "source": r.source,
             "latency_ms": r.latency_ms, "predicted_ms": predict_ms(constants, peak_gmacs, r.features),
             "features": r.features.to_dict()}
            for r in rows
        ],
        "leave_one_out": loo,
        "leave_one_out_rms_pct": 100 * (math.exp(loo_rms) - 1),
        "flops_ratio_leave_one_out": flops_ratio_loo(rows),
        "proxy": {
            "used": proxy,
            "sigma_log": PROXY_SIGMA_LOG if proxy else 0.0,
            "note": ("published ncnn (benchncnn) latencies used as a proxy for ONNX Runtime/OpenVINO on the "
                     "target; an assumed +-40% runtime gap is folded into the error band (not measured)")
            if proxy else "fitted on the user's own runtime measurements only",
        },
        "error_band_pct": band,
        "error_band_note": "+-% (about one standard deviation): leave-one-out log-RMS combined with the proxy term",
        "source": source,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "params": list(PARAMS),
    }


def write_calibration(path: str | Path, data: dict[str, Any]) -> Path:
    """Write the calibration JSON atomically."""
    path = Path(path)
    write_json(path, data)
    return path
