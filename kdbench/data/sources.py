"""The dataset formats kdbench reads, as one registry: name, folder marker, loader module, CLI flag.

A new dataset format is one loader module (``load(root, **settings) -> LoadResult``, see
``kdbench/data/clips.py``) plus one ``Source`` entry here; ``kdbench data prepare`` gets its
``--flag`` from the entry (``takes``: a folder or a file), ``prepare_store`` its loader, and
wrong-folder hints its marker (sources without a fixed marker file have ``marker=""``).
Loader modules are imported only when used, so this module stays import-light.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kdbench.data.clips import LoadResult


@dataclass(frozen=True)
class Source:
    """One dataset format: how it is named, recognised, loaded and passed on the command line."""

    name: str  # the source name in the store's index.csv and manifest
    title: str  # the dataset's own name, for messages
    flag: str  # the `kdbench data prepare` option that takes its folder (or file)
    marker: str  # a file or folder every copy of the dataset has at its root ("" when there is none)
    module: str  # the loader module: kdbench.data.<module> (or a dotted path) with load(root, **settings)
    help: str  # CLI help of the flag
    settings: tuple[tuple[str, str], ...] = ()  # (prepare setting, loader keyword), e.g. tmed_fold -> fold
    takes: str = "folder"  # what the flag names: "folder" | "file"

    def load(self, root: str | Path, settings: dict[str, Any] | None = None) -> LoadResult:
        """Run this source's loader on ``root`` with the prepare settings it takes."""
        given = settings or {}
        kwargs = {kw: given[name] for name, kw in self.settings if name in given}
        module = self.module if "." in self.module else f"kdbench.data.{self.module}"
        return importlib.import_module(module).load(root, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The entry as plain data (for manifests and docs)."""
        return {"name": self.name, "title": self.title, "flag": self.flag, "marker": self.marker,
                "module": self.module, "settings": [list(s) for s in self.settings], "takes": self.takes}


OWN = "own"  # the source name of `--manifest` data
UNLABELLED_SOURCE = "unlabelled"  # the source name of `--unlabelled` data (its split is "unlabelled" too)
REGISTRY: list[Source] = [
    Source("echonet_dynamic", "EchoNet-Dynamic", "--echonet-dynamic", "FileList.csv", "echonet_dynamic",
           "EchoNet-Dynamic folder (FileList.csv + Videos/); all A4C."),
    Source("echonet_lvh", "EchoNet-LVH", "--echonet-lvh", "MeasurementsList.csv", "echonet_lvh",
           "EchoNet-LVH folder (MeasurementsList.csv + Batch1..4/); all PLAX."),
    Source("tmed2", "TMED-2", "--tmed2", "DEV479", "tmed2",
           "TMED-2 folder (DEV479/TMED2_fold*_labeledpart.csv + image folders).", (("tmed_fold", "fold"),)),
    Source(OWN, "your labelled archive", "--manifest", "", "manifest_csv",
           "Your labels CSV (one row per AVI, PNG/JPG or DICOM file of your own: columns path, view, split, "
           "patient_id, optional clip_id; paths relative to the CSV's folder or absolute).",
           (("view_map", "view_map"),), takes="file"),
    Source(UNLABELLED_SOURCE, "unlabelled frames", "--unlabelled", "", "unlabelled",
           "Unlabelled folder (cine loops and stills: AVI, PNG/JPG, DICOM, searched recursively; stored as split "
           "'unlabelled', one clip per file, never in train/val/test)."),
]
SOURCE_NAMES: tuple[str, ...] = tuple(s.name for s in REGISTRY)  # the built-in names (kdbench.data.views.SOURCES)


def registered() -> tuple[Source, ...]:
    """Every registered source, in registry order (read at call time, so entries added later count)."""
    return tuple(REGISTRY)


def find_source(name: str) -> Source | None:
    """The registered source called ``name``, or None."""
    return next((s for s in REGISTRY if s.name == name), None)


def source_rank(name: str) -> int:
    """Position of a source in the registry (unknown names last): the order of clips, tables and counts."""
    return next((i for i, s in enumerate(REGISTRY) if s.name == name), len(REGISTRY))


def marker_hint(entries: set[str], expected_marker: str) -> str:
    """'; it looks like X (pass it to --x)' when a folder holds another source's marker, else ''."""
    for source in registered():
        if source.marker and source.marker != expected_marker and source.marker in entries:
            return f"; it looks like {source.title} (pass it to {source.flag})"
    return ""
