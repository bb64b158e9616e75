"""Which model files ``kdbench profile`` measures: ``ModelEntry`` (a variant's file, precision and input size, from
the export manifest or a loose folder), with the runtimes and precisions a hardware profile runs it with."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from kdbench.convert.runtimes import RUNTIMES
from kdbench.errors import DataError
from kdbench.export_manifest import MANIFEST, ExportManifest, VariantRecord, precision_of_name
from kdbench.profile.hardware import HardwareProfile

MODEL_SUFFIXES = (".onnx", ".xml", ".pt2")


@dataclass
class ModelEntry:
    """One model file to profile."""

    variant_id: str
    path: Path
    precision: str = "fp32"
    input_size: int | None = None
    runtime_hint: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def fmt(self) -> str:
        """'onnx', 'openvino' or 'pt2'."""
        return {".onnx": "onnx", ".xml": "openvino", ".pt2": "pt2"}[self.path.suffix]

    def files(self) -> list[Path]:
        """The files that make up the model: an OpenVINO .xml has its .bin, an ONNX file its external data."""
        out = [self.path]
        if self.fmt == "openvino":
            out.append(self.path.with_suffix(".bin"))
        elif self.fmt == "onnx":
            try:
                out += [self.path.parent / loc for loc in external_data_files(self.path)]
            except DataError:  # unreadable: the agent reports why when it tries to load it
                pass
        return out

    def size_mb(self) -> float:
        """Total size of the model's files in MB (1e6 bytes)."""
        return sum(p.stat().st_size for p in self.files() if p.exists()) / 1e6


def external_data_files(path: Path) -> list[str]:
    """Relative locations of an ONNX file's external-data files (DataError naming one that escapes its folder).

    Read once per file version (path, size, modification time): every record of a model asks for its size, and
    parsing a 500 MB teacher takes 0.15 s each time."""
    try:
        st = Path(path).stat()
    except OSError as err:
        raise DataError(f"{path}: not a readable ONNX file: {err}") from None
    return list(_external_data_files(str(path), st.st_size, st.st_mtime_ns))


@lru_cache(maxsize=256)
def _external_data_files(path: str, size: int, mtime_ns: int) -> tuple[str, ...]:
    """``external_data_files`` of one file version (the size and time are only the cache's key)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # noqa: BLE001 - onnx raises several types for bad files
        raise DataError(f"{path}: not a readable ONNX file: {err}") from None
    locations: list[str] = []
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            loc = {e.key: e.value for e in t.external_data}.get("location", "")
            if Path(loc).is_absolute() or ".." in Path(loc).parts:
                raise DataError(f"{path}: external data location {loc!r} is outside the model's folder")
            if loc and loc not in locations:
                locations.append(loc)
    return tuple(locations)


def discover_models(models_dir: str | Path) -> list[ModelEntry]:
    """Models in a folder: the export manifest's ok variants when present, else every model file."""
    root = Path(models_dir)
    if not root.is_dir():
        raise DataError(f"models folder {root}: not found or not a folder")
    if (root / MANIFEST).is_file():
        entries = [_manifest_entry(root, i, v) for i, v in enumerate(ExportManifest.read(root).variants) if v.status == "ok"]
    else:
        entries = [ModelEntry(variant_id=path.relative_to(root).with_suffix("").as_posix(), path=path,
                              precision=precision_of_name(path.name))
                   for path in sorted(p for p in root.rglob("*") if p.suffix in MODEL_SUFFIXES and p.is_file())]
    if not entries:
        raise DataError(f"models folder {root}: no model files ({', '.join(MODEL_SUFFIXES)}) and no ok variants")
    return entries


def _manifest_entry(root: Path, i: int, v: VariantRecord) -> ModelEntry:
    """The model of an ok variant of the export manifest; DataError when its file is not there."""
    where = f"{root / MANIFEST}: variants[{i}]"
    if not v.file:
        raise DataError(f"{where} has no key 'file'")
    path = root / v.file
    if path.suffix not in MODEL_SUFFIXES:
        raise DataError(f"{where}.file = {v.file!r}; expected one of {MODEL_SUFFIXES}")
    if not path.is_file():
        raise DataError(f"{where}.file = {v.file!r} does not exist under {root}")
    meta = {k: getattr(v, k) for k in ("candidate", "student", "method", "variant")}
    return ModelEntry(variant_id=str(v.id), path=path, precision=v.precision, input_size=v.input_size,
                      runtime_hint=v.runtime, meta=meta)


def runtimes_for(entry: ModelEntry, profile: HardwareProfile) -> list[str]:
    """The profile's runtimes that can read this model's format."""
    return [rt for rt in profile.runtimes if entry.fmt in RUNTIMES[rt].formats]


def precisions_for(entry: ModelEntry, runtime: str, profile: HardwareProfile) -> list[str]:
    """Precisions to run: the file's own, except PyTorch, which casts to each profile precision."""
    if runtime.startswith("pytorch"):
        return [p for p in profile.precisions if p in ("fp32", "fp16")] or ["fp32"]
    return [entry.precision]
