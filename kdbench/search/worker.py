"""Entry point of one worker process started by ``kdbench search --workers N``.

Run as ``python -m kdbench.search.worker --study-dir DIR [--n-trials N] ...``; the storage URL comes
from the ``KDBENCH_STORAGE_URL`` environment variable (empty: the study's journal file).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Parse the worker's arguments and run it until the quotas are used."""
    from kdbench.search.interrupts import interrupt_on_sigterm
    from kdbench.search.processes import STORAGE_ENV, set_parent_death_signal
    from kdbench.search.work import run_worker

    parser = argparse.ArgumentParser(prog="python -m kdbench.search.worker", description=__doc__)
    parser.add_argument("--study-dir", type=Path, required=True, help="Study directory (with study.json).")
    parser.add_argument("--n-trials", type=int, default=None, help="Total trial budget over all students.")
    parser.add_argument("--device", default="auto", help="Training device.")
    parser.add_argument("--index", type=int, default=0, help="Worker index (for the log only; samplers seed per trial).")
    parser.add_argument("--grace", type=float, default=120.0, help="Seconds without heartbeat before a trial is stale.")
    parser.add_argument("--no-cache", action="store_true", help="Run the teacher on every batch.")
    parser.add_argument("--threads", type=int, default=None, help="Torch CPU threads of this worker.")
    parser.add_argument("--parent", type=int, default=None, help="PID of the starting process (exit if it is gone).")
    args = parser.parse_args(argv)
    set_parent_death_signal()
    if args.parent is not None and os.getppid() != args.parent:
        return 3  # the parent died before the death signal was armed
    try:
        with interrupt_on_sigterm():
            run_worker(args.study_dir, os.environ.get(STORAGE_ENV) or None, args.n_trials, args.device, args.no_cache,
                       args.index, args.grace, threads=args.threads)
    except KeyboardInterrupt as err:  # its trial is queued again; the parent reports the interrupt
        print(f"worker {args.index}: interrupted ({getattr(err, 'signal_name', 'SIGINT')})", file=sys.stderr)
        return 128 + int(getattr(err, "signum", 2))
    return 0


if __name__ == "__main__":
    from kdbench.errors import KdbenchError

    try:
        sys.exit(main())
    except KdbenchError as err:
        from kdbench.search.interrupts import SearchAborted

        print(f"error: {err}", file=sys.stderr)
        sys.exit(1 if isinstance(err, SearchAborted) else 2)
