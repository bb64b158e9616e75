"""Worker processes of ``kdbench search --workers N``: start them, wait for them, stop them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kdbench.search.interrupts import RESUME_HINT, Interrupted, SearchAborted, signals_deferred
from kdbench.search.prepare import SearchRequest, worker_threads
from kdbench.search.results import read_study_json


STORAGE_ENV = "KDBENCH_STORAGE_URL"


def set_parent_death_signal() -> None:
    """Linux: let the kernel SIGKILL this worker when the process that started it dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def spawn_workers(study_dir: Path, req: SearchRequest) -> list[subprocess.Popen]:
    """Start req.workers worker processes (their logs in workers/worker-<i>.log)."""
    env = dict(os.environ)
    if req.storage:
        env[STORAGE_ENV] = req.storage  # not on the command line: `ps` would show the password
    logs = Path(study_dir) / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for i in range(req.workers):
        cmd = [sys.executable, "-m", "kdbench.search.worker", "--study-dir", str(study_dir), "--device", req.device,
               "--index", str(i), "--grace", str(req.grace_s), "--parent", str(os.getpid()),
               "--threads", str(read_study_json(study_dir).get("pins", {}).get("threads") or worker_threads(req.workers))]
        if req.n_trials is not None:
            cmd += ["--n-trials", str(req.n_trials)]
        if req.no_cache:
            cmd.append("--no-cache")
        with open(logs / f"worker-{i}.log", "ab") as log:
            procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def stop_workers(procs: list[subprocess.Popen], timeout_s: float = 60.0) -> None:
    """Ask every running worker to stop (SIGINT: it queues its trial again), then wait; SIGKILL stragglers."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(OSError):
                p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def wait_workers(study_dir: Path, procs: list[subprocess.Popen]) -> None:
    """Wait for the workers; an interrupt stops them all, a worker that failed is reported in one line."""
    try:
        codes = [p.wait() for p in procs]
    except BaseException:
        with signals_deferred():
            stop_workers(procs)
        raise
    interrupted = {130: signal.SIGINT, 143: signal.SIGTERM, -signal.SIGINT: signal.SIGINT, -signal.SIGTERM: signal.SIGTERM}
    if any(c in interrupted for c in codes):
        raise Interrupted(next(interrupted[c] for c in codes if c in interrupted))
    bad = [(i, c) for i, c in enumerate(codes) if c != 0]
    if bad:
        log = Path(study_dir) / "workers" / f"worker-{bad[0][0]}.log"
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.is_file() else []
        last = f": {lines[-1].strip()}" if lines else ""
        raise SearchAborted(f"worker(s) {[i for i, _ in bad]} exited with {[c for _, c in bad]} (worker {bad[0][0]}"
                            f"{last}; see {log}); their trials are queued again: {RESUME_HINT}")
