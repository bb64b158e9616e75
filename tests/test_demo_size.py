"""The default demo's data reports on enough clips: validation and test of >= 400 frames from >= 100 clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kdbench.data.prepare import prepare_store
from kdbench.data.store import FrameStore
from kdbench.data.synth import synthesize
from kdbench.cli.demo_plan import SIZES, demo_commands
from kdbench.metrics import clip_ids


def test_default_demo_splits_hold_400_frames_from_100_clips(tmp_path: Path) -> None:
    size = SIZES["default"]
    synth = next(argv for argv in demo_commands(tmp_path / "demo", size, tmp_path / "lb", ["mobilenet_v3_small"],
                                                ["scratch"]) if argv[:2] == ["data", "synth"])
    assert synth[synth.index("--holdout") + 1] == str(size.holdout)
    raw = tmp_path / "raw"
    synthesize(raw, videos_per_view=size.videos_per_view, frames=size.frames, seed=0, holdout=size.holdout)
    prepare_store({"echonet_dynamic": raw / "EchoNet-Dynamic", "echonet_lvh": raw / "EchoNet-LVH",
                   "tmed2": raw / "TMED2"}, tmp_path / "store", size=size.image_size,
                  frames_per_video=size.frames_per_video)
    store = FrameStore.open(tmp_path / "store")
    for split in ("val", "test"):
        rows = store.indices(split)
        clips = np.unique(clip_ids(store, rows))
        assert len(rows) >= 400 and len(clips) >= 100, (split, len(rows), len(clips))
    assert len(store.indices("train")) < len(store.indices("val")) + len(store.indices("test"))  # training stays small
