"""Fault injection on a real `kdbench search` subprocess: a tiny grid (3 configurations x 2 seeds of a
100k-parameter student on a 32 px phantom store) is hit at a seeded random point by SIGINT,
SIGTERM, SIGKILL, a full disk (RLIMIT_FSIZE on the child) or a read-only folder, then resumed by the
same command. The final statistics and every seed's results must equal an uninterrupted run's, no
seed may be trained twice or lost, and the storage, trial.json and summary.csv must agree.

Each fault prints one row of the fault table (run pytest with -s to see it).
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from fault_fixtures import drop_dac_override, make_search_inputs, set_writable, small_file_limit
from search_fixtures import tiny_space_toml

STUDENT = "test_efficientnet"
SEEDS = (0, 1)
SPACE = tiny_space_toml("faults", [STUDENT], list(SEEDS), study={"sampler": "grid"}, train={"patience": 1},
                        vanilla={"temperature": [2.0, 4.0]})
N_CELLS, N_SEED_RUNS = 3, 6
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # bitwise-reproducible CPU training


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A 32 px phantom store, an untrained stand-in teacher and the grid's space file."""
    root = tmp_path_factory.mktemp("faults")
    store, teacher = make_search_inputs(root, STUDENT)
    space = root / "faults.toml"
    space.write_text(SPACE)
    return {"store": store, "teacher": teacher, "space": space}


def _args(inputs: dict, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", "from kdbench.cli import main; main()", "search", "--config", str(inputs["space"]),
            "--store", str(inputs["store"]), "--teacher", str(inputs["teacher"]), "--run-dir", str(run_dir),
            "--device", "cpu", *extra]


def _results(study_dir: Path) -> dict:
    """What must not change under faults: per configuration its seeds' numbers, and the comparisons."""
    trials = [json.loads(p.read_text()) for p in study_dir.glob("trials/*/*/trial.json")]
    seeds = {t["config_id"]: {s: (r["val_accuracy"], r["test_accuracy"]) for s, r in t["seeds"].items()}
             for t in trials if t["state"] == "complete"}
    stats = json.loads((study_dir / "statistics.json").read_text())
    comparisons = [{k: ({kk: vv for kk, vv in v.items() if kk != "trial"} if k in ("a", "b") else v)
                    for k, v in c.items()} for c in stats["comparisons"]]
    return {"seeds": seeds, "comparisons": comparisons}


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory):
    """An uninterrupted run of the same command."""
    run_dir = tmp_path_factory.mktemp("reference")
    proc = subprocess.run(_args(inputs, run_dir), env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    study_dir = run_dir / "faults"
    out = _results(study_dir)
    assert len(out["seeds"]) == N_CELLS and len(out["comparisons"]) >= 2
    return {**out, "study_dir": study_dir}


def _seed_events(study_dir: Path) -> list[dict]:
    path = study_dir / "seed_log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _wait_for_start(study_dir: Path, proc: subprocess.Popen, k: int, timeout: float = 240) -> None:
    """Block until the k-th seed run has started (seed_log.jsonl), failing if the search ends first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sum(e["event"] == "start" for e in _seed_events(study_dir)) >= k:
            return
        assert proc.poll() is None, f"the search ended before seed run {k} started: {proc.stderr.read()[-2000:]}"
        time.sleep(0.02)
    raise AssertionError(f"seed run {k} did not start in {timeout} s")


def _inject(fault: str, inputs: dict, run_dir: Path, rng: random.Random) -> tuple[subprocess.CompletedProcess, str]:
    """Run the search and hit it with ``fault`` at a seeded random point; (the finished process, the point)."""
    study_dir = run_dir / "faults"
    if fault == "disk_full":
        proc = subprocess.run(_args(inputs, run_dir), env=ENV, capture_output=True, text=True, timeout=300,
                              preexec_fn=small_file_limit)
        return proc, "first checkpoint write (RLIMIT_FSIZE 256 KiB)"
    k, delay = rng.randint(1, N_SEED_RUNS - 1), rng.uniform(0.0, 0.3)
    workers = ["--workers", "2"] if fault == "sigint_2_workers" else []
    proc = subprocess.Popen(_args(inputs, run_dir, *workers), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=drop_dac_override if fault == "read_only" else None)
    try:
        _wait_for_start(study_dir, proc, k)
        time.sleep(delay)
        if fault == "read_only":
            set_writable(study_dir / "trials", False)
        else:
            sig = {"sigint": signal.SIGINT, "sigint_2_workers": signal.SIGINT, "sigterm": signal.SIGTERM,
                   "sigkill": signal.SIGKILL}[fault]
            os.killpg(proc.pid, sig)  # the whole process group, as a terminal's Ctrl-C does
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if fault == "read_only":
            set_writable(study_dir / "trials", True)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), f"seed run {k} started + {delay:.2f} s"


def _check_fault_exit(fault: str, proc: subprocess.CompletedProcess) -> None:
    """The interrupted command ends with one line that says how to resume (no traceback)."""
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    if fault == "sigkill":
        assert proc.returncode == -signal.SIGKILL
        return
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    if fault in ("sigint", "sigint_2_workers", "sigterm"):
        if proc.returncode == 0:
            return  # the signal landed after the last seed: nothing was left to interrupt
        assert proc.returncode == (143 if fault == "sigterm" else 130), proc.stderr[-2000:]
        assert last == "interrupted; rerun the same command to resume"
    else:
        assert proc.returncode == 1, proc.stderr[-2000:]
        assert last.startswith("error: a trial of test_efficientnet stopped on ") and "rerun the same command" in last


def _check_agreement(study_dir: Path) -> None:
    """Storage, summary.csv and trial.json say the same state; every grid cell is complete exactly once."""
    from kdbench.search.runner import load_studies

    study = load_studies(study_dir, None)[STUDENT]
    rows = {int(r["trial"]): r for r in csv.DictReader((study_dir / "summary.csv").open())}
    names = {"COMPLETE": "complete", "FAIL": "failed", "PRUNED": "pruned"}
    for t in study.get_trials():
        assert t.state.name in names, f"trial {t.number} left {t.state.name}"
        assert rows[t.number]["state"] == names[t.state.name]
        record = study_dir / "trials" / STUDENT / str(t.number) / "trial.json"
        if record.exists():
            assert json.loads(record.read_text())["state"] == names[t.state.name], t.number
    complete = [t for t in study.get_trials() if t.state.name == "COMPLETE"]
    assert len(complete) == N_CELLS and len({t.user_attrs["config_id"] for t in complete}) == N_CELLS
    assert not list(study_dir.rglob("*.tmp")), "stray .tmp files after the resume"


def _seed_accounting(study_dir: Path) -> dict:
    """Per (configuration, seed): runs finished ("done"), restarted partial runs, reuses; lost seeds."""
    from kdbench.search.runner import load_studies
    from kdbench.search.seed_attrs import seed_results_of

    trials = load_studies(study_dir, None)[STUDENT].get_trials()
    config = {t.number: t.user_attrs.get("config_id") for t in trials}
    done, starts, reused = Counter(), Counter(), Counter()
    for e in _seed_events(study_dir):
        key = (config[e["trial"]], e["seed"])
        if e["event"] in ("done", "start", "reused"):  # seed events (a trial_end has no seed)
            {"done": done, "start": starts, "reused": reused}[e["event"]][key] += 1
    final = {(t.user_attrs["config_id"], int(s)) for t in trials if t.state.name == "COMPLETE"
             for s in seed_results_of(t)}
    return {"retrained": sum(n - 1 for n in done.values() if n > 1),
            "lost": N_SEED_RUNS - len(final) + sum(1 for key in done if key not in final),
            "restarted_partial": sum(starts[key] - done[key] for key in starts),
            "reused": sum(reused.values())}


FAULTS = ["sigint", "sigterm", "sigkill", "disk_full", "read_only"]


@pytest.mark.parametrize("fault", [*FAULTS, pytest.param("sigint_2_workers", marks=pytest.mark.slow)])
def test_fault_then_resume_gives_the_uninterrupted_result(fault, inputs, reference, tmp_path):
    rng = random.Random(f"kdbench-faults-{fault}")
    run_dir = tmp_path / "runs"
    proc, point = _inject(fault, inputs, run_dir, rng)
    _check_fault_exit(fault, proc)
    if fault == "sigint_2_workers" and proc.returncode == 130:
        status = subprocess.run([sys.executable, "-c", "from kdbench.cli import main; main()", "search", "status",
                                 "--study", "faults", "--run-dir", str(run_dir)], env={**ENV, "COLUMNS": "200"},
                                capture_output=True, text=True, timeout=120)
        assert status.returncode == 0, status.stderr
        assert "no worker is running" in status.stdout and "training" not in status.stdout
        assert "left running by a worker that is gone" not in status.stdout  # both workers queued their trials
    _resume_and_compare(inputs, run_dir, reference, fault, point, proc.returncode)


def _resume_and_compare(inputs: dict, run_dir: Path, reference: dict, fault: str, point: str, rc: int) -> dict:
    """Rerun the same command: exit 0, the storage consistent, the reference's per-seed figures and statistics;
    prints the fault table's row."""
    study_dir = run_dir / "faults"
    resume = subprocess.run(_args(inputs, run_dir), env=ENV, capture_output=True, text=True, timeout=300)
    assert resume.returncode == 0, resume.stderr[-3000:]
    _check_agreement(study_dir)
    acct = _seed_accounting(study_dir)
    result = _results(study_dir)
    equal = result == {k: reference[k] for k in result}
    print(f"\nFAULT-TABLE | {fault} | {point} | rc {rc} | resumed yes | seeds lost {acct['lost']} | "
          f"retrained {acct['retrained']} | partial runs restarted {acct['restarted_partial']} | "
          f"reused {acct['reused']} | statistics equal {equal}")
    assert acct["retrained"] == 0 and acct["lost"] == 0, acct
    assert result["seeds"] == reference["seeds"]
    assert result["comparisons"] == reference["comparisons"]
    return {"resume": resume, **acct}


def test_the_optuna_study_is_a_first_class_artefact(reference):
    """What optuna-dashboard reads through the optuna API: a named objective, real params for every trial
    (the baseline and the grid cells too), flat mean/std/per-seed user attributes equal to trial.json."""
    import optuna

    study_dir = reference["study_dir"]
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(study_dir / "optuna.journal")))
    assert optuna.get_all_study_names(storage) == [f"faults.{STUDENT}"]
    study = optuna.load_study(study_name=f"faults.{STUDENT}", storage=storage)
    assert study.metric_names == ["val_accuracy_seed_mean"]
    trials = study.get_trials()
    assert [t.params for t in trials] == [{"method": "scratch"}, {"method": "vanilla", "vanilla.temperature": 2.0},
                                          {"method": "vanilla", "vanilla.temperature": 4.0}]
    assert trials[0].user_attrs["baseline"] is True
    for t in trials:
        record = json.loads((study_dir / "trials" / STUDENT / str(t.number) / "trial.json").read_text())
        ua = t.user_attrs
        assert ua["n_seeds"] == len(SEEDS) and ua["config_id"] == record["config_id"]
        for metric in ("val_accuracy", "test_accuracy", "val_macro_f1", "test_macro_f1"):
            assert ua[f"mean_{metric}"] == pytest.approx(record[f"mean_{metric}"])
            assert ua[f"std_{metric}"] == pytest.approx(record[f"std_{metric}"])
            for s in SEEDS:
                assert ua[f"seed_{s}_{metric}"] == record["seeds"][str(s)][metric]
        assert t.value == pytest.approx(ua["mean_val_accuracy"])
        # only scalars per seed (a wide dict would push them off the dashboard's page); the full record is trial.json
        assert "seed_results" not in ua and record["seeds"]["0"]["epochs_run"] >= 1
        assert not [k for k, v in ua.items() if isinstance(v, (dict, list)) and len(json.dumps(v)) > 200]
