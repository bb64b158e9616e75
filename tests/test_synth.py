"""`kdbench data synth`: the three official on-disk formats, determinism, patient-level splits, CLI."""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from kdbench.cli import app
from kdbench.data.synth import synthesize
from kdbench.errors import ConfigError, DataError

N, FRAMES = 3, 8
HEX_NAME = re.compile(r"^0X[0-9A-F]{15,16}$")
QUERY_KEY = re.compile(r"^(\d+)s(\d+)_(\d+)\.png$")


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, [dict(zip(header, r)) for r in reader]


def _decode(path: Path) -> tuple[np.ndarray, str]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), path
    fourcc = int(cap.get(cv2.CAP_PROP_FOURCC))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return np.stack(frames), "".join(chr((fourcc >> (8 * i)) & 0xFF) for i in range(4))


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth")
    calls: list[tuple[int, int]] = []
    summary = synthesize(out, videos_per_view=N, seed=7, frames=FRAMES, difficulty=0.5,
                         progress=lambda d, t: calls.append((d, t)))
    summary["_progress"] = calls
    return out, summary


def test_summary_and_progress(synth: tuple[Path, dict]) -> None:
    out, summary = synth
    assert summary["sources"]["echonet_dynamic"]["videos"] == N
    assert summary["sources"]["echonet_lvh"]["videos"] == N
    assert summary["sources"]["tmed2"]["studies"] == N
    assert summary["clips_per_view"] == {"A2C": N, "A4C": 2 * N, "PLAX": 2 * N, "PSAX": N}
    calls = summary["_progress"]
    assert calls[0][0] == 0 and calls[-1][0] == calls[-1][1] == 3 * N
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_echonet_dynamic_format(synth: tuple[Path, dict]) -> None:
    root = synth[0] / "EchoNet-Dynamic"
    header, rows = _rows(root / "FileList.csv")
    assert header == ["FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS",
                      "NumberOfFrames", "Split"]
    assert len(rows) == N
    for r in rows:
        assert HEX_NAME.match(r["FileName"]) and not r["FileName"].endswith(".avi")
        assert r["Split"] in {"TRAIN", "VAL", "TEST"}
        ef, esv, edv = float(r["EF"]), float(r["ESV"]), float(r["EDV"])
        assert 0 < esv < edv and ef == pytest.approx((edv - esv) / edv * 100, abs=1e-4)
        assert (r["FrameHeight"], r["FrameWidth"], r["NumberOfFrames"]) == ("112", "112", str(FRAMES))
        video, fourcc = _decode(root / "Videos" / f"{r['FileName']}.avi")
        assert fourcc == "MJPG"
        assert video.shape == (FRAMES, 112, 112, 3)
        # grey copied to three channels (up to JPEG chroma rounding), sector-masked corners
        assert np.abs(video[..., 0].astype(int) - video[..., 2].astype(int)).max() <= 4
        assert video[:, :10, :6].max() < 20 and video[:, :10, -6:].max() < 20
    assert {r["Split"] for r in rows} == {"TRAIN", "VAL", "TEST"}

    header, tracings = _rows(root / "VolumeTracings.csv")
    assert header == ["FileName", "X1", "Y1", "X2", "Y2", "Frame"]
    by_video: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for t in tracings:
        assert t["FileName"].endswith(".avi")
        x1, y1, x2, y2 = (float(t[k]) for k in ("X1", "Y1", "X2", "Y2"))
        assert all(0 <= c <= 112 for c in (x1, y1, x2, y2))
        by_video[t["FileName"]][int(t["Frame"])].append(np.hypot(x2 - x1, y2 - y1))
    assert set(by_video) == {f"{r['FileName']}.avi" for r in rows}
    for frames in by_video.values():
        assert len(frames) == 2  # end-diastole and end-systole
        assert all(0 <= f < FRAMES and len(lines) >= 5 for f, lines in frames.items())
        sums = sorted(sum(lines) for lines in frames.values())
        assert sums[0] < sums[1]  # the LV is smaller at end-systole


def test_echonet_lvh_format(synth: tuple[Path, dict]) -> None:
    root = synth[0] / "EchoNet-LVH"
    first_line = (root / "MeasurementsList.csv").read_text().splitlines()[0]
    assert first_line.startswith(",HashedFileName,")
    header, rows = _rows(root / "MeasurementsList.csv")
    assert header == ["", "HashedFileName", "Calc", "CalcValue", "Frame", "X1", "X2", "Y1", "Y2",
                      "Frames", "FPS", "Width", "Height", "split"]
    assert [int(r[""]) for r in rows] == list(range(len(rows)))
    per_video: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        per_video[r["HashedFileName"]].append(r)
    assert len(per_video) == N
    sizes = set()
    for name, meas in per_video.items():
        assert HEX_NAME.match(name)
        assert len(meas) >= 3 and {"IVSd", "LVIDd", "LVPWd"} <= {m["Calc"] for m in meas}
        assert len({(m["Width"], m["Height"], m["split"], m["Frames"]) for m in meas}) == 1
        w, h = int(meas[0]["Width"]), int(meas[0]["Height"])
        sizes.add((w, h))
        assert meas[0]["split"] in {"train", "val", "test"}
        for m in meas:
            assert 0.2 < float(m["CalcValue"]) < 8.0  # cm
            assert 0 <= float(m["X1"]) <= w and 0 <= float(m["Y2"]) <= h
        paths = [root / f"Batch{b}" / f"{name}.avi" for b in range(1, 5)]
        found = [p for p in paths if p.exists()]
        assert len(found) == 1
        video, fourcc = _decode(found[0])
        assert fourcc == "MJPG" and video.shape == (int(meas[0]["Frames"]), h, w, 3)
    assert len(sizes) >= 2 and all(w != h for w, h in sizes)


def test_tmed2_format(synth: tuple[Path, dict]) -> None:
    root = synth[0] / "TMED2"
    header, labels = _rows(root / "labels_per_image.csv")
    assert header[:3] == ["query_key", "view_label", "diagnosis_label"]
    folds = []
    for k in range(3):
        header, rows = _rows(root / "DEV479" / f"TMED2_fold{k}_labeledpart.csv")
        assert header == ["query_key", "view_label", "diagnosis_label", "SourceFolder",
                          "view_classifier_split", "diagnosis_classifier_split"]
        folds.append(rows)
    rows = folds[0]
    assert [r["query_key"] for r in labels] == [r["query_key"] for r in rows]
    views = {r["view_label"] for r in rows}
    assert {"A2C", "A4C", "PLAX", "PSAX", "A4CorA2CorOther"} <= views
    assert views <= {"A2C", "A4C", "PLAX", "PSAX", "A4CorA2CorOther", "Not_Provided"}
    assert {r["diagnosis_label"] for r in rows} <= {"no_AS", "mild_AS", "mildtomod_AS", "moderate_AS",
                                                    "severe_AS", "Not_Provided"}
    folders_of: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        assert QUERY_KEY.match(r["query_key"]), r["query_key"]
        img = cv2.imread(str(root / r["SourceFolder"] / r["query_key"]), cv2.IMREAD_UNCHANGED)
        assert img is not None and img.dtype == np.uint8 and img.shape == (112, 112)
        folders_of[r["query_key"]].add(r["SourceFolder"])
    assert any(len(f) > 1 for f in folders_of.values())  # query_key is not unique across folders
    # three different patient-level splittings of the same images
    assignments = []
    for rows in folds:
        assert {r["query_key"] for r in rows} == set(folders_of)
        split_of: dict[str, set[str]] = defaultdict(set)
        for r in rows:
            assert r["view_classifier_split"] in {"train", "val", "test"}
            assert r["diagnosis_classifier_split"] in {"train", "val", "test"}
            split_of[QUERY_KEY.match(r["query_key"]).group(1)].add(r["view_classifier_split"])
        assert all(len(s) == 1 for s in split_of.values())  # no patient in two splits
        assignments.append({p: next(iter(s)) for p, s in split_of.items()})
    assert assignments[0] != assignments[1] or assignments[1] != assignments[2]


def _fingerprint(root: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        if p.suffix in (".csv", ".png"):
            out[str(p.relative_to(root))] = p.read_bytes()
        elif p.suffix == ".avi":
            out[str(p.relative_to(root))] = _decode(p)[0].tobytes()
    return out


def test_same_seed_same_data_other_seed_other_data(tmp_path: Path) -> None:
    a = synthesize(tmp_path / "a", videos_per_view=2, seed=3, frames=4)
    b = synthesize(tmp_path / "b", videos_per_view=2, seed=3, frames=4)
    synthesize(tmp_path / "c", videos_per_view=2, seed=4, frames=4)
    fa, fb, fc = (_fingerprint(tmp_path / x) for x in "abc")
    assert fa == fb and len(fa) > 20
    assert a["sources"]["tmed2"]["views"] == b["sources"]["tmed2"]["views"]
    ca = (tmp_path / "a" / "EchoNet-Dynamic" / "FileList.csv").read_bytes()
    cc = (tmp_path / "c" / "EchoNet-Dynamic" / "FileList.csv").read_bytes()
    assert ca != cc and fa != fc


def test_rewrites_its_own_output_but_refuses_foreign_folders(tmp_path: Path) -> None:
    synthesize(tmp_path, videos_per_view=1, frames=4)
    stale = tmp_path / "EchoNet-Dynamic" / "Videos" / "stale.avi"
    stale.write_bytes(b"x")
    synthesize(tmp_path, videos_per_view=1, frames=4)  # its own output: cleared and rewritten
    assert not stale.exists()
    real = tmp_path / "real"
    (real / "TMED2").mkdir(parents=True)
    (real / "TMED2" / "labels_per_image.csv").write_text("query_key\n")
    with pytest.raises(DataError, match="TMED2"):
        synthesize(real, videos_per_view=1, frames=4)
    assert (real / "TMED2" / "labels_per_image.csv").read_text() == "query_key\n"


@pytest.mark.parametrize("kwargs,key", [({"videos_per_view": 0}, "videos_per_view"),
                                        ({"frames": 1}, "frames"),
                                        ({"difficulty": 1.5}, "difficulty"),
                                        ({"seed": -1}, "seed"),
                                        ({"holdout": 0.5}, "holdout"),
                                        ({"holdout": 0.0}, "holdout"),
                                        ({"unlabelled": -1}, "unlabelled"),
                                        ({"manifest": -1}, "manifest")])
def test_bad_arguments(tmp_path: Path, kwargs: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        synthesize(tmp_path, **kwargs)


def test_cli_synth(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(app, ["data", "synth", "--out", str(out), "--videos-per-view", "2",
                                 "--frames", "4", "--seed", "1", "--difficulty", "0.2"])
    assert result.exit_code == 0, result.output
    assert "EchoNet-Dynamic" in result.output and "TMED2" in result.output
    _, rows = _rows(out / "EchoNet-Dynamic" / "FileList.csv")
    assert len(rows) == 2 and all(r["NumberOfFrames"] == "4" for r in rows)
    bad = runner.invoke(app, ["data", "synth", "--out", str(out), "--difficulty", "2"])
    assert bad.exit_code != 0


def test_holdout_sets_each_sources_val_and_test_share(tmp_path: Path) -> None:
    """--holdout 0.3: 30% of the EchoNet videos and of the TMED-2 patients in val, 30% in test."""
    n = 10
    summary = synthesize(tmp_path, videos_per_view=n, seed=3, frames=4, holdout=0.3)
    assert summary["holdout"] == 0.3
    assert summary["sources"]["echonet_dynamic"]["splits"] == {"TEST": 3, "TRAIN": 4, "VAL": 3}
    assert summary["sources"]["echonet_lvh"]["splits"] == {"test": 3, "train": 4, "val": 3}
    patients = summary["sources"]["tmed2"]["patients"]
    for fold in summary["sources"]["tmed2"]["splits"]:
        assert fold["val"] == fold["test"] == round(0.3 * patients)
    usual = synthesize(tmp_path / "usual", videos_per_view=n, seed=3, frames=4)
    assert usual["sources"]["echonet_dynamic"]["splits"] == {"TEST": 1, "TRAIN": 8, "VAL": 1}
    _, rows = _rows(tmp_path / "EchoNet-LVH" / "MeasurementsList.csv")
    per_video = {r["HashedFileName"]: r["split"] for r in rows}  # the official file's split column
    assert sorted(per_video.values()).count("val") == 3 and sorted(per_video.values()).count("test") == 3


def _own_fingerprint(root: Path) -> dict[str, object]:
    """Bytes of every file under Own/ and Unlabelled/ (AVIs: their decoded frames)."""
    out: dict[str, object] = {}
    for sub in ("Own", "Unlabelled"):
        for p in sorted((root / sub).rglob("*")):
            if p.is_file():
                out[str(p.relative_to(root))] = _decode(p)[0].tobytes() if p.suffix == ".avi" else p.read_bytes()
    return out


def test_own_archive_and_unlabelled_pool_are_deterministic_and_mixed(tmp_path: Path) -> None:
    import pydicom

    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        summary = synthesize(tmp_path / name, videos_per_view=1, seed=seed, frames=4, manifest=2, unlabelled=5)
    fa, fb, fc = (_own_fingerprint(tmp_path / x) for x in "abc")
    assert fa == fb and fa != fc and len(fa) > 20
    own = tmp_path / "c" / "Own"
    header, rows = _rows(own / "labels.csv")
    assert header == ["path", "view", "split", "patient_id", "clip_id"]
    assert all((own / r["path"]).is_file() for r in rows)
    assert len(rows) == summary["sources"]["own"]["files"] and summary["sources"]["own"]["clips"] == 8
    assert {r["view"] for r in rows} >= {"AP2", "AP4", "SUBCOSTAL", "A5C"}  # names the view map or prepare handle
    patients = defaultdict(set)
    for r in rows:
        patients[r["patient_id"]].add(r["split"])
    assert all(len(s) == 1 for s in patients.values())  # patient-level splits
    dicoms = [pydicom.dcmread(p) for p in sorted((tmp_path / "c").rglob("*"))
              if p.is_file() and (p.suffix == ".dcm" or p.suffix == "" and p.name.startswith("clip"))]
    assert {d.PhotometricInterpretation for d in dicoms} == {"MONOCHROME2", "RGB", "YBR_FULL"}
    assert {d.SOPClassUID for d in dicoms} == {"1.2.840.10008.5.1.4.1.1.3.1", "1.2.840.10008.5.1.4.1.1.6.1"}
    assert all(d.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1" for d in dicoms)
    pool = [p for p in (tmp_path / "c" / "Unlabelled").rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert {p.suffix for p in pool} == {".avi", ".png", ".dcm", ".txt"} and len(pool) == 5 + 1


def test_cli_synth_writes_own_and_unlabelled(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["data", "synth", "--out", str(tmp_path), "--videos-per-view", "1",
                                      "--frames", "4", "--manifest", "1", "--unlabelled", "2"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Own" in result.output and "Unlabelled" in result.output and "2 files" in result.output
    assert (tmp_path / "Own" / "labels.csv").is_file() and (tmp_path / "Own" / "view_map.csv").is_file()
