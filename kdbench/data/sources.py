"""The dataset formats kdbench reads, as one registry: name, folder marker, loader module, CLI flag.

A new dataset format is one loader module (``load(root, **settings) -> LoadResult``, see
``kdbench/data/clips.py``) plus one ``Source`` entry here; ``kdbench data prepare`` gets its
``--flag`` from the entry, ``prepare_store`` its loader, and wrong-folder hints its marker.
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
    flag: str  # the `kdbench data prepare` option that takes its folder
    marker: str  # a file or folder every copy of the dataset has at its root
    module: str  # the loader module: kdbench.data.<module>.load(root, **settings)
    help: str  # CLI help of the flag
    settings: tuple[tuple[str, str], ...] = ()  # (prepare setting, loader keyword), e.g. tmed_fold -> fold

    def load(self, root: str | Path, settings: dict[str, Any] | None = None) -> LoadResult:
        """Run this source's loader on ``root`` with the prepare settings it takes."""
        given = settings or {}
        kwargs = {kw: given[name] for name, kw in self.settings if name in given}
        return importlib.import_module(f"kdbench.data.{self.module}").load(root, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The entry as plain data (for manifests and docs)."""
        return {"name": self.name, "title": self.title, "flag": self.flag, "marker": self.marker,
                "module": self.module, "settings": [list(s) for s in self.settings]}


REGISTRY: tuple[Source, ...] = (
    Source("echonet_dynamic", "EchoNet-Dynamic", "--echonet-dynamic", "FileList.csv", "echonet_dynamic",
           "EchoNet-Dynamic folder (FileList.csv + Videos/); all A4C."),
    Source("echonet_lvh", "EchoNet-LVH", "--echonet-lvh", "MeasurementsList.csv", "echonet_lvh",
           "EchoNet-LVH folder (MeasurementsList.csv + Batch1..4/); all PLAX."),
    Source("tmed2", "TMED-2", "--tmed2", "DEV479", "tmed2",
           "TMED-2 folder (DEV479/TMED2_fold*_labeledpart.csv + image folders).", (("tmed_fold", "fold"),)),
)
SOURCE_NAMES: tuple[str, ...] = tuple(s.name for s in REGISTRY)
BY_NAME: dict[str, Source] = {s.name: s for s in REGISTRY}


def marker_hint(entries: set[str], expected_marker: str) -> str:
    """'; it looks like X (pass it to --x)' when a folder holds another source's marker, else ''."""
    for source in REGISTRY:
        if source.marker != expected_marker and source.marker in entries:
            return f"; it looks like {source.title} (pass it to {source.flag})"
    return ""
