"""The ``kdbench`` command line: a thin layer that parses arguments and calls the library.

Each command group lives in its own module here (``data.py``, ``teacher.py``, ...) and exposes a
``typer.Typer`` called ``app`` (a group) or a function called ``command`` (a single command).
Command modules import heavy libraries (torch, onnxruntime) inside the command functions so
that ``kdbench --help`` stays instant.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import platform
import re
import sys

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from kdbench import __version__


class _PipelineOrder(TyperGroup):
    """Commands (and so their help panels) in pipeline order, not groups after single commands."""

    def list_commands(self, ctx):  # noqa: D102
        order = [name for _, name, _ in _COMMANDS]
        return sorted(super().list_commands(ctx), key=lambda n: order.index(n) if n in order else len(order))


_option_type = TyperOption.display_type_rich


# Readable value names in --help: by the option's name where it says what the value is, else by its type
# (Typer prints ``<path>``, ``<int range>``, ``<list[str]>``). An option's own ``metavar`` wins.
_METAVAR_BY_NAME = {
    "store": "DIR", "out": "DIR", "run_dir": "DIR", "export": "DIR", "profiles": "DIR", "run": "DIR",
    "teacher": "FILE", "checkpoint": "FILE", "config": "SPACE", "target": "TARGET", "targets": "TARGET,...",
    "storage": "URL", "device": "DEVICE", "study": "STUDY", "student": "MODEL", "model": "MODEL", "arch": "MODEL",
    "method": "METHOD", "remote": "USER@HOST", "param": "KEY=VALUE",
}
_METAVAR_BY_TYPE = {"<int>": "N", "<int range>": "N", "<float>": "NUMBER", "<float range>": "NUMBER",
                    "<str>": "TEXT", "<path>": "PATH", "<list[str]>": "TEXT"}


def _readable_metavar(self: TyperOption, ctx) -> str | None:
    """A flag takes no value: its help row shows no type (Typer 0.29 prints ``<bool>``); a value shows a
    readable name (DIR, FILE, N, ...)."""
    if getattr(self, "is_flag", False):
        return None
    if self.metavar is not None:
        return self.metavar
    typed = _option_type(self, ctx)
    return _METAVAR_BY_NAME.get(self.name or "", _METAVAR_BY_TYPE.get(typed or "", typed))


def _argument_usage(self: TyperArgument) -> str:
    """An argument in the usage line as the convention writes it (``STORE``, ``[STORE]``; Typer 0.29: ``{store}``)."""
    name = self.metavar or (self.name or "").upper()
    return (name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")


TyperOption.display_type_rich = _readable_metavar  # type: ignore[method-assign]
TyperArgument.display_type_rich = _readable_metavar  # type: ignore[method-assign]
TyperArgument._usage_display_name = _argument_usage  # type: ignore[method-assign]

app = typer.Typer(
    cls=_PipelineOrder,
    name="kdbench",
    help=(
        "Find the best small echocardiogram view classifier (A2C, A4C, PLAX, PSAX) for cheap "
        "hardware: prepare data, train a teacher, distil students, search settings over seeds, "
        "export deployable variants, profile them on targets and write a Pareto leaderboard."
    ),
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)

# (module under kdbench.cli, command name, help panel), in pipeline order.
_COMMANDS: list[tuple[str, str, str]] = [
    ("demo", "demo", "Start here"),
    ("data", "data", "1. Data"),
    ("models", "models", "2. Models and training"),
    ("teacher", "teacher", "2. Models and training"),
    ("distill", "distill", "2. Models and training"),
    ("search", "search", "3. Search"),
    ("export", "export", "4. Deploy"),
    ("profile", "profile", "4. Deploy"),
    ("leaderboard", "leaderboard", "5. Report"),
]


def _register() -> None:
    """Attach every command module listed in ``_COMMANDS`` to the root app."""
    for module_name, name, panel in _COMMANDS:
        if importlib.util.find_spec(f"kdbench.cli.{module_name}") is None:
            continue  # a command group not built yet
        module = importlib.import_module(f"kdbench.cli.{module_name}")
        if hasattr(module, "app"):
            app.add_typer(module.app, name=name, rich_help_panel=panel)
        else:
            app.command(name=name, rich_help_panel=panel)(module.command)


def _print_version(value: bool) -> None:
    """Eager --version: print and exit before any command is required."""
    if value:
        typer.echo(f"kdbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_print_version, is_eager=True, help="Print the kdbench version and exit."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors on stderr (no progress lines)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also debug lines, each with its time and module."),
) -> None:
    """Set up logging for the command that follows (the ``kdbench`` logger writes progress lines to stderr)."""
    from kdbench.errors import ConfigError
    from kdbench.logs import configure_logging

    if quiet and verbose:
        raise ConfigError("--quiet and --verbose exclude each other; give one of them")
    configure_logging("quiet" if quiet else "verbose" if verbose else None)
    argv = [re.sub(r"(://[^:/@\s]+:)[^@\s]+@", r"\1***@", a) for a in sys.argv[1:]]  # no database passwords
    logging.getLogger("kdbench").debug("kdbench %s, Python %s, argv %s", __version__, platform.python_version(), argv)


_register()


GLOBAL_FLAGS = ("-q", "--quiet", "-v", "--verbose")


def hoist_global_flags(argv: list[str]) -> list[str]:
    """``-q``/``-v`` given after a subcommand (``kdbench search stats -q``) moved before it, where the root
    command reads them; nothing after ``--`` moves."""
    end = argv.index("--") if "--" in argv else len(argv)
    flags = [a for a in argv[:end] if a in GLOBAL_FLAGS]
    return flags + [a for a in argv[:end] if a not in GLOBAL_FLAGS] + argv[end:]


def main() -> None:
    """Entry point of the ``kdbench`` console script: user errors print cleanly and exit 2."""
    from kdbench.errors import KdbenchError

    try:
        app(args=hoist_global_flags(sys.argv[1:]), prog_name="kdbench")
    except SystemExit as stop:
        if stop.code in (130, 143):  # interrupted: end now (a search or confirm; see kdbench.search.runner)
            from kdbench.search.interrupts import exit_if_interrupted

            exit_if_interrupted(stop.code)
        raise
    except (KdbenchError, OSError) as err:  # OSError: a full disk or read-only folder met mid-run
        from kdbench.checks import describe_os_error

        message = str(err) if isinstance(err, KdbenchError) else describe_os_error(err)
        if message is None:
            raise
        from rich.console import Console
        from rich.markup import escape

        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(message)}", highlight=False)
        raise SystemExit(2) from None
