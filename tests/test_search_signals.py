"""Signals at the awkward points of a real `kdbench search` (and `kdbench search confirm`) subprocess:
inside Optuna's bookkeeping right after a trial finished, a second Ctrl-C during the cleanup, a
journal lock left behind by a killed process. Each interrupted command must end in the interrupt
line with exit 130 (SIGINT) or 143 (SIGTERM), and the same command must resume to the uninterrupted
result (the tiny grid of tests/test_search_faults.py, whose helpers and reference run are reused).

Each case prints one row of the fault table (run pytest with -s to see it).
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_search_faults import (ENV, STUDENT, _args, _resume_and_compare, _seed_events, _wait_for_start,  # noqa: F401
                                inputs, reference)  # the fixtures too

LINE = "interrupted; rerun the same command to resume"
SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}


def _start(inputs: dict, run_dir: Path) -> subprocess.Popen:
    return subprocess.Popen(_args(inputs, run_dir), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group: killpg hits it as a terminal's Ctrl-C


def _finish(proc: subprocess.Popen, timeout: float = 120) -> subprocess.CompletedProcess:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _check_interrupted(proc: subprocess.CompletedProcess, signum: int) -> None:
    """Exit 130/143, the interrupt line last and only once, no traceback, not the message of a fault."""
    assert proc.returncode == 128 + signum, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "UnboundLocalError" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines and lines[-1] == LINE, proc.stderr[-2000:]
    assert sum(LINE in line for line in lines) == 1, proc.stderr[-2000:]


def _trials(study_dir: Path) -> list:
    from kdbench.search.runner import load_studies

    return load_studies(study_dir, None)[STUDENT].get_trials()


# ---- a signal while Optuna records a finished trial (its tell) ----------------------------------------


class _Inotify:
    """Linux inotify on one folder (ctypes): the name of each entry created or moved into it."""

    IN_MOVED_TO, IN_CREATE = 0x80, 0x100

    def __init__(self, folder: Path) -> None:
        self.libc = ctypes.CDLL("libc.so.6", use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK)
        if self.fd < 0 or self.libc.inotify_add_watch(self.fd, str(folder).encode(),
                                                       self.IN_CREATE | self.IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), f"inotify on {folder}")

    def wait_for(self, part: str, timeout: float) -> str:
        """Block until an entry whose name contains ``part`` appears (a temporary file too); its name."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self.fd], [], [], left)[0]:
                break
            buf, off = os.read(self.fd, 65536), 0
            while off < len(buf):
                _wd, _mask, _cookie, length = struct.unpack_from("iIII", buf, off)
                name = buf[off + 16:off + 16 + length].rstrip(b"\0").decode()
                off += 16 + length
                if part in name:
                    return name
        raise AssertionError(f"no *{part}* appeared in {timeout} s")

    def close(self) -> None:
        os.close(self.fd)


def _hold_journal_lock(lock: Path, timeout: float = 5.0) -> None:
    """Create Optuna's journal lock file as another writer would (O_EXCL), waiting while a write holds it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return
        except FileExistsError:
            assert time.monotonic() < deadline, f"{lock} stayed taken for {timeout} s"
            time.sleep(0.0002)


def _stop_inside_tell(inputs: dict, run_dir: Path) -> subprocess.Popen | None:
    """Start the search and stop it inside Optuna's tell of trial 0: the lock of the journal is taken (as by
    another writer) the moment the objective writes trial.json, its last step, so tell's journal write
    waits. The process, blocked in tell; None when the race was lost (tell had written already)."""
    study_dir = run_dir / "faults"
    tdir = study_dir / "trials" / STUDENT / "0"
    proc = _start(inputs, run_dir)
    deadline = time.monotonic() + 120
    while not tdir.is_dir():
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "trial 0 never started"
        time.sleep(0.005)
    watch = _Inotify(tdir)
    try:
        watch.wait_for("trial.json", timeout=120)
        _hold_journal_lock(study_dir / "optuna.journal.lock")
    finally:
        watch.close()
    time.sleep(0.5)  # the worker runs into the lock (Optuna retries it for 30 s before taking it over)
    record = json.loads((tdir / "trial.json").read_text())
    if record["state"] != "complete" or _trials(study_dir)[0].state.name != "RUNNING":
        (study_dir / "optuna.journal.lock").unlink()
        _finish(proc)
        return None
    return proc


@pytest.mark.parametrize("second", [False, True], ids=["one_sigint", "second_sigint_while_held"])
def test_a_signal_inside_optunas_tell_is_held_until_the_trial_is_recorded(second, inputs, reference, tmp_path):
    """The trial stays COMPLETE and is not queued again; a second Ctrl-C while the first is held ends at
    once (the trial is then left RUNNING and the resume recovers it with its seeds)."""
    for attempt in range(5):
        run_dir = tmp_path / f"runs{attempt}"
        proc = _stop_inside_tell(inputs, run_dir)
        if proc is not None:
            break
    else:
        pytest.fail("5 tries never caught Optuna's tell (the lock came too late each time)")
    study_dir, lock = run_dir / "faults", run_dir / "faults" / "optuna.journal.lock"
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None, f"the signal was not held inside tell: {proc.communicate()[1][-3000:]}"
    if second:
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        done = _finish(proc, timeout=30)
        quick = time.monotonic() - sent
        assert quick < 5, f"a second Ctrl-C took {quick:.1f} s to end the search"
        lock.unlink()  # ours (the test's): the killed process never got it
        assert _trials(study_dir)[0].state.name == "RUNNING"
    else:
        lock.unlink()  # the held write goes through, then the held signal stops the search
        done = _finish(proc)
        trials = _trials(study_dir)
        assert trials[0].state.name == "COMPLETE"
        assert not [t for t in trials if 0 in t.system_attrs.get("retry_history", [])], "trial 0 was queued again"
    _check_interrupted(done, signal.SIGINT)
    point = f"inside tell of trial 0 (caught on try {attempt + 1})" + (", then a second SIGINT" if second else "")
    _resume_and_compare(inputs, run_dir, reference, "sigint" + ("_twice" if second else ""), point, done.returncode)


@pytest.mark.parametrize("name,delay", [("SIGINT", 0.0), ("SIGTERM", 0.003), ("SIGINT", 0.02)])
def test_a_signal_just_after_a_trials_last_seed_resumes_to_the_same_result(name, delay, inputs, reference, tmp_path):
    """The signal is sent when the seed log shows trial 0's last seed done: it lands in the objective's
    bookkeeping, in Optuna's tell or just after; wherever, the same exit and the same resumed result."""
    run_dir = tmp_path / "runs"
    study_dir = run_dir / "faults"
    proc = _start(inputs, run_dir)
    deadline = time.monotonic() + 120
    while sum(e["event"] == "done" and e["trial"] == 0 for e in _seed_events(study_dir)) < 2:
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "trial 0 never finished"
        time.sleep(0.001)
    time.sleep(delay)
    os.killpg(proc.pid, SIGNALS[name])
    done = _finish(proc)
    _check_interrupted(done, SIGNALS[name])
    _resume_and_compare(inputs, run_dir, reference, name.lower(), f"trial 0's last seed done + {delay:.3f} s",
                        done.returncode)


# ---- a second Ctrl-C during the cleanup ------------------------------------------------------------------


@pytest.mark.parametrize("gap", [0.05, 0.4])
def test_a_second_sigint_during_the_cleanup_ends_at_once_and_quietly(gap, inputs, reference, tmp_path):
    run_dir = tmp_path / "runs"
    proc = _start(inputs, run_dir)
    _wait_for_start(run_dir / "faults", proc, 3)
    time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)  # trial 1's first seed is training
    time.sleep(gap)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    done = _finish(proc, timeout=60)
    quick = time.monotonic() - sent
    _check_interrupted(done, signal.SIGINT)
    assert quick < 1.0, f"the second Ctrl-C took {quick:.2f} s to end the search"
    _resume_and_compare(inputs, run_dir, reference, "sigint_sigint", f"seed run 3 started + 0.1 s, again + {gap} s",
                        done.returncode)


# ---- a journal lock left behind -----------------------------------------------------------------------------


def test_a_stale_journal_lock_is_removed_with_one_line(inputs, reference, tmp_path):
    """SIGKILL, then the lock a killed journal write leaves: the resume removes it (one line) instead of
    waiting Optuna's 30 s, and gives the uninterrupted result."""
    run_dir = tmp_path / "runs"
    study_dir = run_dir / "faults"
    proc = _start(inputs, run_dir)
    _wait_for_start(study_dir, proc, 2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    lock = study_dir / "optuna.journal.lock"
    lock.touch()
    start = time.monotonic()
    out = _resume_and_compare(inputs, run_dir, reference, "sigkill_stale_lock", "seed run 2 started, lock left",
                              -signal.SIGKILL)
    wall = time.monotonic() - start
    assert not lock.exists()
    lines = [line for line in out["resume"].stderr.splitlines() if "stale journal lock" in line]
    assert len(lines) == 1 and str(lock) in lines[0] and lines[0].startswith("removed"), out["resume"].stderr[-2000:]
    assert wall < 25, f"the resume took {wall:.0f} s (Optuna alone waits 30 s for a stale lock)"


def test_a_lock_with_a_live_worker_is_left_and_its_worker_named(inputs, tmp_path):
    from kdbench.search.liveness import live_workers
    from kdbench.search.journal_lock import note_held_lock

    run_dir = tmp_path / "runs"
    study_dir = run_dir / "faults"
    proc = _start(inputs, run_dir)
    try:
        _wait_for_start(study_dir, proc, 1)
        lock = study_dir / "optuna.journal.lock"
        _hold_journal_lock(lock)
        os.utime(lock, (time.time() - 60, time.time() - 60))
        line = note_held_lock(study_dir, None, live_workers(study_dir))
        assert lock.exists()
        lock.unlink()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _finish(proc)
    assert line is not None and f":{proc.pid}" in line and "left in place" in line, line


# ---- confirm ----------------------------------------------------------------------------------------------


def _confirm(study_dir: Path) -> list[str]:
    return [sys.executable, "-c", "from kdbench.cli import main; main()", "search", "confirm", "--study",
            str(study_dir), "--seeds", "2", "--device", "cpu"]


def _confirm_results(study_dir: Path) -> dict:
    records = {p.parent.name: {s: {k: v for k, v in r.items() if k != "wall_time_s"}
                               for s, r in json.loads(p.read_text())["seeds"].items()}
               for p in (study_dir / "confirm").glob("*/*/trial.json")}
    stats = json.loads((study_dir / "confirm" / "statistics.json").read_text())
    return {"seeds": records, "comparisons": stats["comparisons"]}


@pytest.fixture(scope="module")
def confirmed(reference):
    """An uninterrupted confirm of the reference study (its confirm/ folder removed again)."""
    study_dir = reference["study_dir"]
    proc = subprocess.run(_confirm(study_dir), env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = _confirm_results(study_dir)
    shutil.rmtree(study_dir / "confirm")
    return out


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_confirm_interrupted_gives_the_line_and_resumes(name, reference, confirmed):
    study_dir = reference["study_dir"]
    proc = subprocess.Popen(_confirm(study_dir), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(list((study_dir / "confirm").glob("*/*/seed_*"))) < 2:
            assert proc.poll() is None, proc.stderr.read()[-2000:]
            assert time.monotonic() < deadline, "confirm never started its second seed run"
            time.sleep(0.005)
        time.sleep(0.05)
        os.killpg(proc.pid, SIGNALS[name])
        done = _finish(proc)
        _check_interrupted(done, SIGNALS[name])
        rerun = subprocess.run(_confirm(study_dir), env=ENV, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        equal = _confirm_results(study_dir) == confirmed
    finally:
        shutil.rmtree(study_dir / "confirm", ignore_errors=True)
    print(f"\nFAULT-TABLE | confirm_{name.lower()} | second confirm seed run started + 0.05 s | rc {done.returncode} | "
          f"resumed yes | statistics equal {equal}")
    assert equal


@pytest.mark.parametrize("where", ["acquire", "write", "release"])
def test_a_signal_inside_the_journal_lock_waits_for_the_write_and_the_release(where, tmp_path):
    """The objective writes the journal with signals released (set_user_attr, report): a SIGTERM sent while
    Optuna's lock is taken, held or given back is raised only once the lock file is gone and the line is
    whole (it once cut the release before its rename and ended as a FileNotFoundError, lock left behind)."""
    import optuna
    from optuna.storages.journal import JournalFileOpenLock

    from kdbench.search.interrupts import Interrupted, interrupt_on_sigterm, released
    from kdbench.search.storage import open_storage

    armed: list[str] = []

    def signal_at(point: str) -> None:
        if armed == [point]:
            armed.append("sent")
            os.kill(os.getpid(), signal.SIGTERM)

    class SignalOnce(JournalFileOpenLock):
        def acquire(self) -> bool:
            signal_at("acquire")
            taken = super().acquire()
            signal_at("write")
            return taken

        def release(self) -> None:
            signal_at("release")
            super().release()

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(None, tmp_path)
    backend = storage._backend
    backend._lock.lock = SignalOnce(str(tmp_path / "optuna.journal"))
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    armed.append(where)
    with interrupt_on_sigterm(), pytest.raises(Interrupted) as caught:
        released(lambda t: t.set_user_attr("seeds_done", 3))(trial)
    assert caught.value.signum == signal.SIGTERM and armed[-1] == "sent"
    assert not list(tmp_path.glob("optuna.journal.lock*")), "the lock (or its rename) was left behind"
    lines = (tmp_path / "optuna.journal").read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(line) for line in lines[:-1])
    reread = optuna.load_study(storage=open_storage(None, tmp_path), study_name="s")
    assert reread.trials[0].user_attrs == {"seeds_done": 3}
