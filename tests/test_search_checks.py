"""`kdbench search` up-front checks and the study's records, without training.

Bad inputs fail in seconds with one line naming the file or value; statistics count only trials
complete in the storage and on disk, and a baseline that is not usable is named with its reason.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fault_fixtures import drop_dac_override
from search_fixtures import tiny_space_toml

from kdbench.errors import ConfigError, DataError
from kdbench.resources import list_resources

SPACE = tiny_space_toml("chk", ["test_efficientnet"], [0, 1], study={"sampler": "grid"}, vanilla={"temperature": [2.0]})


@pytest.fixture(scope="module")
def space_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("chk") / "chk.toml"
    path.write_text(SPACE)
    return path


def _request(space_file: Path, store: Path, tmp_path: Path, **kw):
    from kdbench.search.runner import SearchRequest

    teacher = kw.pop("teacher", tmp_path / "teacher.pt")
    if teacher is not None and not Path(teacher).exists() and kw.pop("make_teacher", True):
        Path(teacher).write_bytes(b"not read: the checks fail before the teacher is loaded")
    return SearchRequest(config=space_file, store=store, teacher=teacher, run_dir=tmp_path / "runs", **kw)


def test_missing_teacher_is_one_line(space_file, tiny_store, tmp_path):
    from kdbench.search.runner import prepare_study

    req = _request(space_file, tiny_store.path, tmp_path, teacher=tmp_path / "nope.pt", make_teacher=False)
    with pytest.raises(ConfigError, match=r"^--teacher .*nope\.pt does not exist; expected a teacher checkpoint"):
        prepare_study(req)
    assert not (tmp_path / "runs").exists(), "nothing is written before the inputs are checked"


def test_cuda_on_a_cpu_only_torch_is_one_line(space_file, tiny_store, tmp_path):
    import torch

    from kdbench.search.runner import prepare_study

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match=r"^--device cuda: "):
        prepare_study(_request(space_file, tiny_store.path, tmp_path, device="cuda"))


def test_corrupt_study_json_is_one_line(space_file, tiny_store, tmp_path):
    from kdbench.search.runner import prepare_study

    study_dir = tmp_path / "runs" / "chk"
    study_dir.mkdir(parents=True)
    (study_dir / "study.json").write_text('{"stage": "search", "study": ')
    with pytest.raises(DataError, match=r"study\.json: not valid JSON \(.*\); restore it or start a new study"):
        prepare_study(_request(space_file, tiny_store.path, tmp_path))


def test_run_dir_that_is_a_file_is_one_line(space_file, tiny_store, tmp_path):
    from kdbench.search.runner import prepare_study

    (tmp_path / "runs").write_text("a file, not a folder")
    with pytest.raises(ConfigError, match=r"^--run-dir .*runs: exists and is not a folder"):
        prepare_study(_request(space_file, tiny_store.path, tmp_path))


def test_read_only_run_dir_fails_before_any_work(space_file, tiny_store, tmp_path):
    """A real read-only folder (file modes enforced for root too: the child drops CAP_DAC_OVERRIDE)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o555)
    teacher = tmp_path / "teacher.pt"
    teacher.write_bytes(b"x")
    args = [sys.executable, "-c", "from kdbench.cli import main; main()", "search", "--config", str(space_file),
            "--store", str(tiny_store.path), "--teacher", str(teacher), "--run-dir", str(runs), "--device", "cpu"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, preexec_fn=drop_dac_override)
    runs.chmod(0o755)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --run-dir {runs}: not writable"), proc.stderr
    assert not list(runs.iterdir())


def test_free_space_estimate_matches_real_checkpoints(tiny_run):
    """The checkpoint estimate behind the free-space check is within 15% of a real best.pt."""
    from kdbench.search.runner import checkpoint_mb
    from kdbench.search.space import parse_space

    raw = {"study": {"students": ["mobilenet_v3_small"], "seeds": [0, 1, 2], "keep_checkpoints": "all"},
           "space": {"method": "scratch"}}
    space = parse_space(raw)
    real_mb = (tiny_run / "best.pt").stat().st_size / 2**20
    estimate = checkpoint_mb(space, {"mobilenet_v3_small": 4})  # 4 trials x 3 seeds = 12 checkpoints
    assert estimate == pytest.approx(12 * real_mb, rel=0.15)
    space.keep_checkpoints = "best"
    assert checkpoint_mb(space, {"mobilenet_v3_small": 4}) == pytest.approx(estimate / 3)


def test_trial_config_round_trip():
    from kdbench.search.space import grid_id, load_space
    from kdbench.search.trial_config import TrialConfig

    space = load_space(Path(__file__).resolve().parents[1] / "search_spaces" / "paper.toml", check_students=False)
    for cell in space.grid():
        config = TrialConfig.from_dict({"student": "ghostnet_100", **cell})
        assert config.config_id == grid_id(cell)
        assert config.to_dict() == {"student": "ghostnet_100", **cell, "config_id": grid_id(cell)}
        assert TrialConfig.from_dict(config.to_dict()) == config
        run = config.seed_config(7, "cpu")
        assert (run.seed, run.device, run.epochs, run.batch_size) == (7, "cpu", cell["train"]["epochs"],
                                                                       cell["train"]["batch_size"])
        assert run.max_batches_per_epoch is None and config.train_dict()["max_batches_per_epoch"] == 0


def _write_trial(study_dir: Path, number: int, method: str, state: str, seeds: dict[str, float]) -> None:
    tdir = study_dir / "trials" / "test_efficientnet" / str(number)
    for s in seeds:
        (tdir / f"seed_{s}").mkdir(parents=True)
        (tdir / f"seed_{s}" / "metrics.json").write_text("{}")
    body = {"trial": number, "student": "test_efficientnet", "method": method, "hparams": {}, "train": {},
            "config_id": method, "state": state, "reason": "",
            "seeds": {s: {"val_accuracy": v, "test_accuracy": v} for s, v in seeds.items()},
            "mean_val_accuracy": sum(seeds.values()) / len(seeds), "mean_test_accuracy": sum(seeds.values()) / len(seeds)}
    (tdir / "trial.json").write_text(json.dumps(body))


def test_statistics_use_only_trials_complete_in_storage_and_on_disk(tmp_path):
    """The issue's case: trial.json of an interrupted baseline says complete while the storage says FAIL."""
    import optuna

    from kdbench.search.liveness import INTERRUPTED_ATTR
    from kdbench.search.runner import finish_study
    from kdbench.search.storage import open_storage

    study_dir = tmp_path / "chk"
    study_dir.mkdir()
    (study_dir / "study.json").write_text(json.dumps({
        "study": "chk", "seeds": [0, 1], "optuna_studies": {"test_efficientnet": "chk.test_efficientnet"},
        "config": {"baseline": "scratch", "objective": "val_accuracy"}}))
    study = optuna.create_study(study_name="chk.test_efficientnet", storage=open_storage(None, study_dir),
                                direction="maximize")
    base = study.ask()
    base.set_user_attr("method", "scratch")
    study._storage.set_trial_system_attr(base._trial_id, INTERRUPTED_ATTR, "interrupted (SIGINT)")
    study.tell(base, state=optuna.trial.TrialState.FAIL)
    kd = study.ask()
    kd.set_user_attr("method", "vanilla")
    study.tell(kd, 0.6)
    _write_trial(study_dir, 0, "scratch", "complete", {"0": 0.5, "1": 0.4})
    _write_trial(study_dir, 1, "vanilla", "complete", {"0": 0.6, "1": 0.6})
    stats = finish_study(study_dir, None)
    assert stats["comparisons"] == []  # no comparison against a baseline the storage calls failed
    assert any(w.startswith("test_efficientnet: no usable 'scratch' baseline (trial 0 is failed "
                            "(interrupted (SIGINT)))") for w in stats["warnings"]), stats["warnings"]
    record = json.loads((study_dir / "trials" / "test_efficientnet" / "0" / "trial.json").read_text())
    assert record["state"] == "failed"  # trial.json now agrees with the storage
    rows = {r["trial"]: r["state"] for r in csv.DictReader((study_dir / "summary.csv").open())}
    assert rows == {"0": "failed", "1": "complete"}
    os.remove(study_dir / "trials" / "test_efficientnet" / "1" / "seed_1" / "metrics.json")
    stats = finish_study(study_dir, None)
    assert any("trial 1: complete in the storage but seed(s) ['1'] have no metrics.json" in w for w in stats["warnings"])


def test_a_resumed_sampler_does_not_replay_its_draws():
    """Trial k draws with seed sampler_seed + k: a restart (a new sampler object) continues the sequence
    instead of proposing the configurations of trials 0, 1, ... again, and any worker draws the same."""
    import optuna

    from kdbench.search.runner import make_sampler
    from kdbench.search.space import parse_space

    raw = {"study": {"students": ["test_efficientnet"], "sampler": "random", "sampler_seed": 3},
           "space": {"method": ["scratch", "vanilla"], "vanilla": {"temperature": {"low": 1.0, "high": 8.0}}}}
    space = parse_space(raw, check_students=False)

    def run(study: optuna.Study, n: int) -> None:
        for _ in range(n):
            trial = study.ask()
            space.suggest(trial)
            study.tell(trial, 0.0)

    straight = optuna.create_study(sampler=make_sampler(space))
    run(straight, 6)
    resumed = optuna.create_study(sampler=make_sampler(space))
    run(resumed, 3)
    resumed.sampler = make_sampler(space)  # the process restarted
    run(resumed, 3)
    params = [t.params for t in resumed.get_trials()]
    assert params == [t.params for t in straight.get_trials()]
    temperatures = [p["vanilla.temperature"] for p in params if "vanilla.temperature" in p]
    assert len(temperatures) >= 2 and len(set(temperatures)) == len(temperatures)  # no draw replayed


def test_too_little_free_space_fails_before_any_work(space_file, tiny_store, tmp_path):
    """A real 1 MiB tmpfs as --run-dir: the 4 checkpoints of the grid (~1.7 MiB) do not fit."""
    from kdbench.search.runner import prepare_study

    small = tmp_path / "small"
    small.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)], capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({mount.stderr.strip()})")
    try:
        req = _request(space_file, tiny_store.path, tmp_path)
        req.run_dir = small
        with pytest.raises(ConfigError, match=r"^--run-dir .*small/chk: 1 MiB free, this run needs about 2 MiB"):
            prepare_study(req)
        assert not (small / "chk" / "study.json").exists()
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_a_configuration_proposed_again_is_not_trained_again(tiny_store, tmp_path):
    """Two configurations, a budget of four: the sampler must repeat one; the repeat reuses its results."""
    from kdbench.search.objective import read_seed_log
    from kdbench.search.runner import SearchRequest, load_studies, run_search

    space = tmp_path / "twice.toml"
    space.write_text(tiny_space_toml("twice", ["test_efficientnet"], [0],
                                     study={"sampler": "random", "sampler_seed": 0, "n_trials": 4},
                                     space={"method": "scratch", "lr": [0.001, 0.002]}))
    result = run_search(SearchRequest(config=space, store=tiny_store.path, run_dir=tmp_path / "runs", device="cpu"))
    trials = load_studies(result["study_dir"], None)["test_efficientnet"].get_trials()
    assert len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    trained = [t for t in trials if "same_as_trial" not in t.user_attrs]
    assert sorted(t.user_attrs["train"]["lr"] for t in trained) == [0.001, 0.002]
    for t in trials:
        if "same_as_trial" in t.user_attrs:
            twin = trials[t.user_attrs["same_as_trial"]]
            assert t.user_attrs["config_id"] == twin.user_attrs["config_id"] and t.value == twin.value
    assert sum(e["event"] == "done" for e in read_seed_log(result["study_dir"])) == 2


def test_a_retry_keeps_its_slot_against_a_duplicate_queued_by_another_worker():
    """Trial 0 of a grid cell was interrupted and retried as trial 2; another worker had queued the same
    cell as trial 1. Trial 1 must step aside (not train) so that trial 2 reuses trial 0's finished seeds."""
    import optuna
    from optuna.trial import TrialState, create_trial

    from kdbench.search.liveness import SLOT_ATTR
    from kdbench.search.objective import taken_reason

    study = optuna.create_study()
    slot = {SLOT_ATTR: "grid:vanilla|temperature=2"}
    study.add_trial(create_trial(state=TrialState.FAIL, system_attrs=dict(slot)))
    study.add_trial(create_trial(state=TrialState.WAITING, system_attrs=dict(slot)))
    study.add_trial(create_trial(state=TrialState.WAITING,
                                 system_attrs={**slot, "failed_trial": 0, "retry_history": [0]}))
    study.add_trial(create_trial(state=TrialState.WAITING, system_attrs={SLOT_ATTR: "grid:scratch"}))
    trials = study.get_trials()
    assert taken_reason(study, trials[1], None, grid=True) == "duplicate of trial 2 (grid:vanilla|temperature=2); not trained"
    assert taken_reason(study, trials[2], None, grid=True) is None
    assert taken_reason(study, trials[3], None, grid=True) is None


@pytest.mark.parametrize("name", list_resources("search_spaces"))
def test_shipped_space_ranges_cover_each_methods_default(name):
    """A searched range that leaves out the method's own (published) default can never find it again."""
    from kdbench.distill.registry import METHODS
    from kdbench.resources import find_resource
    from kdbench.search.space import load_space

    space = load_space(find_resource("search_spaces", name), check_students=False)
    outside = [f"{dim.key} [{dim.low}, {dim.high}] leaves out {method}'s default {METHODS[method].defaults()[key]}"
               for method, dims in space.method_dims.items() for key, dim in dims.items()
               if dim.kind in ("float", "int") and key in METHODS[method].defaults()
               and not dim.low <= METHODS[method].defaults()[key] <= dim.high]
    assert outside == []
