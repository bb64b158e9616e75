"""The leaderboard's figures, drawn with matplotlib's Agg canvas (no pyplot, no global state).

PNG bytes are stable: fixed size and dpi, the bundled DejaVu font, no 'Software' metadata and no
timestamps, and every list plotted in sorted order.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from kdbench.leaderboard.collect import NO_TARGET, Leaderboard, TargetBoard
from kdbench.leaderboard.constraints import describe_constraints
from kdbench.leaderboard.pareto import front_staircase, pareto_fronts

FIGSIZE = (10.0, 5.6)
DPI = 110
MARKERS = {"fp32": "o", "fp16": "^", "int8": "s"}
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


def _short(row: dict[str, Any]) -> str:
    runtime = row.get("runtime")
    return f"{row.get('method')}/{row.get('variant')}" + (f" @{RUNTIME_SHORT.get(runtime, runtime)}" if runtime else "")


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
    return any(r.get("front") is not None and r.get(x_col) is not None for r in board.rows)


def plot_tradeoff(board: TargetBoard, path: Path, teacher_accuracy: float | None = None) -> Path:
    """Accuracy vs batch-1 latency (or vs file size without profiles): Pareto front drawn, marker area by file size."""
    import matplotlib

    x_col = "size_mb" if board.name == NO_TARGET else "latency_p50_ms"
    x_label = "model file size (MB)" if x_col == "size_mb" else "batch-1 latency p50 (ms, log scale)"
    rows = [r for r in board.rows if r.get("front") is not None and r.get(x_col) is not None and r.get("accuracy") is not None]
    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot(1, 1, 1)
        if not rows:
            ax.text(0.5, 0.5, f"nothing to plot on {board.name}:\nno ranked model has {x_col}", ha="center", va="center",
                    transform=ax.transAxes)
            ax.set_axis_off()
            _save(fig, path)
            return path
        students = sorted({str(r["student"]) for r in rows})
        colours = _colours(students)
        sizes = [r.get("size_mb") or 0.0 for r in rows]
        biggest = max(sizes) or 1.0

        def area(size: float | None) -> float:
            return 25.0 + 400.0 * math.sqrt((size or 0.0) / biggest)

        for r in rows:
            marker = MARKERS.get(str(r.get("precision")), "o")
            estimated = r.get("measured") == "estimated"
            colour = colours[str(r["student"])]
            ax.scatter([r[x_col]], [r["accuracy"]], s=area(r.get("size_mb")), marker=marker, alpha=0.75,
                       facecolors="none" if estimated else [colour], edgecolors=[colour],
                       linewidths=1.6 if estimated else 0.6, zorder=3)
            if r["front"] == 1:
                ax.scatter([r[x_col]], [r["accuracy"]], s=area(r.get("size_mb")) * 1.9, marker="o", facecolors="none",
                           edgecolors="black", linewidths=0.8, zorder=2)
        breaking = [r for r in rows if r.get("meets_constraints") == "no"]
        if breaking:
            ax.scatter([r[x_col] for r in breaking], [r["accuracy"] for r in breaking], marker="x", s=28,
                       color="tab:red", linewidths=1.2, zorder=4, label="breaks a constraint")
        # The 2-D front of the plotted projection, drawn as a step line.
        pts = [(float(r[x_col]), float(r["accuracy"])) for r in rows]
        all_x = [p[0] for p in pts] + [float(t[x_col]) for t in board.teacher_rows if t.get(x_col) is not None]
        two_d = [p for p, f in zip(pts, pareto_fronts(pts, ["min", "max"])) if f == 1]
        stair = front_staircase(two_d)
        ax.plot([p[0] for p in stair], [p[1] for p in stair], color="black", linestyle="--", linewidth=1.0, zorder=1,
                label="front of accuracy vs " + ("size" if x_col == "size_mb" else "latency"))
        labels_to_place = [(r[x_col], r["accuracy"], _short(r), "0.2") for r in
                           sorted((r for r in rows if r["front"] == 1), key=lambda r: (r[x_col], -r["accuracy"]))]
        teacher = [t for t in board.teacher_rows if t.get(x_col) is not None and t.get("accuracy") is not None]
        for t in sorted(teacher, key=lambda t: (t[x_col], str(t.get("runtime")))):
            ax.scatter([t[x_col]], [t["accuracy"]], marker="X", s=90, color="0.35", zorder=3)
            labels_to_place.append((t[x_col], t["accuracy"], f"teacher {t.get('student') or ''} {t.get('variant')}", "0.35"))
        rec = board.recommended
        if rec is not None and rec.get(x_col) is not None:
            ax.scatter([rec[x_col]], [rec["accuracy"]], marker="*", s=160, color="gold", edgecolors="black",
                       linewidths=0.7, zorder=5, label="recommended")
        if x_col == "latency_p50_ms":
            ax.set_xscale("log")
            _plain_log_ticks(ax.xaxis)
            fps = board.constraints.get("min_fps")
            if fps:
                limit = 1000.0 / fps
                ax.axvline(limit, color="tab:red", linewidth=1.0, linestyle=":", zorder=1,
                           label=f"{fps:g} fps = {limit:.1f} ms per frame\n(shaded: too slow)")
                right = max(max(all_x) * 1.5, limit * 1.5)
                ax.axvspan(limit, right, color="tab:red", alpha=0.06, zorder=0)
        if teacher_accuracy is not None:
            ax.axhline(teacher_accuracy, color="0.4", linewidth=0.9, linestyle="-.", zorder=1,
                       label=f"teacher test accuracy {teacher_accuracy:.3f}")
        from matplotlib.lines import Line2D

        handles, labels = ax.get_legend_handles_labels()
        for s in students:
            handles.append(Line2D([], [], marker="o", linestyle="", color=colours[s]))
            labels.append(s)
        for prec in sorted({str(r.get("precision")) for r in rows}):
            handles.append(Line2D([], [], marker=MARKERS.get(prec, "o"), linestyle="", color="0.3"))
            labels.append(prec)
        handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor="black", markersize=11))
        labels.append("Pareto-optimal (accuracy, latency, size)" if x_col != "size_mb" else "Pareto-optimal")
        if any(r.get("measured") == "estimated" for r in rows):
            handles.append(Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor="0.3"))
            labels.append("hollow: estimated, not measured")
        _legend_outside(ax, handles, labels)
        ax.set_xlabel(x_label)
        ax.set_ylabel("test accuracy")
        title = "Accuracy only" if board.name == NO_TARGET else f"{board.name}: accuracy vs latency"
        cons = "" if board.name == NO_TARGET else f"; constraints: {describe_constraints(board.constraints)}"
        ax.set_title(f"{title}\nmarker area ~ file size{cons}")
        ax.grid(True, which="both", linewidth=0.3, alpha=0.5)
        fig.tight_layout()
        marker_boxes = [(r[x_col], r["accuracy"], math.sqrt(area(r.get("size_mb")) * (1.9 if r["front"] == 1 else 1.0)) / 2)
                        for r in rows]
        _place_labels(ax, labels_to_place, markers=marker_boxes)
        _save(fig, path)
    return path


# Offsets (points) tried in turn for a point's label: right-above, right-below, left-above, left-below, further out.
_OFFSETS = ((8, 4), (8, -11), (-8, 4), (-8, -11), (8, 15), (8, -22), (-8, 15), (-8, -22), (8, 26), (8, -33))


def _place_labels(ax: Any, labels: list[tuple[float, float, str, str]], fontsize: float = 7.0,
                  markers: list[tuple[float, float, float]] = ()) -> None:
    """Annotate points, choosing for each the first offset whose text box overlaps no marker and no earlier label.

    ``markers`` are (x, y, radius in points) of the plotted markers to keep clear of.
    """
    fig = ax.figure
    px_per_pt = fig.dpi / 72.0
    axes_box = ax.get_window_extent()
    placed: list[tuple[float, float, float, float]] = []
    for mx, my, radius in markers:
        cx, cy = ax.transData.transform((mx, my))
        rad = radius * px_per_pt * 0.8
        placed.append((cx - rad, cy - rad, cx + rad, cy + rad))
    for x, y, text, colour in labels:
        px, py = ax.transData.transform((x, y))
        width, height = 0.6 * fontsize * len(text) * px_per_pt, fontsize * 1.2 * px_per_pt
        choice = None
        for dx, dy in _OFFSETS:
            x0 = px + dx * px_per_pt - (width if dx < 0 else 0.0)
            y0 = py + dy * px_per_pt
            box = (x0, y0, x0 + width, y0 + height)
            inside = box[0] >= axes_box.x0 and box[2] <= axes_box.x1 and box[1] >= axes_box.y0 and box[3] <= axes_box.y1
            clear = all(box[2] <= b[0] or box[0] >= b[2] or box[3] <= b[1] or box[1] >= b[3] for b in placed)
            if inside and clear:
                choice = (dx, dy, box)
                break
        if choice is None:
            dx, dy = _OFFSETS[0]
            x0 = px + dx * px_per_pt
            choice = (dx, dy, (x0, py + dy * px_per_pt, x0 + width, py + dy * px_per_pt + height))
        dx, dy, box = choice
        placed.append(box)
        far = abs(dy) > 12
        ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize, color=colour,
                    ha="right" if dx < 0 else "left", va="bottom", zorder=4,
                    arrowprops={"arrowstyle": "-", "color": "0.55", "linewidth": 0.5, "shrinkA": 0, "shrinkB": 2} if far else None)


def plot_methods(lb: Leaderboard, path: Path) -> Path:
    """Test accuracy of the best configuration of each method per student: every seed, the mean and its 95% CI."""
    import matplotlib

    results = lb.method_results
    with matplotlib.rc_context(RC):
        fig = _figure()
        ax = fig.add_subplot(1, 1, 1)
        students = sorted({m["student"] for m in results})
        methods = sorted({m["method"] for m in results}, key=lambda m: (m != "scratch", m))
        colours = _colours(methods)
        width = 0.8 / max(len(methods), 1)
        for si, student in enumerate(students):
            for mi, method in enumerate(methods):
                m = next((x for x in results if x["student"] == student and x["method"] == method), None)
                if m is None:
                    continue
                x0 = si - 0.4 + width * (mi + 0.5)
                accs = [a for a in m["test_accuracies"] if a is not None]
                k = len(accs)
                xs = [x0 + (i - (k - 1) / 2) * width * 0.5 / max(k, 1) for i in range(k)]
                ax.scatter(xs, accs, s=14, color=colours[method], alpha=0.7, zorder=3)
                if m["mean"] is not None:
                    ax.hlines(m["mean"], x0 - width * 0.4, x0 + width * 0.4, color=colours[method], linewidth=2.0, zorder=4)
                    low, high = m["ci"]
                    if low is not None and high is not None:
                        ax.errorbar([x0], [m["mean"]], yerr=[[m["mean"] - low], [high - m["mean"]]], fmt="none",
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
        labels.append("95% CI of the seed mean")
        _legend_outside(ax, handles, labels)
        ax.set_xticks(range(len(students)))
        ax.set_xticklabels(students)
        ax.set_xlim(-0.6, len(students) - 0.4)
        ax.set_ylabel("test accuracy")
        ax.set_title("Test accuracy per method and student (best configuration of each method)\n"
                     "dots = seeds, bar = mean over seeds, whiskers = 95% CI of the mean")
        ax.grid(True, axis="y", linewidth=0.3, alpha=0.5)
        fig.tight_layout()
        _save(fig, path)
    return path


def plot_file_name(board: TargetBoard) -> str:
    """The file name of a board's trade-off plot."""
    return "accuracy_vs_size.png" if board.name == NO_TARGET else f"accuracy_vs_latency_{board.name}.png"
