"""Where SIGINT and SIGTERM may stop a search: inside training at once, never inside Optuna's bookkeeping.

A search process (the command line, a worker) installs ``interrupt_on_sigterm``. A signal then
raises ``Interrupted`` while a trial trains (the objective queues the trial again) and outside
Optuna's calls; inside ``signals_held()`` (a worker's ``study.optimize``: ask, tell, garbage
collection) it is held and raised as that section ends, so a finished trial is always recorded
COMPLETE. On the command line a second signal (during the cleanup, or while one is held) ends the
process at once with the interrupt line and exit 128 + signal (``exit_now``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Any, Callable

from kdbench.errors import KdbenchError

RESUME_HINT = "rerun the same command to resume"


class SearchAborted(KdbenchError):
    """A trial stopped on a fault (full disk, read-only folder, a killed worker); the study is resumable."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM: the running trial is queued again, the command exits 130 (SIGINT) or 143."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__()
        self.signum = signum
        self.signal_name = signal.Signals(signum).name


class _SignalGate:
    """Where SIGINT and SIGTERM may stop a search process (installed by ``interrupt_on_sigterm``).

    A signal raises Interrupted at once while a trial trains (the objective queues it again) and
    outside Optuna's bookkeeping. Inside ``held()`` (a worker's ``study.optimize``: Optuna's ask, tell
    and garbage collection; not the objective, which runs ``released()``) it is held and raised as
    the section ends, so a trial that finished is always recorded COMPLETE, never queued twice.
    With ``second_exits`` (the command line), a signal after one was raised (the cleanup) or while
    one is held ends the process at once (``exit_now``); without it (a library call, a worker whose
    parent forwards the terminal's Ctrl-C a second time) it is ignored, so the cleanup finishes.
    """

    def __init__(self) -> None:
        self.installed = False
        self.second_exits = False
        self.depth = 0
        self.pending: int | None = None
        self.raised = False
        self.told = False

    def handler(self, signum: int, frame: Any) -> None:
        if self.raised or self.pending is not None:
            if self.second_exits:
                exit_now(signum)
            return
        if self.depth > 0:
            self.pending = signum
            return
        self.raised = True
        raise Interrupted(signum)

    def _raise_pending(self) -> None:
        if self.pending is not None:
            signum, self.pending = self.pending, None
            self.raised = True
            raise Interrupted(signum)

    @contextlib.contextmanager
    def held(self):
        """Hold signals inside; raise a held one as the section ends without an exception."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if self.depth == 0:
            self._raise_pending()

    @contextlib.contextmanager
    def released(self):
        """Signals raise at once inside (a held one first), even within ``held()``."""
        depth, self.depth = self.depth, 0
        try:
            self._raise_pending()
            yield
        finally:
            self.depth = depth


_GATE = _SignalGate()


def exit_now(signum: int) -> None:
    """End the process at once: the interrupt line (unless it was printed), exit 128 + signum, no cleanup,
    no atexit handlers, no tracebacks. What it leaves is consistent: files are written atomically, and
    the next run cuts the journal's torn last line and removes a stale journal lock (clean_leftovers)."""
    with contextlib.suppress(Exception):
        if sys.stdout.isatty():
            os.write(sys.stdout.fileno(), b"\x1b[?25h")  # a live display hid the cursor
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a flush cut short by this very signal raises
            stream.flush()
    report_interrupted(raw=True)
    os._exit(128 + signum)


def report_interrupted(raw: bool = False) -> None:
    """Print the interrupt line on stderr, once per process (``raw``: straight to fd 2, from a signal handler)."""
    if _GATE.told:
        return
    _GATE.told = True
    line = f"interrupted; {RESUME_HINT}"
    with contextlib.suppress(Exception):
        if raw:
            os.write(2, f"{line}\n".encode())
        else:
            print(line, file=sys.stderr, flush=True)


def exit_if_interrupted(code: Any) -> None:
    """The command line's exit after an interrupt (130/143): end the process at once, without Python's
    teardown (torch's atexit handlers take a while, and a Ctrl-C there would end it by the signal, -2)."""
    if _GATE.raised and code in (130, 143):
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def released(objective: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The objective with signals released (it queues its trial again when one stops it)."""
    def run(trial: Any) -> Any:
        with _GATE.released():
            return objective(trial)
    return run


@contextlib.contextmanager
def interrupt_on_sigterm(second_exits: bool = False):
    """While inside: SIGINT (Ctrl-C) and SIGTERM (Slurm preemption, `kill`) raise Interrupted where a search
    may stop, never inside Optuna's bookkeeping (see _SignalGate). ``second_exits`` (the command line): a
    further signal ends the process at once, also after this block once one was raised. Nested: the outer
    block's settings hold. Not the main thread: signals are left alone; an ignored SIGINT stays ignored."""
    gate = _GATE
    if gate.installed:
        yield
        return
    signals = [signal.SIGTERM]
    try:
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # `cmd &` in a script: Ctrl-C is not for it
            signals.append(signal.SIGINT)
        old = {s: signal.signal(s, gate.handler) for s in signals}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    gate.installed, gate.second_exits, gate.depth, gate.pending, gate.raised = True, second_exits, 0, None, False
    gate.told = False
    try:
        yield
    finally:
        gate.installed = False
        if not (second_exits and gate.raised):  # interrupted on the command line: a second signal still exits
            for s, handler in old.items():
                signal.signal(s, handler)


@contextlib.contextmanager
def signals_deferred():
    """Cleaning up after an interrupt or a fault: a signal now counts as a second one (see _SignalGate): on
    the command line it ends the process at once, elsewhere it is ignored so the cleanup finishes."""
    if _GATE.installed:
        raised, _GATE.raised = _GATE.raised, True
        try:
            yield
        finally:
            _GATE.raised = raised
        return
    try:
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def signals_held():
    """The section in which a signal is held (a worker's ``study.optimize``)."""
    return _GATE.held()


class HeldLock:
    """A lock (Optuna's journal lock) whose whole hold, from acquiring to releasing, is a held section.

    The objective runs with signals released, and its ``trial.set_user_attr`` or ``report`` writes the
    journal: a signal raised inside Optuna's lock release (before its rename) leaves the lock file
    behind and surfaces as a FileNotFoundError instead of the interrupt. Held, the signal waits for the
    write and the release, and is raised as the lock is released."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self._sections: list[Any] = []

    def acquire(self) -> bool:
        section = _GATE.held()
        section.__enter__()
        try:
            taken = self.lock.acquire()
        except BaseException:
            section.__exit__(None, None, None)
            raise
        self._sections.append(section)
        return taken

    def release(self) -> None:
        section = self._sections.pop() if self._sections else None
        try:
            self.lock.release()
        finally:
            if section is not None:
                section.__exit__(None, None, None)
