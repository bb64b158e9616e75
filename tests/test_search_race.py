"""A search that races seeds (``[study] seeds = {min, max}``): seeds are added only to configurations whose
comparison is still undecided, every look is recorded, and an interrupted race resumes to the uninterrupted
result without training a seed twice. Real `kdbench search` processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from fault_fixtures import make_search_inputs
from search_fixtures import tiny_space_toml
from test_search_faults import _seed_events, _wait_for_start

STUDENT = "test_efficientnet"
ENV = {k: v for k, v in os.environ.items() if k != "KDBENCH_STORAGE"}
ENV.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    store, teacher = make_search_inputs(tmp_path_factory.mktemp("race"), STUDENT)
    return {"store": store, "teacher": teacher}


def _space(tmp: Path, seeds: dict, **study) -> Path:
    path = tmp / "race.toml"
    path.write_text(tiny_space_toml("race", [STUDENT], [0], study={"seeds": seeds, "sampler": "grid", **study}))
    return path


def _cmd(inputs: dict, space: Path, run_dir: Path) -> list[str]:
    return [sys.executable, "-c", "from kdbench.cli import main; main()", "search", "--config", str(space),
            "--store", str(inputs["store"]), "--teacher", str(inputs["teacher"]), "--run-dir", str(run_dir),
            "--device", "cpu"]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)


def _outcome(study_dir: Path) -> dict:
    """What a race decided: race.json's looks and verdicts, and each trial's seeds with their figures."""
    race = json.loads((study_dir / "race.json").read_text())
    trials = {}
    for path in sorted(study_dir.glob("trials/*/*/trial.json")):
        t = json.loads(path.read_text())
        trials[t["trial"]] = {"seeds": {s: (r["val_accuracy"], r["test_accuracy"]) for s, r in t["seeds"].items()},
                              "race": t.get("race"), "race_kd": t.get("race_kd")}
    return {"race": {s: {k: {key: v[key] for key in ("looks", "final", "best", "seeds", "observations")}
                         for k, v in e.items()} for s, e in race["students"].items()}, "trials": trials}


@pytest.fixture(scope="module")
def raced(inputs, tmp_path_factory):
    """An uninterrupted race: scratch vs vanilla, seeds 0-1 first, up to 4, no futility stop."""
    tmp = tmp_path_factory.mktemp("raced")
    space = _space(tmp, {"min": 2, "max": 4, "futility": False})
    done = _run(_cmd(inputs, space, tmp / "runs"))
    assert done.returncode == 0, done.stderr[-3000:]
    return {"space": space, "study_dir": tmp / "runs" / "race", "stderr": done.stderr}


def test_a_race_adds_seeds_where_undecided_and_records_every_look(raced):
    study_dir = raced["study_dir"]
    out = _outcome(study_dir)
    configs = out["race"][STUDENT]["configs"]
    assert len(configs["looks"]) == len(raced["stderr"].split("race test_efficientnet configs: look")) - 1
    assert [look["n_seeds"] for look in configs["looks"]] == list(range(2, 2 + len(configs["looks"])))
    for number, trial in out["trials"].items():
        n = configs["seeds"][str(number)]
        # each trial holds seeds 0..n-1 of the configurations race (the KD race may have added more)
        assert sorted(map(int, trial["seeds"]))[:n] == list(range(n))
        assert trial["race"]["verdict"] == configs["final"][str(number)]["verdict"]
        assert trial["race"]["seeds"] == n
        kept = {int(s) for s in configs["observations"][str(number)]}
        assert kept == set(range(n))
    undecided = [c for c, v in configs["final"].items() if v["verdict"] == "undecided"]
    for c in undecided:  # an open comparison raced to max; a stopped one got no seed after its look
        assert configs["seeds"][c] == 4
    for c, v in configs["final"].items():
        if v["verdict"] in ("worse", "equivalent"):
            assert configs["seeds"][c] == configs["looks"][v["look"] - 1]["n_seeds"]
    done = Counter((e["trial"], e["seed"]) for e in _seed_events(study_dir) if e["event"] == "done")
    assert max(done.values()) == 1, done
    # in a log file (no terminal): one progress line per finished seed run, on stderr
    progress = [line for line in raced["stderr"].splitlines() if " seed runs" in line]
    assert len(progress) == sum(done.values()), raced["stderr"]
    stats = json.loads((study_dir / "statistics.json").read_text())
    kd = [c for c in stats["comparisons"] if c["metric"] == "test_accuracy"]
    pair = out["race"][STUDENT]["kd_vs_scratch"]["seeds"]
    assert kd and len(kd[0]["seeds"]) == min(pair.values())  # the statistics see every raced seed


def test_a_finished_race_rerun_trains_nothing(raced, inputs):
    study_dir = raced["study_dir"]
    before, starts = _outcome(study_dir), sum(e["event"] == "start" for e in _seed_events(study_dir))
    again = _run(_cmd(inputs, raced["space"], study_dir.parent))
    assert again.returncode == 0, again.stderr[-3000:]
    assert sum(e["event"] == "start" for e in _seed_events(study_dir)) == starts
    assert _outcome(study_dir) == before


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_an_interrupted_race_resumes_to_the_uninterrupted_result(name, raced, inputs, tmp_path):
    """The signal lands while the race trains its first added seed (seed run 5: 2 configurations x 2 seeds
    came first); the rerun finishes the race with the same looks, verdicts and per-seed figures."""
    space = _space(tmp_path, {"min": 2, "max": 4, "futility": False})
    run_dir = tmp_path / "runs"
    proc = subprocess.Popen(_cmd(inputs, space, run_dir), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    _wait_for_start(run_dir / "race", proc, 5)
    os.killpg(proc.pid, getattr(signal, name))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + getattr(signal, name), err[-3000:]
    assert "Traceback" not in err
    done = _run(_cmd(inputs, space, run_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    assert _outcome(run_dir / "race") == _outcome(raced["study_dir"])
    finished = Counter((e["trial"], e["seed"]) for e in _seed_events(run_dir / "race") if e["event"] == "done")
    assert max(finished.values()) == 1, finished


@pytest.mark.parametrize("seeds,study,expected", [
    ({"min": 1, "max": 4}, {}, "study.seeds.min = 1"),
    ({"min": 3, "max": 2}, {}, "study.seeds.max = 2"),
    ({"min": 3, "mx": 9}, {}, "study.seeds.mx is not a race setting"),
    ({"min": 2, "boundary": "late"}, {}, "study.seeds.boundary"),
    ({"min": 2}, {"objective": ["val_accuracy", "latency_p50@rpi4"]}, "multi-objective"),
])
def test_bad_race_settings_are_one_line_before_any_work(seeds, study, expected, inputs, tmp_path):
    space = _space(tmp_path, seeds, **study)
    done = _run(_cmd(inputs, space, tmp_path / "runs"))
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], done.stderr
    assert not (tmp_path / "runs" / "race" / "trials").exists()


def _confirm(study_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-c", "from kdbench.cli import main; main()", "search", "confirm", "--study",
                 str(study_dir), "--device", "cpu", *extra])


def test_confirm_races_a_raced_study_on_fresh_seeds_and_resumes(raced, tmp_path):
    """A study that raced is confirmed by the same race on fresh seeds (1000, 1001, ...): the confirmation
    race records its looks, each candidate's trial.json holds the seeds it got, the statistics say it raced;
    rerun, it trains nothing and decides the same."""
    import shutil

    study_dir = tmp_path / "race"
    shutil.copytree(raced["study_dir"], study_dir)
    done = _confirm(study_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "a race of 2-4 fresh seeds" in done.stderr
    race = json.loads((study_dir / "confirm" / "race.json").read_text())
    assert race["fresh_seeds"] == [1000, 1001, 1002, 1003]
    configs = race["students"][STUDENT]["configs"]
    stats = json.loads((study_dir / "confirm" / "statistics.json").read_text())
    assert stats["race"][STUDENT]["configs"]["verdicts"] == {c: v["verdict"] for c, v in configs["final"].items()}
    for path in (study_dir / "confirm" / STUDENT).glob("*/trial.json"):
        t = json.loads(path.read_text())
        n = configs["seeds"][str(t["trial"])]
        assert sorted(map(int, t["seeds"]))[:n] == [1000 + i for i in range(n)]
        assert t["race"]["configs"]["verdict"] == configs["final"][str(t["trial"])]["verdict"]
    again = _confirm(study_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "trained 0" in again.stdout.replace("\n", " ")
    assert json.loads((study_dir / "confirm" / "race.json").read_text())["students"] == race["students"]


def test_confirm_with_fixed_seeds_keeps_todays_design_and_bad_bounds_are_one_line(raced, tmp_path):
    import shutil

    study_dir = tmp_path / "race"
    shutil.copytree(raced["study_dir"], study_dir)
    bad = _confirm(study_dir, "--seeds", "5", "--max-seeds", "3")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--max-seeds = 3" in bad.stderr, bad.stderr
    fixed = _confirm(study_dir, "--seeds", "2")
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert not (study_dir / "confirm" / "race.json").exists()
    stats = json.loads((study_dir / "confirm" / "statistics.json").read_text())
    assert "race" not in stats and stats["looks"][-1]["seeds"] == [1000, 1001]


def test_two_searches_on_one_study_race_it_once(raced, inputs, tmp_path):
    """Two `kdbench search` processes on one study (a Slurm array's tasks): both train trials, one races once
    the other is done (race.lock), the other leaves it; the same result as one process, no seed run twice."""
    space = _space(tmp_path, {"min": 2, "max": 4, "futility": False})
    run_dir = tmp_path / "runs"
    first = subprocess.Popen(_cmd(inputs, space, run_dir), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    _wait_for_start(run_dir / "race", first, 1)
    second = subprocess.Popen(_cmd(inputs, space, run_dir), env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], [o[1][-2000:] for o in outs]
    assert _outcome(run_dir / "race") == _outcome(raced["study_dir"])
    started = Counter((e["trial"], e["seed"]) for e in _seed_events(run_dir / "race") if e["event"] == "start")
    assert max(started.values()) == 1, started
    assert not (run_dir / "race" / "race.lock").exists()


def test_the_race_lock_is_one_process_at_a_time_and_a_dead_owners_lock_goes(tmp_path):
    from kdbench.search.liveness import one_at_a_time, worker_record

    with one_at_a_time(tmp_path, "race.lock") as mine:
        assert mine and json.loads((tmp_path / "race.lock").read_text())["pid"] == os.getpid()
        sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:  # a live owner (another process on this machine) keeps it
            (tmp_path / "other").mkdir()
            (tmp_path / "other" / "race.lock").write_text(json.dumps(worker_record(sleeper.pid)))
            with one_at_a_time(tmp_path / "other", "race.lock") as theirs:
                assert theirs is False
            sleeper.kill()
            sleeper.wait()
            with one_at_a_time(tmp_path / "other", "race.lock") as taken:  # its owner is gone: taken over
                assert taken is True
        finally:
            sleeper.kill()
    assert not (tmp_path / "race.lock").exists()
