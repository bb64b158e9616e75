"""Where a study stands: trial counts per state, best so far per student, what each worker is doing."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from kdbench.search.comparison import comparisons_of
from kdbench.search.progress import SeedProgress



def study_status(studies: dict[str, Any], study_dir: Path, quota: dict[str, int] | None = None) -> dict[str, Any]:
    """Counts per state, best mean objective and seeds done, per student, plus live workers.

    Failures that were retried and duplicates that never trained are counted apart ("retried"), not
    as failures; a RUNNING trial whose worker is gone counts as "abandoned" (the next run resumes it).
    """
    from kdbench.search.liveness import live_workers, retried_numbers, stale_reason, superseded
    from kdbench.search.objective import read_seed_log
    from kdbench.search.seed_attrs import seed_results_of

    workers = live_workers(study_dir)
    students = {}
    for student, study in studies.items():
        trials = study.get_trials(deepcopy=False)
        retried = retried_numbers(trials)
        counts: Counter = Counter()
        for t in trials:
            state = "retried" if superseded(t, retried) else t.state.name.lower()
            if state == "running" and stale_reason(t, study_dir, others_alive=bool(workers)) is not None:
                state = "abandoned"
            counts[state] += 1
        complete = [t for t in trials if t.state.name == "COMPLETE" and t.values]  # values[0]: the accuracy (also
        # in a multi-objective study); ties go to the earliest configuration (a retry keeps its first number)
        best = max(complete, key=lambda t: (t.values[0], -t.system_attrs.get("failed_trial", t.number))) if complete else None
        students[student] = {
            "counts": dict(counts), "n_trials": len(trials) - counts["retried"], "quota": (quota or {}).get(student),
            "best": None if best is None else {
                "trial": best.number, "value": best.values[0], "method": best.user_attrs.get("method"),
                "hparams": best.user_attrs.get("hparams"),
                "mean_test_accuracy": _mean(seed_results_of(best), "test_accuracy")},
        }
    log = read_seed_log(study_dir)
    return {"students": students, "seeds_done": sum(1 for e in log if e["event"] == "done"),
            "seeds_reused": sum(1 for e in log if e["event"] == "reused"), "workers": workers,
            "abandoned": sum(s["counts"].get("abandoned", 0) for s in students.values())}


def _mean(seeds: dict[str, dict[str, Any]], metric: str) -> float | None:
    values = [s[metric] for s in seeds.values() if s.get(metric) is not None]
    return sum(values) / len(values) if values else None


def status_table(status: dict[str, Any], title: str) -> Any:
    """A rich table of the study's students: trials by state and the best configuration so far."""
    from rich.table import Table

    table = Table(title=title)
    for col, justify in (("student", "left"), ("trials", "right"), ("complete", "right"), ("pruned", "right"),
                         ("failed", "right"), ("running", "right"), ("best val", "right"), ("its test", "right"),
                         ("best configuration", "left")):
        numeric = justify == "right"
        table.add_column(col, justify=justify, no_wrap=numeric, min_width=6 if numeric else 14,
                         overflow="fold")
    for student, s in status["students"].items():
        c, best = s["counts"], s["best"]
        total = f"{s['n_trials']}" + (f"/{s['quota']}" if s.get("quota") else "")
        cfg = "-" if best is None else f"#{best['trial']} {best['method']} " + " ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in (best["hparams"] or {}).items())
        table.add_row(student, total, str(c.get("complete", 0)), str(c.get("pruned", 0)), str(c.get("fail", 0)),
                      str(c.get("running", 0) + c.get("waiting", 0) + c.get("abandoned", 0)),
                      "-" if best is None else f"{best['value']:.4f}",
                      "-" if best is None or best["mean_test_accuracy"] is None else f"{best['mean_test_accuracy']:.4f}",
                      cfg)
    return table


def statistics_table(stats: dict[str, Any], metric: str = "test_accuracy") -> Any:
    """A rich table of the study's paired comparisons for one metric: engine, interval, p, Holm p and verdict."""
    from rich.table import Table

    margin = stats.get("margin")
    table = Table(title=f"paired comparisons on {metric} ({stats['ci']}; {stats['correction']}"
                        + (f"; margin {margin:g}" if margin is not None else "") + ")")
    for col in ("student", "comparison", "A", "engine", "n", "mean A", "mean B", "A - B",
                f"{stats['confidence']:.0%} CI", "p", "p Holm", "verdict"):
        text = col in ("student", "comparison", "A", "verdict")
        table.add_column(col, justify="left" if text else "right", overflow="fold", no_wrap=not text,
                         min_width=10 if text else None)  # labels stay readable on an 80-column console
    for c in comparisons_of(stats, metric):
        ci = "-" if c.ci_low is None else f"[{c.ci_low:+.4f}, {c.ci_high:+.4f}]"
        table.add_row(c.student, c.comparison, f"#{c.a.get('trial')} {c.a.get('method')}", c.engine or "-",
                      str(c.n), _fmt(c.mean_a), _fmt(c.mean_b), _fmt(c.diff, "+.4f"), ci,
                      _fmt(c.p_value, ".3g"), _fmt(c.p_holm, ".3g") + (" *" if c.significant else ""),
                      c.verdict or "-")
    return table


def _fmt(x: Any, spec: str = ".4f") -> str:
    return "-" if x is None else format(x, spec)


class StudyMonitor:
    """A rich renderable that shows a running study (polled from the storage every ``every_s`` seconds)."""

    def __init__(self, study_dir: Path, storage_url: str | None, quota: dict[str, int], every_s: float = 2.0,
                 planned: int | None = None) -> None:
        self.study_dir, self.storage_url, self.quota, self.every_s = Path(study_dir), storage_url, quota, every_s
        self._seeds = SeedProgress(study_dir, planned) if planned else None  # the ETA (seed runs left at this pace)
        self._studies: dict[str, Any] | None = None
        self._last = 0.0
        self._renderable: Any = "starting..."
        self._start = time.time()

    def _poll(self) -> None:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.text import Text

        from kdbench.search.studies import load_studies

        if self._studies is None:
            self._studies = load_studies(self.study_dir, self.storage_url)
        st = study_status(self._studies, self.study_dir, self.quota)
        total = sum(self.quota.values())
        finished = sum(s["counts"].get(k, 0) for s in st["students"].values() for k in ("complete", "pruned", "fail"))
        pace = ""
        if self._seeds is not None:
            self._seeds.poll()
            pace = f"  ({self._seeds.where()})"
        parts: list[Any] = [Text(f"trials {finished}/{total} finished  seeds trained {st['seeds_done']} "
                                 f"(reused {st['seeds_reused']})  elapsed {time.time() - self._start:.0f} s{pace}"),
                            ProgressBar(total=max(total, 1), completed=min(finished, total), width=60)]
        for w in st["workers"]:
            if w.get("state") in ("training", "seed_done"):
                parts.append(Text(f"  worker {w['worker']['pid']}: {w.get('student')} trial {w.get('trial')} "
                                  f"{w.get('method', '')} seed {w.get('seed_index', 0) + (0 if w.get('state') == 'seed_done' else 1)}/"
                                  f"{w.get('n_seeds')} epoch {w.get('epoch', 0)}/{w.get('epochs', '?')}"
                                  + (f" val {w['val']:.4f}" if isinstance(w.get("val"), float) else "")))
        parts.append(status_table(st, "best so far"))
        self._renderable = Group(*parts)

    def __rich__(self) -> Any:
        if time.time() - self._last >= self.every_s:
            self._last = time.time()
            try:
                self._poll()
            except Exception as err:  # a storage hiccup must not kill the display
                self._renderable = f"(status unavailable: {err})"
        return self._renderable
