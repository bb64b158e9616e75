"""Disk checks of a study folder: room for its checkpoints, and what an interrupted run left behind."""

from __future__ import annotations

import contextlib
from pathlib import Path

from kdbench.search.journal_lock import remove_stale_lock
from kdbench.search.space import SearchSpace
from kdbench.search.storage import journal_file, storage_kind


def checkpoint_mb(space: SearchSpace, quota: dict[str, int]) -> float:
    """Estimated MiB of the best.pt files the study keeps (float32 weights of each student, +10%)."""
    from kdbench.data.views import VIEWS
    from kdbench.models import create_model

    kept = len(space.seeds) if space.keep_checkpoints == "all" else 1
    total = 0.0
    for student in space.students:
        try:
            import torch

            with torch.device("meta"):
                model = create_model(student, num_classes=len(VIEWS))
        except Exception:  # a model that cannot be built on the meta device: the CPU, once
            model = create_model(student, num_classes=len(VIEWS))
        n = sum(t.numel() for t in [*model.parameters(), *model.buffers()])
        total += 4 * n * 1.1 * kept * quota.get(student, 0)
    return total / 2**20


def check_run_dir(run_dir: Path, study_dir: Path, space: SearchSpace, quota: dict[str, int]) -> None:
    """--run-dir writable with room for the checkpoints the study still has to write."""
    from kdbench.checks import ensure_writable_dir

    ensure_writable_dir(run_dir, "--run-dir")
    have = sum(p.stat().st_size for p in study_dir.glob("trials/*/*/seed_*/best.pt")) / 2**20
    need = max(0.0, checkpoint_mb(space, quota) - have)
    ensure_writable_dir(study_dir, "--run-dir", need_mb=need)


def clean_leftovers(study_dir: Path, storage_url: str | None) -> list[Path]:
    """With no live worker: delete stray *.tmp files, remove a stale journal lock (one line says so) and cut
    a torn last line off the journal."""
    removed = []
    for tmp in Path(study_dir).rglob("*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    journal = journal_file(storage_url, study_dir)
    if storage_kind(storage_url) == "journal":
        lock = remove_stale_lock(journal)
        if lock is not None:
            removed.append(lock)
    if storage_kind(storage_url) == "journal" and journal.is_file():
        data = journal.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(journal, "r+b") as fh:
                fh.truncate(data.rfind(b"\n") + 1)
    return removed
