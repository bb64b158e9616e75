"""Finding trials whose worker died (kill -9, OOM, preemption) and queueing them again.

Every worker writes ``RUN_DIR/<study>/workers/<host>-<pid>.json`` (what it is training, refreshed
every few seconds: its heartbeat) and tags the trials it runs with a worker record: host, boot id,
PID namespace, PID and the process's start time. A RUNNING trial is stale when

- its worker ran on this machine (same boot id and PID namespace) and that process is gone (or the
  PID now belongs to another process, or is a zombie): decided at once, no waiting; or
- its worker's heartbeat file has not been refreshed for ``grace_s`` seconds (another machine), or
  the trial has no worker record and started more than ``grace_s`` ago.

A stale trial is set to FAIL (only one worker wins that write; the others see the trial finished).
Every FAIL trial that failed for another reason than its configuration (a signal, an exception such
as a full disk, a dead worker; not a non-finite loss, which sets the ``fail_reason`` user attribute)
is queued again as a WAITING copy with the same parameters, carrying ``failed_trial`` /
``retry_history`` system attributes the way Optuna's ``RetryHeartbeatStaleTrialCallback`` does, so
the retried trial finds the seeds its predecessor completed and does not train them again. A live
worker queues its own trial as it stops; a dead worker's trial is queued by the next worker.
Trials carry a slot (``kdbench:slot``: the baseline, a grid cell, or the first trial of a retry
chain); a trial whose slot is already taken, or that falls beyond the budget, stops without
training and is marked ``kdbench:duplicate`` (it counts nowhere).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

WORKER_ATTR = "kdbench:worker"
STALE_ATTR = "kdbench:stale"
INTERRUPTED_ATTR = "kdbench:interrupted"  # why a trial stopped (signal, exception), set by its own worker
SLOT_ATTR = "kdbench:slot"  # what a trial stands for: "baseline", "grid:<config_id>", "trial:<first number>"
DUPLICATE_ATTR = "kdbench:duplicate"  # a trial that found its slot (or the budget) taken and did not train
FINAL_ATTR = "fail_reason"  # user attribute of a trial that failed for its configuration's sake (never retried)
MAX_RETRY = 3
# User attributes a retried trial inherits (the rest is recomputed).
INHERITED_ATTRS = ("student", "method", "hparams", "train", "config_id", "baseline")
DEFAULT_GRACE_S = 120.0
BEAT_INTERVAL_S = 5.0


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _proc_start_ticks(pid: int) -> int | None:
    """The start time of a process in clock ticks since boot (Linux /proc), or None."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return int(fields[19]) if len(fields) > 19 else None


def _proc_state(pid: int) -> str | None:
    stat = _read(f"/proc/{pid}/stat")
    return None if stat is None else stat[stat.rfind(")") + 2:].split()[0]


def machine_id() -> dict[str, Any]:
    """What identifies this machine and PID namespace: host, boot id, PID-namespace inode."""
    try:
        pidns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        pidns = None
    boot = (_read("/proc/sys/kernel/random/boot_id") or "").strip() or None
    return {"host": socket.gethostname(), "boot_id": boot, "pidns": pidns}


def worker_record(pid: int | None = None) -> dict[str, Any]:
    """The record a worker puts on the trials it runs."""
    pid = os.getpid() if pid is None else pid
    return {**machine_id(), "pid": pid, "start_ticks": _proc_start_ticks(pid)}


def same_machine(record: dict[str, Any]) -> bool:
    """Whether a worker record comes from this machine and PID namespace (so its PID can be checked)."""
    here = machine_id()
    return (record.get("boot_id") is not None and record.get("boot_id") == here["boot_id"]
            and record.get("pidns") == here["pidns"] and record.get("host") == here["host"])


def process_alive(record: dict[str, Any]) -> bool:
    """Whether the process of a same-machine worker record still runs (zombies and reused PIDs count as gone)."""
    pid = int(record["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if _proc_state(pid) in ("Z", "X"):
        return False
    ticks = _proc_start_ticks(pid)
    return record.get("start_ticks") is None or ticks is None or ticks == record["start_ticks"]


def heartbeat_path(study_dir: Path, record: dict[str, Any]) -> Path:
    """The heartbeat/status file of a worker."""
    return Path(study_dir) / "workers" / f"{record['host']}-{record['pid']}.json"


class Heartbeat:
    """A background thread that keeps the worker's status file fresh; ``update()`` changes its content."""

    def __init__(self, study_dir: Path, interval_s: float = BEAT_INTERVAL_S) -> None:
        self.record = worker_record()
        self.path = heartbeat_path(study_dir, self.record)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.status: dict[str, Any] = {"state": "starting"}
        self._interval = interval_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="kdbench-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._write()
        self._thread.start()
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        try:
            self.update(state="finished" if exc_type is None else "stopped")
        except OSError:
            pass

    def update(self, **status: Any) -> None:
        """Merge into the status and write it now."""
        with self._lock:
            self.status.update(status)
        self._write()

    def _write(self) -> None:
        with self._lock:
            body = {**self.status, "worker": self.record, "time": time.time()}
        tmp = self.path.with_name(f".{self.path.name}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(body, default=str))
        os.replace(tmp, self.path)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._write()
            except OSError:
                pass


def read_worker_files(study_dir: Path) -> list[dict[str, Any]]:
    """Status of every worker that ever ran on the study (with 'age_s' since the last beat)."""
    out = []
    for path in sorted((Path(study_dir) / "workers").glob("*.json")):
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        body["age_s"] = time.time() - path.stat().st_mtime
        out.append(body)
    return out


def owner_gone(record: dict[str, Any] | None, study_dir: Path, grace_s: float = DEFAULT_GRACE_S) -> bool:
    """Whether the worker of a record can no longer act on its trial (dead, stopped or silent for grace_s)."""
    if record is None:
        return True
    if same_machine(record):
        return not process_alive(record)
    beat = heartbeat_path(study_dir, record)
    try:
        body = json.loads(beat.read_text())
        age = time.time() - beat.stat().st_mtime
    except (OSError, ValueError):
        return True
    return body.get("state") in ("finished", "stopped") or age > grace_s


def live_workers(study_dir: Path, grace_s: float = DEFAULT_GRACE_S, include_self: bool = True) -> list[dict[str, Any]]:
    """Status of the workers that still run on the study (dead ones and finished ones left out)."""
    out = []
    for body in read_worker_files(study_dir):
        record = body.get("worker") or {}
        if body.get("state") in ("finished", "stopped") or "pid" not in record:
            continue
        alive = process_alive(record) if same_machine(record) else body["age_s"] < grace_s
        if alive and (include_self or not (same_machine(record) and record.get("pid") == os.getpid())):
            out.append(body)
    return out


def stale_reason(trial: Any, study_dir: Path, grace_s: float = DEFAULT_GRACE_S, others_alive: bool = True) -> str | None:
    """Why a RUNNING trial is considered abandoned, or None while its worker may still be alive."""
    record = trial.system_attrs.get(WORKER_ATTR)
    if record is None:
        started = trial.datetime_start
        if not others_alive:
            return "no worker record and no live worker on the study"
        if started is not None and (datetime.now() - started).total_seconds() > grace_s:
            return f"no worker record and started {started:%Y-%m-%d %H:%M:%S}, more than {grace_s:.0f} s ago"
        return None
    if same_machine(record):
        if not process_alive(record):
            return f"worker process {record['pid']} on {record['host']} is gone"
        return None
    beat = heartbeat_path(study_dir, record)
    if beat.exists():
        age = time.time() - beat.stat().st_mtime
        if age > grace_s:
            return f"worker {record['host']}:{record['pid']} has not beaten for {age:.0f} s (grace {grace_s:.0f} s)"
    return None


# ---- retries: a configuration interrupted by any fault is queued again with the same params ----


def retried_numbers(trials: list[Any]) -> set[int]:
    """Numbers of the trials some later trial retries."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def superseded(trial: Any, retried: set[int]) -> bool:
    """A FAIL trial that no longer counts: retried by a later trial, or a duplicate that never trained."""
    return trial.state.name == "FAIL" and (trial.number in retried or DUPLICATE_ATTR in trial.system_attrs)


def retryable(trial: Any) -> bool:
    """A FAIL trial whose failure was not the configuration's own (interrupt, crash, full disk, dead worker)."""
    return (trial.state.name == "FAIL" and FINAL_ATTR not in trial.user_attrs
            and DUPLICATE_ATTR not in trial.system_attrs)


def queue_retry(study: Any, trial: Any, max_retry: int = MAX_RETRY) -> bool:
    """Queue a WAITING copy of a trial (same params, same slot) that adopts its finished seeds."""
    import optuna
    from optuna.trial import TrialState

    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > max_retry:
        return False
    attrs = {k: v for k, v in trial.system_attrs.items() if not k.startswith("kdbench:") or k == SLOT_ATTR}
    attrs.update(failed_trial=trial.system_attrs.get("failed_trial", trial.number), retry_history=history)
    attrs.setdefault(SLOT_ATTR, f"trial:{attrs['failed_trial']}")
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs={k: v for k, v in trial.user_attrs.items() if k in INHERITED_ATTRS}, system_attrs=attrs))
    return True


def recover_stale_trials(study: Any, study_dir: Path, grace_s: float = DEFAULT_GRACE_S, max_retry: int = MAX_RETRY,
                         others_alive: bool = True) -> list[int]:
    """Fail abandoned RUNNING trials, then queue a retry of every retryable FAIL trial nobody retried yet.

    Failing a RUNNING trial is the atomic claim (one worker wins); the retry of a FAIL trial is
    queued only when its own worker is gone (a live worker queues its own retry as it stops).
    Returns the numbers of the trials queued again.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    storage = study._storage
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        reason = stale_reason(trial, study_dir, grace_s, others_alive)
        if reason is None:
            continue
        try:
            storage.set_trial_system_attr(trial._trial_id, STALE_ATTR, reason)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except (UpdateFinishedTrialError, RuntimeError):
            continue  # another worker (or Optuna's heartbeat) failed it first
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    queued = []
    for trial in trials:
        if (retryable(trial) and trial.number not in retried
                and owner_gone(trial.system_attrs.get(WORKER_ATTR), study_dir, grace_s)
                and queue_retry(study, trial, max_retry)):
            queued.append(trial.number)
    return queued


LOCK_WRITE_S = 5.0  # an owner record still empty after this long is a lock whose writer died


@contextlib.contextmanager
def one_at_a_time(study_dir: Path, name: str, grace_s: float = DEFAULT_GRACE_S):
    """An exclusive lock file ``<study>/<name>`` holding its owner's worker record (open(2) with O_EXCL, which
    works on NFS too). Yields True while this process holds it, False when a live process does; the lock of
    an owner that is gone (``owner_gone``: dead here, stopped or silent for ``grace_s`` elsewhere) is removed."""
    path = Path(study_dir) / name
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                owner, age = json.loads(path.read_text() or "null"), time.time() - path.stat().st_mtime
            except FileNotFoundError:
                continue  # released meanwhile
            except (OSError, ValueError):
                owner, age = None, 0.0
            if (owner is None and age < LOCK_WRITE_S) or (owner is not None and not owner_gone(owner, study_dir, grace_s)):
                yield False
                return
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(worker_record(), fh)
        try:
            yield True
        finally:
            path.unlink(missing_ok=True)
        return
    yield False
