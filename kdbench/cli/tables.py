"""Print rich tables so that no column is lost, in a terminal of any width and in a log file.

Rich fits a table into the console's width by squeezing columns; off a terminal (a Slurm
``--output`` file, a pipe) that width is 80, so wide tables lose their label columns and the last
digits of p-values. ``print_table`` instead:

- prints the table as rich would when it fits;
- off a terminal, prints it at its natural width (a fixed wide layout: nothing wraps or folds,
  the lines are simply longer than 80 characters, which a log file does not mind);
- in a terminal too narrow for it, stacks it: one block per row, ``column  value`` per line, so
  every label and every number stays whole.
"""

from __future__ import annotations

from rich.console import Console, Group
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from kdbench.cli.console import console as default_console

_UNLIMITED = 10_000


def natural_width(table: Table, console: Console) -> int:
    """Characters the table needs on one line per row (no wrapping, no folding)."""
    options = console.options.update(width=_UNLIMITED, max_width=_UNLIMITED)
    return Measurement.get(console, options, table).maximum


def stacked(table: Table) -> Group:
    """The table as one block per row: each column's header and the row's cell on a line of its own."""
    headers = [str(c.header) for c in table.columns]
    columns = [list(c.cells) for c in table.columns]
    n_rows = max((len(c) for c in columns), default=0)
    blocks: list = []
    if table.title:
        blocks.append(Text.from_markup(str(table.title), style="bold") if isinstance(table.title, str) else table.title)
    for i in range(n_rows):
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(overflow="fold")
        for header, cells in zip(headers, columns):
            grid.add_row(header, cells[i] if i < len(cells) else "")
        blocks += [Text(""), grid]
    if table.caption:
        blocks += [Text(""), Text.from_markup(str(table.caption), style="dim") if isinstance(table.caption, str)
                   else table.caption]
    return Group(*blocks)


def print_table(table: Table, console: Console | None = None) -> str:
    """Print ``table`` whole; returns the layout used: 'fit', 'wide' (not a terminal) or 'stacked'."""
    console = console or default_console
    width = natural_width(table, console)
    if width <= console.width:
        console.print(table)
        return "fit"
    if not console.is_terminal:
        wide = Console(file=console.file, width=width, no_color=console.no_color,
                       color_system=console.color_system, force_terminal=False, highlight=False)
        wide.print(table)
        return "wide"
    console.print(stacked(table))
    return "stacked"
