"""A search's race: more seeds only where a decision is still open (``[study] seeds = {min, max}``).

With a race table instead of a seed list, every trial of the budget trains on seeds 0..min-1 as usual;
once the budget is spent, for each student:

1. **Its configurations race** (``kdbench.search.racing.race``: the rule, the Bonferroni boundary across
   looks and the futility stop are documented there): its complete trials, named by trial number, seed
   index i = seed i, observed through the seed run's validation predictions (0/1 per validation frame).
   A configuration clearly worse than the best, or equivalent to it within the study's margin, stops; the
   best and the undecided get one more seed per look, up to max.
2. **KD vs scratch races**: the best distilled trial against the best baseline (scratch) trial at its input
   size (the statistics' headline pair), the same way, on the seeds they already have and more where
   their comparison is still undecided at the margin.

Every seed added is a seed run like the first ones (``seed_<i>`` in its trial's folder, the same training
settings), and its trial.json is rewritten with it (seeds, means, and ``race``: verdict, against, seeds), so
the statistics, best trials, export and leaderboard see every seed; the Optuna trial keeps its value
over seeds 0..min-1 (a finished trial cannot change). ``race.json`` records the settings and every look of
every race, rewritten after each observation. An interrupted race resumes by running it again: seed runs
already on disk are read back, never trained twice, and the looks replay to the same verdicts.

The race compares validation accuracy (frame hits) whatever the study's objective; a trial's epoch is still
chosen on the objective. It runs in one process (the command's, after its workers) and only on
single-objective studies.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kdbench.errors import DataError
from kdbench.layout import seed_dir
from kdbench.manifest import write_json
from kdbench.search.baselines import best_kd_and_baseline
from kdbench.search.objective import SearchContext, ensure_seed, seed_means, seed_summary
from kdbench.search.racing import RaceResult, RaceSettings, race
from kdbench.search.results import read_trials
from kdbench.search.space import race_settings
from kdbench.search.trial_config import TrialConfig
from kdbench.search.trial_record import write_trial

RACE_FILE = "race.json"
RACE_RECORD_VERSION = 1
LOG = logging.getLogger("kdbench.search")


def race_candidates(trials: list[dict[str, Any]], student: str) -> list[dict[str, Any]]:
    """The student's trials a race may add seeds to: complete, every seed finished and finite."""
    return [t for t in trials if t["student"] == student and t.get("state") == "complete"
            and t.get("seeds") and all(s.get("status") == "ok" for s in t["seeds"].values())]


SeedRun = Callable[[dict[str, Any], int], Path]  # (trial, seed index) -> its seed run's folder, trained if missing


class Racer:
    """The oracle of races on seed runs: seed index i of a trial, as its validation hits [frames].

    ``run(trial, i)`` trains the run if it is missing (the search: seed i in the trial's folder;
    confirm: the i-th fresh seed in its own folder) and returns its folder; the hits are read from its
    predictions.npz (a run with no finite epoch saved none: it classified nothing, 0 hits)."""

    def __init__(self, store: Any, run: SeedRun, settings: RaceSettings) -> None:
        self.store, self.run, self.settings = store, run, settings
        self.rows: np.ndarray | None = None

    def _preds(self, sdir: Path) -> tuple[list[np.ndarray], np.ndarray] | None:
        from kdbench.predictions import seed_logits

        seed = int(sdir.name.removeprefix("seed_"))
        return seed_logits(sdir.parent, [seed], "val", self.store)

    def hits(self, trial: dict[str, Any], index: int) -> np.ndarray:
        """Validation hits [frames] of seed index ``index`` of ``trial``."""
        from kdbench.predictions import seed_hits

        sdir = self.run(trial, index)
        preds = self._preds(sdir)
        if preds is None:
            LOG.warning("%s trial %s %s: no validation predictions (no finite epoch): counted as 0 hits",
                        trial["student"], trial["trial"], sdir.name)
            return np.zeros(len(self.rows), dtype=bool)
        if not np.array_equal(preds[1], self.rows):
            raise DataError(f"{sdir}: its validation frames differ from the race's first run's")
        return seed_hits(*preds, self.store)[0][0]

    def frames(self, trial: dict[str, Any]) -> np.ndarray:
        """The race's validation clip ids, from seed index 0 of ``trial`` (which fixes the frames' rows)."""
        from kdbench.predictions import seed_hits

        sdir = self.run(trial, 0)
        preds = self._preds(sdir)
        if preds is None:
            raise DataError(f"{sdir}: no validation predictions.npz to race on (the run kept no finite epoch)")
        self.rows = preds[1]
        return np.asarray(seed_hits(*preds, self.store)[1])

    def race(self, entries: list[dict[str, Any]], record: dict[str, Any], key: str,
             save: Callable[[], None]) -> RaceResult:
        """One race over ``entries`` (trials), its record kept under ``record[key]`` and saved after each seed."""
        by_name = {str(t["trial"]): t for t in entries}
        clips = self.frames(entries[0])

        told = [0]

        def update(result: RaceResult) -> None:
            record[key] = result.to_dict()
            save()
            for look in result.looks[told[0]:]:  # each look once, as soon as it is made
                LOG.info("race %s %s: look %d at %d seeds (level %.4f): best trial %s; %s", entries[0]["student"],
                         key, look.look, look.n_seeds, look.level, look.best,
                         ", ".join(f"trial {c.config} {c.verdict}" for c in look.comparisons
                                   if c.config != look.best) or "alone")
            told[0] = len(result.looks)

        result = race(list(by_name), lambda name, i: self.hits(by_name[name], i), clips, self.settings,
                      on_update=update)
        update(result)
        return result


def _record_seed(trial: dict[str, Any], seed: int, summary: dict[str, Any]) -> None:
    """Add a seed's figures to a trial.json (and the dict read from it): seeds and the means over them."""
    if trial["seeds"].get(str(seed)) == summary:
        return
    trial["seeds"][str(seed)] = summary
    trial["seeds"] = dict(sorted(trial["seeds"].items(), key=lambda kv: int(kv[0])))
    trial.update({k: v for k, v in seed_means(trial["seeds"]).items() if k != "n_seeds"})
    _write_trial(trial)


def _write_trial(trial: dict[str, Any]) -> None:
    """Write the trial.json a dict read by ``read_trials`` came from (through the one TrialRecord writer)."""
    write_trial(trial["run_dir"], trial)


def _label(entries: list[dict[str, Any]], result: RaceResult, key: str) -> None:
    """Each raced trial.json records its verdict in this race (``race`` of the configurations, ``race_kd``)."""
    seeds = result.seeds()
    for t in entries:
        final = result.final[str(t["trial"])]
        t[key] = {"verdict": final.verdict, "against": int(final.against), "seeds": seeds[str(t["trial"])],
                  "diff": final.diff, "ci_low": final.ci_low, "ci_high": final.ci_high, "look": final.look,
                  "futile": final.futile}
        _write_trial(t)


def kd_pair(mine: list[dict[str, Any]], baseline: str | None, objective: str) -> list[dict[str, Any]] | None:
    """[the best baseline trial at the best distilled trial's input size, the best distilled trial], or None."""
    if not baseline:
        return None
    kd, base = best_kd_and_baseline(mine, baseline, objective)
    return [base, kd] if base is not None else None


def race_study(ctx: SearchContext, emit: Callable[..., None] | None = None) -> dict[str, Any] | None:
    """Run every student's races (see the module docstring); the race.json record, or None without a race."""
    settings = race_settings(ctx.space)
    if settings is None:
        return None
    emit = emit or (lambda **_: None)
    path = Path(ctx.study_dir) / RACE_FILE
    record: dict[str, Any] = {"kind": "kdbench search race", "version": RACE_RECORD_VERSION,
                              "settings": settings.to_dict(), "students": {}}

    def save() -> None:
        write_json(path, record)

    def run(trial: dict[str, Any], index: int) -> Path:
        sdir = seed_dir(trial["run_dir"], index)
        done = ensure_seed(ctx, None, trial["trial"], TrialConfig.from_dict(trial), index, index, settings.max_seeds,
                           sdir, emit)
        _record_seed(trial, index, seed_summary(done))
        return sdir

    racer = Racer(ctx.store, run, settings)
    trials = read_trials(ctx.study_dir)
    for student in ctx.space.students:
        mine = race_candidates(trials, student)
        record["students"][student] = entry = {}
        if len(mine) >= 2:
            _label(mine, racer.race(mine, entry, "configs", save), "race")
        pair = kd_pair(mine, ctx.space.baseline, ctx.space.objective)
        if pair is not None:
            _label(pair, racer.race(pair, entry, "kd_vs_scratch", save), "race_kd")
    save()
    return record
