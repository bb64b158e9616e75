"""The leaderboard's figures, drawn with matplotlib's Agg canvas (no pyplot, no global state).

PNG bytes are stable: fixed size and dpi, the bundled DejaVu font, no 'Software' metadata and no
timestamps, and every list plotted in sorted order.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from kdbench.leaderboard.collect import NO_TARGET, Leaderboard, TargetBoard
from kdbench.leaderboard.row import BoardRow
from kdbench.profile.constraints import describe_constraints
from kdbench.pareto import front_staircase, pareto_fronts

FIGSIZE = (10.0, 5.6)
DPI = 110
RUNTIME_MARKERS = {"onnxruntime": "o", "openvino": "s", "onnxruntime-cuda": "D", "openvino-gpu": "p", "pytorch": "^"}
RC = {"font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 10, "svg.hashsalt": "kdbench",
      "path.simplify": False}


def _figure() -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: Path) -> None:
    """Save a PNG without metadata that could change between runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fig.savefig(fh, format="png", dpi=DPI, metadata={"Software": None})
    tmp.replace(path)


def _colours(names: list[str]) -> dict[str, Any]:
    """A fixed colour per name (tab10 in sorted order)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {n: cmap(i % 10) for i, n in enumerate(sorted(names))}


RUNTIME_SHORT = {"onnxruntime": "ort", "onnxruntime-cuda": "ort-cuda", "openvino": "ov", "openvino-gpu": "ov-gpu"}


def _marker(row: BoardRow) -> str:
    return RUNTIME_MARKERS.get(str(row.runtime), "P") if row.runtime else "o"


def _short(row: BoardRow) -> str:
    """A point's label: the student, its method and variant, and the runtime."""
    runtime = f" @{RUNTIME_SHORT.get(row.runtime, row.runtime)}" if row.runtime else ""
    return f"{row.student} {row.method}/{row.variant}{runtime}"


def _legend_outside(ax: Any, handles: list, labels: list) -> None:
    """The legend to the right of the axes, where it hides no point."""
    ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
              framealpha=0.9)


def _plain_log_ticks(axis: Any) -> None:
    """Label a log axis with plain numbers (0.5, 1, 2, 5, 10 ...) instead of powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def has_tradeoff(board: TargetBoard) -> bool:
    """True when some ranked row of the board has the figure the trade-off plot puts on its x axis."""
    x_col = "size_mb" if board.name == NO_TARGET else "latency_p50_ms"
    return any(r.front is not None and getattr(r, x_col) is not None for r in board.rows)


def _x_band(row: BoardRow, x_col: str) -> tuple[float, float] | None:
    """(minus, plus) of the latency band of an estimated point, for a horizontal error bar."""
    if x_col != "latency_p50_ms" or row.latency_p50_low_ms is None or row.latency_p50_high_ms is None:
        return None
    return row.latency_p50_ms - row.latency_p50_low_ms, row.latency_p50_high_ms - row.latency_p50_ms


def _draw_points(ax: Any, rows: list[BoardRow], x_col: str, colours: dict[str, Any], area: Any) -> None:
    """Each ranked model: marker by runtime, colour by student, hollow when estimated, with its interval bars."""
    for r in rows:
        colour = colours[str(r.student)]
        x, y = getattr(r, x_col), r.val_accuracy
        yerr = None
        if r.val_accuracy_low is not None and r.val_accuracy_high is not None:
            yerr = [[y - r.val_accuracy_low], [r.val_accuracy_high - y]]
        band = _x_band(r, x_col)
        ax.errorbar([x], [y], yerr=yerr, xerr=None if band is None else [[band[0]], [band[1]]], fmt="none",
                    ecolor=colour, elinewidth=0.8, alpha=0.6, capsize=2, zorder=2)
        estimated = r.estimated
        ax.scatter([x], [y], s=area(r.size_mb), marker=_marker(r), alpha=0.8, facecolors="none" if estimated else [colour],
                   edgecolors=[colour], linewidths=1.6 if estimated else 0.6, zorder=3)
        if r.front == 1:
            keeps = r.decision in ("best", "equivalent")
            ax.scatter([x], [y], s=area(r.size_mb) * 1.9, marker="o", facecolors="none", edgecolors="black",
                       linewidths=1.4 if keeps else 0.8, linestyles="solid" if keeps else (0, (2, 2)), zorder=2)


def _legend_handles(ax: Any, rows: list[BoardRow], students: list[str], colours: dict[str, Any], x_col: str) -> None:
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    for s in students:
        handles.append(Line2D([], [], marker="o", linestyle="", color=colours[s]))
        labels.append(s)
    for runtime in sorted({str(r.runtime) for r in rows if r.runtime}):
        handles.append(Line2D([], [], marker=RUNTIME_MARKERS.get(runtime, "P"), linestyle="", color="0.3"))
        labels.append(f"runtime {runtime}")
    front = "Pareto-optimal (val accuracy, latency, size)" if x_col != "size_mb" else "Pareto-optimal"
    handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor="black",
                          markersize=11, markeredgewidth=1.4))
    labels.append(front + ",\nbest, or equivalent to it within the margin")
    if any(r.front == 1 and r.decision not in ("best", "equivalent") for r in rows):
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor="0.2",
                              markersize=11, markeredgewidth=0.6))
        labels.append(front + ",\nworse than the best, or undecided (dashed)")
    handles.append(Line2D([], [], marker="|", linestyle="", color="0.3", markersize=10))
    labels.append("95% interval of val accuracy")
    if any(r.estimated for r in rows):
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor="0.3"))
        labels.append("hollow: estimated, not measured\n(horizontal bar: latency band)")
    _legend_outside(ax, handles, labels)


def _fps_limit(ax: Any, board: TargetBoard, all_x: list[float]) -> None:
    fps = board.constraints.get("min_fps")
    if fps:
        limit = 1000.0 / fps
        ax.axvline(limit, color="tab:red", linewidth=1.0, linestyle=":", zorder=1,
                   label=f"{fps:g} fps = {limit:.1f} ms per frame\n(shaded: too slow)")
        ax.axvspan(limit, max(max(all_x) * 1.5, limit * 1.5), color="tab:red", alpha=0.06, zorder=0)


def plot_tradeoff(board: TargetBoard, path: Path, teacher_accuracy: float | None = None) -> Path:
    """Validation accuracy (the ranking figure, with its interval) vs batch-1 latency (or file size): the front drawn."""
    import matplotlib

    x_col = "size_mb" if board.name == NO_TARGET else "latency_p50_ms"
    x_label = "model file size (MB, log scale)" if x_col == "size_mb" else "batch-1 latency p50 (ms, log scale)"
    rows = [r for r in board.rows if r.front is not None and getattr(r, x_col) is not None and r.val_accuracy is not None]
    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot(1, 1, 1)
        if not rows:
            ax.text(0.5, 0.5, f"nothing to plot on {board.name}:\nno ranked model has {x_col}", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_axis_off()
            _save(fig, path)
            return path
        students = sorted({str(r.student) for r in rows})
        colours = _colours(students)
        biggest = max(r.size_mb or 0.0 for r in rows) or 1.0

        def area(size: float | None) -> float:
            return 25.0 + 400.0 * math.sqrt((size or 0.0) / biggest)

        _draw_points(ax, rows, x_col, colours, area)
        breaking = [r for r in rows if r.verdict in ("fails", "uncertain")]
        for verdict, colour, label in (("fails", "tab:red", "fails a constraint"), ("uncertain", "tab:orange", "uncertain on a constraint")):
            these = [r for r in breaking if r.verdict == verdict]
            if these:
                ax.scatter([getattr(r, x_col) for r in these], [r.val_accuracy for r in these], marker="x", s=28,
                           color=colour, linewidths=1.2, zorder=4, label=label)
        pts = [(float(getattr(r, x_col)), float(r.val_accuracy)) for r in rows]
        teacher = [t for t in board.teacher_rows if getattr(t, x_col) is not None and t.val_accuracy is not None]
        all_x = [p[0] for p in pts] + [float(getattr(t, x_col)) for t in teacher]
        stair = front_staircase([p for p, f in zip(pts, pareto_fronts(pts, ["min", "max"])) if f == 1])
        ax.plot([p[0] for p in stair], [p[1] for p in stair], color="black", linestyle="--", linewidth=1.0, zorder=1,
                label="front of val accuracy vs " + ("size" if x_col == "size_mb" else "latency"))
        labels = [(getattr(r, x_col), r.val_accuracy, _short(r), "0.2")
                  for r in sorted((r for r in rows if r.front == 1), key=lambda r: (getattr(r, x_col), -r.val_accuracy))]
        for t in sorted(teacher, key=lambda t: (getattr(t, x_col), str(t.runtime))):
            ax.scatter([getattr(t, x_col)], [t.val_accuracy], marker="X", s=90, color="0.35", zorder=3)
            labels.append((getattr(t, x_col), t.val_accuracy, f"teacher {t.student or ''} {t.variant}", "0.35"))
        rec = board.recommended
        if rec is not None and getattr(rec, x_col) is not None:
            ax.scatter([getattr(rec, x_col)], [rec.val_accuracy], marker="*", s=160, color="gold", edgecolors="black",
                       linewidths=0.7, zorder=5, label="recommended" + (" (UNCERTAIN)" if rec.recommended_uncertain else ""))
        ax.set_xscale("log")
        _plain_log_ticks(ax.xaxis)
        if x_col == "latency_p50_ms":
            _fps_limit(ax, board, all_x)
        if teacher_accuracy is not None:
            ax.axhline(teacher_accuracy, color="0.4", linewidth=0.9, linestyle="-.", zorder=1,
                       label=f"teacher val accuracy {teacher_accuracy:.3f}")
        _legend_handles(ax, rows, students, colours, x_col)
        ax.set_xlabel(x_label)
        ax.set_ylabel("validation accuracy (ranking figure)")
        title = "Accuracy only" if board.name == NO_TARGET else f"{board.name}: validation accuracy vs latency"
        cons = "" if board.name == NO_TARGET else f"; constraints: {describe_constraints(board.constraints)}"
        ax.set_title(f"{title}\nmarker area ~ file size, marker shape = runtime{cons}")
        ax.grid(True, which="both", linewidth=0.3, alpha=0.5)
        fig.tight_layout()
        marker_boxes = [(getattr(r, x_col), r.val_accuracy, math.sqrt(area(r.size_mb) * (1.9 if r.front == 1 else 1.0)) / 2)
                        for r in rows]
        omitted = place_labels(ax, labels, markers=marker_boxes)
        if omitted:
            ax.text(0.01, 0.01, f"{omitted} label(s) left out where they would overlap: see the table",
                    transform=ax.transAxes, fontsize=7, color="0.35", va="bottom")
        _save(fig, path)
    return path


def _offsets() -> list[tuple[float, float]]:
    """Label offsets (points) tried in turn: right/left, above/below, stepping further out."""
    out = []
    for step in range(6):
        for dx in (8, -8):
            for dy in (4, -11):
                out.append((dx + (step // 2) * 6 * (1 if dx > 0 else -1), dy + step * 11 * (1 if dy > 0 else -1)))
    return out


_OFFSETS = tuple(_offsets())


def place_labels(ax: Any, labels: list[tuple[float, float, str, str]], fontsize: float = 7.0,
                 markers: list[tuple[float, float, float]] = ()) -> int:
    """Annotate points where the text overlaps no marker, no other label and stays inside the axes; the number left out.

    ``markers`` are (x, y, radius in points) of the plotted markers to keep clear of. Each candidate place is
    measured with the figure's renderer; a label that finds no clear place is left out rather than drawn over another.
    """
    from matplotlib.text import Text

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    px_per_pt = fig.dpi / 72.0
    axes_box = ax.get_window_extent(renderer)
    taken: list[tuple[float, float, float, float]] = []
    for mx, my, radius in markers:
        cx, cy = ax.transData.transform((mx, my))
        rad = radius * px_per_pt * 0.8
        taken.append((cx - rad, cy - rad, cx + rad, cy + rad))
    omitted = 0
    for x, y, text, colour in labels:
        placed = False
        for dx, dy in _OFFSETS:
            far = abs(dy) > 12 or abs(dx) > 12
            note = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize, color=colour,
                               ha="right" if dx < 0 else "left", va="bottom", zorder=4,
                               arrowprops={"arrowstyle": "-", "color": "0.55", "linewidth": 0.5, "shrinkA": 0,
                                           "shrinkB": 2} if far else None)
            note.update_positions(renderer)
            ext = Text.get_window_extent(note, renderer)
            box = (ext.x0 - 1, ext.y0 - 1, ext.x1 + 1, ext.y1 + 1)
            inside = box[0] >= axes_box.x0 and box[2] <= axes_box.x1 and box[1] >= axes_box.y0 and box[3] <= axes_box.y1
            if inside and all(_apart(box, b) for b in taken):
                taken.append(box)
                placed = True
                break
            note.remove()
        omitted += not placed
    return omitted


def _apart(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """True when two boxes (x0, y0, x1, y1) do not overlap."""
    return a[2] <= b[0] or a[0] >= b[2] or a[3] <= b[1] or a[1] >= b[3]


def plot_methods(lb: Leaderboard, path: Path) -> Path:
    """Test accuracy of the best configuration of each method per student: every seed, the mean and its 95% interval."""
    import matplotlib

    results = lb.method_results
    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot(1, 1, 1)
        students = sorted({m.student for m in results})
        methods = sorted({m.method for m in results}, key=lambda m: (m != "scratch", m))
        colours = _colours(methods)
        width = 0.8 / max(len(methods), 1)
        for si, student in enumerate(students):
            for mi, method in enumerate(methods):
                m = next((x for x in results if x.student == student and x.method == method), None)
                if m is None:
                    continue
                x0 = si - 0.4 + width * (mi + 0.5)
                accs = [a for a in m.accuracies["test"] if a is not None]
                k = len(accs)
                xs = [x0 + (i - (k - 1) / 2) * width * 0.5 / max(k, 1) for i in range(k)]
                ax.scatter(xs, accs, s=14, color=colours[method], alpha=0.7, zorder=3)
                mean = m.means["test"]
                if mean is not None:
                    ax.hlines(mean, x0 - width * 0.4, x0 + width * 0.4, color=colours[method], linewidth=2.0, zorder=4)
                    low, high = m.intervals["test"]
                    if low is not None and high is not None:
                        ax.errorbar([x0], [mean], yerr=[[mean - low], [high - mean]], fmt="none",
                                    ecolor="black", elinewidth=0.9, capsize=3, zorder=5)
        if lb.teacher.get("accuracy") is not None:
            ax.axhline(lb.teacher["accuracy"], color="0.4", linestyle="-.", linewidth=0.9,
                       label=f"teacher ({lb.teacher.get('arch') or 'teacher'}) {lb.teacher['accuracy']:.3f}")
        from matplotlib.lines import Line2D

        handles, labels = ax.get_legend_handles_labels()
        for method in methods:
            handles.append(Line2D([], [], marker="o", linestyle="-", color=colours[method]))
            labels.append(method)
        handles.append(Line2D([], [], marker="|", linestyle="", color="black", markersize=10))
        kinds = sorted({m.interval_kind for m in results})
        labels.append(f"95% interval of the seed mean ({' / '.join(kinds)})")
        _legend_outside(ax, handles, labels)
        ax.set_xticks(range(len(students)))
        ax.set_xticklabels(students)
        ax.set_xlim(-0.6, len(students) - 0.4)
        ax.set_ylabel("test accuracy")
        ax.set_title("Test accuracy per method and student (best configuration of each method, chosen on validation)\n"
                     "dots = seeds, bar = mean over seeds, whiskers = 95% interval of the mean")
        ax.grid(True, axis="y", linewidth=0.3, alpha=0.5)
        fig.tight_layout()
        _save(fig, path)
    return path


def plot_file_name(board: TargetBoard) -> str:
    """The file name of a board's trade-off plot."""
    return "accuracy_vs_size.png" if board.name == NO_TARGET else f"accuracy_vs_latency_{board.name}.png"
