"""The rich console the commands print to, and small shared renderers."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
# In a log file (Slurm --output, a pipe) rich assumes 80 columns; long text lines (paths, commands)
# stay whole there instead of wrapping mid-path. Tables: kdbench.cli.tables.print_table.
console.soft_wrap = not console.is_terminal
# Progress, notes and warnings go to stderr, results (tables, "wrote ...") to stdout: a log file or a pipe
# keeps them apart (`kdbench search ... > results.txt 2> progress.log`).
err_console = Console(stderr=True)
err_console.soft_wrap = not err_console.is_terminal


def warn(text: str) -> None:
    """One warning line on stderr (``text`` is rich markup; escape user text)."""
    err_console.print(f"[yellow]warning:[/] {text}")


def metrics_table(title: str, metrics: dict[str, dict[str, Any]]) -> Table:
    """A table of per-split run metrics (accuracy, macro-F1, per-source, teacher agreement)."""
    table = Table(title=title)
    table.add_column("split")
    for col in ("accuracy", "macro-F1", "worst source", "vs teacher", "agreement"):
        table.add_column(col, justify="right")
    for split, m in metrics.items():
        table.add_row(
            split,
            _fmt(m.get("accuracy")),
            _fmt(m.get("macro_f1")),
            _fmt(m.get("worst_source_accuracy")),
            _fmt(m.get("relative_accuracy")),
            _fmt(m.get("teacher_agreement")),
        )
    return table


def _fmt(value: Any) -> str:
    """A metric as text with 4 decimals, or '-' when absent."""
    return "-" if value is None else f"{value:.4f}"
