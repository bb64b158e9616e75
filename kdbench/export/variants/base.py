"""What every export variant shares: its registry entry (``Variant``), the per-candidate ``Context`` and
``VariantFailed``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from kdbench.export.candidates import Candidate
from kdbench.export_manifest import VariantRecord

if TYPE_CHECKING:
    from kdbench.export.pipeline import Exporter, ExportOptions


class VariantFailed(Exception):
    """A variant could not be produced or did not pass its checks; the message is the recorded reason."""


@dataclass
class Context:
    """Per-candidate state shared by its variants (the loaded model, the fp32 result)."""

    cand: Candidate
    dir: Path
    ckpt_hash: str
    model: Any = None
    input_size: int | None = None
    store: Any = None  # the frame store at the trained input size (kdbench.data.resized), as training saw it
    arch: str | None = None
    fp32: VariantRecord | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    """One kind of exported variant: the names it is planned under, the runtime that scores it, how it is built."""

    kind: str
    runtime: str  # a kdbench.convert.runtimes.EVALUATED runtime
    precision: str
    build: Callable[[Exporter, Context, VariantRecord], None]  # writes the file(s), fills the record (ex.finish)
    names: Callable[[ExportOptions], list[str]]  # the variant names these options plan ([] = not planned)
