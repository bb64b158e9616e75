"""``kdbench data synth``: write phantom echo data in the three official dataset layouts.

``synthesize(out)`` writes ``out/EchoNet-Dynamic/`` (A4C videos, ``FileList.csv``,
``VolumeTracings.csv``), ``out/EchoNet-LVH/`` (PLAX videos at native sizes in ``Batch1..4``,
``MeasurementsList.csv``) and ``out/TMED2/`` (112x112 PNG stills of all four views,
``labels_per_image.csv`` and ``DEV479/TMED2_fold{0,1,2}_labeledpart.csv``), so that every test and
the demo go through the same loaders as the real datasets. On request it also writes ``out/Own/``
(a labels CSV + view map + files in mixed formats, for ``data prepare --manifest``) and
``out/Unlabelled/`` (an unlabelled pool of AVI, PNG and DICOM files, for ``--unlabelled``); see
``kdbench/data/synth_own.py``. Output is deterministic for a seed: the CSVs and DICOM files are
byte-identical and the decoded frames identical.
"""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from kdbench.data.phantom import ClipParams, Ellipse, Geometry, render_clip, render_frames, sample_clip, \
    scene_at, systole_at
from kdbench.errors import ConfigError, DataError

DYNAMIC_DIR = "EchoNet-Dynamic"
LVH_DIR = "EchoNet-LVH"
TMED_DIR = "TMED2"
OWN_DIR = "Own"
UNLABELLED_DIR = "Unlabelled"
MARKER = ".kdbench_synth"  # marks a folder as written by synthesize(), so it may be overwritten

DYNAMIC_FILELIST_COLUMNS = ("FileName", "EF", "ESV", "EDV", "FrameHeight", "FrameWidth", "FPS",
                            "NumberOfFrames", "Split")
DYNAMIC_TRACING_COLUMNS = ("FileName", "X1", "Y1", "X2", "Y2", "Frame")
LVH_COLUMNS = ("", "HashedFileName", "Calc", "CalcValue", "Frame", "X1", "X2", "Y1", "Y2", "Frames",
               "FPS", "Width", "Height", "split")
TMED_FOLD_COLUMNS = ("query_key", "view_label", "diagnosis_label", "SourceFolder",
                     "view_classifier_split", "diagnosis_classifier_split")
TMED_LABEL_COLUMNS = ("query_key", "view_label", "diagnosis_label")
TMED_SOURCE_FOLDERS = ("view_and_diagnosis_labeled_set/labeled", "view_labeled_set/labeled")
TMED_DIAGNOSES = ("no_AS", "mild_AS", "mildtomod_AS", "moderate_AS", "severe_AS")
LVH_SIZES = ((128, 96), (160, 120), (176, 132), (192, 144), (208, 160), (224, 168))  # (W, H)
LVH_FPS = (30.0, 40.0, 50.0, 60.0)
DYNAMIC_FPS = 50.0
TRACING_CHORDS = 20  # EchoNet-Dynamic traces a long axis plus 20 perpendicular chords per frame
CM_PER_DEPTH = 16.0  # sector depth in cm, for LVH measurements

_SOURCE_KEY = {"echonet_dynamic": 1, "echonet_lvh": 2, "tmed2": 3, "own": 4, "unlabelled": 5}


def _rng(seed: int, source: str, index: int, *extra: int) -> np.random.Generator:
    """An independent generator per (seed, source, item); index -1 is the source's own draws."""
    return np.random.default_rng([seed, _SOURCE_KEY[source], index + 1, *extra])


def _hex_name(rng: np.random.Generator) -> str:
    """A name like ``0X100009310A3BD7FC``: 0X and 16 upper-case hex digits, first digit non-zero."""
    digits = rng.integers(0, 16, size=16)
    digits[0] = rng.integers(1, 16)
    return "0X" + "".join("0123456789ABCDEF"[d] for d in digits)


def _assign_splits(ids: Sequence[str], rng: np.random.Generator, val: float = 0.15,
                   test: float = 0.15) -> dict[str, str]:
    """Split ids into train/val/test (every split non-empty when there are at least three ids)."""
    order = list(rng.permutation(len(ids)))
    n = len(ids)
    n_val = max(1, round(n * val)) if n >= 3 else 0
    n_test = max(1, round(n * test)) if n >= 2 else 0
    out: dict[str, str] = {}
    for rank, i in enumerate(order):
        out[ids[i]] = "val" if rank < n_val else "test" if rank < n_val + n_test else "train"
    return out


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """Write a CSV with ``\\n`` line endings; returns the number of data rows."""
    n = 0
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        for row in rows:
            w.writerow(row)
            n += 1
    return n


def _fmt(x: float, nd: int = 4) -> str:
    """A float with a fixed number of decimals, so CSVs are byte-stable."""
    return f"{x:.{nd}f}"


def write_avi(path: Path, frames: np.ndarray, fps: float) -> None:
    """Write grey uint8 frames ``[T, H, W]`` as an MJPG AVI, grey copied to three channels."""
    import cv2

    t, h, w = frames.shape
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), float(fps), (w, h))
    if not writer.isOpened():
        raise DataError(f"{path}: OpenCV could not open an MJPG video writer ({w}x{h} at {fps} fps)")
    try:
        for f in frames:
            writer.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR))
    finally:
        writer.release()


def _prepare_dir(path: Path) -> None:
    """Create an empty output folder; refuse to clear one that synthesize() did not write."""
    if path.exists():
        if not (path / MARKER).exists() and any(path.iterdir()):
            raise DataError(f"{path}: folder exists and was not written by `kdbench data synth`; "
                            "expected a new or empty folder (refusing to overwrite real data)")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("written by kdbench data synth; safe to delete\n")


# ---------------------------------------------------------------------------------------------
# EchoNet-Dynamic
# ---------------------------------------------------------------------------------------------


def _start_near_ed(rng: np.random.Generator) -> float:
    """A start phase just before end-diastole, so even a short clip holds both ED and ES."""
    return 1.0 - float(rng.uniform(0.0, 0.08))


def _ed_es_frames(params: ClipParams, frames: int, fps: float) -> tuple[int, int]:
    """Indices of the most relaxed (ED) and most contracted (ES) frames of a clip."""
    s = [systole_at(params, i / fps) for i in range(frames)]
    return int(np.argmin(s)), int(np.argmax(s))


def _lv_tracing(geo: Geometry, lv: Ellipse) -> list[tuple[float, float, float, float]]:
    """A long axis (apex to base) and perpendicular chords across an LV cavity, in pixels."""
    lines = []
    (ua, va), (ub, vb) = lv.point(0.0, -1.0), lv.point(0.0, 1.0)
    (xa, ya), (xb, yb) = geo.to_pixels(ua, va), geo.to_pixels(ub, vb)
    lines.append((float(xa), float(ya), float(xb), float(yb)))
    for t in np.linspace(-0.92, 0.92, TRACING_CHORDS):
        half = math.sqrt(max(0.0, 1.0 - t * t))
        (x1, y1), (x2, y2) = geo.to_pixels(*lv.point(-half, t)), geo.to_pixels(*lv.point(half, t))
        lines.append((float(x1), float(y1), float(x2), float(y2)))
    return lines


def _write_dynamic(root: Path, n: int, seed: int, frames: int, difficulty: float,
                   tick: Callable[[], None], holdout: float | None = None) -> dict:
    """Write EchoNet-Dynamic: n A4C videos, FileList.csv and VolumeTracings.csv."""
    videos = root / "Videos"
    videos.mkdir()
    records, tracings = [], []
    for i in range(n):
        rng = _rng(seed, "echonet_dynamic", i)
        name = _hex_name(rng)
        edv = float(np.clip(rng.lognormal(math.log(95.0), 0.35), 25.0, 350.0))
        ef = float(np.clip(rng.normal(56.0, 11.0), 8.0, 85.0))
        esv = round(edv * (1.0 - ef / 100.0), 4)
        edv = round(edv, 4)
        ef = (edv - esv) / edv * 100.0
        clip, params = render_clip("A4C", rng, frames, 112, 112, DYNAMIC_FPS, difficulty,
                                   esv_ratio=esv / edv, phase0=_start_near_ed(rng))
        write_avi(videos / f"{name}.avi", clip, DYNAMIC_FPS)
        records.append((name, _fmt(ef, 6), _fmt(esv), _fmt(edv), 112, 112, int(DYNAMIC_FPS), frames))
        geo = Geometry(params, 112, 112)
        ed, es = _ed_es_frames(params, frames, DYNAMIC_FPS)
        for frame in sorted({ed, es}):
            lv = scene_at(params, frame / DYNAMIC_FPS).landmarks["LV"]
            for x1, y1, x2, y2 in _lv_tracing(geo, lv):
                tracings.append((f"{name}.avi", _fmt(x1), _fmt(y1), _fmt(x2), _fmt(y2), frame))
        tick()
    splits = _assign_splits([r[0] for r in records], _rng(seed, "echonet_dynamic", -1), *_fractions(holdout, 0.125))
    rows = [(*r, splits[r[0]].upper()) for r in records]
    _write_csv(root / "FileList.csv", DYNAMIC_FILELIST_COLUMNS, rows)
    _write_csv(root / "VolumeTracings.csv", DYNAMIC_TRACING_COLUMNS, tracings)
    return {"path": str(root), "videos": n, "views": {"A4C": n}, "frames": n * frames,
            "splits": _count(s.upper() for s in splits.values())}


# ---------------------------------------------------------------------------------------------
# EchoNet-LVH
# ---------------------------------------------------------------------------------------------


def _plax_measurements(geo: Geometry, params: ClipParams, frame: int, fps: float,
                       diastole: bool) -> list[tuple[str, float, tuple[float, float, float, float]]]:
    """Septum, LV internal diameter and posterior wall calipers across the PLAX LV, in pixels."""
    scene = scene_at(params, frame / fps)
    lv = scene.landmarks["LV"]
    wall_rv = scene.landmarks["RV"]
    s = 0.45  # towards the base, at the mitral leaflet tips
    top_in, bot_in = lv.point(s, -1.0), lv.point(s, 1.0)
    # septum: from the RV blood pool's lower edge down to the LV cavity
    rv_bottom_v = wall_rv.cv + wall_rv.av
    sept_top = (top_in[0], min(rv_bottom_v, top_in[1] - 0.01))
    wall_t = 0.038 * params.anatomy.wall * params.anatomy.size * (1 + 0.35 * (0 if diastole else 1))
    post_bot = (bot_in[0], bot_in[1] + wall_t)
    cm = CM_PER_DEPTH / geo.depth_px
    out = []
    items = [("LVIDd" if diastole else "LVIDs", top_in, bot_in)]
    if diastole:
        items = [("IVSd", sept_top, top_in), items[0], ("LVPWd", bot_in, post_bot)]
    for calc, a, b in items:
        (x1, y1), (x2, y2) = geo.to_pixels(*a), geo.to_pixels(*b)
        length_cm = float(math.hypot(x2 - x1, y2 - y1)) * cm
        out.append((calc, length_cm, (float(x1), float(x2), float(y1), float(y2))))
    return out


def _write_lvh(root: Path, n: int, seed: int, frames: int, difficulty: float,
               tick: Callable[[], None], holdout: float | None = None) -> dict:
    """Write EchoNet-LVH: n PLAX videos at varying native sizes in Batch1..4, MeasurementsList.csv."""
    for b in range(1, 5):
        (root / f"Batch{b}").mkdir()
    videos, sizes = [], set()
    size_order = _rng(seed, "echonet_lvh", -1, 1).permutation(len(LVH_SIZES))  # sizes always vary
    for i in range(n):
        rng = _rng(seed, "echonet_lvh", i)
        name = _hex_name(rng)
        w, h = LVH_SIZES[int(size_order[i % len(LVH_SIZES)])]
        fps = LVH_FPS[int(rng.integers(len(LVH_FPS)))]
        batch = 1 + i % 4
        clip, params = render_clip("PLAX", rng, frames, h, w, fps, difficulty, phase0=_start_near_ed(rng))
        write_avi(root / f"Batch{batch}" / f"{name}.avi", clip, fps)
        ed, es = _ed_es_frames(params, frames, fps)
        geo = Geometry(params, h, w)
        meas = _plax_measurements(geo, params, ed, fps, True) + _plax_measurements(geo, params, es, fps,
                                                                                   False)
        frames_of = {c: (ed if c.endswith("d") else es) for c, _, _ in meas}
        videos.append((name, w, h, fps, meas, frames_of))
        sizes.add((w, h))
        tick()
    splits = _assign_splits([v[0] for v in videos], _rng(seed, "echonet_lvh", -1), *_fractions(holdout, 0.1))
    rows, idx = [], 0
    for name, w, h, fps, meas, frames_of in videos:
        for calc, value, (x1, x2, y1, y2) in meas:
            rows.append((idx, name, calc, _fmt(value), frames_of[calc], _fmt(x1, 2), _fmt(x2, 2),
                         _fmt(y1, 2), _fmt(y2, 2), frames, _fmt(fps, 1), w, h, splits[name]))
            idx += 1
    _write_csv(root / "MeasurementsList.csv", LVH_COLUMNS, rows)
    return {"path": str(root), "videos": n, "views": {"PLAX": n}, "frames": n * frames,
            "sizes": sorted(f"{w}x{h}" for w, h in sizes), "splits": _count(splits.values())}


# ---------------------------------------------------------------------------------------------
# TMED-2
# ---------------------------------------------------------------------------------------------


def _write_tmed(root: Path, n: int, seed: int, frames: int, difficulty: float,
                tick: Callable[[], None], holdout: float | None = None) -> dict:
    """Write TMED-2: n studies, each with stills of all four views plus a few unusable labels."""
    import cv2

    for folder in TMED_SOURCE_FOLDERS:
        (root / folder).mkdir(parents=True)
    (root / "DEV479").mkdir()
    per_view = max(4, frames // 4)
    rng0 = _rng(seed, "tmed2", -1)
    # patients: mostly one study each, some with a second study
    studies: list[tuple[int, int]] = []
    patient = int(rng0.integers(1000, 3000))
    while len(studies) < n:
        patient += int(rng0.integers(1, 9))
        studies.append((patient, 1))
        if len(studies) < n and rng0.random() < 0.2:
            studies.append((patient, 2))
    images: list[tuple[str, str, str, str, int]] = []  # query_key, view label, diagnosis, folder, patient
    view_counts: dict[str, int] = {}
    for si, (pid, study) in enumerate(studies):
        rng = _rng(seed, "tmed2", si)
        diagnosis = TMED_DIAGNOSES[int(rng.choice(5, p=[0.3, 0.2, 0.15, 0.15, 0.2]))]
        labels: list[tuple[str, str]] = []  # (view label, view drawn)
        for view in ("A2C", "A4C", "PLAX", "PSAX"):
            labels += [(view, view)] * per_view
        # images whose view the annotators left vague or unlabelled: the loader must drop these
        labels.append(("A4CorA2CorOther", str(rng.choice(["A2C", "A4C"]))))
        if rng.random() < 0.5:
            labels.append(("Not_Provided", str(rng.choice(["A2C", "A4C", "PLAX", "PSAX"]))))
        order = rng.permutation(len(labels))
        clips: dict[str, ClipParams] = {}
        for idx, j in enumerate(order):
            label, drawn = labels[int(j)]
            key = f"{pid}s{study}_{idx}.png"
            params = clips.get(label)
            if params is None or label in ("A4CorA2CorOther", "Not_Provided"):
                params = sample_clip(drawn, rng, difficulty)
                clips[label] = params
            still = render_frames(params, np.array([float(rng.uniform(0.0, 2.0))]), 112, 112)[0]
            folder = TMED_SOURCE_FOLDERS[0] if label != "Not_Provided" or rng.random() < 0.5 \
                else TMED_SOURCE_FOLDERS[1]
            if not cv2.imwrite(str(root / folder / key), still):
                raise DataError(f"{root / folder / key}: OpenCV could not write the PNG")
            images.append((key, label, diagnosis, folder, pid))
            view_counts[label] = view_counts.get(label, 0) + 1
            # the same study image filed under the other source folder as well (query_key not unique)
            if rng.random() < 0.08:
                other = TMED_SOURCE_FOLDERS[1] if folder == TMED_SOURCE_FOLDERS[0] else TMED_SOURCE_FOLDERS[0]
                cv2.imwrite(str(root / other / key), still)
                images.append((key, label, diagnosis, other, pid))
                view_counts[label] += 1
        tick()
    # make sure at least one query_key is repeated across folders, as in the real release
    if not any(folder == TMED_SOURCE_FOLDERS[1] and label != "Not_Provided"
               for _, label, _, folder, _ in images):
        key, label, diagnosis, folder, pid = images[0]
        shutil.copyfile(root / folder / key, root / TMED_SOURCE_FOLDERS[1] / key)
        images.insert(1, (key, label, diagnosis, TMED_SOURCE_FOLDERS[1], pid))
        view_counts[label] += 1
    patients = sorted({str(p) for *_, p in images}, key=int)
    fold_splits = []
    for fold in range(3):
        for attempt in range(20):  # the folds are different splittings of the same patients
            split = _assign_splits(patients, _rng(seed, "tmed2", -1, fold + 1, attempt), *_fractions(holdout, 0.15))
            if split not in fold_splits:
                break
        fold_splits.append(split)
        rows = [(k, v, d, f, split[str(p)], split[str(p)]) for k, v, d, f, p in images]
        _write_csv(root / "DEV479" / f"TMED2_fold{fold}_labeledpart.csv", TMED_FOLD_COLUMNS, rows)
    _write_csv(root / "labels_per_image.csv", TMED_LABEL_COLUMNS, [(k, v, d) for k, v, d, _, _ in images])
    return {"path": str(root), "studies": len(studies), "patients": len(patients), "images": len(images),
            "views": dict(sorted(view_counts.items())),
            "splits": [_count(s.values()) for s in fold_splits]}


def _count(values: Iterable[str]) -> dict[str, int]:
    """How often each value occurs, keys sorted."""
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return dict(sorted(out.items()))


def _fractions(holdout: float | None, usual: float) -> tuple[float, float]:
    """(val, test) fractions of a source's clips: the source's usual share, or ``holdout`` each."""
    share = usual if holdout is None else holdout
    return share, share


def synthesize(out: Path, videos_per_view: int = 50, seed: int = 0, frames: int = 32,
               difficulty: float = 0.5, progress: Callable[[int, int], None] | None = None,
               holdout: float | None = None, unlabelled: int = 0, manifest: int = 0) -> dict:
    """Write phantom EchoNet-Dynamic, EchoNet-LVH and TMED-2 folders under ``out``; return a summary.

    ``holdout`` puts that fraction of each source's clips (TMED-2: patients) in validation and the
    same fraction in test (default: each source's usual share, 10-15%): evaluation is cheap, so a
    demo can keep training small and still report on many clips. ``manifest`` > 0 also writes
    ``Own/`` with that many clips per view (a labels CSV in mixed formats), ``unlabelled`` > 0
    ``Unlabelled/`` with that many unlabelled files.
    """
    _check_arguments(videos_per_view, frames, seed, difficulty, holdout, unlabelled, manifest)
    out = Path(out)
    dirs = {name: out / sub for name, sub in
            (("echonet_dynamic", DYNAMIC_DIR), ("echonet_lvh", LVH_DIR), ("tmed2", TMED_DIR),
             ("own", OWN_DIR), ("unlabelled", UNLABELLED_DIR))
            if name not in ("own", "unlabelled") or {"own": manifest, "unlabelled": unlabelled}[name]}
    for d in dirs.values():
        _prepare_dir(d)
    tick = _ticker(3 * videos_per_view + 4 * manifest + unlabelled, progress)
    d = float(difficulty)
    sources = {
        "echonet_dynamic": _write_dynamic(dirs["echonet_dynamic"], videos_per_view, seed, frames, d, tick, holdout),
        "echonet_lvh": _write_lvh(dirs["echonet_lvh"], videos_per_view, seed, frames, d, tick, holdout),
        "tmed2": _write_tmed(dirs["tmed2"], videos_per_view, seed, frames, d, tick, holdout),
    }
    public = dict(sources)
    if manifest or unlabelled:
        from kdbench.data.synth_own import write_own, write_unlabelled

        if manifest:
            sources["own"] = write_own(dirs["own"], manifest, seed, frames, d, tick, holdout)
        if unlabelled:
            sources["unlabelled"] = write_unlabelled(dirs["unlabelled"], unlabelled, seed, frames, d, tick)
    views: dict[str, int] = {}
    for name, src in public.items():
        for view, k in src["views"].items():
            if view in ("A2C", "A4C", "PLAX", "PSAX"):
                views[view] = views.get(view, 0) + (k if name != "tmed2" else videos_per_view)
    return {"root": str(out), "seed": seed, "videos_per_view": videos_per_view, "frames": frames,
            "difficulty": d, "holdout": holdout, "sources": sources, "clips_per_view": dict(sorted(views.items()))}


def _check_arguments(videos_per_view: int, frames: int, seed: int, difficulty: float, holdout: float | None,
                     unlabelled: int, manifest: int) -> None:
    """ConfigError naming the first out-of-range argument of synthesize()."""
    if holdout is not None and not (isinstance(holdout, (int, float)) and 0.0 < holdout < 0.5):
        raise ConfigError(f"holdout = {holdout!r}; expected a fraction in (0, 0.5) (each of val and test)")
    if not isinstance(videos_per_view, int) or videos_per_view < 1:
        raise ConfigError(f"videos_per_view = {videos_per_view!r}; expected an integer >= 1")
    if not isinstance(frames, int) or frames < 2:
        raise ConfigError(f"frames = {frames!r}; expected an integer >= 2")
    if not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed = {seed!r}; expected a non-negative integer")
    if not 0.0 <= float(difficulty) <= 1.0:
        raise ConfigError(f"difficulty = {difficulty!r}; expected a number in [0, 1]")
    for name, value in (("unlabelled", unlabelled), ("manifest", manifest)):
        if not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name} = {value!r}; expected an integer >= 0")


def _ticker(total: int, progress: Callable[[int, int], None] | None) -> Callable[[], None]:
    """A tick() that reports done/total to progress (reporting 0/total at once)."""
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    if progress is not None:
        progress(0, total)
    return tick
