"""A search's progress as log lines (a Slurm file, a pipe): one line per finished seed run, with an ETA.

Every worker appends its seed events to ``seed_log.jsonl`` (kdbench.search.objective.log_seed_event);
``SeedProgress`` reads what was appended since its last look and turns each finished seed run into

    12:03:41 mobilenet_v3_small trial 3 (vanilla) seed 2: ok, val 0.8123 (14/40 seed runs, 3m05s, ETA 5m31s)

A trial that ends before its seeds (pruned, failed, a configuration proposed again whose results are reused)
gets its own line, and its untrained seeds leave the plan:

    12:04:10 mobilenet_v3_small trial 4 (dkd): pruned after 0 seed(s): first seed below the median ... (15/37 ...)

The ETA is an estimate: the seed runs left of the planned ones (trials x seeds, less those of trials that
ended early; a race adds seeds) at the mean pace of the runs this command trained. Seed runs read back after a
restart count as finished, not in the pace.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from kdbench.search.objective import SEED_LOG


def fmt_duration(seconds: float) -> str:
    """``3h02m``, ``5m31s`` or ``42s``."""
    s = int(round(max(seconds, 0.0)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class SeedProgress:
    """Lines for the seed runs finished since the last ``poll`` (see the module docstring)."""

    def __init__(self, study_dir: Path, planned: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(study_dir) / SEED_LOG
        self.planned, self.clock = planned, clock
        self.start = clock()
        self.offset = 0
        self.finished: set[tuple] = set()
        self.trained = 0
        self.dropped = 0  # planned seed runs that will not run: their trial was pruned, failed or reused a twin's
        self._skip_history()

    def _skip_history(self) -> None:
        """What a resumed study finished before this command counts as finished; it prints no line."""
        for event in self._read():
            if event.get("event") in ("done", "reused"):
                self.finished.add(_key(event))
            elif event.get("event") == "trial_end":
                self._drop(event)

    def _read(self) -> list[dict]:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        whole = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next poll
        self.offset += len(whole)
        out = []
        for line in whole.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def poll(self) -> list[str]:
        """One line per seed run finished (trained) since the last call."""
        lines = []
        for event in self._read():
            if event.get("event") == "reused":
                self.finished.add(_key(event))
            if event.get("event") == "trial_end":
                self._drop(event)
                lines.append(self._end_line(event))
            if event.get("event") != "done":
                continue
            self.finished.add(_key(event))
            self.trained += 1
            lines.append(self._line(event))
        return lines

    def _drop(self, event: dict) -> None:
        self.dropped += max(int(event.get("n_seeds", 0)) - int(event.get("seeds_done", 0)), 0)

    def where(self) -> str:
        """``14/40 seed runs, 3m05s, ETA 5m31s`` (or the runs beyond the planned ones); the plan loses the seeds of
        trials that ended early."""
        elapsed = self.clock() - self.start
        done, planned = len(self.finished), max(self.planned - self.dropped, 0)
        left = max(planned - done, 0)
        if done > planned:
            return f"{done} seed runs, {done - planned} beyond the {planned} planned (a race, retries)"
        if not left:
            eta = "the planned runs are done"
        else:
            eta = f"ETA {fmt_duration(elapsed / self.trained * left)}" if self.trained else "ETA after the first run"
        return f"{done}/{planned} seed runs, {fmt_duration(elapsed)}, {eta}"

    def _line(self, event: dict) -> str:
        where = self.where()
        val = event.get("val")
        result = f"{event.get('status', '?')}" + (f", val {val:.4f}" if isinstance(val, (int, float)) else "")
        method = f" ({event['method']})" if event.get("method") else ""
        return (f"{time.strftime('%H:%M:%S')} {event.get('student')} trial {event.get('trial')}{method} seed "
                f"{event.get('seed')}: {result} ({where})")


    def _end_line(self, event: dict) -> str:
        """``12:04:10 mobilenet_v3_small trial 4 (dkd): pruned after 1 seed(s): <why> (15/37 seed runs, ...)``."""
        after = f" after {event.get('seeds_done')} seed(s)" if event.get("state") != "reused" else ""
        return (f"{time.strftime('%H:%M:%S')} {event.get('student')} trial {event.get('trial')} ({event.get('method')}): "
                f"{event.get('state')}{after}: {event.get('note')} ({self.where()})")


def _key(event: dict) -> tuple:
    return event.get("student"), event.get("trial"), event.get("seed")
