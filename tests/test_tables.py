"""Tables survive log files (80 columns, not a terminal) and narrow terminals without losing a column."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from rich.console import Console
from rich.table import Table

from kdbench.cli.tables import natural_width, print_table
from kdbench.search.statistics import study_statistics
from kdbench.search.status import statistics_table

STUDENTS = ("mobilenet_v3_small", "shufflenet_v2_x1_0")
METHODS = ("scratch", "vanilla", "conditional", "ctkd")


@pytest.fixture(scope="module")
def stats():
    """Real paired statistics of a made-up study: 2 students x 4 methods x 5 seeds."""
    rng = np.random.default_rng(0)
    trials = []
    for student in STUDENTS:
        for method in METHODS:
            seeds = {str(s): {"val_accuracy": float(0.7 + 0.02 * rng.standard_normal()),
                              "test_accuracy": float(0.7 + 0.02 * rng.standard_normal())} for s in range(5)}
            trials.append({"state": "complete", "student": student, "method": method, "trial": len(trials),
                           "config_id": method, "hparams": {}, "seeds": seeds,
                           "mean_val_accuracy": float(np.mean([v["val_accuracy"] for v in seeds.values()]))})
    return study_statistics(trials, list(range(5)))


def _row_cells(c: dict) -> list[str]:
    """The label cells and the p / Holm p cells of one comparison, as statistics_table writes them."""
    return [c["student"], c["comparison"], f"#{c['a']['trial']} {c['a']['method']}",
            format(c["p_value"], ".3g"), format(c["p_holm"], ".3g")]


def test_statistics_table_in_an_80_column_log_keeps_every_label_and_p_column(stats):
    buf = io.StringIO()
    log = Console(file=buf, width=80)  # what rich assumes for a Slurm --output file
    assert not log.is_terminal
    assert print_table(statistics_table(stats, "test_accuracy"), log) == "wide"
    text = buf.getvalue()
    header = next(line for line in text.splitlines() if "student" in line and "verdict" in line)
    for name in ("student", "comparison", "A", "engine", "mean A", "mean B", "A - B", "95% CI", "p", "p Holm", "verdict"):
        assert f" {name} " in header, name
    rows = [c for c in stats["comparisons"] if c["metric"] == "test_accuracy"]
    assert len(rows) == len(STUDENTS) * (len(METHODS) - 1)
    lines = text.splitlines()
    for c in rows:
        cells = _row_cells(c)
        matching = [line for line in lines if all(f" {cell} " in line for cell in cells)]
        assert len(matching) == 1, (cells, text)


def test_plain_rich_at_80_columns_would_have_lost_them(stats):
    """The failure print_table exists for: rich squeezes the label columns away in an 80-column log."""
    buf = io.StringIO()
    Console(file=buf, width=80).print(statistics_table(stats, "test_accuracy"))
    assert "mobilenet_v3_small" not in buf.getvalue()


def test_a_narrow_terminal_gets_one_block_per_row_with_every_cell_whole(stats):
    buf = io.StringIO()
    tty = Console(file=buf, width=60, force_terminal=True, no_color=True)
    assert print_table(statistics_table(stats, "test_accuracy"), tty) == "stacked"
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).rstrip() for line in buf.getvalue().splitlines()]  # no styles
    assert max(len(line) for line in lines) <= 60
    for c in (c for c in stats["comparisons"] if c["metric"] == "test_accuracy"):
        for header, cell in zip(("student", "comparison", "A", "p", "p Holm"), _row_cells(c)):
            assert any(line.split() == [*header.split(), *cell.split()] for line in lines), (header, cell)


def test_a_table_that_fits_prints_as_rich_prints_it():
    table = Table(title="small")
    table.add_column("model")
    table.add_column("MACs (M)", justify="right")
    table.add_row("mobilenet_v3_small", "14.9")
    plain, ours = io.StringIO(), io.StringIO()
    Console(file=plain, width=80).print(table)
    assert print_table(table, Console(file=ours, width=80)) == "fit"
    assert ours.getvalue() == plain.getvalue()
    assert natural_width(table, Console(file=io.StringIO(), width=20)) == len(plain.getvalue().splitlines()[1])


def test_data_info_in_a_log_file_keeps_every_source_column(tiny_store, tmp_path):
    """The real console script writing to a file (not a terminal) at 80 columns."""
    kdbench = os.path.join(os.path.dirname(sys.executable), "kdbench")
    env = {**os.environ, "COLUMNS": "80"}
    with open(tmp_path / "slurm.out", "w") as log:
        subprocess.run([kdbench, "data", "info", str(tiny_store.path)], stdout=log, stderr=subprocess.STDOUT,
                       env=env, check=True, timeout=120)
    text = (tmp_path / "slurm.out").read_text()
    header = next(line for line in text.splitlines() if "total" in line and "view" in line)
    for column in ("view", "split", "echonet_dynamic", "echonet_lvh", "tmed2", "total"):
        assert f" {column} " in header, (column, text)


def test_text_lines_stay_whole_in_a_log_file():
    """Paths in `wrote ...` lines are not wrapped at 80 columns when stdout is a file."""
    line = "wrote " + "/a/long/study/directory" * 8 + "/statistics.json"
    code = f"from kdbench.cli.console import console; console.print({line!r})"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "COLUMNS": "80"})
    assert done.stdout == line + "\n"
