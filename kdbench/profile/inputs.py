"""Real model inputs for the agent: a saved sample of the frame store's frames (``frames_sample.npy``).

The sample is taken from ``--frames`` (a prepared store folder or an ``.npy`` of uint8 ``[N, S, S]``
frames), else from the store named in the export manifest (``"store"``). It is written next to the
results (``<out>/<target>/frames_sample.npy``) so a remote target gets the same frames. Every
runtime and precision is fed these frames (the agent casts them to the model's input type).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdbench.errors import DataError
from kdbench.export_manifest import MANIFEST, ExportManifest

SAMPLE_FRAMES = 16
DEFAULT_RAW_FRAME = "768x1024x3"  # EchoNet-LVH's native BGR frames: the largest source resolution


def _store_from_manifest(models_dir: Path) -> Path | None:
    """The store path recorded in an export manifest, if it still exists."""
    if not (models_dir / MANIFEST).is_file():
        return None
    try:
        store = ExportManifest.read(models_dir).store
    except DataError:  # discovering the models says what is wrong with it
        return None
    return Path(store) if store and Path(store).is_dir() else None


def _store_sample(store_dir: Path) -> np.ndarray:
    """Up to SAMPLE_FRAMES validation frames (training frames if there are none) of a prepared store."""
    from kdbench.data.store import FrameStore

    store = FrameStore.open(store_dir)
    rows = store.indices("val")
    if len(rows) == 0:
        rows = np.arange(len(store.frames))
    pick = rows[np.linspace(0, len(rows) - 1, min(SAMPLE_FRAMES, len(rows))).astype(int)]
    return np.asarray(store.frames[np.sort(pick)], dtype=np.uint8)


def frame_sample(frames: Path | None, models_dir: Path, out_dir: Path) -> tuple[Path | None, str]:
    """Write the frame sample under ``out_dir`` and return (its path, where it came from); (None, why) without one."""
    source = frames or _store_from_manifest(models_dir)
    if source is None:
        return None, "no frame store (pass --frames STORE|FILE.npy): the agent feeds a labelled synthetic ramp"
    if source.suffix == ".npy":
        try:
            arr = np.load(source, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(f"--frames {source}: not a readable .npy file: {err}") from None
        if arr.ndim != 3 or arr.dtype != np.uint8 or len(arr) == 0:
            raise DataError(f"--frames {source}: shape {arr.shape} dtype {arr.dtype}; expected uint8 [N, S, S]")
    elif source.is_dir():
        arr = _store_sample(source)
    else:
        raise DataError(f"--frames {source}: expected a prepared store folder or a .npy file")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "frames_sample.npy"
    np.save(path, arr)
    return path, f"{len(arr)} frames from {source}"
