"""Session-wide fixtures: one tiny phantom frame store and one briefly trained student, built once."""

from __future__ import annotations

import os
import signal
import tempfile
from pathlib import Path

import pytest

# Training in the suite runs in the plain format without a timing probe (fast and reproducible) and
# never touches ~/.cache; tests of the probe (tests/test_fastpath.py) set their own values.
os.environ.setdefault("KDBENCH_FAST_PATH", "nchw")
os.environ.setdefault("KDBENCH_CACHE_DIR", tempfile.mkdtemp(prefix="kdbench-test-cache-"))
# A suite started in the background by a non-interactive shell (`.ci/run &`) inherits SIGINT ignored, and
# so would every kdbench process it starts (kdbench leaves an ignored SIGINT ignored, as `cmd &` asks).
# The signal tests send SIGINT as a terminal's Ctrl-C does: give the children the default disposition.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory: pytest.TempPathFactory):
    """A phantom frame store: 3 videos per view, 8 frames each, prepared at 64 px with 4 frames per video."""
    from kdbench.data.prepare import prepare_store
    from kdbench.data.store import FrameStore
    from kdbench.data.synth import DYNAMIC_DIR, LVH_DIR, TMED_DIR, synthesize

    root = tmp_path_factory.mktemp("tiny_phantom")
    synthesize(root / "raw", videos_per_view=3, seed=0, frames=8)
    sources = {"echonet_dynamic": root / "raw" / DYNAMIC_DIR, "echonet_lvh": root / "raw" / LVH_DIR,
               "tmed2": root / "raw" / TMED_DIR}
    prepare_store(sources, root / "store", size=64, frames_per_video=4, workers=1)
    return FrameStore.open(root / "store")


@pytest.fixture(scope="session")
def tiny_run(tiny_store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory (best.pt + metrics.json): mobilenet_v3_small from scratch, 1 epoch at batch 16."""
    from kdbench.distill.registry import create_method
    from kdbench.models import create_model
    from kdbench.train import TrainConfig, fit, seed_everything

    run_dir = tmp_path_factory.mktemp("tiny_run")
    seed_everything(0)
    model = create_model("mobilenet_v3_small", num_classes=4)
    fit(model, create_method("scratch"), tiny_store, TrainConfig(epochs=1, batch_size=16, seed=0, device="cpu"),
        out_dir=run_dir, progress=False,
        checkpoint_meta={"arch": "mobilenet_v3_small", "student": "mobilenet_v3_small"})
    assert (run_dir / "best.pt").is_file(), "the tiny training run wrote no checkpoint"
    return run_dir


@pytest.fixture(scope="session")
def phantom_32px(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(store, teacher): a 32 px phantom store (3 videos per view, 2 frames each) and an untrained
    mobilenet_v3_small checkpoint as a stand-in teacher, for tests that run tiny searches."""
    from fault_fixtures import make_search_inputs

    return make_search_inputs(tmp_path_factory.mktemp("phantom_32px"))
