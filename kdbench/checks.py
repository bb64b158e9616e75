"""Up-front checks of user input and environment, each failing with one line (ConfigError/DataError).

Commands call these before any long work (training, a teacher pass, an export) so that a bad
output folder, device or number is reported in seconds, not after an hour of compute.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kdbench.errors import ConfigError, DataError


def ensure_writable_dir(path: str | os.PathLike[str], what: str, need_mb: float = 0) -> Path:
    """Create ``path`` if missing and prove it writable (a temp file) with ``need_mb`` MiB free."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{what} {folder}: exists and is not a folder") from None
    except OSError as err:
        raise ConfigError(f"{what} {folder}: cannot create the folder ({_reason(err)})") from None
    if not folder.is_dir():
        raise ConfigError(f"{what} {folder}: exists and is not a folder")
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".kdbench-write-check-") as probe:
            probe.write(b"x")
            probe.flush()
    except OSError as err:
        raise ConfigError(f"{what} {folder}: not writable ({_reason(err)})") from None
    if need_mb > 0:
        free_mb = shutil.disk_usage(folder).free / 2**20
        if free_mb < need_mb:
            raise ConfigError(f"{what} {folder}: {free_mb:.0f} MiB free, this run needs about "
                              f"{need_mb:.0f} MiB; free some space or choose another folder")
    return folder


def ensure_readable_file(path: str | os.PathLike[str], what: str) -> Path:
    """Check that ``path`` is an existing, readable file."""
    file = Path(path)
    if not file.exists():
        raise DataError(f"{what} {file}: no such file")
    if not file.is_file():
        raise DataError(f"{what} {file}: not a file")
    try:
        with file.open("rb") as handle:
            handle.read(1)
    except OSError as err:
        raise DataError(f"{what} {file}: cannot be read ({_reason(err)})") from None
    return file


def ensure_device(device: str) -> str:
    """Check that torch can use ``device`` ("cpu", "cuda", "cuda:1", "mps"); return it unchanged."""
    import torch

    kind, _, index = device.partition(":")
    if kind == "cpu":
        return device
    if kind == "cuda":
        if torch.version.cuda is None:
            raise ConfigError(f"--device {device}: this torch build has no CUDA (torch {torch.__version__}); "
                              f"use --device cpu")
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--device {device}: torch sees no CUDA GPU (check the driver and "
                              f"CUDA_VISIBLE_DEVICES); use --device cpu")
        if index and (not index.isdigit() or int(index) >= count):
            raise ConfigError(f"--device {device}: expected cuda:0 to cuda:{count - 1} ({count} GPU(s) visible)")
        return device
    if kind == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"--device {device}: MPS is not available on this machine; use --device cpu")
        return device
    raise ConfigError(f"--device {device!r}: expected cpu, cuda, cuda:N or mps")


def positive_finite(value: Any, what: str) -> float:
    """Return ``value`` as a float when it is finite and > 0, else raise naming ``what``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} {value!r}: expected a positive number") from None
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{what} {value!r}: expected a finite number greater than 0")
    return number


def positive_int(value: Any, what: str) -> int:
    """Return ``value`` as an int when it is a whole number >= 1, else raise naming ``what``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{what} {value!r}: expected a whole number of at least 1")
    return value


def check_training_options(*, lr: Any, epochs: Any, batch_size: Any, patience: Any, device: str) -> None:
    """The up-front checks of a training command's options (--lr, --epochs, --batch-size, --patience, --device)."""
    positive_finite(lr, "--lr")
    positive_int(epochs, "--epochs")
    positive_int(batch_size, "--batch-size")
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
        raise ConfigError(f"--patience {patience!r}: expected a whole number of at least 0")
    if device != "auto":
        ensure_device(device)


def read_text_utf8(path: str | os.PathLike[str], what: str) -> str:
    """Read a text file as UTF-8; a bad byte raises one line naming the file, offset and line."""
    file = ensure_readable_file(path, what)
    data = file.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        start = err.start
        line = data.count(b"\n", 0, start) + 1
        raise DataError(f"{what} {file}: not UTF-8 text (byte 0x{data[start]:02x} at offset {start}, "
                        f"line {line}); save it as UTF-8") from None
    return text.removeprefix("\ufeff")


_ENVIRONMENT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO)


def describe_os_error(err: BaseException) -> str | None:
    """One line for a full disk, a read-only or forbidden path met mid-run; None for other errors."""
    if not isinstance(err, OSError) or err.errno not in _ENVIRONMENT_ERRNOS:
        return None
    where = f" {err.filename}" if err.filename else ""
    return (f"cannot write or read{where} ({_reason(err)}); free some space, fix the folder's permissions or "
            f"choose another folder, then rerun the same command")


@contextlib.contextmanager
def write_errors(what: str) -> Iterator[None]:
    """Turn an OSError raised while writing ``what`` (a full disk, a short write) into one DataError line."""
    try:
        yield
    except OSError as err:
        if err.errno is not None and err.errno not in _ENVIRONMENT_ERRNOS:
            raise  # not a write failure (a missing file, ...): its own message
        where = f" {err.filename}" if err.filename else ""
        raise DataError(f"{what}: cannot write{where} ({_reason(err)}); free some space or choose a writable "
                        f"folder, then rerun the same command (finished work is kept)") from None


def _reason(err: OSError) -> str:
    """The OS's short reason for ``err`` ("Read-only file system", "Permission denied", numpy's short write)."""
    return err.strerror or str(err) or type(err).__name__
