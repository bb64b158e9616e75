"""`kdbench data prepare`: the store it writes, harmonisation, skips, resume after SIGKILL, reruns."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from echo_fixtures import fan_frames, make_all, make_dynamic
from kdbench.data.harmonise import harmonise_clip, sample_indices, sector_mask
from kdbench.data.prepare import SLEEP_ENV, prepare_store
from kdbench.data.splits import split_leaks
from kdbench.data.store import FrameStore
from kdbench.errors import DataError

SIZE, K = 32, 4


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """A small phantom from `synthesize` in the three official layouts."""
    from kdbench.data.synth import synthesize

    root = tmp_path_factory.mktemp("phantom")
    synthesize(root, videos_per_view=3, seed=3, frames=6)
    return {"echonet_dynamic": root / "EchoNet-Dynamic", "echonet_lvh": root / "EchoNet-LVH",
            "tmed2": root / "TMED2"}


def _index(store: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(store / "index.csv", newline="")))


def test_sample_indices_spread_evenly_and_never_repeat():
    assert sample_indices(10, 4).tolist() == [1, 3, 6, 8]
    assert sample_indices(3, 5).tolist() == [0, 1, 2]
    idx = sample_indices(1000, 16)
    assert len(set(idx.tolist())) == 16 and idx.min() >= 0 and idx.max() <= 999


def test_harmonise_gives_the_same_framing_whatever_the_resolution_and_margins():
    small = fan_frames(3, 32, 32, seed=1, half_angle=44, depth=0.95)
    wide = fan_frames(3, 96, 160, seed=2, half_angle=36, depth=0.7, apex_y=10, text=True)
    mask = sector_mask(48).astype(bool)
    for frames in (small, wide):
        out = harmonise_clip(frames, 48)
        assert out.shape == (3, 48, 48) and out.dtype == np.uint8
        assert not out[:, ~mask].any()  # nothing outside the fixed fan
        assert (out[:, mask] > 0).mean() > 0.97  # the fan is filled by the sector


def test_store_from_phantom_is_consistent_and_sources_share_one_framing(phantom, tmp_path):
    result = prepare_store(phantom, tmp_path / "store", size=64, frames_per_video=K, workers=2)
    assert result.status == "built"
    store = FrameStore.open(tmp_path / "store")
    rows = _index(tmp_path / "store")
    assert len(store) == len(rows) == result.manifest["n_frames"]
    assert [int(r["row"]) for r in rows] == list(range(len(rows)))
    # manifest counts agree with the index
    counts = result.manifest["counts"]["frames"]
    for view in ("A2C", "A4C", "PLAX", "PSAX"):
        for split in ("train", "val", "test"):
            for source in phantom:
                n = sum(1 for r in rows if (r["view"], r["split"], r["source"]) == (view, split, source))
                assert counts[view][split][source] == n
    assert set(store.sources) == set(phantom)
    assert split_leaks(store.patients, store.splits) == {}
    # sources are indistinguishable by framing: identical zero region, similarly filled fan
    mask = sector_mask(64).astype(bool)
    assert not store.frames[:, ~mask].any()
    fill = {s: float((store.frames[store.sources == s][:, mask] > 0).mean()) for s in phantom}
    assert min(fill.values()) > 0.95, fill
    assert max(fill.values()) - min(fill.values()) < 0.03, fill
    assert result.manifest["dropped_labels"]["tmed2"]  # the phantom has ambiguous/unlabelled stills


def test_corrupt_and_truncated_videos_are_skipped_and_recorded(tmp_path):
    root = make_dynamic(tmp_path / "dyn", [("0XAA", "TRAIN"), ("0XBB", "VAL"), ("0XCC", "TEST")], frames=12)
    (root / "Videos" / "0XBB.avi").write_bytes(b"RIFF\x00\x00garbage" * 20)
    good = (root / "Videos" / "0XCC.avi").read_bytes()
    (root / "Videos" / "0XCC.avi").write_bytes(good[: len(good) // 2])
    result = prepare_store({"echonet_dynamic": root}, tmp_path / "store", size=SIZE, frames_per_video=K, workers=1)
    skipped = {s["video"]: s for s in result.manifest["skipped"]}
    assert set(skipped) == {"echonet_dynamic:0XBB", "echonet_dynamic:0XCC"}
    assert "corrupt" in skipped["echonet_dynamic:0XBB"]["reason"]
    assert "truncated" in skipped["echonet_dynamic:0XCC"]["reason"]
    assert skipped["echonet_dynamic:0XCC"]["file"].endswith("0XCC.avi")
    assert {r["video"] for r in _index(tmp_path / "store")} == {"echonet_dynamic:0XAA"}
    with pytest.raises(DataError, match=r"0XBB\.avi: cannot be opened.*--strict|0XCC\.avi: truncated.*--strict"):
        prepare_store({"echonet_dynamic": root}, tmp_path / "strict", size=SIZE, frames_per_video=K,
                      workers=1, strict=True)


def test_short_video_keeps_all_its_frames_once_and_is_recorded(tmp_path):
    root = make_dynamic(tmp_path / "dyn", [("0XAA", "TRAIN")], frames=3)
    result = prepare_store({"echonet_dynamic": root}, tmp_path / "store", size=SIZE, frames_per_video=5, workers=1)
    assert [int(r["frame"]) for r in _index(tmp_path / "store")] == [0, 1, 2]
    assert result.manifest["short_clips"] == [
        {"source": "echonet_dynamic", "video": "echonet_dynamic:0XAA", "frames_available": 3, "frames_used": 3}]


def test_all_clips_unreadable_is_an_error_not_an_empty_store(tmp_path):
    root = make_dynamic(tmp_path / "dyn", [("0XAA", "TRAIN")], frames=3)
    (root / "Videos" / "0XAA.avi").write_bytes(b"junk")
    with pytest.raises(DataError, match="no frames could be decoded"):
        prepare_store({"echonet_dynamic": root}, tmp_path / "store", size=SIZE, frames_per_video=K, workers=1)


def test_unchanged_rerun_does_nothing_changed_config_or_force_rebuilds(tmp_path):
    sources = make_all(tmp_path / "data", n=3, frames=5)
    out = tmp_path / "store"
    first = prepare_store(sources, out, size=SIZE, frames_per_video=K, workers=1)
    stamp = (out / "frames.npy").stat().st_mtime_ns
    again = prepare_store(sources, out, size=SIZE, frames_per_video=K, workers=1)
    assert again.status == "up_to_date" and again.decoded == 0
    assert (out / "frames.npy").stat().st_mtime_ns == stamp
    forced = prepare_store(sources, out, size=SIZE, frames_per_video=K, workers=1, force=True)
    assert forced.status == "built" and forced.decoded == first.decoded
    assert forced.manifest["store_hash"] == first.manifest["store_hash"]  # deterministic
    bigger = prepare_store(sources, out, size=48, frames_per_video=K, workers=1)
    assert bigger.status == "built" and FrameStore.open(out).frames.shape[1:] == (48, 48)
    # an edited input CSV (a video moved to another split) also triggers a rebuild
    filelist = sources["echonet_dynamic"] / "FileList.csv"
    filelist.write_text(filelist.read_text().replace(",VAL", ",TEST"))
    edited = prepare_store(sources, out, size=48, frames_per_video=K, workers=1)
    assert edited.status == "built"
    assert edited.manifest["counts"]["frames"]["A4C"]["val"]["echonet_dynamic"] == 0


def test_prepare_killed_midway_resumes_to_the_same_store(tmp_path):
    sources = make_all(tmp_path / "data", n=4, frames=5)
    reference = prepare_store(sources, tmp_path / "ref", size=SIZE, frames_per_video=K, workers=1)
    out = tmp_path / "store"
    code = ("import sys; from kdbench.data.prepare import prepare_store; "
            "prepare_store(eval(sys.argv[1]), sys.argv[2], size=%d, frames_per_video=%d, workers=2)" % (SIZE, K))
    arg = repr({k: str(v) for k, v in sources.items()})
    env = {**os.environ, SLEEP_ENV: "0.25", "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", code, arg, str(out)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(list((out / "parts").glob("*.json"))) < 4:  # config + 3 clips
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the prepare process and its decoding workers
        proc.wait()
    done = len(list((out / "parts").glob("*.json"))) - 1
    assert 3 <= done < 24  # killed part-way: 4 + 4 + 16 clips in all
    assert not (out / "manifest.json").exists()
    with pytest.raises(DataError, match="interrupted"):
        FrameStore.open(out)
    resumed = prepare_store(sources, out, size=SIZE, frames_per_video=K, workers=2)
    assert resumed.status == "built"
    assert resumed.reused >= 3 and resumed.reused + resumed.decoded == 4 + 4 + 16
    assert resumed.manifest["store_hash"] == reference.manifest["store_hash"]
    assert not (out / "parts").exists()
    assert np.array_equal(FrameStore.open(out).frames, FrameStore.open(tmp_path / "ref").frames)


def test_cli_prepare_info_and_clean_error(tmp_path):
    from typer.testing import CliRunner

    from kdbench.cli import app

    sources = make_all(tmp_path / "data", n=3, frames=4)
    out = tmp_path / "store"
    runner = CliRunner()
    res = runner.invoke(app, ["data", "prepare", "--echonet-dynamic", str(sources["echonet_dynamic"]),
                              "--tmed2", str(sources["tmed2"]), "--out", str(out), "--size", "32",
                              "--frames-per-video", "2", "--workers", "1"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "wrote 30 frames of 15 clips" in res.output
    res = runner.invoke(app, ["data", "info", str(out)], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "30 frames" in res.output
    total_line = [line for line in res.output.splitlines() if "all" in line and line.count("all") == 2][0]
    assert "30 (15)" in total_line and "6 (3)" in total_line  # total, and echonet_dynamic's 3 clips
    proc = subprocess.run([sys.executable, "-c", "from kdbench.cli import main; main()", "data", "prepare",
                           "--echonet-lvh", str(tmp_path / "missing"), "--out", str(tmp_path / "s2")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    message = " ".join(proc.stderr.split())  # rich wraps long lines
    assert message.startswith("error: EchoNet-LVH folder") and "missing does not exist" in message
    assert "Traceback" not in proc.stderr


def test_unreadable_tmed_image_is_dropped_from_its_clip_and_recorded(tmp_path):
    from echo_fixtures import make_tmed

    root = make_tmed(tmp_path / "tmed", [("s/l", f"3s1_{i}.png", "PSAX", "train") for i in range(3)])
    (root / "s" / "l" / "3s1_1.png").write_bytes(b"\x89PNG broken")
    result = prepare_store({"tmed2": root}, tmp_path / "store", size=SIZE, frames_per_video=K, workers=1)
    assert [int(r["frame"]) for r in _index(tmp_path / "store")] == [0, 2]
    assert result.manifest["skipped"] == [{"source": "tmed2", "video": "tmed2:3s1_PSAX",
                                           "file": str(root.resolve() / "s" / "l" / "3s1_1.png"),
                                           "reason": "unreadable image (corrupt PNG)"}]
    with pytest.raises(DataError, match=r"3s1_1\.png: unreadable image.*--strict"):
        prepare_store({"tmed2": root}, tmp_path / "strict", size=SIZE, frames_per_video=K, workers=1, strict=True)


def test_listed_but_missing_video_is_skipped_counted_and_strict_is_an_error(tmp_path):
    """A partial download: one listed video is absent. It is skipped and counted; --strict stops."""
    import shutil

    root = make_dynamic(tmp_path / "dyn", [("0XAA", "TRAIN"), ("0XBB", "VAL"), ("0XCC", "TEST")], frames=4, size=SIZE)
    kept = tmp_path / "0XBB.avi"
    shutil.move(root / "Videos" / "0XBB.avi", kept)
    out = tmp_path / "store"
    result = prepare_store({"echonet_dynamic": root}, out, size=SIZE, frames_per_video=K, workers=1)
    assert result.status == "built" and result.manifest["n_clips"] == 2
    [gone] = result.manifest["missing"]
    assert gone["video"] == "echonet_dynamic:0XBB" and gone["line"] == 3 and gone["file"].endswith("Videos/0XBB.avi")
    assert {r["video"] for r in _index(out)} == {"echonet_dynamic:0XAA", "echonet_dynamic:0XCC"}
    assert prepare_store({"echonet_dynamic": root}, out, size=SIZE, frames_per_video=K, workers=1).status == "up_to_date"
    with pytest.raises(DataError, match=r"^listed in .*FileList.csv line 3 but .*0XBB.avi does not exist; add the "
                                        r"files or run without --strict to skip them$"):
        prepare_store({"echonet_dynamic": root}, tmp_path / "strict", size=SIZE, frames_per_video=K, workers=1, strict=True)
    assert not (tmp_path / "strict").exists()  # stopped before any decoding
    shutil.move(kept, root / "Videos" / "0XBB.avi")  # the rest of the download arrives: the store is rebuilt
    again = prepare_store({"echonet_dynamic": root}, out, size=SIZE, frames_per_video=K, workers=1)
    assert again.status == "built" and again.manifest["missing"] == [] and again.manifest["n_clips"] == 3
