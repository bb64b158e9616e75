"""Bad input and hostile environments get one line and exit 2: each fault is really injected.

Tests run as root, where ``chmod 0o555`` does not stop writes. The read-only folder is therefore a
read-only bind mount made inside ``unshare --map-root-user --mount`` (root cannot write there either),
and a full disk is ``RLIMIT_FSIZE`` = 0 in a child process (writes fail with EFBIG, SIGXFSZ ignored).
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kdbench import checks
from kdbench.errors import ConfigError, DataError


def _unshare_available() -> bool:
    """True when this machine can make a private read-only bind mount (needs user/mount namespaces)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--map-root-user", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


def read_only_prefix(folder: Path) -> list[str]:
    """A command prefix that runs its command with ``folder`` bind-mounted read-only."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        return []
    if not _unshare_available():
        pytest.skip("root without user/mount namespaces: no way to make a folder read-only for root")
    script = f'mount --bind "{folder}" "{folder}" && mount -o remount,bind,ro "{folder}" && exec "$@"'
    return ["unshare", "--map-root-user", "--mount", "sh", "-c", script, "sh"]


def _no_file_size(limit: int = 0):
    """A preexec_fn: files may grow to ``limit`` bytes, and writing past it raises EFBIG, not SIGXFSZ."""
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


_CHECK = "import sys; from kdbench import checks; checks.ensure_writable_dir(sys.argv[1], 'output folder')"


def test_writable_dir_created_and_returned(tmp_path):
    out = checks.ensure_writable_dir(tmp_path / "a" / "b", "output folder")
    assert out.is_dir() and list(out.iterdir()) == []  # the probe file is gone


def test_writable_dir_under_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match=r"output folder .*f/sub: cannot create the folder \(Not a directory\)"):
        checks.ensure_writable_dir(tmp_path / "f" / "sub", "output folder")
    with pytest.raises(ConfigError, match="exists and is not a folder"):
        checks.ensure_writable_dir(tmp_path / "f", "output folder")


def test_writable_dir_read_only_mount(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    r = subprocess.run([*read_only_prefix(folder), sys.executable, "-c", _CHECK, str(folder)],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "not writable (Read-only file system)" in r.stderr or "Permission denied" in r.stderr, r.stderr


def test_writable_dir_full_disk(tmp_path):
    r = subprocess.run([sys.executable, "-c", _CHECK, str(tmp_path)], capture_output=True, text=True,
                       preexec_fn=_no_file_size(0))
    assert r.returncode != 0 and "not writable (File too large)" in r.stderr, r.stderr


def test_writable_dir_free_space(tmp_path):
    free_mb = shutil.disk_usage(tmp_path).free / 2**20
    checks.ensure_writable_dir(tmp_path, "output folder", need_mb=1)
    with pytest.raises(ConfigError, match=r"MiB free, this run needs about"):
        checks.ensure_writable_dir(tmp_path, "output folder", need_mb=free_mb * 4 + 10)


def test_device_checks():
    import torch

    assert checks.ensure_device("cpu") == "cpu"
    if torch.version.cuda is None:
        with pytest.raises(ConfigError, match=r"^--device cuda: this torch build has no CUDA \(torch .*\); use --device cpu$"):
            checks.ensure_device("cuda")
    elif not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="torch sees no CUDA GPU"):
            checks.ensure_device("cuda:0")
    with pytest.raises(ConfigError, match="expected cpu, cuda, cuda:N or mps"):
        checks.ensure_device("gpu")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1, 0, "abc", None])
def test_positive_finite_rejects(bad):
    with pytest.raises(ConfigError, match="--lr"):
        checks.positive_finite(bad, "--lr")


def test_positive_finite_and_int_accept():
    assert checks.positive_finite("0.05", "--lr") == 0.05
    assert checks.positive_int(3, "--epochs") == 3
    for bad in (0, -2, True, 1.5):
        with pytest.raises(ConfigError, match="--epochs"):
            checks.positive_int(bad, "--epochs")


def test_read_text_utf8(tmp_path):
    good = tmp_path / "good.csv"
    good.write_bytes("\ufeffa,b\nç,1\n".encode())
    assert checks.read_text_utf8(good, "CSV file") == "a,b\nç,1\n"
    bad = tmp_path / "FileList.csv"
    bad.write_bytes(b"a,b\nx,1\n\xe9t\xe9,2\n")
    with pytest.raises(DataError, match=r"^CSV file .*FileList.csv: not UTF-8 text \(byte 0xe9 at offset 8, line 3\)"):
        checks.read_text_utf8(bad, "CSV file")
    with pytest.raises(DataError, match="no such file"):
        checks.read_text_utf8(tmp_path / "absent.csv", "CSV file")
