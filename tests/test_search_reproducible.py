"""The same command gives the same answer: sampled studies resume to the uninterrupted study, a study
stays on its storage, a seed folder is reused only for its own configuration, the study's pinned
arithmetic holds on every resume, and the tiny demo gives the same per-seed figures under a CPU hog.

Every case runs real `kdbench` processes (real signals, real storages).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fault_fixtures import make_search_inputs
from search_fixtures import tiny_space_toml
from test_search_faults import _wait_for_start

STUDENT = "test_efficientnet"
ENV = {k: v for k, v in os.environ.items() if k != "KDBENCH_STORAGE"}
ENV.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
SAMPLED = {
    "random": dict(study={"sampler": "random", "sampler_seed": 3, "n_trials": 4}),
    "tpe": dict(study={"sampler": "tpe", "sampler_seed": 3, "n_trials": 5, "n_startup_trials": 2}),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A 32 px phantom store and an untrained stand-in teacher."""
    store, teacher = make_search_inputs(tmp_path_factory.mktemp("repro"), STUDENT)
    return {"store": store, "teacher": teacher}


def _space(tmp: Path, name: str, **kw) -> Path:
    path = tmp / f"{name}.toml"
    path.write_text(tiny_space_toml(name, [STUDENT], [0, 1], **kw))
    return path


def _cmd(inputs: dict, space: Path, run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-c", "from kdbench.cli import main; main()", "search", "--config", str(space),
            "--store", str(inputs["store"]), "--teacher", str(inputs["teacher"]), "--run-dir", str(run_dir),
            "--device", "cpu", *extra]


def _run(cmd: list[str], env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env or ENV, capture_output=True, text=True, timeout=timeout)


def _configurations(study_dir: Path) -> list[tuple]:
    """Every complete configuration: its parameters and each seed's figures (order and trial numbers aside)."""
    out = []
    for path in study_dir.glob("trials/*/*/trial.json"):
        t = json.loads(path.read_text())
        if t["state"] == "complete":
            seeds = tuple(sorted((s, r["val_accuracy"], r["test_accuracy"]) for s, r in t["seeds"].items()))
            out.append((t["method"], json.dumps(t["hparams"], sort_keys=True), json.dumps(t["train"], sort_keys=True),
                        seeds))
    return sorted(out)


@pytest.mark.slow
@pytest.mark.parametrize("sampler", sorted(SAMPLED))
def test_a_sampled_study_resumes_to_the_uninterrupted_study(sampler, inputs, tmp_path):
    """A continuous lr under a random or TPE sampler: SIGINT mid-study, resume; the same configurations
    (same draws) with the same per-seed figures as an uninterrupted run."""
    space = _space(tmp_path, sampler, space={"lr": {"low": 1e-4, "high": 3e-2, "log": True}}, **SAMPLED[sampler])
    ref = _run(_cmd(inputs, space, tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr[-3000:]
    expected = _configurations(tmp_path / "ref" / sampler)
    assert len(expected) == SAMPLED[sampler]["study"]["n_trials"]
    k = random.Random(f"repro-{sampler}").randint(3, 5)  # a seed run of the second or third trial
    run_dir = tmp_path / "runs"
    proc = subprocess.Popen(_cmd(inputs, space, run_dir), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        _wait_for_start(run_dir / sampler, proc, k)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-2000:]
    resumed = _run(_cmd(inputs, space, run_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got = _configurations(run_dir / sampler)
    print(f"\nFAULT-TABLE | sigint, {sampler} sampler, continuous lr | seed run {k} started | rc 130 | resumed yes | "
          f"configurations equal {got == expected}")
    assert got == expected


def test_a_study_refuses_another_storage_and_a_storage_that_lost_it(inputs, tmp_path):
    space = _space(tmp_path, "stor", study={"n_trials": 1})
    db = f"sqlite:///{tmp_path / 'optuna.db'}"
    first = _run(_cmd(inputs, space, tmp_path / "runs", "--storage", db))
    assert first.returncode == 0, first.stderr[-3000:]
    info = json.loads((tmp_path / "runs" / "stor" / "study.json").read_text())
    assert info["storage_id"] == db and len(info["study_id"]) == 32
    # the same command in a new shell, without --storage: one line naming both storages, before any work
    again = _run(_cmd(inputs, space, tmp_path / "runs"))
    assert again.returncode == 2
    (line,) = again.stderr.strip().splitlines()
    assert line.startswith("error: study 'stor'") and db in line and "optuna.journal" in line, line
    # through KDBENCH_STORAGE: the same check
    env_run = _run(_cmd(inputs, space, tmp_path / "runs"), env={**ENV, "KDBENCH_STORAGE": f"{db}x"})
    assert env_run.returncode == 2 and f"{db}x" in env_run.stderr and "pass --storage " + db in env_run.stderr
    # the right storage resumes (nothing left to do)
    assert _run(_cmd(inputs, space, tmp_path / "runs", "--storage", db)).returncode == 0
    # a trial folder another study wrote under this name is not read as this study's
    from kdbench.search.results import read_trials

    mine = read_trials(tmp_path / "runs" / "stor")
    assert [t["study_id"] for t in mine] == [info["study_id"]]
    stray = tmp_path / "runs" / "stor" / "trials" / STUDENT / "7"
    stray.mkdir(parents=True)
    (stray / "trial.json").write_text(json.dumps({**mine[0], "trial": 7, "study_id": "another-study"}))
    assert read_trials(tmp_path / "runs" / "stor") == mine
    # a journal study whose journal was lost: its trial folders are not adopted by a new Optuna study
    jspace = _space(tmp_path, "lost", study={"n_trials": 1})
    assert _run(_cmd(inputs, jspace, tmp_path / "runs")).returncode == 0
    (tmp_path / "runs" / "lost" / "optuna.journal").unlink()
    lost = _run(_cmd(inputs, jspace, tmp_path / "runs", "--n-trials", "2"))
    assert lost.returncode == 2 and "this storage has no record of it" in lost.stderr, lost.stderr[-2000:]


def test_a_seed_folder_is_reused_only_for_its_own_configuration(tiny_run):
    """completed_seed with the trial's full record: the same run is read back, any other setting is not."""
    from kdbench.search.objective import completed_seed, run_record
    from kdbench.train import TrainConfig

    cfg = TrainConfig(epochs=1, batch_size=16, seed=0, device="cpu")  # what conftest's tiny_run trained
    same = run_record("mobilenet_v3_small", "scratch", {}, cfg)
    assert completed_seed(tiny_run, "scratch", 0, same) is not None
    assert completed_seed(tiny_run, "scratch", 0, run_record("mobilenet_v3_small", "scratch", {},
                                                              TrainConfig(epochs=1, batch_size=16, seed=0))) is not None
    for other in (run_record("mobilenet_v3_small", "scratch", {}, TrainConfig(epochs=1, batch_size=16, seed=0, lr=2e-3)),
                  run_record("mobilenet_v3_small", "scratch", {}, TrainConfig(epochs=1, batch_size=16, seed=0,
                                                                              input_size=24)),
                  run_record("mobilenet_v3_large", "scratch", {}, cfg)):
        assert completed_seed(tiny_run, "scratch", 0, other) is None


def test_a_resume_uses_the_study_pins_not_the_shell(inputs, tmp_path):
    """Created with 1 thread and auto formats; resumed from a shell with 2 threads and KDBENCH_FAST_PATH set:
    the new trial still trains with 1 thread and the rule's formats, and study.json keeps its pins."""
    space = _space(tmp_path, "pins", study={"sampler": "grid"})
    env = {k: v for k, v in ENV.items() if k != "KDBENCH_FAST_PATH"}
    first = _run(_cmd(inputs, space, tmp_path / "runs", "--n-trials", "1"), env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    pins = json.loads((tmp_path / "runs" / "pins" / "study.json").read_text())["pins"]
    assert pins["threads"] == 1 and pins["fast_path"] == "auto" and pins["deterministic"] is True
    later = _run(_cmd(inputs, space, tmp_path / "runs", "--n-trials", "2"),
                 env={**env, "OMP_NUM_THREADS": "2", "KDBENCH_FAST_PATH": "channels_last"})
    assert later.returncode == 0, later.stderr[-3000:]
    assert json.loads((tmp_path / "runs" / "pins" / "study.json").read_text())["pins"] == pins
    seeds = sorted((tmp_path / "runs" / "pins" / "trials" / STUDENT / "1").glob("seed_*/metrics.json"))
    assert seeds
    for path in seeds:
        formats = json.loads(path.read_text())["fast_path"]
        assert {formats[p]["source"] for p in ("train", "eval")} == {"rule"}
        assert all("|t1|" in formats[p]["key"] for p in ("train", "eval"))
    # a machine that cannot match what was pinned (another torch) says so in one warning line
    info_path = tmp_path / "runs" / "pins" / "study.json"
    info = json.loads(info_path.read_text())
    info["pins"]["torch"] = "1.0.0"
    info_path.write_text(json.dumps(info))
    other = _run(_cmd(inputs, space, tmp_path / "runs", "--n-trials", "2"), env=env)
    assert other.returncode == 0, other.stderr[-3000:]
    warned = [line for line in other.stderr.splitlines() if "cannot pin what the study recorded" in line]
    assert len(warned) == 1 and "1.0.0 in the study" in warned[0], other.stderr[-2000:]


# ---- the tiny demo under a CPU hog ----------------------------------------------------------------

DEMO_STEPS = ("data", "data", "data", "teacher", "teacher", "search")  # what makes the per-seed figures


def _demo_figures(out: Path) -> dict:
    """Every per-seed figure of a demo's search (wall times aside) and the teacher's weights' checksum."""
    import torch

    seeds = {}
    for path in sorted((out / "runs" / "demo").glob("trials/*/*/trial.json")):
        t = json.loads(path.read_text())
        seeds[(t["student"], t["config_id"])] = {s: {k: v for k, v in r.items() if k != "wall_time_s"}
                                                 for s, r in t["seeds"].items()}
    teacher = torch.load(out / "teacher.pt", map_location="cpu", weights_only=False)["tensor_sha256"]
    return {"seeds": seeds, "teacher": teacher}


def _run_demo_steps(out: Path, env: dict) -> None:
    from kdbench.cli.demo_plan import SIZES, STUDENTS, demo_commands

    steps = demo_commands(out, SIZES["tiny"], out / "leaderboard", STUDENTS, list(SIZES["tiny"].methods))
    assert [argv[0] for argv in steps[:len(DEMO_STEPS)]] == list(DEMO_STEPS)
    for argv in steps[:len(DEMO_STEPS)]:
        proc = subprocess.run([sys.executable, "-c", "from kdbench.cli import main; main()", *argv], env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, (argv, proc.stderr[-3000:])


@pytest.mark.slow
def test_the_tiny_demo_gives_the_same_figures_under_a_cpu_hog(tmp_path):
    """The demo's own settings (no KDBENCH_FAST_PATH, a fresh format cache): once quiet (or CI's wheel run),
    once while every core is busy with other processes; every per-seed figure and the teacher are equal."""
    env = {k: v for k, v in os.environ.items() if k not in ("KDBENCH_FAST_PATH", "KDBENCH_STORAGE", "OMP_NUM_THREADS")}
    given = os.environ.get("KDBENCH_TEST_DEMO_DIR")
    if given:
        quiet = _demo_figures(Path(given))
    else:
        _run_demo_steps(tmp_path / "quiet", {**env, "KDBENCH_CACHE_DIR": str(tmp_path / "cache-quiet")})
        quiet = _demo_figures(tmp_path / "quiet")
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=lambda: os.nice(5))
            for _ in range(os.cpu_count() or 1)]
    try:
        _run_demo_steps(tmp_path / "busy", {**env, "KDBENCH_CACHE_DIR": str(tmp_path / "cache-busy")})
        load = os.getloadavg()[0]
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    busy = _demo_figures(tmp_path / "busy")
    same = sum(busy["seeds"].get(k) == v for k, v in quiet["seeds"].items())
    print(f"\nDEMO-UNDER-LOAD | load {load:.1f} on {os.cpu_count()} cores | configurations {len(quiet['seeds'])} | "
          f"equal per-seed figures {same} | teacher equal {busy['teacher'] == quiet['teacher']}")
    assert len(quiet["seeds"]) == 8 and busy == quiet
