"""The root of the real ``kdbench`` console script: --version, shell completion, --quiet / --verbose."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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
    # the shell named, not detected from the process tree (a background job's may have none): Typer's own switch
    script = run("--show-completion", "bash", env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert script.returncode == 0 and "_KDBENCH_COMPLETE=complete_bash" in script.stdout


@pytest.mark.parametrize("words,expected", [
    ("kdbench search --config q", {"quick"}),
    ("kdbench profile --target r", {"rpi4"}),
    ("kdbench distill --method d", {"dist", "dkd"}),
    ("kdbench distill --student shuff", {"shufflenet_v2_x1_0"}),
])
def test_completion_completes_values_of_spaces_targets_and_methods(words: str, expected: set) -> None:
    env = {"_KDBENCH_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
    done = run(env=env)
    assert done.returncode == 0 and set(done.stdout.split()) == expected, done.stdout + done.stderr


@pytest.fixture(scope="module")
def models_runs() -> dict[tuple[str, ...], subprocess.CompletedProcess]:
    """`kdbench models -m mobilenet_v3_small` with each logging flag before and after the subcommand (6 processes,
    shared by the tests below: each one imports torch and builds the model)."""
    ways = [(), ("--quiet",), ("-v",)]
    runs = {w: run(*w, *MODELS) for w in ways}
    runs.update({("after",) + w: run(*MODELS, *w) for w in (("-q",), ("--quiet",), ("-v",))})
    return runs


def test_progress_lines_go_to_stderr_and_quiet_drops_them(models_runs) -> None:
    normal, quiet = models_runs[()], models_runs[("--quiet",)]
    assert normal.returncode == quiet.returncode == 0
    assert normal.stderr.splitlines() == ["building mobilenet_v3_small (1/1)"]
    assert quiet.stderr == ""
    for done in (normal, quiet):  # the result itself stays on stdout
        assert re.search(r"mobilenet_v3_small .* student .* torchvision", done.stdout)


@pytest.mark.parametrize("flag", ["-q", "--quiet"])
def test_quiet_after_the_subcommand_works_like_before_it(models_runs, flag: str) -> None:
    before, after = models_runs[("--quiet",)], models_runs[("after", flag)]
    assert before.returncode == after.returncode == 0
    assert after.stderr == before.stderr == ""
    assert after.stdout == before.stdout
    verbose_after = models_runs[("after", "-v")].stderr.splitlines()
    assert [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in verbose_after[1:2]] == \
        ["kdbench.models INFO: building mobilenet_v3_small (1/1)"]


def test_verbose_adds_timed_debug_lines_naming_their_module(models_runs) -> None:
    done = models_runs[("-v",)]
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
    seeds = next(line for line in done.stdout.splitlines() if "--seeds" in line)
    assert "<bool>" not in done.stdout and re.search(r"--seeds\s+N\s", seeds), done.stdout
    assert "Confirm a study that is not finished" in row and "--no-allow-unfinished" in row


def _commands() -> list[tuple[str, object]]:
    """Every leaf command of the real app, as (words, click command)."""
    import typer
    import typer.core

    from kdbench.cli import app

    root = typer.main.get_command(app)
    out, todo = [], [("", root)]
    while todo:
        words, cmd = todo.pop()
        names = cmd.list_commands(None) if hasattr(cmd, "list_commands") else []
        todo += [(f"{words} {n}".strip(), cmd.get_command(None, n)) for n in names]
        if words and (not names or getattr(cmd, "invoke_without_command", False)):
            out.append((words, cmd))
    return sorted(out, key=lambda c: c[0])


@pytest.mark.parametrize("words,cmd", _commands(), ids=[w for w, _ in _commands()])
def test_one_vocabulary_in_every_command(words: str, cmd) -> None:
    """Readable value names (no Typer type names), every flag a --x/--no-x pair, -o/--out for every output, a
    study named by --study (with --run-dir) wherever a study is read; old spellings hidden."""
    from typer.testing import CliRunner

    from kdbench.cli import app

    text = CliRunner().invoke(app, [*words.split(), "--help"], env={"COLUMNS": "200"}).output
    assert not re.findall(r"<(?:bool|int|float|str|path|list\[str\])[^>]*>|\{\w+\}", text), text
    options = [p for p in cmd.params if p.param_type_name == "option" and not p.hidden]
    single = [p.opts[0] for p in options if p.is_flag and not p.secondary_opts and p.name not in ("help",)]
    assert not single, f"{words}: flags without a --no- form: {single}"
    outs = [p for p in options if "--out" in p.opts]
    assert all("-o" in p.opts for p in outs), f"{words}: --out without -o"
    if any(p.name in ("study", "run_dir") for p in options):
        assert {"--study", "--run-dir"} <= {o for p in options for o in p.opts}, words
    assert "--study-dir" not in text and "--models" not in text, words


def test_a_study_is_a_name_under_run_dir_or_a_folder(tmp_path, monkeypatch) -> None:
    from kdbench.cli.options import study_location

    runs = tmp_path / "runs"
    (runs / "demo").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "study.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    assert study_location("demo", runs) == (runs, "demo")  # a name: under --run-dir
    assert study_location("new", runs) == (runs, "new")  # a name not yet created (search makes it)
    assert study_location("runs/demo", Path("ignored")) == (runs.resolve(), "demo")  # a '/': the folder itself
    assert study_location("elsewhere", runs) == (tmp_path.resolve(), "elsewhere")  # a study folder here
