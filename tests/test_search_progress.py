"""A search's progress in a log file: one line per finished seed run with the study's ETA (kdbench.search.progress)."""

from __future__ import annotations

import json
import re

from kdbench.search.progress import SeedProgress, fmt_duration


def _append(path, **event) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(event) + "\n")


def test_one_line_per_finished_seed_with_an_eta_from_this_commands_pace(tmp_path):
    log = tmp_path / "seed_log.jsonl"
    _append(log, event="done", student="s", trial=0, seed=0, status="ok")  # before this command: counted, no line
    now = [100.0]
    progress = SeedProgress(tmp_path, planned=6, clock=lambda: now[0])
    assert progress.poll() == []
    _append(log, event="start", student="s", trial=1, seed=0)
    _append(log, event="reused", student="s", trial=0, seed=1)  # read back after a restart: finished, no line
    now[0] = 130.0
    _append(log, event="done", student="s", trial=1, seed=0, status="ok", method="vanilla", val=0.8125)
    (line,) = progress.poll()
    # 3 of 6 finished, one trained in 30 s: 3 left at 30 s each
    assert re.fullmatch(r"\d\d:\d\d:\d\d s trial 1 \(vanilla\) seed 0: ok, val 0\.8125 \(3/6 seed runs, 30s, "
                        r"ETA 1m30s\)", line), line
    with open(log, "a") as fh:  # a line still being written is read once it is whole
        fh.write('{"event": "done", "student": "s", "trial": 1, "seed": 1, "status": "non_finite_loss"')
    assert progress.poll() == []
    with open(log, "a") as fh:
        fh.write("}\n")
    now[0] = 150.0
    (line,) = progress.poll()
    assert line.endswith("seed 1: non_finite_loss (4/6 seed runs, 50s, ETA 50s)"), line
    for seed in (2, 3, 4):
        _append(log, event="done", student="s", trial=2, seed=seed, status="ok")
    *_, last = progress.poll()
    assert last.endswith("(7 seed runs, 1 beyond the 6 planned (a race, retries))"), last


def test_durations_read_like_a_person_writes_them():
    assert [fmt_duration(s) for s in (0, 42, 61, 3599, 3600, 7322)] == ["0s", "42s", "1m01s", "59m59s", "1h00m", "2h02m"]


def test_a_trial_that_ends_early_gets_a_line_and_leaves_the_plan(tmp_path):
    log = tmp_path / "seed_log.jsonl"
    now = [0.0]
    progress = SeedProgress(tmp_path, planned=9, clock=lambda: now[0])  # 3 trials x 3 seeds
    now[0] = 20.0
    _append(log, event="done", student="s", trial=0, seed=0, status="ok", method="scratch", val=0.5)
    _append(log, event="trial_end", student="s", trial=1, method="dkd", state="pruned", seeds_done=0, n_seeds=3,
            note="first seed below the median of earlier trials at epoch 2")
    _append(log, event="trial_end", student="s", trial=2, method="vanilla", state="reused", seeds_done=0, n_seeds=3,
            note="same configuration as trial 0")
    first, pruned, reused = progress.poll()
    assert first.endswith("(1/9 seed runs, 20s, ETA 2m40s)"), first  # before the trials ended: 8 left at 20 s
    assert re.fullmatch(r"\d\d:\d\d:\d\d s trial 1 \(dkd\): pruned after 0 seed\(s\): first seed below the median of "
                        r"earlier trials at epoch 2 \(1/6 seed runs, 20s, ETA 1m40s\)", pruned), pruned
    assert reused.endswith("trial 2 (vanilla): reused: same configuration as trial 0 (1/3 seed runs, 20s, ETA 40s)"), reused
    resumed = SeedProgress(tmp_path, planned=9, clock=lambda: now[0])  # a restart reads the ended trials back
    assert resumed.poll() == [] and resumed.where().startswith("1/3 seed runs")
