"""Build the leaderboard directory: README.md, leaderboard.csv, leaderboard.json and the PNG plots, from the stages' files."""

from __future__ import annotations

from pathlib import Path

from kdbench.errors import ConfigError
from kdbench.leaderboard.collect import Leaderboard, collect
from kdbench.leaderboard.plots import has_tradeoff, plot_file_name, plot_methods, plot_tradeoff
from kdbench.leaderboard.render import render_csv, render_json, render_markdown, write_text
from kdbench.search.space import check_margin

README = "README.md"
CSV = "leaderboard.csv"
JSON = "leaderboard.json"
METHODS_PNG = "accuracy_per_method.png"


def write_leaderboard(lb: Leaderboard, out: Path, command: str = "", plots: bool = True) -> list[Path]:
    """Write README.md, leaderboard.csv, leaderboard.json and (unless ``plots`` is False) the PNGs; the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    names: dict[str, str] = {}
    if plots:
        for board in lb.boards:
            if not has_tradeoff(board):
                continue
            name = plot_file_name(board)
            written.append(plot_tradeoff(board, out / name, lb.teacher.get("val_accuracy")))
            names[board.name] = name
        written.append(plot_methods(lb, out / METHODS_PNG))
        names["methods"] = METHODS_PNG
    write_text(out / README, render_markdown(lb, names, command))
    write_text(out / CSV, render_csv(lb))
    write_text(out / JSON, render_json(lb))
    return [out / README, out / CSV, out / JSON] + written


def parse_margins(texts: list[str]) -> float | dict[str, float] | None:
    """``--margin`` values: ``0.01`` (every target) and ``rpi4=0.02`` (one target's own); ConfigError naming the bad one."""
    out: dict[str, float] = {}
    for text in texts:
        target, _, value = text.rpartition("=")
        key = target.strip() or "*"
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"--margin {text!r}; expected an accuracy difference like 0.01, or TARGET=0.02") from None
        if key in out:
            raise ConfigError(f"--margin {text!r} gives {'the default' if key == '*' else key} a second margin")
        out[key] = check_margin(number, "--margin" if key == "*" else f"--margin {key}")
    if not out:
        return None
    return out["*"] if list(out) == ["*"] else out


def build_leaderboard(study: Path, out: Path, export: Path | None = None, profiles: Path | None = None,
                      targets: list[str] | None = None, command: str = "", plots: bool = True,
                      include_unstable: bool = False, margin: float | dict[str, float] | None = None,
                      ) -> tuple[Leaderboard, list[Path]]:
    """Collect the inputs and write the leaderboard directory; the collected leaderboard and the files written.

    ``margin``: the decisions' equivalence margin (None: the study's ``[study] margin``, else 0.01), or per
    target ``{target: margin, "*": the others}`` (``parse_margins``)."""
    lb = collect(Path(study), export, profiles, targets, include_unstable, margin)
    return lb, write_leaderboard(lb, Path(out), command, plots)
