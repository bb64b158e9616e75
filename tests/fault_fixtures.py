"""Real faults for subprocess tests: a per-file size limit (a full disk) and file modes that bind root too."""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import stat
from pathlib import Path

FSIZE_LIMIT = 256 * 1024  # bytes per file: a study's journal (~20 KB) fits, a checkpoint (~440 KB) does not


def drop_dac_override() -> None:
    """preexec_fn: as root, give up CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH so file modes bind this child."""
    if os.geteuid() == 0:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
            if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def small_file_limit() -> None:
    """preexec_fn: no file may grow past FSIZE_LIMIT (writes fail with EFBIG, as on a full disk)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))


def set_writable(root: Path, writable: bool) -> None:
    """Add or remove the write bits of a folder tree's directories."""
    for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        mode = d.stat().st_mode
        d.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def make_search_inputs(root: Path, teacher_arch: str = "mobilenet_v3_small") -> tuple[Path, Path]:
    """A 32 px phantom store (3 videos per view, 2 frames each) and an untrained stand-in teacher."""
    from kdbench.data.prepare import prepare_store
    from kdbench.data.synth import DYNAMIC_DIR, LVH_DIR, TMED_DIR, synthesize
    from kdbench.models import create_model
    from kdbench.models.checkpoint import save_checkpoint

    synthesize(root / "raw", videos_per_view=3, seed=0, frames=4)
    prepare_store({"echonet_dynamic": root / "raw" / DYNAMIC_DIR, "echonet_lvh": root / "raw" / LVH_DIR,
                   "tmed2": root / "raw" / TMED_DIR}, root / "store", size=32, frames_per_video=2, workers=1)
    teacher = save_checkpoint(create_model(teacher_arch, num_classes=4), root / "teacher.pt", arch=teacher_arch,
                              num_classes=4, input_size=32)
    return root / "store", teacher
