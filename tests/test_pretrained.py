"""Pretrained students: off by default, `--pretrained` in distill and `pretrained = true` in a search space;
offline (as here) one clear line naming the model, before any work."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from kdbench.errors import ConfigError
from kdbench.search.space import load_space

KDBENCH = os.path.join(os.path.dirname(sys.executable), "kdbench")
SPACE = """
[study]
name = "pre"
students = ["mobilenet_v3_small"]
seeds = 2
{extra}

[space]
method = ["scratch"]
"""


def _offline() -> bool:
    try:
        socket.create_connection(("download.pytorch.org", 443), timeout=3).close()
    except OSError:
        return True
    return False


def _space(tmp_path, extra: str = "") -> str:
    path = tmp_path / "space.toml"
    path.write_text(SPACE.format(extra=extra))
    return str(path)


def test_search_space_key_is_off_by_default_and_checked(tmp_path):
    assert load_space(_space(tmp_path), check_students=False).pretrained is False
    space = load_space(_space(tmp_path, "pretrained = true"), check_students=False)
    assert space.pretrained is True and space.to_dict()["pretrained"] is True
    with pytest.raises(ConfigError, match=r"study\.pretrained = 'yes'; expected true or false"):
        load_space(_space(tmp_path, 'pretrained = "yes"'), check_students=False)


def _one_error_line(args: list[str]) -> str:
    done = subprocess.run([KDBENCH, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.mark.skipif(not _offline(), reason="download.pytorch.org is reachable: this checks the offline error")
def test_distill_pretrained_offline_is_one_clear_line(tmp_path):
    line = _one_error_line(["distill", "--store", str(tmp_path / "no_store"), "--student", "mobilenet_v3_small",
                            "--method", "scratch", "--pretrained", "--out", str(tmp_path / "run")])
    assert line.startswith("error: could not download the pretrained weights for 'mobilenet_v3_small' ("), line
    assert "cannot be reached" in line and "train from scratch" in line
    assert not (tmp_path / "run").exists()  # failed before any work


@pytest.mark.skipif(not _offline(), reason="download.pytorch.org is reachable: this checks the offline error")
def test_search_with_pretrained_students_offline_is_one_clear_line(tmp_path):
    line = _one_error_line(["search", "--config", _space(tmp_path, "pretrained = true"),
                            "--store", str(tmp_path / "no_store"), "--run-dir", str(tmp_path / "runs")])
    assert line.startswith("error: could not download the pretrained weights for 'mobilenet_v3_small' ("), line
    assert not (tmp_path / "runs").exists()
