"""A search whose space augments: `[train] augment_versions = K` reaches every trial, the augmented
teacher cache is built once from the study's teacher, and a trial re-run from its records is identical."""

from __future__ import annotations

import json

import pytest
from search_fixtures import tiny_space_toml

from kdbench.errors import ConfigError
from kdbench.search.space import parse_space

STUDENT = "mobilenet_v3_small"
SPACE = tiny_space_toml("aug", [STUDENT], [0], study={"sampler": "grid"},
                        train={"epochs": 2, "max_batches_per_epoch": 2, "augment_versions": 2, "augment_choice": "cycle",
                               "augment_seed": 3, "augment": {"speckle": 0.1}})


def test_search_trains_every_trial_with_the_spaces_augmentation(phantom_32px, tmp_path):
    from kdbench.data.augment import AugmentConfig
    from kdbench.distill.augmented_cache import augmented_cache_key
    from kdbench.distill.feed import TeacherFeed
    from kdbench.data.store import FrameStore
    from kdbench.search.runner import SearchRequest, run_search
    from kdbench.search.trial_config import TrialConfig
    from kdbench.train import train_student

    store_path, teacher = phantom_32px
    (tmp_path / "aug.toml").write_text(SPACE)
    result = run_search(SearchRequest(config=tmp_path / "aug.toml", store=store_path, teacher=teacher,
                                      run_dir=tmp_path / "runs", device="cpu"))
    study_dir, store = result["study_dir"], FrameStore.open(store_path)
    key, _ = augmented_cache_key(store, teacher, 2, 3, AugmentConfig(speckle=0.1), "train")
    assert (store.path / "teacher_cache" / f"{key}.npy").is_file()  # built from the study's teacher, on disk
    trials = {}
    for tdir in sorted((study_dir / "trials" / STUDENT).iterdir()):
        body = json.loads((tdir / "trial.json").read_text())
        trials[body["method"]] = (tdir, body)
        assert body["state"] == "complete" and body["train"]["augment_versions"] == 2
        assert "augment_versions=2" in body["config_id"]
        cfg = json.loads((tdir / "seed_0" / "metrics.json").read_text())["config"]
        assert (cfg["augment_versions"], cfg["augment_choice"], cfg["augment_seed"]) == (2, "cycle", 3)
        assert cfg["augment"]["speckle"] == 0.1
    assert sorted(trials) == ["scratch", "vanilla"]
    # the KD trial re-run from its trial.json alone (a resumed or confirming run does this) is identical
    tdir, body = trials["vanilla"]
    config = TrialConfig.from_dict(body)
    seed_cfg = config.seed_config(0, "cpu")
    rerun = train_student(store, STUDENT, "vanilla", config.hparams, seed_cfg, out_dir=tmp_path / "rerun", progress=False,
                          teacher=TeacherFeed.open(store, teacher))
    first = json.loads((tdir / "seed_0" / "metrics.json").read_text())
    assert rerun.history and [h["train_loss"] for h in rerun.history] == [h["train_loss"] for h in first["history"]]
    assert rerun.metrics["val"]["accuracy"] == first["metrics"]["val"]["accuracy"]


def _raw(train: dict) -> dict:
    return {"study": {"students": [STUDENT], "seeds": [0, 1]}, "train": train, "space": {"method": ["scratch"]}}


def test_space_reads_augmentation_and_leaves_ids_of_plain_spaces_alone() -> None:
    from kdbench.search.trial_config import TrialConfig

    space = parse_space(_raw({"augment_versions": 4, "augment_choice": "random", "augment": {"rotate_deg": 5.0}}))
    assert space.train["augment_versions"] == 4 and space.train["augment"]["rotate_deg"] == 5.0
    config = TrialConfig.from_dict({"student": STUDENT, "method": "scratch", "train": space.train})
    assert config.train.augment_versions == 4 and config.train.augment.rotate_deg == 5.0
    assert TrialConfig.from_dict(config.to_dict()) == config
    plain = TrialConfig.from_dict({"student": STUDENT, "method": "scratch", "train": parse_space(_raw({})).train})
    assert "augment" not in plain.config_id and "augment_versions" not in plain.to_dict()["train"]


@pytest.mark.parametrize("train,match", [
    ({"augment_versions": -1}, r"train.augment_versions = -1 is out of range; expected >= 0"),
    ({"augment_versions": "4"}, r"train.augment_versions = '4'; expected an integer >= 0"),
    ({"augment_choice": "often"}, r"train.augment_choice = 'often': .*expected one of \['cycle', 'random'\]"),
    ({"augment": {"rotate_deg": 90.0}}, r"train.augment = .*augment.rotate_deg=90.0 is out of range; expected a number in \[0, 45\)"),
    ({"augment": {"rotation": 5}}, r"train.augment = .*augment has no setting\(s\) \['rotation'\]"),
])
def test_bad_augmentation_in_a_space_is_one_line_naming_the_key(train, match) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        parse_space(_raw(train))
    assert "\n" not in str(err.value)
