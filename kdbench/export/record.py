"""One exported variant as the export manifest records it: a dataclass with one to_dict / from_dict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from kdbench.errors import DataError

REQUIRED = ("id", "candidate", "variant", "status")


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
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - names)
        if unknown:
            raise DataError(f"{where} has unknown key(s) {unknown}; expected keys of kdbench.export.record.VariantRecord")
        for key in ("trial", "seed"):
            value = doc.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise DataError(f"{where}: {key} = {value!r}; expected an integer or null")
        if not isinstance(doc.get("metrics") or {}, dict):
            raise DataError(f"{where}: metrics is {type(doc['metrics']).__name__}; expected an object with val/test")
        return cls(**doc)
