"""Logging set-up: the ``kdbench`` logger carries progress lines to stderr; results stay on stdout.

Library modules log to ``logging.getLogger("kdbench")`` or a child (``kdbench.search`` ...) and
never configure logging themselves; the CLI calls ``configure_logging`` once per command line
(``kdbench --quiet`` / ``--verbose``). A notebook user gets Python's defaults (warnings only) or
calls ``configure_logging("normal")``.
"""

from __future__ import annotations

import logging
import sys

LEVELS = {"quiet": logging.WARNING, "normal": logging.INFO, "verbose": logging.DEBUG}
logger = logging.getLogger("kdbench")
_HANDLER_NAME = "kdbench-stderr"


class _StderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stderr`` is at the time of each line."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(mode: str | None = "normal") -> int:
    """Send ``kdbench`` log lines to stderr at the level of ``mode``; returns that level.

    ``None`` means "normal unless an earlier call chose otherwise", so a command run in-process by
    another (the demo) keeps the user's --quiet / --verbose.
    """
    handler = next((h for h in logger.handlers if h.get_name() == _HANDLER_NAME), None)
    if mode is None:
        if handler is not None:
            return logger.level
        mode = "normal"
    if mode not in LEVELS:
        raise ValueError(f"logging mode {mode!r}; expected one of {sorted(LEVELS)}")
    if handler is None:
        handler = _StderrHandler()
        handler.set_name(_HANDLER_NAME)
        logger.addHandler(handler)
        logger.propagate = False  # no second copy through a root handler someone else installed
    fmt = "%(asctime)s %(name)s %(levelname)s: %(message)s" if mode == "verbose" else "%(message)s"
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    logger.setLevel(LEVELS[mode])
    return LEVELS[mode]
