"""Bring your own archive: DICOM input, `--manifest labels.csv`, `--unlabelled DIR`, all on real files."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from echo_fixtures import fan_frames, make_dynamic, write_avi, write_csv
from kdbench.data import manifest_csv, unlabelled
from kdbench.data.clips import Clip
from kdbench.data.dicom import write_dicom
from kdbench.data.harmonise import harmonise_clip
from kdbench.data.media import media_kind, read_frames
from kdbench.data.prepare import decode_clip, load_sources, prepare_store
from kdbench.data.store import FrameStore
from kdbench.data.views import NO_LABEL, SPLITS, VIEWS
from kdbench.errors import ConfigError, DataError

SIZE, K = 32, 4
HEADER = ["path", "view", "split", "patient_id", "clip_id"]
_CLI = [sys.executable, "-c", "from kdbench.cli import main; main()"]


def _video_clip(path: Path) -> Clip:
    return Clip(source="own", patient="own:p", video=f"own:{path.name}", view="A4C", split="train",
                files=(str(path),), kind="video", csv="labels.csv", lines=(2,))


def _rle(path: Path, out: Path) -> Path:
    """The DICOM at path re-encoded as RLE Lossless, which pydicom decodes without plugins."""
    import pydicom
    from pydicom.uid import RLELossless

    ds = pydicom.dcmread(path)
    ds.compress(RLELossless, generate_instance_uid=False)
    ds.save_as(out, enforce_file_format=True)
    return out


def _jpeg_ls(path: Path, out: Path) -> Path:
    """The DICOM at path relabelled as JPEG-LS with encapsulated bytes: compressed, and no plugin decodes it."""
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless

    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7 not really JPEG-LS"])
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out, enforce_file_format=True)
    return out


# ------------------------------------------------------------------------------------ DICOM input


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "RGB", "YBR_FULL"])
def test_dicom_still_decodes_to_the_same_harmonised_frame_as_the_png(tmp_path, photometric):
    still = fan_frames(1, 48, 64, seed=5, half_angle=38, depth=0.8, apex_y=3, text=True)[0]
    png = tmp_path / "still.png"
    cv2.imwrite(str(png), still)
    dcm = write_dicom(tmp_path / "still.dcm", still, photometric, uid_seed="s")
    bare = write_dicom(tmp_path / "IM0001", still, photometric, uid_seed="s")  # no suffix: the DICM preamble
    assert media_kind(bare) == "dicom" and media_kind(png) == "image"
    expected = decode_clip(_video_clip(png), SIZE, K)["frames"]
    for path in (dcm, bare, _rle(dcm, tmp_path / "rle.dcm")):
        frames, reason = read_frames(str(path))
        assert reason is None and len(frames) == 1 and np.array_equal(frames[0], still)
        assert np.array_equal(decode_clip(_video_clip(path), SIZE, K)["frames"], expected)


def test_dicom_cine_decodes_like_the_avi_of_the_same_pixels(tmp_path):
    cine = np.stack(fan_frames(7, 48, 64, seed=9, half_angle=40, depth=0.85, apex_y=2))
    avi = write_avi(tmp_path / "cine.avi", list(cine))
    exact = harmonise_clip(cine[[0, 2, 4, 6]], SIZE)  # sample_indices(7, 4)
    from_avi = decode_clip(_video_clip(avi), SIZE, K)
    assert from_avi["meta"]["frame_ids"] == [0, 2, 4, 6]
    for photometric in ("MONOCHROME2", "RGB"):
        dcm = write_dicom(tmp_path / f"cine_{photometric}.dcm", cine, photometric, uid_seed="c", fps=25)
        from_dcm = decode_clip(_video_clip(dcm), SIZE, K)
        assert from_dcm["meta"]["frame_ids"] == [0, 2, 4, 6] and from_dcm["meta"]["available"] == 7
        assert np.array_equal(from_dcm["frames"], exact)  # lossless: bit-identical
        diff = np.abs(from_dcm["frames"].astype(int) - from_avi["frames"].astype(int))
        assert diff.mean() < 2 and diff.max() <= 16  # MJPG is lossy: within its rounding


def test_written_dicom_is_a_valid_ultrasound_file(tmp_path):
    import pydicom

    cine = np.stack(fan_frames(3, 20, 24, seed=1))
    multi = pydicom.dcmread(write_dicom(tmp_path / "m.dcm", cine, "RGB", uid_seed="x", patient_id="P7"))
    single = pydicom.dcmread(write_dicom(tmp_path / "s.dcm", cine[0], uid_seed="y"))
    assert multi.preamble is not None and multi.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert multi.SOPClassUID == "1.2.840.10008.5.1.4.1.1.3.1" and int(multi.NumberOfFrames) == 3
    assert multi.file_meta.MediaStorageSOPInstanceUID == multi.SOPInstanceUID and multi.PatientID == "P7"
    assert multi.pixel_array.shape == (3, 20, 24, 3) and multi.PhotometricInterpretation == "RGB"
    assert single.SOPClassUID == "1.2.840.10008.5.1.4.1.1.6.1" and "NumberOfFrames" not in single
    assert single.pixel_array.shape == (20, 24) and single.Modality == "US"
    again = write_dicom(tmp_path / "m2.dcm", cine, "RGB", uid_seed="x", patient_id="P7")
    assert again.read_bytes() == (tmp_path / "m.dcm").read_bytes()  # same seed, same bytes


def test_undecodable_dicom_comes_back_as_one_line_reason(tmp_path):
    good = write_dicom(tmp_path / "good.dcm", np.stack(fan_frames(4, 24, 24, seed=2)), uid_seed="g")
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(good.read_bytes()[:-700])
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\0" * 128 + b"DICM" + b"not a data set" * 5)
    reasons = {p.name: read_frames(str(p))[1] for p in (truncated, junk, _jpeg_ls(good, tmp_path / "jls.dcm"))}
    assert "DICOM pixel data cannot be decoded" in reasons["truncated.dcm"]
    assert "DICOM" in reasons["junk.dcm"]
    assert reasons["jls.dcm"].startswith("compressed DICOM (JPEG-LS Lossless Image Compression")
    assert all("\n" not in r for r in reasons.values())


# ------------------------------------------------------------------------------- --manifest CSV


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """A phantom with Own/ (labels.csv + view_map.csv, 3 clips per view, mixed formats) and Unlabelled/."""
    from kdbench.data.synth import synthesize

    root = tmp_path_factory.mktemp("own")
    summary = synthesize(root, videos_per_view=1, seed=2, frames=6, manifest=3, unlabelled=6)
    return root, summary


def test_manifest_of_mixed_formats_builds_a_store_with_exact_counts(own, tmp_path):
    root, summary = own
    spec = summary["sources"]["own"]
    assert set(spec["formats"]) == {"avi", "dcm_mono", "dcm_rgb", "dcm_still", "dcm_nosuffix", "jpg", "png_stills"}
    result = prepare_store({"own": root / "Own" / "labels.csv"}, tmp_path / "store", size=SIZE, frames_per_video=K,
                           workers=1, view_map=root / "Own" / "view_map.csv")
    manifest = result.manifest
    assert manifest["skipped"] == [] and manifest["dropped_labels"] == {"own": {"A5C": 1, "SUBCOSTAL": 1}}
    for view in VIEWS:
        for split in SPLITS:
            items = [it for it in spec["items"] if (it["view"], it["split"]) == (view, split)]
            assert manifest["counts"]["clips"][view][split]["own"] == spec["splits"].get(split, {}).get(view, 0)
            assert manifest["counts"]["frames"][view][split]["own"] == sum(min(K, it["frames"]) for it in items)
    store = FrameStore.open(result.path)
    assert len(store) == sum(min(K, it["frames"]) for it in spec["items"])
    assert set(store.sources) == {"own"} and all(p.startswith("own:P") for p in store.patients)
    assert sum(len(store.indices(s)) for s in SPLITS) == len(store) and len(store.indices("unlabelled")) == 0


def test_view_names_any_case_and_mapped_names(tmp_path):
    files = [write_dicom(tmp_path / f"f{i}.dcm", np.stack(fan_frames(2, 24, 24, seed=i)), uid_seed=str(i))
             for i in range(5)]
    rows = [[f.name, view, "train", "p1", ""] for f, view in zip(files, ["a4c", "Plax", "AP2", "weird", "sub"])]
    labels = write_csv(tmp_path / "labels.csv", HEADER, rows)
    vmap = write_csv(tmp_path / "map.csv", ["name", "view"], [["ap2", "a2c"], ["SUB", ""]])
    result = manifest_csv.load(labels, view_map=vmap)
    assert sorted(c.view for c in result.clips) == ["A2C", "A4C", "PLAX"]
    assert result.dropped_labels == {"sub": 1, "weird": 1}
    assert result.inputs == [str(labels.resolve()), str(vmap.resolve())]
    bad_map = write_csv(tmp_path / "bad_map.csv", ["name", "view"], [["AP2", "A3C"]])
    with pytest.raises(DataError, match=r"bad_map\.csv line 2, column 'view': 'A3C' is not one of"):
        manifest_csv.load(labels, view_map=bad_map)
    with pytest.raises(ConfigError, match="--view-map .* pass --manifest as well"):
        load_sources({"echonet_dynamic": tmp_path}, view_map=vmap)


def test_clip_id_groups_stills_and_rows_of_one_clip_must_agree(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"s{i}.png"), fan_frames(1, 32, 32, seed=i)[0])
    rows = [[f"s{i}.png", "PSAX", "val", "p2", "study1"] for i in range(3)]
    labels = write_csv(tmp_path / "labels.csv", HEADER, rows)
    [clip] = manifest_csv.load(labels).clips
    assert clip.kind == "images" and clip.video == "own:study1" and clip.lines == (2, 3, 4)
    assert [Path(f).name for f in clip.files] == ["s0.png", "s1.png", "s2.png"]
    rows[2][1] = "PLAX"
    write_csv(labels, HEADER, rows)
    with pytest.raises(DataError, match=r"lines 2 and 4: clip_id 'study1' has view 'PSAX' and 'PLAX'"):
        manifest_csv.load(labels)
    write_avi(tmp_path / "v.avi", fan_frames(2, 32, 32))
    write_csv(labels, HEADER, [["s0.png", "A2C", "train", "p", "c"], ["v.avi", "A2C", "train", "p", "c"]])
    with pytest.raises(DataError, match=r"line 3, column 'clip_id': .*v\.avi is a video, but clip_id 'c' groups 2"):
        manifest_csv.load(labels)
    write_csv(labels, HEADER, [["s0.png", "A2C", "train", "p", ""], ["./s0.png", "A2C", "train", "p", "x"]])
    with pytest.raises(DataError, match=r"lines 2 and 3: .*s0\.png is listed twice"):
        manifest_csv.load(labels)


def _write_manifest_case(tmp_path: Path, case: str) -> tuple[Path, str]:
    """A labels CSV with one planted defect, and the message (after 'error: <csv> ') it must give."""
    for i in range(3):
        write_dicom(tmp_path / f"c{i}.dcm", np.stack(fan_frames(2, 24, 24, seed=i)), uid_seed=str(i))
    rows = [["c0.dcm", "A4C", "train", "p1"], ["c1.dcm", "PLAX", "val", "p2"], ["c2.dcm", "PSAX", "test", "p3"]]
    header = ["path", "view", "split", "patient_id"]
    expected = {
        "missing column": ("line 1 (header): missing column(s) 'patient_id'", None),
        "bad split": ("line 3, column 'split': split 'holdout' is not one of train, val, test", (1, 2, "holdout")),
        "missing file": ("line 4, column 'path': ", (2, 0, "gone.dcm")),
        "patient in two splits": ("patient 'own:p1' is in 2 splits (train, val)", (1, 3, "p1")),
    }
    message, edit = expected[case]
    if case == "missing column":
        header, rows = header[:3], [r[:3] for r in rows]
    else:
        rows[edit[0]][edit[1]] = edit[2]
    return write_csv(tmp_path / "labels.csv", header, rows), message


@pytest.mark.parametrize("case", ["missing column", "bad split", "missing file", "patient in two splits"])
def test_manifest_errors_are_one_line_exit_2_before_decoding(tmp_path, case):
    labels, message = _write_manifest_case(tmp_path, case)
    out = tmp_path / "store"
    proc = subprocess.run([*_CLI, "data", "prepare", "--manifest", str(labels), "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "100"})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    assert str(labels) in lines[0] and message in lines[0]
    if case == "missing file":
        assert "gone.dcm does not exist" in lines[0]
    if case == "patient in two splits":
        assert "line 2" in lines[0] and "line 3" in lines[0]  # the two rows of patient p1
    assert not out.exists()  # refused before any decoding


# ------------------------------------------------------------------------------- --unlabelled DIR


def test_unlabelled_folder_is_its_own_split_and_leaves_labelled_rows_alone(own, tmp_path):
    root, summary = own
    dyn = make_dynamic(tmp_path / "dyn", [("0XAA", "TRAIN"), ("0XBB", "VAL"), ("0XCC", "TEST")], frames=5)
    labelled = {"echonet_dynamic": dyn, "own": root / "Own" / "labels.csv"}
    vmap = root / "Own" / "view_map.csv"
    base = FrameStore.open(prepare_store(labelled, tmp_path / "a", size=SIZE, frames_per_video=K, workers=1,
                                         view_map=vmap).path)
    result = prepare_store({**labelled, "unlabelled": root / "Unlabelled"}, tmp_path / "b", size=SIZE,
                           frames_per_video=K, workers=1, view_map=vmap)
    store = FrameStore.open(result.path)
    pool = store.indices("unlabelled")
    assert len(pool) and set(store.splits[pool]) == {"unlabelled"} and set(store.sources[pool]) == {"unlabelled"}
    assert (store.labels[pool] == NO_LABEL).all() and pool.min() == len(base)  # after every labelled row
    assert result.manifest["counts"]["unlabelled"]["clips"] == {"unlabelled": summary["sources"]["unlabelled"]["files"]}
    assert len({v for v in store.videos[pool]}) == summary["sources"]["unlabelled"]["files"]  # one clip per file
    for split in SPLITS:
        rows = base.indices(split)
        assert np.array_equal(store.indices(split), rows)
        assert np.array_equal(store.frames[rows], base.frames[rows])
        assert np.array_equal(store.labels[rows], base.labels[rows])
        assert (store.labels[rows] >= 0).all()
    from kdbench.data.loader import StoreLoader

    seen = np.concatenate([idx.numpy() for _, _, idx in StoreLoader(store, "train", 4, shuffle=True)])
    assert not np.isin(seen, pool).any()


def test_data_info_counts_the_unlabelled_split(own, tmp_path):
    from typer.testing import CliRunner

    from kdbench.cli import app

    root, summary = own
    out = tmp_path / "store"
    runner = CliRunner()
    res = runner.invoke(app, ["data", "prepare", "--unlabelled", str(root / "Unlabelled"), "--tmed2",
                              str(root / "TMED2"), "--out", str(out), "--size", "32", "--frames-per-video", "2",
                              "--workers", "1", "--no-strict", "--no-force"], terminal_width=200)
    assert res.exit_code == 0, res.output
    n_pool = len(FrameStore.open(out).indices("unlabelled"))
    res = runner.invoke(app, ["data", "info", str(out)], terminal_width=200)
    assert res.exit_code == 0, res.output
    [row] = [line for line in res.output.splitlines() if "unlabelled" in line and "none" in line]
    assert f"{n_pool} ({summary['sources']['unlabelled']['files']})" in row


def test_corrupt_and_undecodable_dicom_are_skipped_and_counted(tmp_path):
    pool = tmp_path / "pool"
    good = write_dicom(pool / "a" / "good.dcm", np.stack(fan_frames(5, 40, 48, seed=3)), uid_seed="g")
    broken = pool / "a" / "broken.dcm"
    broken.write_bytes(good.read_bytes()[:-900])
    _jpeg_ls(good, pool / "b" / "jpegls.dcm")
    assert cv2.imwrite(str(pool / "b" / "still.png"), fan_frames(1, 40, 48, seed=4)[0])
    (pool / "notes.txt").write_text("not media")
    listed = unlabelled.load(pool)
    assert sorted(c.video for c in listed.clips) == ["unlabelled:a/broken.dcm", "unlabelled:a/good.dcm",
                                                      "unlabelled:b/jpegls.dcm", "unlabelled:b/still.png"]
    result = prepare_store({"unlabelled": pool}, tmp_path / "store", size=SIZE, frames_per_video=K, workers=1)
    skipped = {Path(s["file"]).name: s["reason"] for s in result.manifest["skipped"]}
    assert set(skipped) == {"broken.dcm", "jpegls.dcm"}
    assert skipped["jpegls.dcm"].startswith("compressed DICOM (JPEG-LS")
    assert result.manifest["counts"]["unlabelled"] == {"frames": {"unlabelled": K + 1}, "clips": {"unlabelled": 2}}
    with pytest.raises(DataError, match=r"(broken|jpegls)\.dcm: .*DICOM.*--strict"):
        prepare_store({"unlabelled": pool}, tmp_path / "strict", size=SIZE, frames_per_video=K, workers=1, strict=True)


def test_unlabelled_store_rebuilds_when_files_are_added(tmp_path):
    pool = tmp_path / "pool"
    write_avi(pool / "one.avi", fan_frames(3, 32, 32, seed=1))
    out = tmp_path / "store"
    prepare_store({"unlabelled": pool}, out, size=SIZE, frames_per_video=K, workers=1)
    assert prepare_store({"unlabelled": pool}, out, size=SIZE, frames_per_video=K, workers=1).status == "up_to_date"
    write_dicom(pool / "two.dcm", fan_frames(1, 32, 32, seed=2)[0], uid_seed="2")
    again = prepare_store({"unlabelled": pool}, out, size=SIZE, frames_per_video=K, workers=1)
    assert again.status == "built" and again.manifest["counts"]["unlabelled"]["clips"] == {"unlabelled": 2}


def test_unlabelled_folder_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        unlabelled.load(tmp_path / "nope")
    (tmp_path / "only_text").mkdir()
    (tmp_path / "only_text" / "a.csv").write_text("x\n")
    with pytest.raises(DataError, match=r"holds no files that are .*\(1 other files\)"):
        unlabelled.load(tmp_path / "only_text")


def test_index_rejects_labels_on_unlabelled_rows(own, tmp_path):
    root, _ = own
    out = prepare_store({"unlabelled": root / "Unlabelled"}, tmp_path / "s", size=SIZE, frames_per_video=2,
                        workers=1).path
    rows = list(csv.reader(open(out / "index.csv", newline="")))
    rows[1][4] = "A4C"
    with open(out / "index.csv", "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)
    from kdbench.data.store import _read_index

    with pytest.raises(DataError, match=r"line 2, column 'view': 'A4C', expected empty \(an unlabelled row\)"):
        _read_index(out / "index.csv", len(rows) - 1)
