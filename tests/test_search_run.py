"""`kdbench search` end to end on a tiny phantom store: journal storage, resume after kill -9,
failed trials, PostgreSQL with two workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from search_fixtures import tiny_space_toml

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def search_inputs(phantom_32px):
    """A 32 px phantom store and an untrained stand-in teacher checkpoint (the session's, see conftest)."""
    return phantom_32px


def _space(tmp_path, name, n_trials=3, students=("mobilenet_v3_small",), lr=1e-3, seeds=(0, 1), epochs=2) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(tiny_space_toml(name, list(students), list(seeds),
                                    study={"n_trials": n_trials, "n_startup_trials": 1, "sampler_seed": 0},
                                    train={"epochs": epochs, "patience": 5, "lr": lr},
                                    vanilla={"temperature": {"low": 1.0, "high": 8.0}}))
    return path


def _cli(*args: str, env: dict | None = None) -> list[str]:
    return [sys.executable, "-c", "from kdbench.cli import main; main()", *args]


def _seed_events(study_dir: Path) -> Counter:
    from kdbench.search.objective import read_seed_log

    return Counter((e["student"], e["event"]) for e in read_seed_log(study_dir))


def test_search_in_process_writes_the_study_directory(search_inputs, tmp_path):
    from kdbench.search.results import best_trials, read_study_json
    from kdbench.search.runner import SearchRequest, load_studies, run_search
    from kdbench.search.seed_attrs import seed_results_of

    store, teacher = search_inputs
    req = SearchRequest(config=_space(tmp_path, "e2e"), store=store, teacher=teacher, run_dir=tmp_path / "runs", device="cpu")
    result = run_search(req)
    study_dir = result["study_dir"]
    info = read_study_json(study_dir)
    assert info["seeds"] == [0, 1] and info["teacher_hash"] and info["store_hash"]
    assert info["storage"].endswith("optuna.journal") and (study_dir / "optuna.journal").is_file()
    study = load_studies(study_dir, None)["mobilenet_v3_small"]
    trials = study.get_trials()
    assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials)
    assert trials[0].user_attrs["method"] == "scratch" and trials[0].user_attrs["baseline"] is True
    assert trials[0].params == {"method": "scratch"}  # the baseline is a point in every Optuna plot
    trained = [t for t in trials if "same_as_trial" not in t.user_attrs]
    for t in trials:
        seeds = seed_results_of(t)
        assert sorted(seeds) == ["0", "1"]
        assert t.value == pytest.approx((seeds["0"]["val_accuracy"] + seeds["1"]["val_accuracy"]) / 2)
        if t not in trained:  # the sampler proposed a finished configuration again: its results, no new run
            twin = trials[t.user_attrs["same_as_trial"]]
            assert twin in trained and twin.user_attrs["config_id"] == t.user_attrs["config_id"]
            assert not (study_dir / "trials" / "mobilenet_v3_small" / str(t.number)).exists()
            continue
        for s in (0, 1):
            run = study_dir / "trials" / "mobilenet_v3_small" / str(t.number) / f"seed_{s}"
            metrics = json.loads((run / "metrics.json").read_text())
            assert (run / "best.pt").is_file() and metrics["config"]["seed"] == s
            assert metrics["method"] == t.user_attrs["method"]
    rows = (study_dir / "summary.csv").read_text().splitlines()
    assert len(rows) == 4 and rows[0].startswith("student,trial,state,method")
    stats = json.loads((study_dir / "statistics.json").read_text())
    assert any("2 seed" in w for w in stats["warnings"])
    kd = [t for t in trained if t.user_attrs["method"] != "scratch"]
    # one comparison per distillation method that trained (its best configuration vs the baseline)
    assert len([c for c in stats["comparisons"] if c["metric"] == "test_accuracy"]) == len({t.user_attrs["method"] for t in kd})
    assert kd  # sampler_seed 0 draws a vanilla configuration among the two sampled trials
    best = best_trials(study_dir)
    assert len(best) == 1 and best[0]["student"] == "mobilenet_v3_small"
    assert best[0]["mean"] == pytest.approx(max(t.value for t in trials))
    assert all(Path(d, "best.pt").is_file() for d in best[0]["seed_dirs"].values())
    # same command again: the quota is used, nothing is trained
    before = _seed_events(study_dir)
    run_search(req)
    assert _seed_events(study_dir) == before and len(study.get_trials()) == 3
    # the status and stats subcommands read the same study
    from typer.testing import CliRunner

    from kdbench.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["search", "status", "--study", "e2e", "--run-dir", str(tmp_path / "runs")], terminal_width=200)
    assert out.exit_code == 0, out.output
    best_value = f"{max(t.value for t in trials):.4f}"
    assert best_value in out.output
    assert f"seeds trained {2 * len(trained)}, reused after a restart 0" in out.output
    (study_dir / "statistics.json").unlink()
    out = runner.invoke(app, ["search", "stats", "--study", "e2e", "--run-dir", str(tmp_path / "runs")], terminal_width=200)
    assert out.exit_code == 0, out.output
    assert json.loads((study_dir / "statistics.json").read_text()) == stats
    out = runner.invoke(app, ["search", "status", "--study", "nope", "--run-dir", str(tmp_path / "runs")])
    assert out.exit_code != 0


def test_non_finite_loss_fails_the_trial_and_the_search_goes_on(search_inputs, tmp_path):
    from kdbench.search.runner import SearchRequest, load_studies, run_search

    store, teacher = search_inputs
    req = SearchRequest(config=_space(tmp_path, "nan", n_trials=2, lr=1e30), store=store, teacher=teacher,
                        run_dir=tmp_path / "runs", device="cpu")
    result = run_search(req)
    trials = load_studies(result["study_dir"], None)["mobilenet_v3_small"].get_trials()
    assert len(trials) == 2 and all(t.state.name == "FAIL" for t in trials)
    # a non-finite loss or non-finite weights (status non_finite_loss / non_finite): final, never retried
    assert all(": non_finite" in t.user_attrs["fail_reason"] for t in trials)
    assert not any("failed_trial" in t.system_attrs for t in trials)
    summary = (result["study_dir"] / "summary.csv").read_text()
    assert summary.count(": non_finite") == 2


def test_cli_reports_a_malformed_space(search_inputs, tmp_path):
    store, teacher = search_inputs
    bad = tmp_path / "bad.toml"
    bad.write_text('[study]\nstudents = ["mobilenet_v3_small"]\nsampler = "bayes"\n[space]\nmethod = "scratch"\n')
    proc = subprocess.run(_cli("search", "--config", str(bad), "--store", str(store), "--run-dir", str(tmp_path)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "study.sampler = 'bayes'; expected one of ['tpe', 'random', 'grid']" in " ".join(proc.stderr.split())


def _wait_for_partial_trial(study_dir: Path, proc: subprocess.Popen, timeout: float = 240) -> Path:
    """Wait until some trial has a finished seed but no trial.json yet; that trial's directory."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, "the search ended before it could be interrupted"
        for metrics in study_dir.glob("trials/*/*/seed_*/metrics.json"):
            if not (metrics.parent.parent / "trial.json").exists():
                return metrics.parent.parent
        time.sleep(0.05)
    raise AssertionError("no trial reached a completed seed in time")


def _check_resumed_study(study_dir: Path, storage: str | None, n_trials: int, seeds: tuple[int, ...]) -> None:
    from kdbench.search.objective import read_seed_log
    from kdbench.search.runner import load_studies
    from kdbench.search.seed_attrs import seed_results_of

    studies = load_studies(study_dir, storage)
    complete = [t for s in studies.values() for t in s.get_trials() if t.state.name == "COMPLETE"]
    assert len(complete) == n_trials
    failed = [t for s in studies.values() for t in s.get_trials() if t.state.name == "FAIL"]
    assert failed, "the interrupted trial should be recorded as failed"
    retried = [t for t in complete if "failed_trial" in t.system_attrs]
    assert retried, "the interrupted trial should have been retried"
    # every (trial, seed) of a completed trial was trained exactly once, across both runs
    log = read_seed_log(study_dir)
    done = Counter()
    complete = [t for t in complete if "same_as_trial" not in t.user_attrs]  # reused results, never trained
    for t in complete:
        numbers = [*t.system_attrs.get("retry_history", []), t.number]
        for s in seeds:
            mine = [e for e in log if e["trial"] in numbers and e["seed"] == s and e["student"] == t.user_attrs["student"]]
            n = sum(e["event"] == "done" for e in mine)
            if n == 0 and any(e["event"] == "reused" for e in mine):
                n = 1  # killed after its metrics.json was written but before "done" was logged: read back, not retrained
            done[n] += 1
    assert set(done) == {1}, f"seeds trained more than once or never: {done}"
    assert any(e["event"] == "reused" for e in log), "the retried trial should reuse its finished seed"
    for t in complete:
        assert list(seed_results_of(t)) == [str(s) for s in seeds]


def test_kill_9_mid_trial_then_rerun_resumes(search_inputs, tmp_path):
    store, teacher = search_inputs
    space = _space(tmp_path, "kill", n_trials=2, seeds=(0, 1, 2), epochs=2)
    args = _cli("search", "--config", str(space), "--store", str(store), "--teacher", str(teacher),
                "--run-dir", str(tmp_path / "runs"), "--device", "cpu")
    study_dir = tmp_path / "runs" / "kill"
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        partial = _wait_for_partial_trial(study_dir, proc)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert not (partial / "trial.json").exists(), "the trial finished before the kill landed (machine too slow?)"
    first_seed = sorted(partial.glob("seed_*/metrics.json"))[0]
    mtime = first_seed.stat().st_mtime_ns
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    _check_resumed_study(study_dir, None, 2, (0, 1, 2))
    moved = list(study_dir.glob(f"trials/*/*/{first_seed.parent.name}/metrics.json"))
    assert any(p.stat().st_mtime_ns == mtime for p in moved), "the completed seed was rewritten"


@pytest.mark.postgres
def test_postgres_two_workers_and_a_killed_worker(search_inputs, tmp_path):
    url = os.environ.get("KDBENCH_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("KDBENCH_TEST_POSTGRES_URL is not set (tests/services/start_postgres.sh starts a server)")
    pytest.importorskip("psycopg2")
    from kdbench.search.objective import read_seed_log

    store, teacher = search_inputs
    name = f"pg{os.getpid()}{int(time.time())}"
    space = _space(tmp_path, name, n_trials=4, students=("mobilenet_v3_small", "shufflenet_v2_x0_5"), seeds=(0, 1, 2),
                   epochs=3)
    args = _cli("search", "--config", str(space), "--store", str(store), "--teacher", str(teacher), "--run-dir",
                str(tmp_path / "runs"), "--device", "cpu", "--storage", url, "--workers", "2")
    study_dir = tmp_path / "runs" / name
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        partial = _wait_for_partial_trial(study_dir, proc)
        # kill the worker that runs the partial trial (its pid is in the seed log), not the other one
        number, student = int(partial.name), partial.parent.name
        pid = [e["pid"] for e in read_seed_log(study_dir) if e["trial"] == number and e["student"] == student][-1]
        os.kill(pid, signal.SIGKILL)
        assert not (partial / "trial.json").exists(), "the trial finished before the kill landed (machine too slow?)"
        rc = proc.wait(timeout=400)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert rc != 0  # the parent reports the killed worker
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    _check_resumed_study(study_dir, url, 4, (0, 1, 2))
    info = json.loads((study_dir / "study.json").read_text())
    assert info["storage_kind"] == "rdb" and (":***@" in info["storage"] or "@" not in info["storage"])
    pids = {e["pid"] for e in read_seed_log(study_dir) if e["event"] == "done"}
    assert len(pids) >= 2, "two worker processes should have trained seeds"


# Loaded by every Python process that has the folder on PYTHONPATH (the search's workers included):
# spies on the real evaluation and precise-BN passes of kdbench.train, recording the thread counts
# seen inside them (torch's, its OpenMP pool's and numpy's BLAS pool's) as JSON lines.
THREAD_SPY = '''
import json, os
if os.environ.get("KDBENCH_THREAD_LOG"):
    import torch
    from threadpoolctl import threadpool_info
    import kdbench.train as train

    def _record(where):
        pools = {i["user_api"]: i["num_threads"] for i in threadpool_info()}
        with open(os.environ["KDBENCH_THREAD_LOG"], "a") as fh:
            fh.write(json.dumps({"pid": os.getpid(), "where": where, "torch": torch.get_num_threads(), **pools}) + "\\n")

    def _inside_forward(fn, where):
        def run(model, *args, **kwargs):
            handle = model.register_forward_pre_hook(lambda module, inputs: _record(where))
            try:
                return fn(model, *args, **kwargs)
            finally:
                handle.remove()
        return run

    def _metrics(fn):
        def run(*args, **kwargs):
            if kwargs.get("clips") is not None:  # the clip bootstrap: numpy matrix products
                _record("clip_bootstrap")
            return fn(*args, **kwargs)
        return run

    train.predict_logits = _inside_forward(train.predict_logits, "evaluation")
    train.recalibrate_batch_norm = _inside_forward(train.recalibrate_batch_norm, "precise_bn")
    train.classification_metrics = _metrics(train.classification_metrics)
'''


def test_two_workers_keep_their_share_of_threads_in_evaluation_and_precise_bn(search_inputs, tmp_path, monkeypatch):
    pytest.importorskip("threadpoolctl")
    from kdbench.search.runner import worker_threads

    store, teacher = search_inputs
    spy = tmp_path / "spy"
    spy.mkdir()
    (spy / "sitecustomize.py").write_text(THREAD_SPY)
    log = tmp_path / "threads.jsonl"
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert worker_threads(1) == (os.cpu_count() or 1)  # one worker: every core
    share = worker_threads(2)  # the cores split evenly: 1 each on a 2-core machine, where torch's default is 2
    env = {**os.environ, "KDBENCH_THREAD_LOG": str(log),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(spy), os.environ.get("PYTHONPATH")]))}
    space = _space(tmp_path, "threads", n_trials=2, seeds=(0,), epochs=1)
    proc = subprocess.run(_cli("search", "--config", str(space), "--store", str(store), "--teacher", str(teacher),
                               "--run-dir", str(tmp_path / "runs"), "--device", "cpu", "--workers", "2"),
                          env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert {r["where"] for r in records} == {"evaluation", "precise_bn", "clip_bootstrap"}
    assert os.getpid() not in {r["pid"] for r in records}
    for r in records:
        expected = {"torch": share, "openmp": share} if r["where"] != "clip_bootstrap" else {"torch": share, "blas": share}
        assert {k: r.get(k, v) for k, v in expected.items()} == expected, r
