"""Known-answer test of the whole decision procedure (issue 20, item 5): fixed 5 seeds vs racing.

    python tests/benchmarks/bench_decisions.py [--quick] [--replicates 1000] [--margins 0.02 0.01 0.03 0.05]
    python tests/benchmarks/bench_decisions.py --build [--workers 2] [--seeds 30]   # the ground truth, once

**Ground truth, by brute force, once** (``--build``; 478 s with 2 workers on a 2-core CPU, stored in
tests/benchmarks/data/decisions_truth.npz, 15 kB; retraining a run reproduces its hits exactly): a phantom store
made like ``kdbench demo``'s (``synthesize`` 60 videos per view, 8 frames, holdout 0.35; ``prepare_store`` at
32 px, 4 frames per video: validation 138 clips, 552 frames), and four configurations of mobilenet_v3_small
from scratch trained by the real path (``kdbench.train.train_student``, batch 32, CPU) on seeds 0..29 each:
3 epochs at lr 2e-3 and at lr 2.5e-3 (a close pair), 2 epochs (a few points below) and 1 epoch (clearly below).
Stored: every run's validation hits [configs, seeds, frames] (argmax of its kept epoch's logits == label), the
clip ids, validation accuracy and seconds. The truth of a configuration is its 30-seed mean accuracy on these
frames. Per-run results are kept under ``--work`` so an interrupted build resumes.

**Replay** (``--replicates`` studies per margin): each draws 20 seed indices with replacement from the 30, the
same for every configuration (seed i of two configurations are the same training seed, so pairing is kept), and
runs on them

- **fixed**: the leaderboard's rule on the first 5 drawn seeds: the best = highest mean, every other
  configuration ``kdbench.leaderboard.decisions.compare``d with it at 95% (best / equivalent / worse /
  undecided at the margin);
- **the search's race**: ``kdbench.search.racing.race`` with the settings ``[study] seeds = {min = 3, max = 10}``
  gets (``kdbench.search.space.RACE_DEFAULTS``: ``front`` boundary, futility stop on), ``observe`` reading the
  drawn seed's stored hits;
- for comparison, races of 3 to 20 seeds: the ``front`` boundary (half of alpha at the first look), ``even``
  (alpha / 18 at every look), and ``front`` with the futility stop.

Reported per procedure and margin delta (each verdict against the best the procedure chose, truth = 30-seed means):
``wrong worse | within delta``: "worse" where the true difference (best - config) is within +-delta (goal <= 5%),
and ``sign errors``: "worse" where the config is truly at least as good; ``wrong equiv``: "equivalent" where the
true difference is >= delta; ``power >= 2 delta``: "worse" where the true difference is >= 2 delta (goal >= 80%);
``best ok``: the chosen best is truly within delta of the truly best (goal >= 90%); ``recommended ok``: the same
for the recommendation, the cheapest configuration (fewest epochs) labelled best or equivalent, as the leaderboard
recommends the fastest (it can pick a truly worse one only through a wrong "equivalent"); ``seed-runs``: mean
seed-runs spent, and racing's against the fixed grid (4 configurations x 5 seeds; goal <= 1.0x).

The headline margin 0.02 was chosen from a 6-seed pilot (seeds 1000-1005, not in the truth) so that the
study has a pair within delta and pairs beyond 2 delta; the other margins show how the answer moves with it.
The replay takes ~90 s for 1,000 studies x 4 margins (``--quick``: 200 studies at 0.02, ~5 s).

Result (1,000 studies per margin, 127 s at load 0.8 on 2 cores; truth: 1ep -14.5, 2ep -5.7, 3ep -1.2 points
below 3ep-lr2.5e-3). At the headline delta 0.02 **the search's race (3-10, futility) meets all four goals**:
3.3% "worse" verdicts within delta (fixed 5 seeds: 7.1%), power 82.7% at >= 2 delta (84.8%), best and
recommendation truly within delta 100% (100%), 0.91x the fixed grid's seed-runs (18.3 of 20). Racing to 20
seeds without the futility stop has 98.5% power but costs 2.6x: the top pair (1.2 points apart, paired SD 3.6
points) can be settled at delta 0.02 by neither 5 nor 20 seeds, and undecided contenders race to max; the
futility stop ends such a comparison as soon as max would not settle it. Two limits, shown by the other margins:
at delta 0.01 (the top pair is 1.2 points apart, beyond delta) neither procedure picks a best within delta 90% of
the time (race 73%, fixed 79%); at delta 0.05 the "worse | within delta" rate is 14% (fixed 17%) because a
truly worse configuration 1.2 points below counts as "within delta" there (sign errors stay at 0.5-1%).

**``--world demo``** (``kdbench demo``'s own phantom and recipe: 16-frame clips, 8 epochs, warm-up + cosine, weight
average 0.99, 4 augmented versions; configurations at 2, 4 and 8 epochs and 8 epochs at lr 2.5e-3; truth in
data/decisions_truth_demo.npz, 20 seeds, built in 928 s with 1 worker at load 2-5) with ``--at-twice-margin``
adds the runner-up made exactly 2 x margin worse (the same count of its hits turned to misses on every seed, so
its pairing with the best keeps the real seed noise) and reports the power to call it worse, per margin (1,000
studies each): fixed 5 seeds 17.5% at 0.01, 42.7% at 0.015, 53.0% at 0.02, 76.0% at 0.025, 89.9% at 0.03 (the
race 3-10: 13.4 / 40.8 / 53.3 / 73.0 / 87.9%). The demo decides at 0.03, the smallest with >= 80%.

The bootstrap world keeps the 138 validation clips fixed while paired_interval's interval is for new seeds and new
clips, so both procedures are a little conservative here; the seeds are resampled from 30 real ones, so the seed
spread (and its skew: collapsed seeds included) is the real training path's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from kdbench.search.space import RACE_DEFAULTS  # the search's race when `seeds = {min, max}` sets nothing else

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data" / "decisions_truth.npz"
WORK = Path(tempfile.gettempdir()) / "kdbench_bench_decisions"
STUDENT = "mobilenet_v3_small"
CONFIGS = [  # name, epochs, lr; listed cheapest first (the recommendation's order)
    {"name": "mnv3s-scratch-1ep", "epochs": 1, "lr": 2e-3},
    {"name": "mnv3s-scratch-2ep", "epochs": 2, "lr": 2e-3},
    {"name": "mnv3s-scratch-3ep", "epochs": 3, "lr": 2e-3},
    {"name": "mnv3s-scratch-3ep-lr2.5e-3", "epochs": 3, "lr": 2.5e-3},
]
PHANTOM = {"videos_per_view": 60, "frames": 8, "holdout": 0.35, "size": 32, "frames_per_video": 4, "seed": 0}
TRAIN = {"batch_size": 32, "device": "cpu", "fast_path": "off"}
DEMO_DATA = DATA.with_name("decisions_truth_demo.npz")


def use_demo_world() -> None:
    """Switch the module to the ``--world demo`` truth: ``kdbench demo``'s own phantom and recipe (its data, batch,
    learning rate, schedule, weight average and augmentation), mobilenet_v3_small from scratch at the demo's epochs E, at E with
    1.25x the learning rate (a close pair), at E/2 and at E/4 (below)."""
    from kdbench.cli.demo_plan import SIZES

    global CONFIGS, PHANTOM, TRAIN, WORK, DATA
    size = SIZES["default"]
    e, aug = size.epochs, f"-aug{size.augment_versions}" if size.augment_versions else ""
    CONFIGS = [{"name": f"mnv3s-scratch-{max(1, e // 4)}ep{aug}", "epochs": max(1, e // 4), "lr": size.lr},
               {"name": f"mnv3s-scratch-{max(1, e // 2)}ep{aug}", "epochs": max(1, e // 2), "lr": size.lr},
               {"name": f"mnv3s-scratch-{e}ep{aug}", "epochs": e, "lr": size.lr},
               {"name": f"mnv3s-scratch-{e}ep{aug}-lr{1.25 * size.lr:g}", "epochs": e, "lr": 1.25 * size.lr}]
    PHANTOM = {"videos_per_view": size.videos_per_view, "frames": size.frames, "holdout": size.holdout,
               "size": size.image_size, "frames_per_video": size.frames_per_video, "seed": 0}
    TRAIN = {"batch_size": size.batch_size, "device": "cpu", "fast_path": "off", **size.recipe.to_dict(),
             "augment_versions": size.augment_versions}
    WORK, DATA = WORK.with_name(WORK.name + "_demo"), DEMO_DATA
FIXED_SEEDS, RACE_MIN, RACE_MAX, DRAWS = 5, 3, 20, 20
RACES = {"search's race 3-10": {**RACE_DEFAULTS, "boundary": "front"},  # `seeds = {min = 3, max = 10}`
         f"race {RACE_MIN}-{RACE_MAX} front": {"boundary": "front"},
         f"race {RACE_MIN}-{RACE_MAX} even": {"boundary": "even"},
         f"race {RACE_MIN}-{RACE_MAX} futility": {"boundary": "front", "futility": True}}


# ---- the ground truth: brute force on the real training path --------------------------------------------


def phantom_store(work: Path) -> Path:
    """The phantom frame store (made once under ``work``)."""
    from kdbench.data.prepare import prepare_store
    from kdbench.data.synth import DYNAMIC_DIR, LVH_DIR, TMED_DIR, synthesize

    store = work / "store"
    if not (store / "manifest.json").is_file():
        synthesize(work / "raw", videos_per_view=PHANTOM["videos_per_view"], seed=PHANTOM["seed"],
                   frames=PHANTOM["frames"], holdout=PHANTOM["holdout"])
        prepare_store({"echonet_dynamic": work / "raw" / DYNAMIC_DIR, "echonet_lvh": work / "raw" / LVH_DIR,
                       "tmed2": work / "raw" / TMED_DIR}, store, size=PHANTOM["size"],
                      frames_per_video=PHANTOM["frames_per_video"], workers=1)
    return store


def train_one(task: tuple) -> tuple[str, int, float]:
    """Train one configuration on one seed (in a worker process); its validation hits go to ``work/runs``."""
    import torch

    from kdbench.data.store import FrameStore
    from kdbench.train import TrainConfig, train_student

    name, seed, work = task[0], task[1], Path(task[2])
    if len(task) > 3 and task[3] == "demo":  # a spawned worker starts from the module's legacy world
        use_demo_world()
    out = work / "runs" / f"{name}_seed{seed}.npz"
    if out.is_file():
        return name, seed, 0.0
    torch.set_num_threads(1)
    spec = next(c for c in CONFIGS if c["name"] == name)
    store = FrameStore.open(work / "store")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        config = TrainConfig(epochs=spec["epochs"], patience=spec["epochs"], lr=spec["lr"], seed=seed, **TRAIN)
        result = train_student(store, STUDENT, "scratch", {}, config, out_dir=Path(run_dir), progress=False)
        with np.load(Path(run_dir) / "predictions.npz") as doc:
            logits, rows = doc["val_logits"], doc["val_rows"]
    hits = logits.argmax(axis=1) == store.labels[rows]
    seconds = time.perf_counter() - start
    np.savez(out.with_suffix(".tmp.npz"), hits=hits, rows=rows, val_accuracy=result.metrics["val"]["accuracy"],
             seconds=seconds, status=result.status)
    os.replace(out.with_suffix(".tmp.npz"), out)
    return name, seed, seconds


def build_truth(seeds: int, workers: int, work: Path, out: Path) -> None:
    """Train every configuration on seeds 0..seeds-1 (resumable under ``work``) and store the hits in ``out``."""
    import multiprocessing as mp

    from kdbench.data.store import FrameStore
    from kdbench.metrics import clip_ids

    start = time.perf_counter()
    (work / "runs").mkdir(parents=True, exist_ok=True)
    store = FrameStore.open(phantom_store(work))
    world = "demo" if DATA == DEMO_DATA else "legacy"
    tasks = [(c["name"], s, str(work), world) for s in range(seeds) for c in reversed(CONFIGS)]
    done = 0
    with mp.get_context("spawn").Pool(workers) as pool:
        for name, seed, secs in pool.imap_unordered(train_one, tasks):
            done += 1
            print(f"  [{done}/{len(tasks)}] {name} seed {seed}: {secs:.1f} s "
                  f"({time.perf_counter() - start:.0f} s elapsed)", flush=True)
    runs = [[np.load(work / "runs" / f"{c['name']}_seed{s}.npz") for s in range(seeds)] for c in CONFIGS]
    rows = runs[0][0]["rows"]
    assert all(np.array_equal(r["rows"], rows) for rr in runs for r in rr), "runs scored different frames"
    meta = {"student": STUDENT, "method": "scratch", "configs": CONFIGS, "phantom": PHANTOM, "train": TRAIN,
            "seeds": list(range(seeds)), "build_seconds": round(time.perf_counter() - start, 1), "workers": workers,
            "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version(), "torch": __import__("torch").__version__,
            "store_hash": store.store_hash, "statuses": sorted({str(r["status"]) for rr in runs for r in rr})}
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, hits=np.array([[r["hits"] for r in rr] for rr in runs], dtype=bool),
                        clip_ids=clip_ids(store, rows), rows=rows, names=np.array([c["name"] for c in CONFIGS]),
                        val_accuracy=np.array([[float(r["val_accuracy"]) for r in rr] for rr in runs]),
                        seconds=np.array([[float(r["seconds"]) for r in rr] for rr in runs]),
                        meta=np.array(json.dumps(meta)))
    print(f"ground truth: {out} ({out.stat().st_size / 1e3:.0f} kB), built in {meta['build_seconds']:.0f} s")


def load_truth(path: Path) -> dict[str, Any]:
    """The stored ground truth: hits [C, S, N] bool, clip ids, names, meta."""
    with np.load(path, allow_pickle=False) as doc:
        out = {k: doc[k] for k in doc.files}
    out["meta"] = json.loads(str(out["meta"]))
    out["names"] = [str(n) for n in out["names"]]
    return out



def add_shifted(t: dict[str, Any], gap: float, seed: int = 7) -> tuple[dict[str, Any], int]:
    """The truth plus one known-answer configuration exactly ``gap`` below the best: the closest real runner-up
    (its own seeds, so its pairing with the best keeps the real seed-to-seed noise) with the same number of its hits
    turned to misses on every seed, at random frames. Returns the new truth and the new configuration's index."""
    hits = t["hits"]
    means = hits.mean(axis=(1, 2))
    best = int(np.argmax(means))
    base = int(np.argmin(np.where(np.arange(len(means)) == best, np.inf, means.max() - means)))
    flip = int(round((means[base] - (means[best] - gap)) * hits.shape[2]))
    if flip <= 0:
        raise SystemExit(f"the runner-up is already {means[best] - means[base]:.4f} below the best, beyond {gap:g}")
    rng = np.random.default_rng(seed)
    shifted = hits[base].copy()
    for s in range(shifted.shape[0]):
        correct = np.flatnonzero(shifted[s])
        shifted[s, rng.choice(correct, size=flip, replace=False)] = False
    out = dict(t)
    out["hits"] = np.concatenate([hits, shifted[None]], axis=0)
    out["names"] = [*t["names"], f"{t['names'][base]}-minus{gap:g}"]
    return out, len(t["names"])


# ---- the replay ------------------------------------------------------------------------------------------


def fixed_procedure(hits: np.ndarray, clips: np.ndarray, margin: float) -> dict[str, Any]:
    """The leaderboard's rule on [C, seeds, N] hits: the best, each verdict against it, seed-runs."""
    from kdbench.leaderboard.decisions import ValHits, compare

    n_cfg, n_seeds, n = hits.shape
    best = int(np.argmax(hits.mean(axis=(1, 2))))  # ties: the first (cheapest) configuration
    rows, seeds = np.arange(n), list(range(n_seeds))
    vals = [ValHits(hits[c], rows, clips, seeds) for c in range(n_cfg)]
    verdicts = ["best" if c == best else compare(vals[best], vals[c], margin).verdict for c in range(n_cfg)]
    return {"best": best, "verdicts": verdicts, "against": [best] * n_cfg, "seeds": [n_seeds] * n_cfg}


def race_procedure(hits: np.ndarray, clips: np.ndarray, margin: float, names: list[str],
                   **settings: Any) -> dict[str, Any]:
    """``race`` on [C, draws, N] hits (seed index i = the i-th drawn seed), in fixed_procedure's terms."""
    from kdbench.search.racing import RaceSettings, race

    lo, hi = settings.pop("min_seeds", RACE_MIN), settings.pop("max_seeds", RACE_MAX)
    res = race(names, lambda c, i: hits[names.index(c), i], clips, RaceSettings(lo, hi, margin, **settings))
    seeds = res.seeds()
    return {"best": names.index(res.best), "verdicts": [res.final[c].verdict for c in names],
            "against": [names.index(res.final[c].against) for c in names], "seeds": [seeds[c] for c in names]}


def score(truth: np.ndarray, run: dict[str, Any], margin: float) -> dict[str, float]:
    """Counts of one replicate: each verdict against the best it was compared with (truth = 30-seed means)."""
    top, out = truth.max(), {"runs": 1, "seed_runs": sum(run["seeds"])}
    for c, v in enumerate(run["verdicts"]):
        if v == "best":
            continue
        gap = truth[run["against"][c]] - truth[c]  # true (best - config)
        for key, hit, cond in (("within", v == "worse", abs(gap) < margin), ("sign", v == "worse", gap <= 0),
                               ("equiv", v == "equivalent", abs(gap) >= margin),
                               ("power", v == "worse", gap >= 2 * margin), ("undecided", v == "undecided", True)):
            if cond:
                out[key + "_n"] = out.get(key + "_n", 0) + 1
                out[key] = out.get(key, 0) + int(hit)
    rec = next(c for c, v in enumerate(run["verdicts"]) if v in ("best", "equivalent"))  # cheapest that keeps it
    out.update(best_ok=int(top - truth[run["best"]] < margin), rec_ok=int(top - truth[rec] < margin))
    return out


def replay(t: dict[str, Any], replicates: int, margins: list[float], seed: int) -> dict[str, Any]:
    """Every procedure on the same resampled studies: totals per (procedure, margin) and per configuration."""
    hits, clips, names = t["hits"], t["clip_ids"], t["names"]
    truth = hits.mean(axis=(1, 2))
    draws = np.random.default_rng(seed).integers(0, hits.shape[1], size=(replicates, DRAWS))
    totals: dict[tuple, dict[str, float]] = {}
    per_cfg: dict[tuple, np.ndarray] = {}  # [C, 5]: worse, equivalent, undecided, best, seeds (sums)
    for r, draw in enumerate(draws):
        study = hits[:, draw]  # [C, DRAWS, N]: the same drawn seeds for every configuration
        for margin in margins:
            runs = {"fixed 5 seeds": fixed_procedure(study[:, :FIXED_SEEDS], clips, margin)}
            for label, settings in RACES.items():
                runs[label] = race_procedure(study, clips, margin, names, **dict(settings))
            for proc, run in runs.items():
                acc = totals.setdefault((proc, margin), {})
                for k, v in score(truth, run, margin).items():
                    acc[k] = acc.get(k, 0) + v
                cell = per_cfg.setdefault((proc, margin), np.zeros((len(names), 5)))
                for c, v in enumerate(run["verdicts"]):
                    cell[c, ("worse", "equivalent", "undecided", "best").index(v)] += 1
                    cell[c, 4] += run["seeds"][c]
        if (r + 1) % max(1, replicates // 10) == 0:
            print(f"  replayed {r + 1}/{replicates}", file=sys.stderr, flush=True)
    return {"truth": truth, "totals": totals, "per_cfg": per_cfg}


def _rate(acc: dict[str, float], key: str) -> str:
    n = acc.get(key + "_n", 0)
    return f"{acc.get(key, 0) / n:6.1%} ({int(n):>4})" if n else f"{'-':>6} ({0:>4})"


def print_truth(t: dict[str, Any]) -> None:
    """The ground truth: each configuration's 30-seed mean, seed SD, gap to the best, paired SD of that gap."""
    hits, names = t["hits"], t["names"]
    per_seed = hits.mean(axis=2)  # [C, S]
    truth = per_seed.mean(axis=1)
    b = int(np.argmax(truth))
    print(f"\nGround truth: {hits.shape[1]} seeds x {hits.shape[2]} validation frames "
          f"({len(np.unique(t['clip_ids']))} clips); built in {t['meta']['build_seconds']:.0f} s "
          f"with {t['meta']['workers']} workers")
    print(f"{'configuration':<28} {'mean':>7} {'seed SD':>8} {'best - it':>10} {'SD of paired gap':>17} {'s/run':>6}")
    for c, name in enumerate(names):
        gap = per_seed[b] - per_seed[c]
        print(f"{name:<28} {truth[c]:7.4f} {per_seed[c].std(ddof=1):8.4f} {truth[b] - truth[c]:+10.4f} "
              f"{gap.std(ddof=1):17.4f} {t['seconds'][c].mean():6.1f}")


def print_results(res: dict[str, Any], names: list[str], margins: list[float]) -> None:
    """The known-answer table per margin, then per configuration at the first margin."""
    grid = len(names) * FIXED_SEEDS
    head = (f"{'procedure':<20} {'worse|within d':>15} {'sign errors':>14} {'equiv|>=d':>14} {'power|>=2d':>14} "
            f"{'best ok':>8} {'rec ok':>7} {'undecided':>14} {'seed-runs':>10} {'vs grid':>8}")
    for margin in margins:
        print(f"\nmargin delta = {margin:g} (2 delta = {2 * margin:g}); goals: worse|within <= 5%, power >= 80%, "
              f"best/rec ok >= 90%, seed-runs <= 1.0x the fixed grid ({grid})")
        print(head)
        for (proc, m), acc in res["totals"].items():
            if m != margin:
                continue
            runs = acc["runs"]
            print(f"{proc:<20} {_rate(acc, 'within'):>15} {_rate(acc, 'sign'):>14} {_rate(acc, 'equiv'):>14} "
                  f"{_rate(acc, 'power'):>14} {acc['best_ok'] / runs:8.1%} {acc['rec_ok'] / runs:7.1%} "
                  f"{_rate(acc, 'undecided'):>14} {acc['seed_runs'] / runs:10.1f} "
                  f"{acc['seed_runs'] / runs / grid:7.2f}x")
    margin, truth = margins[0], res["truth"]
    print(f"\nPer configuration at delta = {margin:g}: share of studies with each verdict (worse / equivalent / "
          "undecided / best) and mean seeds")
    for (proc, m), cell in res["per_cfg"].items():
        if m != margin:
            continue
        runs = res["totals"][(proc, m)]["runs"]
        print(f"  {proc}")
        for c, name in enumerate(names):
            w, e, u, b, seeds = cell[c] / runs
            print(f"    {name:<28} true gap {truth.max() - truth[c]:+.4f}: worse {w:6.1%}  equiv {e:6.1%}  "
                  f"undecided {u:6.1%}  best {b:6.1%}  seeds {seeds:5.1f}")


def replay_at_twice_margin(t: dict[str, Any], args: argparse.Namespace) -> int:
    """Power at exactly 2 x margin: for each margin, the truth plus a configuration 2 x margin below the best."""
    replicates = args.replicates or (200 if args.quick else 1000)
    print_truth(t)
    print(f"\nPower at a true difference of exactly 2 x margin ({replicates} resampled studies per margin; the "
          f"fixed procedure on {FIXED_SEEDS} seeds, the search's race 3-10):")
    print(f"{'margin':>7} {'2 x margin':>10} {'fixed: worse':>13} {'race: worse':>12} {'fixed: worse|within':>20} "
          f"{'best ok':>8}")
    for margin in args.margins:
        shifted, index = add_shifted(t, 2 * margin + 1e-3)
        res = replay(shifted, replicates, [margin], args.rng)
        cells = {proc: res["per_cfg"][(proc, margin)][index] / res["totals"][(proc, margin)]["runs"]
                 for proc in ("fixed 5 seeds", "search's race 3-10")}
        fixed = res["totals"][("fixed 5 seeds", margin)]
        fixed_worse, race_worse = cells["fixed 5 seeds"][0], cells["search's race 3-10"][0]
        print(f"{margin:7g} {2 * margin:10g} {fixed_worse:13.1%} {race_worse:12.1%} "
              f"{_rate(fixed, 'within'):>20} {fixed['best_ok'] / fixed['runs']:8.1%}")
    return 0


def _set_fixed_seeds(n: int) -> None:
    global FIXED_SEEDS
    FIXED_SEEDS = n


def main(argv: list[str] | None = None) -> int:
    """Build the truth if asked (or missing), then replay."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", action="store_true",
                   help="train the ground truth (resumes from --work; delete that folder to start over)")
    p.add_argument("--seeds", type=int, default=30)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--work", type=Path, default=WORK)
    p.add_argument("--truth", type=Path, default=DATA)
    p.add_argument("--quick", action="store_true", help="200 replicates at the first margin only")
    p.add_argument("--replicates", type=int, default=None, help="resampled studies per margin (default 1000)")
    p.add_argument("--margins", type=float, nargs="+", default=[0.02, 0.01, 0.03, 0.05],
                   help="equivalence margins; the first (0.02, chosen from a pilot before the truth) is the headline")
    p.add_argument("--rng", type=int, default=20, help="seed of the resampling")
    p.add_argument("--world", choices=("legacy", "demo"), default="legacy",
                   help="legacy: the truth described above (3-epoch recipe of kdbench 0.7); demo: kdbench demo's own "
                        "phantom and recipe (tests/benchmarks/data/decisions_truth_demo.npz)")
    p.add_argument("--fixed-seeds", type=int, default=FIXED_SEEDS, help="seeds of the fixed procedure (the demo's)")
    p.add_argument("--at-twice-margin", action="store_true",
                   help="per margin, add a known-answer configuration exactly 2 x margin below the best (the "
                        "runner-up with hits turned to misses) and report the power to call it worse")
    args = p.parse_args(argv)
    if args.world == "demo":
        use_demo_world()
        if args.truth == DEMO_DATA.with_name("decisions_truth.npz"):
            args.truth, args.work = DATA, WORK
    _set_fixed_seeds(args.fixed_seeds)
    if args.build or not args.truth.is_file():
        build_truth(args.seeds, args.workers, args.work, args.truth)
    t = load_truth(args.truth)
    if args.at_twice_margin:
        return replay_at_twice_margin(t, args)
    replicates = args.replicates or (200 if args.quick else 1000)
    margins = args.margins[:1] if args.quick else args.margins
    start = time.perf_counter()
    res = replay(t, replicates, margins, args.rng)
    print_truth(t)
    print(f"\n{replicates} resampled studies per margin (seeds drawn with replacement from {t['hits'].shape[1]}); "
          f"replay took {time.perf_counter() - start:.0f} s")
    print_results(res, t["names"], margins)
    return 0


if __name__ == "__main__":
    sys.exit(main())
