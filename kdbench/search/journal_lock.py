"""A stale lock of the journal storage: found, removed with a line saying so, or left to its live owner.

Optuna's ``JournalFileOpenLock`` creates ``<journal>.lock`` while it writes and leaves it behind when
its process is killed mid-write; every later write then waits 30 s before taking it over.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from kdbench.search.storage import journal_file, storage_kind

JOURNAL_LOCK_STALE_S = 5.0  # a journal write holds Optuna's lock for milliseconds


def journal_lock(journal: Path) -> Path:
    """The lock file Optuna's JournalFileOpenLock creates beside a journal while it writes (and leaves behind
    when its process is killed mid-write: every later write then waits 30 s for Optuna to take it over)."""
    return journal.with_name(journal.name + ".lock")


def remove_stale_lock(journal: Path, stale_s: float = JOURNAL_LOCK_STALE_S) -> Path | None:
    """With no live worker: remove the journal's lock left by a killed process, in one line; the lock removed.

    A lock younger than ``stale_s`` may be a write in flight (a command starting beside this one): wait
    until it goes or ages."""
    lock = journal_lock(journal)
    while True:
        try:
            age = time.time() - lock.stat().st_mtime
        except OSError:
            return None
        if age >= stale_s:
            break
        time.sleep(min(0.1, stale_s - age))
    try:
        lock.unlink()
    except FileNotFoundError:
        return None  # released meanwhile
    except OSError as err:
        logging.getLogger("kdbench.search").warning("cannot remove the stale journal lock %s (%s): Optuna will wait "
                                                     "30 s on every run until it is removed", lock, err.strerror)
        return None
    for rename in lock.parent.glob(f"{lock.name}*.rename"):  # a release cut between its rename and unlink
        with contextlib.suppress(OSError):
            if time.time() - rename.stat().st_mtime >= stale_s:
                rename.unlink()
    logging.getLogger("kdbench.search").warning(
        "removed a stale journal lock %s (%.0f s old, no worker runs on this study: a process killed while "
        "writing the journal left it)", lock, age)
    return lock


def note_held_lock(study_dir: Path, storage_url: str | None, workers: list[dict[str, Any]],
                   stale_s: float = JOURNAL_LOCK_STALE_S) -> str | None:
    """With live workers: a journal lock older than ``stale_s`` is left alone; one line says who runs on the study."""
    if storage_kind(storage_url) != "journal":
        return None
    lock = journal_lock(journal_file(storage_url, study_dir))
    try:
        age = time.time() - lock.stat().st_mtime
    except OSError:
        return None
    if age < stale_s:
        return None
    who = ", ".join(f"{w['worker'].get('host')}:{w['worker'].get('pid')}" for w in workers)
    line = (f"the journal lock {lock} is {age:.0f} s old and worker {who} runs on this study: left in place "
            "(Optuna takes a lock over after 30 s without change)")
    logging.getLogger("kdbench.search").warning("%s", line)
    return line
