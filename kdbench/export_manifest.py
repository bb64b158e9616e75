"""The export manifest (``EXPORT/manifest.json``), spelled once: ``ExportManifest`` holding one ``VariantRecord`` per
exported variant, each with one ``to_dict`` / ``from_dict``.

``kdbench export`` (kdbench/export) writes it and owns the format; profile and the leaderboard read it through
``ExportManifest.read``. It stands directly in ``kdbench/`` (like ``layout.py`` and ``predictions.py``) because profile,
which the hardware-aware search uses to price configurations, reads it too: a record inside ``kdbench/export`` would make
the packages import each other in a circle. Older manifests read: version 1 entries without ``trial``/``seed``, and
entries without ``precision`` (named from their variant, as profile did before records carried it).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from kdbench.errors import DataError

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
STAGE = "export"
REQUIRED = ("id", "candidate", "variant", "status")


def precision_of_name(name: str) -> str:
    """A precision named by a variant or file name: for loose model files and entries written before records carried
    ``precision``."""
    low = name.lower()
    if "int8" in low or "qdq" in low or "quant" in low:
        return "int8"
    if "fp16" in low or "half" in low:
        return "fp16"
    return "fp32"


@dataclass
class VariantRecord:
    """An exported variant of a candidate: where it came from (student, trial, seed), its files and its metrics."""

    id: str  # "<candidate>/<variant>"
    candidate: str
    variant: str  # fp32 | int8_ort | int8_openvino | fp16 | prunedNN
    status: str = "failed"  # ok | failed
    student: str | None = None  # the study's student (architecture)
    method: str | None = None
    trial: int | None = None  # the study trial the checkpoint came from (None outside a study)
    seed: int | None = None  # the seed of that trial whose checkpoint was exported
    runtime: str = "onnxruntime"
    precision: str = "fp32"
    file: str | None = None
    files: list[str] = field(default_factory=list)
    predictions: str | None = None  # per-frame val/test logits, labels, rows, clip ids (relative .npz), for the leaderboard
    size_mb: float | None = None
    params: int | None = None
    macs: int | None = None
    input_size: int | None = None
    reason: str | None = None
    failure: str | None = None  # check | error
    metrics: dict[str, Any] = field(default_factory=dict)  # {"val": ..., "test": ...} of classification_metrics
    details: dict[str, Any] = field(default_factory=dict)
    max_abs_diff: float | None = None
    accuracy_drop: float | None = None
    inputs_hash: str | None = None
    resumed: bool = False
    elapsed_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, the manifest's variant entry."""
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any], where: str = "variant") -> "VariantRecord":
        """A record from its manifest entry; DataError naming ``where`` and the key when it does not fit."""
        if not isinstance(doc, dict):
            raise DataError(f"{where} is {type(doc).__name__}; expected an object")
        for key in REQUIRED:
            if key not in doc:
                raise DataError(f"{where} has no key {key!r}")
        unknown = sorted(set(doc) - {f.name for f in fields(cls)})
        if unknown:
            raise DataError(f"{where} has unknown key(s) {unknown}; expected keys of kdbench.export_manifest.VariantRecord")
        for key in ("trial", "seed"):
            value = doc.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise DataError(f"{where}: {key} = {value!r}; expected an integer or null")
        if not isinstance(doc.get("metrics") or {}, dict):
            raise DataError(f"{where}: metrics is {type(doc['metrics']).__name__}; expected an object with val/test")
        if "precision" not in doc:
            doc = {**doc, "precision": precision_of_name(str(doc["variant"]))}
        return cls(**doc)


@dataclass
class ExportManifest:
    """``EXPORT/manifest.json``: what was exported from which store and teacher, with which options."""

    variants: list[VariantRecord] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)  # export.candidates.Candidate.describe() each
    store: str | None = None
    store_hash: str | None = None
    teacher: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the ExportOptions
    config_hash: str | None = None
    kdbench_version: str | None = None
    format_version: int = FORMAT_VERSION
    stage: str = STAGE

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, the file's content."""
        return {**{f.name: getattr(self, f.name) for f in fields(self)},
                "variants": [v.to_dict() for v in self.variants]}

    def ok_variants(self) -> list[VariantRecord]:
        """The variants whose export succeeded."""
        return [v for v in self.variants if v.status == "ok"]

    @classmethod
    def from_dict(cls, doc: Any, where: str = "export manifest",
                  on_bad: Callable[[DataError], None] | None = None) -> "ExportManifest":
        """A manifest from its JSON form; DataError naming ``where`` and the key when it does not fit. With ``on_bad``
        a variant entry that does not fit goes to it and is left out (the export redoes it) instead."""
        if not isinstance(doc, dict):
            raise DataError(f"{where} is {type(doc).__name__}; expected the export manifest of `kdbench export`")
        _check_header(doc, where)
        unknown = sorted(set(doc) - {f.name for f in fields(cls)})
        if unknown:
            raise DataError(f"{where} has unknown key(s) {unknown}; expected keys of kdbench.export_manifest.ExportManifest")
        variants = []
        for i, entry in enumerate(doc["variants"]):
            try:
                variants.append(VariantRecord.from_dict(entry, f"{where}: variants[{i}]"))
            except DataError as err:
                if on_bad is None:
                    raise
                on_bad(err)
        candidates = [c for c in doc.get("candidates") or [] if isinstance(c, dict)]
        return cls(**{**doc, "variants": variants, "candidates": candidates})

    @classmethod
    def read(cls, export_dir: str | Path, on_bad: Callable[[DataError], None] | None = None) -> "ExportManifest":
        """The manifest of an export folder; DataError when it is missing, not JSON or not a manifest."""
        path = Path(export_dir) / MANIFEST
        if not path.is_file():
            raise DataError(f"{path} does not exist; expected the folder written by `kdbench export`")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise DataError(f"{path}: not valid JSON ({err}); expected the export manifest") from None
        return cls.from_dict(doc, str(path), on_bad)


def _check_header(doc: dict[str, Any], where: str) -> None:
    """DataError unless the stage, version and variant list are an export manifest's (older ones carry no stage)."""
    if doc.get("stage", STAGE) != STAGE:
        raise DataError(f"{where} is not an export manifest (stage {doc.get('stage')!r})")
    version = doc.get("format_version", FORMAT_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise DataError(f"{where}: format_version {version!r}; this kdbench reads 1 to {FORMAT_VERSION}")
    if not isinstance(doc.get("variants"), list):
        raise DataError(f"{where}: key 'variants' missing or not a list; expected the export manifest of `kdbench export`")
