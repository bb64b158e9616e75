"""Known-answer tests of kdbench.search.racing with synthetic, seeded oracles."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import special

from kdbench.errors import ConfigError
from kdbench.search.racing import RaceResult, RaceSettings, race

CLIPS, FRAMES = 100, 4
CLIP_IDS = np.repeat(np.arange(CLIPS), FRAMES)


class Oracle:
    """Per-frame hits of configurations that differ by a logit shift: seed effect, shared clip and frame
    difficulty, seed x clip noise; deterministic per (configuration, seed index). Counts its calls."""

    def __init__(self, shifts: dict[str, float], seed_sd: float = 0.2, base: int = 0) -> None:
        rng = np.random.default_rng(base)
        self.shifts, self.seed_sd, self.base = shifts, seed_sd, base
        self.difficulty = np.repeat(rng.normal(0, 1.0, CLIPS), FRAMES) + rng.normal(0, 0.5, CLIPS * FRAMES)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, config: str, seed: int) -> np.ndarray:
        self.calls.append((config, seed))
        rng = np.random.default_rng([self.base, list(self.shifts).index(config), seed])
        logit = 1.9 + self.shifts[config] + rng.normal(0, self.seed_sd) + self.difficulty \
            + np.repeat(rng.normal(0, 0.4, CLIPS), FRAMES)
        return (rng.random(CLIPS * FRAMES) < special.expit(logit)).astype(np.int8)

    def seeds_of(self, config: str) -> list[int]:
        return [s for c, s in self.calls if c == config]


def test_clearly_worse_config_stops_at_min_seeds():
    oracle = Oracle({"a": 0.0, "worse": -2.0})
    res = race(["a", "worse"], oracle, CLIP_IDS, RaceSettings(3, 20, margin=0.01))
    assert res.verdicts() == {"a": "best", "worse": "worse"}
    assert res.final["worse"].look == 1 and res.final["worse"].n_seeds == 3
    assert oracle.seeds_of("worse") == [0, 1, 2] and res.seed_runs == 6
    assert res.stop_reason == "nothing undecided"


def test_identical_copy_of_the_best_is_equivalent():
    same = Oracle({"a": 0.0, "b": 0.0})  # the same distribution, other draws
    res = race(["a", "b"], same, CLIP_IDS, RaceSettings(3, 20, margin=0.1))
    assert sorted(res.verdicts().values()) == ["best", "equivalent"]
    copy = Oracle({"a": 0.0})  # the very same hits: no spread, equivalent without an interval
    res = race(["a", "b"], lambda c, s: copy("a", s), CLIP_IDS, RaceSettings(3, 20, margin=0.01))
    assert res.verdicts() == {"a": "best", "b": "equivalent"} and res.seed_runs == 6


def test_close_contender_gets_more_seeds_than_clearly_worse_one():
    oracle = Oracle({"a": 0.0, "close": -0.1, "far": -2.0})
    res = race(["a", "close", "far"], oracle, CLIP_IDS, RaceSettings(3, 20, margin=0.01))
    seeds = res.seeds()
    assert seeds["far"] == 3 and seeds["close"] > seeds["far"]
    assert res.verdicts()["far"] == "worse" and res.final["far"].against in ("a", "close")
    assert res.best in ("a", "close") and res.verdicts()[res.best] == "best"
    assert all(lk.n_seeds == 3 + i for i, lk in enumerate(res.looks))  # one seed more per look


@pytest.mark.parametrize("low, high", [(2, 2), (3, 5), (4, 11)])
def test_max_seeds_is_never_exceeded(low, high):
    oracle = Oracle({"a": 0.0, "b": 0.0, "c": 0.0})  # undecidable at a tiny margin: runs to max
    res = race(["a", "b", "c"], oracle, CLIP_IDS, RaceSettings(low, high, margin=0.001))
    assert max(s for _, s in oracle.calls) == high - 1 and max(res.seeds().values()) == high
    assert len(oracle.calls) == len(set(oracle.calls)) == res.seed_runs
    assert len(res.looks) <= high - low + 1 and "study.seeds.max" in res.stop_reason
    k = high - low + 1
    assert res.looks[-1].level == pytest.approx(0.95 if k == 1 else 1 - 0.025 / (k - 1))


def test_futility_stops_a_tie_the_margin_cannot_settle():
    oracle = Oracle({"a": 0.0, "b": 0.0, "far": -2.0})
    res = race(["a", "b", "far"], oracle, CLIP_IDS, RaceSettings(3, 20, margin=0.001, futility=True))
    assert sorted([res.verdicts()["a"], res.verdicts()["b"]]) == ["best", "undecided"]
    assert res.verdicts()["far"] == "worse"
    tie = "b" if res.best == "a" else "a"
    assert res.final[tie].futile and max(res.seeds().values()) < 20 and "max_seeds would not settle" in res.stop_reason
    settings = RaceSettings(3, 20, margin=0.01, futility=True)
    clear = race(["a", "far"], Oracle({"a": 0.0, "far": -2.0}), CLIP_IDS, settings)
    assert clear.verdicts() == {"a": "best", "far": "worse"} and not clear.final["far"].futile


class Interrupt(Exception):
    pass


def test_resume_observes_only_new_seeds():
    settings, configs = RaceSettings(3, 12, margin=0.02), ["a", "close", "far"]
    shifts = {"a": 0.0, "close": -0.12, "far": -2.0}
    full = race(configs, Oracle(shifts), CLIP_IDS, settings)
    saved: list[dict] = []

    def store_then_stop(partial: RaceResult) -> None:
        saved.append(json.loads(json.dumps(partial.to_dict())))  # what the search would write
        if partial.seed_runs == 14:
            raise Interrupt

    with pytest.raises(Interrupt):
        race(configs, Oracle(shifts), CLIP_IDS, settings, on_update=store_then_stop)
    record, oracle = saved[-1], Oracle(shifts)
    had = {(c, int(s)) for c, obs in record["observations"].items() for s in obs}
    resumed = race(configs, oracle, CLIP_IDS, settings, previous=record)
    assert not had & set(oracle.calls) and len(oracle.calls) == full.seed_runs - 14 == resumed.observed_now
    assert resumed.to_dict() == full.to_dict()  # the same looks and verdicts as the race never interrupted
    again = Oracle(shifts)
    replay = race(configs, again, CLIP_IDS, settings, previous=RaceResult.from_dict(resumed.to_dict()))
    assert again.calls == [] and replay.to_dict() == full.to_dict()


def test_resume_refuses_another_race():
    settings = RaceSettings(3, 10, margin=0.02)
    done = race(["a", "b"], Oracle({"a": 0.0, "b": -2.0}), CLIP_IDS, settings).to_dict()
    with pytest.raises(ConfigError, match="study.seeds.max changed from 10 to 12"):
        race(["a", "b"], Oracle({"a": 0.0, "b": -2.0}), CLIP_IDS, RaceSettings(3, 12, margin=0.02), previous=done)
    with pytest.raises(ConfigError, match="same configurations"):
        race(["b", "a"], Oracle({"b": -2.0, "a": 0.0}), CLIP_IDS, settings, previous=done)
    with pytest.raises(ConfigError, match="validation frames changed"):
        race(["a", "b"], Oracle({"a": 0.0, "b": -2.0}), CLIP_IDS[::-1], settings, previous=done)


def test_one_look_matches_the_leaderboard_rule():
    from kdbench.leaderboard.decisions import ValHits, compare

    oracle = Oracle({"a": 0.0, "b": -0.05, "c": -0.3, "d": -2.0})
    res = race(list(oracle.shifts), oracle, CLIP_IDS, RaceSettings(5, 5, margin=0.03))
    assert res.looks[0].level == pytest.approx(0.95) and len(res.looks) == 1

    def hits(c):
        return ValHits(np.stack([oracle(c, s) for s in range(5)]).astype(bool), np.arange(CLIPS * FRAMES), CLIP_IDS,
                       list(range(5)))

    for comp in res.looks[0].comparisons[1:]:
        want = compare(hits(res.best), hits(comp.config), margin=0.03)
        assert (comp.verdict, comp.ci_low, comp.ci_high) == (want.verdict, want.ci_low, want.ci_high)


def test_observation_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"observe\('a', 0\) gave an array of shape \(3,\)"):
        race(["a", "b"], lambda c, s: np.zeros(3), CLIP_IDS, RaceSettings(3, 5, margin=0.02))


@pytest.mark.parametrize("kwargs, key", [
    ({"min_seeds": 1, "max_seeds": 5, "margin": 0.01}, "study.seeds.min"),
    ({"min_seeds": 2.5, "max_seeds": 5, "margin": 0.01}, "study.seeds.min"),
    ({"min_seeds": 3, "max_seeds": 2, "margin": 0.01}, "study.seeds.max"),
    ({"min_seeds": 3, "max_seeds": True, "margin": 0.01}, "study.seeds.max"),
    ({"min_seeds": 3, "max_seeds": 5, "margin": 0.0}, "study.margin"),
    ({"min_seeds": 3, "max_seeds": 5, "margin": 1.5}, "study.margin"),
    ({"min_seeds": 3, "max_seeds": 5, "margin": "1"}, "study.margin"),
    ({"min_seeds": 3, "max_seeds": 5, "margin": 0.01, "level": 95}, "study.seeds.level"),
    ({"min_seeds": 3, "max_seeds": 5, "margin": 0.01, "boundary": "pocock"}, "study.seeds.boundary"),
    ({"min_seeds": 3, "max_seeds": 5, "margin": 0.01, "futility": "yes"}, "study.seeds.futility"),
])
def test_bad_settings_name_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        RaceSettings(**kwargs)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        RaceSettings.from_dict(kwargs)


def test_settings_round_trip_and_version():
    s = RaceSettings(3, 20, margin=0.01)
    assert RaceSettings.from_dict(json.loads(json.dumps(s.to_dict()))) == s and s.to_dict()["version"] == 1
    assert s.looks == 18 and s.level_at(1) == pytest.approx(0.975) and s.level_at(18) == pytest.approx(1 - 0.025 / 17)
    for boundary in ("front", "even"):  # the looks' alphas spend exactly 1 - level
        b = RaceSettings(3, 20, margin=0.01, level=0.9, boundary=boundary)
        assert sum(1 - b.level_at(k) for k in range(1, 19)) == pytest.approx(0.1)
    assert RaceSettings(3, 20, margin=0.01, boundary="even").level_at(1) == pytest.approx(1 - 0.05 / 18)
    with pytest.raises(ConfigError, match="version 99"):
        RaceSettings.from_dict({**s.to_dict(), "version": 99})
    with pytest.raises(ConfigError, match="missing study.seeds.max"):
        RaceSettings.from_dict({"min_seeds": 3, "margin": 0.01})
    with pytest.raises(ConfigError, match="unknown key"):
        RaceSettings.from_dict({**s.to_dict(), "seeds": 3})
