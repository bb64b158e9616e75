"""The root of the real ``kdbench`` console script: --version, shell completion, --quiet / --verbose."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from kdbench import __version__

KDBENCH = os.path.join(os.path.dirname(sys.executable), "kdbench")
MODELS = ["models", "-m", "mobilenet_v3_small", "--size", "32"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The installed console script, stdout and stderr apart, as a log file would get them (no terminal)."""
    return subprocess.run([KDBENCH, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "80", **(env or {})})


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_and_exits_zero(flag: str) -> None:
    done = run(flag)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"kdbench {__version__}\n", "")


def test_bash_completion_completes_command_names() -> None:
    env = {"_KDBENCH_COMPLETE": "complete_bash", "COMP_WORDS": "kdbench lea", "COMP_CWORD": "1"}
    done = run(env=env)
    assert (done.returncode, done.stdout.split()) == (0, ["leaderboard"])
    env = {"_KDBENCH_COMPLETE": "complete_bash", "COMP_WORDS": "kdbench search st", "COMP_CWORD": "2"}
    assert set(run(env=env).stdout.split()) == {"status", "stats"}
    script = run("--show-completion", "bash")
    assert script.returncode == 0 and "_KDBENCH_COMPLETE=complete_bash" in script.stdout


@pytest.mark.parametrize("words,expected", [
    ("kdbench search --config q", {"quick"}),
    ("kdbench profile --target r", {"rpi4"}),
    ("kdbench distill --method d", {"dist", "dkd"}),
])
def test_completion_completes_values_of_spaces_targets_and_methods(words: str, expected: set) -> None:
    env = {"_KDBENCH_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
    done = run(env=env)
    assert done.returncode == 0 and set(done.stdout.split()) == expected, done.stdout + done.stderr


def test_progress_lines_go_to_stderr_and_quiet_drops_them() -> None:
    normal, quiet = run(*MODELS), run("--quiet", *MODELS)
    assert normal.returncode == quiet.returncode == 0
    assert normal.stderr.splitlines() == ["building mobilenet_v3_small (1/1)"]
    assert quiet.stderr == ""
    for done in (normal, quiet):  # the result itself stays on stdout
        assert re.search(r"mobilenet_v3_small .* student .* torchvision", done.stdout)


@pytest.mark.parametrize("flag", ["-q", "--quiet"])
def test_quiet_after_the_subcommand_works_like_before_it(flag: str) -> None:
    before, after = run(flag, *MODELS), run(*MODELS, flag)
    assert before.returncode == after.returncode == 0
    assert after.stderr == before.stderr == ""
    assert after.stdout == before.stdout
    assert run(*MODELS, "-v").stderr.splitlines()[1].endswith("building mobilenet_v3_small (1/1)")


def test_verbose_adds_timed_debug_lines_naming_their_module() -> None:
    done = run("-v", *MODELS)
    assert done.returncode == 0
    lines = done.stderr.splitlines()
    assert re.fullmatch(rf"\d\d:\d\d:\d\d kdbench DEBUG: kdbench {re.escape(__version__)}, Python .*", lines[0])
    assert re.fullmatch(r"\d\d:\d\d:\d\d kdbench\.models INFO: building mobilenet_v3_small \(1/1\)", lines[1])
    assert re.fullmatch(r"\d\d:\d\d:\d\d kdbench\.models DEBUG: mobilenet_v3_small: \{'params': \d+, 'macs'.*", lines[2])


def test_quiet_and_verbose_together_is_a_one_line_error() -> None:
    done = run("-q", "-v", *MODELS)
    assert done.returncode == 2
    assert done.stderr.strip() == "error: --quiet and --verbose exclude each other; give one of them"


def test_a_command_run_inside_another_keeps_the_users_level(tmp_path) -> None:
    """The demo runs its steps in-process: their root callback must not undo --quiet."""
    import logging

    from kdbench.cli import app
    from kdbench.errors import DataError
    from kdbench.logs import configure_logging

    configure_logging("quiet")
    with pytest.raises(DataError, match="not a study directory"):  # the root callback ran, then the command
        app(["search", "status", "--study", "nope", "--run-dir", str(tmp_path)], standalone_mode=False)
    assert logging.getLogger("kdbench").level == logging.WARNING
    configure_logging("normal")
    assert logging.getLogger("kdbench").level == logging.INFO


def test_verbose_header_hides_database_passwords(tmp_path) -> None:
    done = run("-v", "search", "status", "--study", "x", "--run-dir", str(tmp_path),
               "--storage", "postgresql://kdbench:s3cret@dbhost/kdbench")
    assert done.returncode == 2 and "s3cret" not in done.stderr
    assert "postgresql://kdbench:***@dbhost/kdbench" in done.stderr.splitlines()[0]


def test_help_lists_its_panels_in_pipeline_order() -> None:
    done = run("--help")
    panels = re.findall(r"╭─ ([^─]+?) ─", done.stdout)
    assert panels == ["Options", "Start here", "1. Data", "2. Models and training", "3. Search", "4. Deploy",
                      "5. Report"], panels


def test_a_flag_shows_no_value_type_in_help() -> None:
    done = run("search", "confirm", "--help", env={"COLUMNS": "120"})
    row = next(line for line in done.stdout.splitlines() if "--allow-unfinished" in line)
    assert "<bool>" not in done.stdout and "<int>" in done.stdout, done.stdout
    assert "Confirm a study that is not finished" in row
