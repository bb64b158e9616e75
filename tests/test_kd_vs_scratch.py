"""KD vs scratch: paired_interval on the seeds' predictions (seed t without them), verdicts at the margin,
and repeated looks at a confirmation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from kdbench.manifest import write_json
from kdbench.metrics import paired_interval
from kdbench.search import statistics as st
from kdbench.search.statistics import compare_paired, confirm_looks, holm, study_margin, study_statistics, verdict

SEEDS = [0, 1, 2, 3, 4]
CLIPS, FRAMES = 40, 4  # per split
N_CLASSES = 4


class FakeStore:
    """What seed_logits / seed_hits / clip_ids read of a FrameStore: labels, sources, videos, len, path."""

    def __init__(self) -> None:
        n = 2 * CLIPS * FRAMES  # val rows first, then test rows
        clip = np.repeat(np.arange(2 * CLIPS), FRAMES)
        self.labels = clip % N_CLASSES  # one view per clip
        self.sources = np.where(clip % 2, "tmed2", "echonet_dynamic")
        self.videos = np.array([f"v{c}" for c in clip])
        self.path = Path("/fake/store")
        self._n = n

    def __len__(self) -> int:
        return self._n

    def rows(self, split: str) -> np.ndarray:
        half = CLIPS * FRAMES
        return np.arange(half) if split == "val" else np.arange(half, 2 * half)


def _logits(hits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Logits [N, 4] whose argmax is the label where ``hits`` and the next class elsewhere."""
    out = np.zeros((len(labels), N_CLASSES), dtype=np.float32)
    pred = np.where(hits, labels, (labels + 1) % N_CLASSES)
    out[np.arange(len(labels)), pred] = 3.0
    return out


def _hits(rng: np.random.Generator, p: float, seed_sd: float = 0.03) -> np.ndarray:
    """Per-frame hits [seeds, N] with a seed effect and a clip difficulty."""
    clip_p = np.clip(p + rng.normal(0, 0.1, CLIPS), 0.05, 0.99)
    seed_p = np.clip(clip_p[None, :] + rng.normal(0, seed_sd, (len(SEEDS), 1)), 0, 1)
    return rng.random((len(SEEDS), CLIPS, FRAMES)) < seed_p[:, :, None]


def _write_trial(study: Path, store: FakeStore, student: str, number: int, method: str,
                 hits: dict[str, np.ndarray], predictions: bool = True) -> dict:
    """trials/<student>/<number>/ with trial.json (per-seed accuracies from ``hits``) and, per seed, predictions.npz."""
    run = study / "trials" / student / str(number)
    seeds = {}
    for i, s in enumerate(SEEDS):
        arrays = {}
        for split in ("val", "test"):
            rows = store.rows(split)
            h = hits[split][i].reshape(-1)
            arrays[f"{split}_logits"], arrays[f"{split}_rows"] = _logits(h, store.labels[rows]), rows
        seeds[str(s)] = {"status": "ok", "val_accuracy": float(hits["val"][i].mean()),
                         "test_accuracy": float(hits["test"][i].mean())}
        (run / f"seed_{s}").mkdir(parents=True, exist_ok=True)
        if predictions:
            np.savez(run / f"seed_{s}" / "predictions.npz", **arrays)
    body = {"student": student, "trial": number, "method": method, "config_id": f"{method}-{number}", "hparams": {},
            "train": {}, "state": "complete", "seeds": seeds,
            "mean_val_accuracy": float(np.mean([v["val_accuracy"] for v in seeds.values()])),
            "mean_test_accuracy": float(np.mean([v["test_accuracy"] for v in seeds.values()]))}
    write_json(run / "trial.json", body)
    return {**body, "run_dir": str(run)}


@pytest.fixture()
def study(tmp_path: Path) -> dict:
    """A study dir: 2 students x (scratch, vanilla, dkd), 5 seeds, 160 val and 160 test frames from 40 clips each."""
    store = FakeStore()
    rng = np.random.default_rng(7)
    root = tmp_path / "runs" / "s"
    trials, hits = [], {}
    for student in ("mobilenet_v3_small", "shufflenet_v2_x1_0"):
        for number, (method, p) in enumerate((("scratch", 0.70), ("vanilla", 0.80), ("dkd", 0.69))):
            h = {split: _hits(rng, p) for split in ("val", "test")}
            hits[(student, method)] = {k: v.reshape(len(SEEDS), -1) for k, v in h.items()}
            trials.append(_write_trial(root, store, student, number, method, h, predictions=student != "shufflenet_v2_x1_0"
                                       or method != "dkd"))
    write_json(root / "study.json", {"study": "s", "seeds": SEEDS, "optuna_studies": {}, "store": "/nowhere/store",
                                     "config": {"baseline": "scratch", "objective": "val_accuracy",
                                                "raw": {"study": {"margin": 0.02}}}})
    return {"root": root, "store": store, "trials": trials, "hits": hits}


def _rows(out: dict, metric: str = "test_accuracy") -> dict:
    return {(c["student"], c["comparison"]): c for c in out["comparisons"] if c["metric"] == metric}


def test_kd_vs_scratch_is_paired_interval_on_the_test_predictions(study):
    out = study_statistics(study["trials"], SEEDS, store=study["store"], margin=0.02)
    rows = _rows(out)
    clips = np.char.add(np.char.add(study["store"].sources.astype(str), "/"), study["store"].videos.astype(str))
    test_clips = clips[study["store"].rows("test")]
    c = rows[("mobilenet_v3_small", "vanilla vs scratch")]
    ref = paired_interval(study["hits"][("mobilenet_v3_small", "vanilla")]["test"],
                          study["hits"][("mobilenet_v3_small", "scratch")]["test"], test_clips)
    assert c["engine"] == "paired_interval" and c["seeds"] == SEEDS and c["n"] == 5 and c["n_clips"] == CLIPS
    for key in ("diff", "ci_low", "ci_high", "p_value", "se", "df", "mean_a", "mean_b"):
        assert c[key] == pytest.approx(ref[key]), key
    assert c["se2_parts"] == pytest.approx(ref["se2_parts"])
    # the per-frame mean is the seeds' recorded accuracy, so mean A is what the trial says
    assert c["mean_a"] == pytest.approx(study["trials"][1]["mean_test_accuracy"])
    # validation uses the same engine on the validation frames
    v = _rows(out, "val_accuracy")[("mobilenet_v3_small", "vanilla vs scratch")]
    assert v["engine"] == "paired_interval" and v["diff"] == pytest.approx(
        study["hits"][("mobilenet_v3_small", "vanilla")]["val"].mean()
        - study["hits"][("mobilenet_v3_small", "scratch")]["val"].mean())
    # the dkd trial of the second student saved no predictions: that row alone is the seed t, and it says so
    t_row = rows[("shufflenet_v2_x1_0", "dkd vs scratch")]
    assert t_row["engine"] == "seed t" and out["engine"] == "mixed: paired_interval, seed t"
    assert "shufflenet_v2_x1_0 trial 2" in out["engine_note"] and any("engine mixed" in w for w in out["warnings"])
    # Holm over the 4 test comparisons, the keys the leaderboard reads; no P(A>B) anywhere
    ordered = [c for c in out["comparisons"] if c["metric"] == "test_accuracy"]
    assert [c["p_holm"] for c in ordered] == pytest.approx(holm([c["p_value"] for c in ordered]))
    for c in ordered:
        assert {"diff", "ci_low", "ci_high", "p_value", "p_holm", "significant", "engine", "verdict"} <= set(c)
        assert c["significant"] == (c["p_holm"] < 0.05)
    assert "p_a_gt_b" not in json.dumps(out) and "P(A" not in json.dumps(out)
    assert rows[("mobilenet_v3_small", "vanilla vs scratch")]["verdict"] == "KD better"  # +10 points


def test_without_the_store_it_falls_back_to_the_seed_t_and_says_so(study):
    out = study_statistics(study["trials"], SEEDS, store=None, store_note="the study's frame store cannot be opened")
    c = _rows(out)[("mobilenet_v3_small", "vanilla vs scratch")]
    a, b = study["trials"][1], study["trials"][0]
    ref = compare_paired([a["seeds"][str(s)]["test_accuracy"] for s in SEEDS],
                         [b["seeds"][str(s)]["test_accuracy"] for s in SEEDS], bounds=(-1.0, 1.0))
    assert c["engine"] == "seed t" and out["engine"] == "seed t"
    assert (c["diff"], c["ci_low"], c["ci_high"], c["p_value"]) == pytest.approx(
        (ref["diff"], ref["ci_low"], ref["ci_high"], ref["p_value"]))
    assert "cannot be opened" in out["engine_note"] and out["margin"] == 0.01  # no margin given: the default


def test_write_statistics_opens_the_store_named_in_study_json(study, monkeypatch):
    from kdbench.search.results import write_statistics

    opened = []
    monkeypatch.setattr(st, "open_store", lambda path: (opened.append(path), (study["store"], None))[1])
    out = write_statistics(study["root"])
    assert opened == ["/nowhere/store"] and out["margin"] == 0.02  # [study] margin of the space
    assert _rows(out)[("mobilenet_v3_small", "vanilla vs scratch")]["engine"] == "paired_interval"
    saved = json.loads((study["root"] / "statistics.json").read_text())
    assert saved["comparisons"][0]["engine"] == "paired_interval" and "margin" in saved
    monkeypatch.undo()  # the real open_store: that path does not exist on this machine, so the seed t
    out = write_statistics(study["root"])
    assert out["engine"] == "seed t" and "cannot be opened here" in out["engine_note"]


def _c(**kw) -> dict:
    base = {"n": 5, "diff": 0.0, "ci_low": -0.02, "ci_high": 0.02, "significant": False, "engine": "seed t",
            "sd_diff": 0.02, "se2_parts": None, "n_clips": 122}
    return {**base, **kw}


def test_verdicts_and_seeds_needed_by_hand():
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    target = (0.01 / z) ** 2  # se^2 that detects 0.01 with 80% power at two-sided 5%
    # seed t: se(N)^2 = sd^2 / N -> N = ceil(0.02^2 / target) = 32; at Holm's first step over 4 (1.25%): 45
    c = _c(diff=0.004, ci_low=-0.02, ci_high=0.028)
    verdict(c, 0.01, "scratch", 4)
    assert math.ceil(0.02**2 / target) == 32
    assert c["decision"] == "undecided" and c["seeds_needed"]["raw"] == 32 and c["seeds_needed"]["holm"] == 45
    assert c["verdict"] == ("undecided at this budget: about 32 seeds would detect 0.01 (80% power, two-sided 5%; "
                            "45 after Holm over 4)")
    assert "no difference" not in c["verdict"]
    # paired_interval: the seed and seed x clip parts shrink as 1/seeds, the clip part stays:
    # N = ceil((2e-5 + 1e-5) * 5 / (target - 5e-6)) = 20 (38 at 1.25%)
    c = _c(engine="paired_interval", se2_parts={"seed": 2e-5, "clip": 5e-6, "seed_x_clip": 1e-5})
    verdict(c, 0.01, "scratch", 4)
    assert (c["seeds_needed"]["raw"], c["seeds_needed"]["holm"]) == (20, 38)
    # a clip part larger than the budget: no number of seeds detects 0.01 on these test clips
    c = _c(engine="paired_interval", se2_parts={"seed": 2e-5, "clip": 2e-5, "seed_x_clip": 1e-5})
    verdict(c, 0.01, "scratch", 4)
    assert c["seeds_needed"]["raw"] is None and "more seeds alone would not detect 0.01" in c["verdict"]
    assert "122 test clips" in c["verdict"] and c["verdict"].startswith("undecided at this budget: ")
    # already powered but not inside the margin: the difference is probably small, not "none"
    c = _c(diff=0.006, ci_low=-0.001, ci_high=0.013, sd_diff=0.002, n=10)
    verdict(c, 0.01, "scratch", 1)
    assert c["decision"] == "undecided" and "10 seeds already detect 0.01" in c["verdict"]
    # significant after Holm decides by the sign; an interval inside +-delta is equivalence
    for kw, decision, words in ((dict(diff=0.03, ci_low=0.01, ci_high=0.05, significant=True), "kd_better", "KD better"),
                                (dict(diff=-0.03, ci_low=-0.05, ci_high=-0.01, significant=True), "baseline_better",
                                 "scratch better"),
                                (dict(diff=0.001, ci_low=-0.008, ci_high=0.009), "equivalent", "equivalent within +-0.01"),
                                (dict(diff=0.001, ci_low=-0.008, ci_high=0.0101), "undecided", None)):
        c = _c(**kw)
        verdict(c, 0.01, "scratch", 12)
        assert c["decision"] == decision and (words is None or c["verdict"] == words), kw
    c = _c(ci_low=None, ci_high=None, sd_diff=0.0, note="all 5 paired differences are equal (+0)")
    verdict(c, 0.01, "scratch", 12)  # no spread: no interval and nothing to plan seeds from
    assert c["verdict"] == "undecided at this budget: no interval (all 5 paired differences are equal (+0))"
    c = _c(n=1, sd_diff=None, ci_low=None, ci_high=None)
    verdict(c, 0.01, "scratch", 12)
    assert c["verdict"] == "undecided at this budget: 1 seed(s) cannot tell how much seeds vary"


def test_margin_comes_from_the_study_config():
    assert study_margin({"margin": 0.02}) == 0.02
    assert study_margin({"raw": {"study": {"margin": 0.015}}}) == 0.015
    assert study_margin({}) == study_margin(None) == study_margin({"margin": True}) == 0.01


def test_confirm_looks_are_recorded_and_counted():
    cands = [{"student": "s", "trial": 1, "config_id": "a", "roles": ["chosen"]},
             {"student": "s", "trial": 0, "config_id": "b", "roles": ["baseline"]}]
    first = confirm_looks(None, [1000, 1001, 1002], cands, now="t0")
    assert first == [{"n_seeds": 3, "seeds": [1000, 1001, 1002], "time": "t0"}]
    prev = {"candidates": cands, "looks": first, "seeds": [1000, 1001, 1002]}
    assert confirm_looks(prev, [1000, 1001, 1002], cands, now="t1") == first  # the same seeds: the same look
    second = confirm_looks(prev, [1000, 1001, 1002, 1003, 1004], cands, now="t1")
    assert [x["n_seeds"] for x in second] == [3, 5] and second[1]["time"] == "t1"
    other = [{**cands[0], "trial": 7}, cands[1]]
    assert len(confirm_looks(prev, [1000, 1001, 1002, 1003], other)) == 1  # other configurations: counting restarts
    old = {"candidates": cands, "seeds": [1000, 1001]}  # a file from before looks were recorded: one look
    assert [x["n_seeds"] for x in confirm_looks(old, [1000, 1001, 1002], cands)] == [2, 3]
    assert len(confirm_looks(prev, [1000, 1001, 1002], cands)[0]["time"]) > 0


def test_confirm_statistics_pairs_predictions_and_corrects_for_looks(study, monkeypatch):
    from kdbench.search.confirm import config_dir, confirm_statistics

    monkeypatch.setattr(st, "open_store", lambda path: (study["store"], None))
    root = study["root"]
    records = []
    for t in study["trials"][:3]:  # the first student: scratch, vanilla, dkd
        rec = {k: v for k, v in t.items() if k != "run_dir"}
        rec["roles"] = ["baseline"] if t["method"] == "scratch" else ["chosen"]
        target = config_dir(root, rec)
        target.parent.mkdir(parents=True, exist_ok=True)
        Path(t["run_dir"]).rename(target)
        records.append(rec)
    info = {"seeds": [0, 1], "config": {"baseline": "scratch", "margin": 0.02}}
    one = confirm_statistics(records, SEEDS, info, info["config"], study_dir=root, store_path="x")
    assert one["engine"] == "paired_interval" and [x["n_seeds"] for x in one["looks"]] == [5]
    assert "one look" in one["looks_note"] and one["margin"] == 0.02
    write_json(root / "confirm" / "statistics.json", {**one, "seeds": SEEDS[:3],
                                                      "looks": [{"n_seeds": 3, "seeds": SEEDS[:3], "time": "t0"}]})
    two = confirm_statistics(records, SEEDS, info, info["config"], study_dir=root, store_path="x")
    assert [x["n_seeds"] for x in two["looks"]] == [3, 5] and "2 looks" in two["correction"]
    assert "multiplied by 2" in two["looks_note"] and "13%" in two["looks_note"]
    for a, b in zip(one["comparisons"], two["comparisons"]):
        assert b["p_holm"] == pytest.approx(min(1.0, 2 * a["p_holm"]))
        assert b["significant"] == (b["p_holm"] < 0.05)
    # without the study dir (an older caller): the seed t
    assert confirm_statistics(records, SEEDS, info, info["config"])["engine"] == "seed t"
