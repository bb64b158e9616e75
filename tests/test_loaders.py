"""The three dataset loaders: official layouts in, clip records out, and clear errors for bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from echo_fixtures import make_all, make_dynamic, make_lvh, make_tmed, write_csv
from kdbench.data import echonet_dynamic, echonet_lvh, tmed2
from kdbench.data.prepare import load_sources
from kdbench.data.splits import check_patient_splits, split_leaks
from kdbench.errors import DataError


def _rewrite_header(path: Path, old: str, new: str) -> None:
    """Rename one column of a CSV in place."""
    rows = list(csv.reader(open(path, newline="")))
    rows[0] = [new if h == old else h for h in rows[0]]
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def test_dynamic_lists_every_video_as_a4c_with_lowercase_splits(tmp_path):
    root = make_dynamic(tmp_path, [("0XAA", "TRAIN"), ("0XBB", "VAL"), ("0XCC", "TEST")], frames=3)
    result = echonet_dynamic.load(root)
    by_video = {c.video: c for c in result.clips}
    assert set(by_video) == {"echonet_dynamic:0XAA", "echonet_dynamic:0XBB", "echonet_dynamic:0XCC"}
    assert {c.view for c in result.clips} == {"A4C"}
    assert by_video["echonet_dynamic:0XBB"].split == "val"
    assert by_video["echonet_dynamic:0XAA"].files == (str(root.resolve() / "Videos" / "0XAA.avi"),)
    assert by_video["echonet_dynamic:0XCC"].lines == (4,)


def test_lvh_deduplicates_measurement_rows_and_finds_the_batch_folder(tmp_path):
    root = make_lvh(tmp_path, [("0X11", "train", 3, 3), ("0X22", "val", 1, 2), ("0X33", "test", 4, 1)], frames=3)
    result = echonet_lvh.load(root)
    assert len(result.clips) == 3
    clip = {c.video: c for c in result.clips}["echonet_lvh:0X11"]
    assert clip.view == "PLAX" and clip.split == "train" and clip.patient == "echonet_lvh:0X11"
    assert clip.files[0].endswith("Batch3/0X11.avi")
    assert clip.lines == (2, 3, 4)  # three measurement rows, one video


def test_tmed_groups_images_by_patient_study_view_and_counts_dropped_labels(tmp_path):
    images = [
        ("setA/labeled", "7s1_2.png", "PLAX", "train"),
        ("setA/labeled", "7s1_1.png", "PLAX", "train"),
        ("setB/labeled", "7s1_1.png", "PLAX", "train"),  # same query_key, another folder: another image
        ("setA/labeled", "7s1_3.png", "A2C", "train"),
        ("setA/labeled", "8s2_1.png", "PSAX", "test"),
        ("setA/labeled", "7s1_9.png", "A4CorA2CorOther", "train"),
        ("setA/labeled", "7s1_8.png", "Not_Provided", "val"),
        ("setA/labeled", "7s1_7.png", "Not_Provided", "val"),
    ]
    root = make_tmed(tmp_path, images)
    result = tmed2.load(root)
    clips = {c.video: c for c in result.clips}
    assert set(clips) == {"tmed2:7s1_PLAX", "tmed2:7s1_A2C", "tmed2:8s2_PSAX"}
    plax = clips["tmed2:7s1_PLAX"]
    assert [Path(f).relative_to(root.resolve()).as_posix() for f in plax.files] == [
        "setA/labeled/7s1_1.png", "setB/labeled/7s1_1.png", "setA/labeled/7s1_2.png"]
    assert plax.patient == "tmed2:7" and clips["tmed2:8s2_PSAX"].split == "test"
    assert result.dropped_labels == {"A4CorA2CorOther": 1, "Not_Provided": 2}


def test_tmed_reads_the_requested_fold(tmp_path):
    root = make_tmed(tmp_path, [("s/l", "1s1_1.png", "A2C", "train")], fold=2)
    assert len(tmed2.load(root, fold=2).clips) == 1
    with pytest.raises(DataError, match="TMED2_fold0_labeledpart.csv not found"):
        tmed2.load(root, fold=0)


def test_loaders_read_the_phantom_written_by_synth(tmp_path):
    from kdbench.data.synth import synthesize

    synthesize(tmp_path, videos_per_view=2, seed=1, frames=4)
    results = {r.source: r for r in load_sources({
        "echonet_dynamic": tmp_path / "EchoNet-Dynamic", "echonet_lvh": tmp_path / "EchoNet-LVH",
        "tmed2": tmp_path / "TMED2"})}
    assert {c.view for c in results["echonet_dynamic"].clips} == {"A4C"}
    assert {c.view for c in results["echonet_lvh"].clips} == {"PLAX"}
    assert {c.view for c in results["tmed2"].clips} == {"A2C", "A4C", "PLAX", "PSAX"}
    for result in results.values():
        assert all(Path(f).is_file() for c in result.clips for f in c.files)
        assert {c.split for c in result.clips} <= {"train", "val", "test"}


# ----------------------------------------------------------------------------------- bad input


def test_missing_column_names_file_and_column(tmp_path):
    root = make_dynamic(tmp_path, [("0XAA", "TRAIN")], frames=2)
    _rewrite_header(root / "FileList.csv", "Split", "Partition")
    with pytest.raises(DataError, match=r"FileList\.csv line 1 \(header\): missing column\(s\) 'Split'.*Partition"):
        echonet_dynamic.load(root)


def test_misnamed_column_gets_a_hint(tmp_path):
    root = make_lvh(tmp_path, [("0X11", "train", 1, 1)], frames=2)
    _rewrite_header(root / "MeasurementsList.csv", "split", "Split")
    with pytest.raises(DataError, match=r"MeasurementsList\.csv.*column 'Split' should be named 'split'"):
        echonet_lvh.load(root)


def test_nonexistent_empty_and_wrong_folders_are_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        echonet_dynamic.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is empty"):
        echonet_lvh.load(tmp_path / "empty")
    lvh = make_lvh(tmp_path / "lvh", [("0X11", "train", 1, 1)], frames=2)
    with pytest.raises(DataError, match=r"no FileList\.csv.*looks like EchoNet-LVH"):
        echonet_dynamic.load(lvh)


def test_csv_with_header_only_is_an_error_not_an_empty_dataset(tmp_path):
    root = make_dynamic(tmp_path, [("0XAA", "TRAIN")], frames=2)
    write_csv(root / "FileList.csv", ["FileName", "Split"], [])
    with pytest.raises(DataError, match="lists no rows"):
        echonet_dynamic.load(root)


def test_listed_but_missing_video_is_recorded_not_fatal(tmp_path):
    root = make_dynamic(tmp_path, [("0XAA", "TRAIN"), ("0XBB", "VAL")], frames=2)
    (root / "Videos" / "0XBB.avi").unlink()
    result = echonet_dynamic.load(root)
    assert [c.video for c in result.clips] == ["echonet_dynamic:0XAA"]
    [gone] = result.missing
    assert gone["video"] == "echonet_dynamic:0XBB" and gone["line"] == 3
    assert gone["reason"] == f"listed in {root / 'FileList.csv'} line 3 but {root / 'Videos' / '0XBB.avi'} does not exist"
    lvh = make_lvh(tmp_path / "lvh", [("0X11", "train", 2, 2), ("0X12", "val", 1, 1)], frames=2)
    (lvh / "Batch2" / "0X11.avi").unlink()
    result = echonet_lvh.load(lvh)
    assert [c.video for c in result.clips] == ["echonet_lvh:0X12"]
    assert len(result.missing) == 1  # one record per video, not per measurement row
    assert result.missing[0]["line"] == 2 and "0X11.avi is in none of" in result.missing[0]["reason"]


def test_every_listed_video_missing_is_an_error(tmp_path):
    root = make_dynamic(tmp_path, [("0XAA", "TRAIN"), ("0XBB", "VAL")], frames=2)
    for video in (root / "Videos").iterdir():
        video.unlink()
    with pytest.raises(DataError, match=r"FileList\.csv: none of the 2 videos it lists exist in .*Videos"):
        echonet_dynamic.load(root)
    tmed = make_tmed(tmp_path / "tmed", [("s/l", "1s1_1.png", "A2C", "train"), ("s/l", "1s1_2.png", "A2C", "train")])
    (tmed / "s" / "l" / "1s1_2.png").unlink()
    result = tmed2.load(tmed)
    assert len(result.clips[0].files) == 1 and result.missing[0]["video"] == "tmed2:1s1_A2C"
    (tmed / "s" / "l" / "1s1_1.png").unlink()
    with pytest.raises(DataError, match=r"none of the 2 images it lists exist"):
        tmed2.load(tmed)


def test_unknown_view_label_names_row_and_value(tmp_path):
    root = make_tmed(tmp_path, [("s/l", "1s1_1.png", "A2C", "train"), ("s/l", "1s1_2.png", "A3C", "train")])
    with pytest.raises(DataError, match=r"line 3, column 'view_label': unknown view 'A3C'; expected one of"):
        tmed2.load(root)


def test_bad_split_value_names_the_cell(tmp_path):
    root = make_dynamic(tmp_path, [("0XAA", "TRAIN"), ("0XBB", "HOLDOUT")], frames=2)
    with pytest.raises(DataError, match=r"line 3, column 'Split': split 'HOLDOUT' is not one of train, val, test"):
        echonet_dynamic.load(root)


def test_patient_in_two_splits_names_patient_rows_and_splits(tmp_path):
    root = make_tmed(tmp_path, [("s/l", "5s1_1.png", "A2C", "train"), ("s/l", "6s1_1.png", "A2C", "test"),
                                ("s/l", "5s2_1.png", "PSAX", "val")])
    clips = tmed2.load(root).clips
    with pytest.raises(DataError) as err:
        check_patient_splits(clips)
    msg = str(err.value)
    assert "patient 'tmed2:5' is in 2 splits (train, val)" in msg
    assert "line 2" in msg and "line 4" in msg and "5s2_1.png" in msg


def test_lvh_video_with_rows_in_two_splits_is_rejected_by_prepare(tmp_path):
    root = make_lvh(tmp_path, [("0X11", "train", 1, 2)], frames=2)
    rows = list(csv.reader(open(root / "MeasurementsList.csv", newline="")))
    rows[2][-1] = "test"
    with open(root / "MeasurementsList.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(DataError, match=r"patient 'echonet_lvh:0X11' is in 2 splits \(test, train\)"):
        load_sources({"echonet_lvh": root})


def test_split_leaks_reports_only_leaking_patients():
    assert split_leaks(["a", "a", "b", "c"], ["train", "train", "val", "test"]) == {}
    assert split_leaks(["a", "a", "b"], ["train", "test", "val"]) == {"a": ["test", "train"]}


def test_all_sources_load_together(tmp_path):
    results = load_sources(make_all(tmp_path, n=3, frames=2))
    assert [r.source for r in results] == ["echonet_dynamic", "echonet_lvh", "tmed2"]
    assert sum(len(r.clips) for r in results) == 3 + 3 + 12


_NEW_FORMAT = '''
"""A made-up dataset format for the registry test: clips.csv = name,view,split + <name>.avi."""
from pathlib import Path

from kdbench.data.clips import Clip, LoadResult, check_folder, parse_split, read_table


def load(root):
    root = check_folder(Path(root), "MyEcho", "clips.csv")
    rows = read_table(root / "clips.csv", ("name", "view", "split"), "MyEcho clip")
    clips = [Clip(source="my_echo", patient=f"my_echo:{r['name']}", video=f"my_echo:{r['name']}", view=r["view"],
                  split=parse_split(r["split"], root / "clips.csv", line, "split"), files=(str(root / f"{r['name']}.avi"),),
                  kind="video", csv=str(root / "clips.csv"), lines=(line,)) for line, r in rows]
    return LoadResult(source="my_echo", clips=clips, inputs=[str(root / "clips.csv")])
'''


def test_a_new_dataset_format_is_one_module_and_one_registry_entry(tmp_path, monkeypatch):
    from echo_fixtures import fan_frames, write_avi
    from kdbench.data import sources
    from kdbench.data.prepare import prepare_store
    from kdbench.data.store import FrameStore

    (tmp_path / "mods" / "my_formats").mkdir(parents=True)
    (tmp_path / "mods" / "my_formats" / "__init__.py").write_text("")
    (tmp_path / "mods" / "my_formats" / "my_echo.py").write_text(_NEW_FORMAT)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    entry = sources.Source("my_echo", "MyEcho", "--my-echo", "clips.csv", "my_formats.my_echo", "MyEcho folder.")
    monkeypatch.setattr(sources, "REGISTRY", [*sources.REGISTRY, entry])

    root = tmp_path / "my"
    rows = [("a", "A2C", "train"), ("b", "PSAX", "val"), ("c", "A2C", "test")]
    write_csv(root / "clips.csv", ["name", "view", "split"], [list(r) for r in rows])
    for i, (name, _, _) in enumerate(rows):
        write_avi(root / f"{name}.avi", fan_frames(4, 40, 48, seed=i))
    dyn = make_dynamic(tmp_path / "dyn", [("0XAA", "TRAIN")], frames=3)
    result = prepare_store({"my_echo": root, "echonet_dynamic": dyn}, tmp_path / "store", size=32, frames_per_video=2,
                           workers=1)
    store = FrameStore.open(result.path)
    assert list(dict.fromkeys(store.sources)) == ["echonet_dynamic", "my_echo"]  # registry order
    assert result.manifest["counts"]["clips"]["PSAX"]["val"]["my_echo"] == 1
    with pytest.raises(DataError, match=r"looks like MyEcho \(pass it to --my-echo\)"):
        echonet_dynamic.load(root)


def test_prepare_flags_come_from_the_registry():
    from typer.testing import CliRunner

    from kdbench.cli import app
    from kdbench.data.sources import registered

    res = CliRunner().invoke(app, ["data", "prepare", "--help"], env={"COLUMNS": "200"})  # rich reads COLUMNS
    assert res.exit_code == 0
    for source in registered():
        assert source.flag in res.output and source.help.split(" (")[0] in res.output
