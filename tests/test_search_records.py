"""Typed records of the search's hand-offs (TrialRecord, BestTrial, Comparison) read files written before them.

tests/data/pre_records/ holds a real tiny study's trial.json files, statistics.json and best_trials() entries,
written by kdbench before the records existed (revision 436b9f5: a 32 px phantom store, mobilenet_v3_small,
scratch against vanilla KD, 2 seeds, 1 epoch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdbench.errors import DataError
from kdbench.search.comparison import FORMAT_VERSION, Comparison, comparisons_of
from kdbench.search.results import BestTrial
from kdbench.search.trial_record import TrialRecord, read_trial, read_trial_records, write_trial

OLD = Path(__file__).parent / "data" / "pre_records"


def _old(name: str) -> dict:
    return json.loads((OLD / name).read_text())


def test_an_old_trial_json_reads_and_writes_back_the_same_keys_and_values(tmp_path):
    body = _old("trial_2.json")
    assert "format_version" not in body  # written before the record
    record = TrialRecord.from_dict(body)
    assert (record.student, record.trial, record.method, record.state) == ("mobilenet_v3_small", 2, "vanilla", "complete")
    assert record.format_version == 1 and record.first_trial == 2 and record.study_id == body["study_id"]
    assert record.mean("val_accuracy") == body["mean_val_accuracy"] and record.std("test_accuracy") == body["std_test_accuracy"]
    assert sorted(record.seeds) == ["0", "1"] and record.all_seeds_ok()
    assert record.method_settings == {"alpha": 0.5, "standardize": False, "temperature": body["hparams"]["temperature"]}
    assert record.to_dict() == {**body, "format_version": 1}
    write_trial(tmp_path / "trials" / "mobilenet_v3_small" / "2", record)
    again = read_trial(tmp_path / "trials" / "mobilenet_v3_small" / "2" / "trial.json")
    assert again.to_dict() == record.to_dict() and again.run_dir == str(tmp_path / "trials" / "mobilenet_v3_small" / "2")


def test_unknown_keys_travel_and_a_newer_or_broken_file_is_a_data_error(tmp_path):
    body = {**_old("trial_0.json"), "race": {"verdict": "best"}, "roles": ["chosen"]}
    record = TrialRecord.from_dict(body)
    assert record.race_verdict == "best" and record.extra == {"race": {"verdict": "best"}, "roles": ["chosen"]}
    assert record.to_dict()["roles"] == ["chosen"]
    with pytest.raises(DataError, match="format_version 99"):
        TrialRecord.from_dict({**body, "format_version": 99})
    with pytest.raises(DataError, match="'seeds' missing"):
        TrialRecord.from_dict({k: v for k, v in body.items() if k != "seeds"}, "x/trial.json")
    for n in ("0", "2"):
        write_trial(tmp_path / "trials" / "s" / n, {**_old(f"trial_{n}.json"), "student": "s", "study_id": "other" if n == "2" else None})
    assert [r.trial for r in read_trial_records(tmp_path)] == [0, 2]
    assert [r.trial for r in read_trial_records(tmp_path, study_id="mine")] == [0]  # another study's trial left out


def test_old_best_trial_entries_read_as_records():
    for body in _old("best_trials.json"):  # as json.dumps left them: seed keys are strings
        best = BestTrial.from_dict(body)
        assert best.seed_dirs == {int(s): d for s, d in body["seed_dirs"].items()}
        assert best.best_seed_dir in best.seed_dirs.values() and best.n_seeds == len(best.seed_dirs)
        again = best.to_dict()
        assert again.pop("format_version") == 1
        assert json.loads(json.dumps(again, sort_keys=True)) == body  # no priced fields for an unpriced trial


def test_best_trial_entry_of_a_record_matches_the_old_entry():
    record = TrialRecord.from_dict({**_old("trial_0.json"), "run_dir": str(Path(_old("best_trials.json")[0]["best_seed_dir"]).parent)})
    entry = BestTrial.of(record, "val_accuracy").to_dict()
    entry.pop("format_version")
    assert json.loads(json.dumps(entry, sort_keys=True)) == _old("best_trials.json")[0]


def test_old_statistics_comparisons_read_as_records():
    stats = _old("statistics.json")
    rows = comparisons_of(stats)
    assert len(rows) == len(stats["comparisons"]) and all(isinstance(c, Comparison) for c in rows)
    (best,) = [c for c in comparisons_of(stats, "test_accuracy") if c.best_distillation]
    assert (best.student, best.comparison, best.a["trial"], best.b["method"]) == ("mobilenet_v3_small", "vanilla vs scratch", 2, "scratch")
    for c, body in zip(rows, stats["comparisons"]):
        assert c.to_dict() == {**body, "format_version": FORMAT_VERSION}
        assert c.extra.get("n_clips") == body.get("n_clips")  # the engine's own keys travel in extra
    with pytest.raises(DataError, match="newer"):
        Comparison.from_dict({**stats["comparisons"][0], "format_version": FORMAT_VERSION + 1})
