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


# --- frame store integrity --------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    """A small store from the official layouts (echo_fixtures), prepared once; tests copy it before editing."""
    from echo_fixtures import make_all
    from kdbench.data.prepare import prepare_store

    base = tmp_path_factory.mktemp("integrity")
    prepare_store(make_all(base / "data", n=3, frames=4), base / "store", size=32, frames_per_video=3, workers=1)
    return base / "store"


def _copy_store(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _flip_row(store: Path, row: int) -> None:
    """Change one frame in place (np.memmap r+), as a stray tool or a bad disk would."""
    import numpy as np

    frames = np.load(store / "frames.npy", mmap_mode="r+")
    frames[row] = 255 - frames[row]
    frames.flush()


def test_store_records_integrity_and_verifies(small_store, tmp_path):
    from kdbench.data.store import FrameStore, sample_rows, verify_store

    store = FrameStore.open(small_store)
    integrity = store.manifest["integrity"]
    assert integrity["frames_bytes"] == (small_store / "frames.npy").stat().st_size
    assert integrity["sample_rows"] == min(len(store), 64)
    report = verify_store(small_store)
    assert report["store_hash"] == store.store_hash and report["n_frames"] == len(store)
    assert len(sample_rows(1000)) == 64 and sample_rows(1000)[0] == 0 and sample_rows(1000)[-1] == 999


def test_frames_changed_in_a_sampled_row_fail_on_open(small_store, tmp_path):
    from kdbench.data.store import FrameStore, sample_rows

    store = _copy_store(small_store, tmp_path / "s")
    n = len(FrameStore.open(store))
    _flip_row(store, int(sample_rows(n)[1]))
    with pytest.raises(DataError, match=r"frames.npy \(the hash of \d+ sampled rows differs\) changed since "
                                        r"`kdbench data prepare` wrote it; run `kdbench data verify"):
        FrameStore.open(store)


def test_frames_changed_between_samples_are_caught_by_verify(tmp_path_factory, tmp_path):
    """A store bigger than the sample: a row the cheap check skips is still caught by the full verify."""
    from echo_fixtures import make_all
    from kdbench.data.prepare import prepare_store
    from kdbench.data.store import FrameStore, sample_rows, verify_store

    store = tmp_path / "store"
    prepare_store(make_all(tmp_path / "data", n=12, frames=8), store, size=16, frames_per_video=4, workers=1)
    n = len(FrameStore.open(store))
    unsampled = sorted(set(range(n)) - set(sample_rows(n).tolist()))
    assert unsampled, n
    _flip_row(store, unsampled[0])
    FrameStore.open(store)  # the sampled check cannot see this row
    with pytest.raises(DataError, match=r"frames.npy changed since `kdbench data prepare`"):
        verify_store(store)


def test_store_without_integrity_record_still_opens_and_verifies(small_store, tmp_path):
    import json

    from kdbench.data.store import FrameStore, verify_store

    store = _copy_store(small_store, tmp_path / "old")
    manifest = json.loads((store / "manifest.json").read_text())
    del manifest["integrity"]
    (store / "manifest.json").write_text(json.dumps(manifest))
    assert len(FrameStore.open(store)) == manifest["n_frames"]
    assert verify_store(store)["integrity_recorded"] is False
    _flip_row(store, 0)
    with pytest.raises(DataError, match=r"frames.npy or index.csv \(store_hash differs\)"):
        verify_store(store)


def test_index_changed_fails_on_open(small_store, tmp_path):
    from kdbench.data.store import FrameStore

    store = _copy_store(small_store, tmp_path / "s")
    text = (store / "index.csv").read_text()
    (store / "index.csv").write_text(text.replace(",train,", ",test,", 1))
    with pytest.raises(DataError, match=r"index.csv changed since"):
        FrameStore.open(store)


# --- the real CLI: every bad input is one line, exit 2, before any long work ------------------

_CLI = [sys.executable, "-c", "from kdbench.cli import main; main()"]


def _cli_error(*args: str) -> str:
    """Run the CLI in-process and return the KdbenchError it raised (the line main() prints)."""
    from typer.testing import CliRunner

    from kdbench.cli import app
    from kdbench.errors import KdbenchError

    result = CliRunner().invoke(app, list(args))
    assert isinstance(result.exception, KdbenchError), (result.exit_code, result.output, result.exception)
    return str(result.exception)


@pytest.mark.parametrize("option, value, message", [
    ("--lr", "nan", "--lr nan: expected a finite number greater than 0"),
    ("--lr", "-1", "--lr -1.0: expected a finite number greater than 0"),
    ("--epochs", "0", "--epochs 0: expected a whole number of at least 1"),
    ("--batch-size", "0", "--batch-size 0: expected a whole number of at least 1"),
    ("--device", "tpu", "--device 'tpu': expected cpu, cuda, cuda:N or mps"),
])
def test_distill_and_teacher_reject_bad_numbers_and_devices(small_store, tmp_path, option, value, message):
    out = tmp_path / "run"
    assert _cli_error("distill", "--store", str(small_store), "--method", "scratch", option, value,
                      "--out", str(out)) == message
    assert _cli_error("teacher", "train", "--store", str(small_store), option, value,
                      "--out", str(tmp_path / "t.pt")) == message
    assert not out.exists() and not (tmp_path / "t").exists()  # refused before any training


def test_device_cuda_without_cuda_is_one_line(small_store, tmp_path):
    import torch

    if torch.version.cuda is not None:
        pytest.skip("this torch has CUDA")
    message = _cli_error("distill", "--store", str(small_store), "--method", "scratch", "--device", "cuda",
                         "--out", str(tmp_path / "run"))
    assert message == f"--device cuda: this torch build has no CUDA (torch {torch.__version__}); use --device cpu"


def test_output_under_a_file_and_missing_teacher(small_store, tmp_path):
    (tmp_path / "file").write_text("x")
    message = _cli_error("distill", "--store", str(small_store), "--method", "scratch", "--out", str(tmp_path / "file" / "run"))
    assert message == f"--out {tmp_path / 'file' / 'run'}: cannot create the folder (Not a directory)"
    message = _cli_error("teacher", "cache", "--store", str(small_store), "--teacher", str(tmp_path / "nope.pt"))
    assert message == f"--teacher {tmp_path / 'nope.pt'}: no such file"


def test_corrupt_checkpoint_as_teacher_is_one_line(small_store, tmp_path):
    from kdbench.models import create_model
    from kdbench.models.checkpoint import save_checkpoint

    store = _copy_store(small_store, tmp_path / "store")
    path = save_checkpoint(create_model("mobilenet_v3_small"), tmp_path / "t.pt", arch="mobilenet_v3_small",
                           num_classes=4, input_size=32)
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 512] = bytes(512)
    path.write_bytes(bytes(data))
    message = _cli_error("teacher", "cache", "--store", str(store), "--teacher", str(path))
    assert message.startswith(f"checkpoint {path} is corrupt: its tensors hash to ")


def test_prepare_non_utf8_csv_and_missing_video_strict(tmp_path):
    from echo_fixtures import make_dynamic

    root = make_dynamic(tmp_path / "dyn", [("0XAA", "TRAIN"), ("0XBB", "VAL")], frames=3)
    (root / "Videos" / "0XBB.avi").unlink()
    args = ["data", "prepare", "--echonet-dynamic", str(root), "--size", "32", "--workers", "1"]
    message = _cli_error(*args, "--out", str(tmp_path / "s1"), "--strict")
    assert message.startswith(f"listed in {root / 'FileList.csv'} line 3 but {root / 'Videos' / '0XBB.avi'} does not exist")
    text = (root / "FileList.csv").read_bytes()
    (root / "FileList.csv").write_bytes(text.replace(b"0XAA", b"0X\xc9A"))
    message = _cli_error(*args, "--out", str(tmp_path / "s2"))
    assert message == (f"CSV file {root / 'FileList.csv'}: not UTF-8 text (byte 0xc9 at offset {text.index(b'0XAA') + 2}, "
                       f"line 2); save it as UTF-8")
    assert not (tmp_path / "s1").exists() and not (tmp_path / "s2").exists()


def test_info_counts_missing_and_verify_names_changed_frames(tmp_path):
    from typer.testing import CliRunner

    from echo_fixtures import make_dynamic
    from kdbench.cli import app

    root = make_dynamic(tmp_path / "dyn", [("0XAA", "TRAIN"), ("0XBB", "VAL"), ("0XCC", "TEST")], frames=3)
    (root / "Videos" / "0XBB.avi").unlink()
    store = tmp_path / "store"
    runner = CliRunner()
    res = runner.invoke(app, ["data", "prepare", "--echonet-dynamic", str(root), "--out", str(store), "--size", "32",
                              "--workers", "1"], terminal_width=400)
    assert res.exit_code == 0, res.output
    assert "missing listed in" in res.output and "missing (listed but absent): 1" in res.output
    res = runner.invoke(app, ["data", "info", str(store)], terminal_width=400)
    assert "missing (listed but absent): 1" in res.output
    res = runner.invoke(app, ["data", "verify", str(store)], terminal_width=400)
    assert res.exit_code == 0 and ": ok, " in res.output, res.output
    _flip_row(store, 1)
    assert _cli_error("data", "verify", str(store)).startswith(
        f"frame store {store}: frames.npy changed since `kdbench data prepare` wrote it (full rehash)")


def test_read_only_output_folder_real_cli(small_store, tmp_path):
    """The command as a user runs it, in a read-only folder: one line on stderr, exit 2, nothing trained."""
    folder = tmp_path / "ro"
    folder.mkdir()
    r = subprocess.run([*read_only_prefix(folder), *_CLI, "distill", "--store", str(small_store), "--method", "scratch",
                        "--epochs", "1", "--device", "cpu", "--out", str(folder / "run")], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith(f"error: --out {folder / 'run'}: cannot create the folder (")
    assert "Read-only file system" in lines[0] or "Permission denied" in lines[0]  # root: the mount; others: chmod


def test_disk_full_during_prepare_is_one_line_and_the_rerun_finishes(tmp_path):
    """RLIMIT_FSIZE = 20 KB in the child: every 12 KB part fits, the 72 KB frames.npy does not."""
    from echo_fixtures import make_dynamic
    from kdbench.data.store import FrameStore

    root = make_dynamic(tmp_path / "dyn", [(f"0X{i:04X}", ("TRAIN", "VAL", "TEST")[i % 3]) for i in range(6)], frames=6)
    out = tmp_path / "store"
    args = [*_CLI, "data", "prepare", "--echonet-dynamic", str(root), "--out", str(out), "--size", "64",
            "--frames-per-video", "3", "--workers", "1"]
    r = subprocess.run(args, capture_output=True, text=True, preexec_fn=_no_file_size(20_000))
    assert r.returncode == 2, r.stderr
    [line] = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert line.startswith(f"error: frame store {out}: cannot write") and "rerun the same command" in line
    assert "Traceback" not in r.stderr and not (out / "manifest.json").exists()
    r = subprocess.run(args, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert FrameStore.open(out).manifest["n_clips"] == 6
    assert "6 clips resumed from an interrupted run" in " ".join(r.stdout.split()), r.stdout
