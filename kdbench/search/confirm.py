"""`kdbench search confirm`: retrain each student's chosen configuration and its baseline on fresh seeds.

A study picks the best of many configurations on its seeds, then compares it with scratch on the
same seeds: the winner's curse makes that comparison optimistic. Confirmation retrains, per student,
the chosen configuration (``best_trials``: best mean validation objective), the best distillation
configuration when the chosen one is the baseline, and the best baseline configuration, on K seeds
the study never used (1000, 1001, ... minus the study's seeds), and compares them on those seeds only:

    DIR/confirm/<student>/<method>-trial<N>/seed_<s>/  best.pt + metrics.json (kdbench.train)
    DIR/confirm/<student>/<method>-trial<N>/trial.json  the study trial.json's shape, on the fresh seeds
    DIR/confirm/statistics.json                         the study statistics.json's format, plus
                                                        "stage": "confirm", "study_seeds", "candidates"
                                                        (what it confirmed), "study_finished", "unfinished"

Only a finished study is confirmed (``unfinished``: no live worker, nothing RUNNING or WAITING, every
student's quota used), else a ConfigError unless ``allow_unfinished``; the leaderboard uses a
confirmation only while ``confirmation_problem`` finds none (finished, and the same choices as now).
Resumable: a seed whose metrics.json exists for the same method and seed is read back, never
trained again; asking for more seeds later extends the same sequence.
"""

from __future__ import annotations

import shutil
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from kdbench.errors import ConfigError, DataError
from kdbench.layout import seed_dir
from kdbench.manifest import write_json
from kdbench.search.selection import best_trial
from kdbench.search.trial_record import write_trial

CONFIRM_DIR = "confirm"
FIRST_SEED = 1000
DEFAULT_SEEDS = 5
SUMMARY_METRICS = ("val_accuracy", "test_accuracy", "val_macro_f1", "test_macro_f1", "val_clip_accuracy",
                   "test_clip_accuracy")


@dataclass
class ConfirmRequest:
    """The arguments of one `kdbench search confirm` invocation."""

    study_dir: Path
    n_seeds: int | None = None  # fixed fresh seeds (default: the study's race if it raced, else DEFAULT_SEEDS)
    max_seeds: int | None = None  # race the choices from n_seeds (default 3) up to this many fresh seeds
    device: str = "auto"
    store: Path | None = None  # default: the study's store (study.json)
    storage: str | None = None  # the study's Optuna storage (default: the one study.json records)
    n_trials: int | None = None  # the --n-trials the search ran with (default: the space's n_trials)
    allow_unfinished: bool = False  # confirm what a study not finished chose so far (recorded as such)


def study_storage_url(study_dir: Path, info: dict[str, Any], storage: str | None) -> str | None:
    """The storage URL to read a study from: ``storage`` when given, else the one study.json records (None: the
    study's own journal); ConfigError when it cannot be read (a journal that is not there, a password not kept)."""
    from kdbench.search.storage import DEFAULT_STORAGE_ID, journal_file, recorded_storage_id, storage_kind

    url = storage
    if url is None:
        recorded = recorded_storage_id(info, study_dir)
        if recorded and recorded != DEFAULT_STORAGE_ID and storage_kind(recorded) == "rdb" and ":***@" in recorded:
            raise ConfigError(f"study {info['study']!r} keeps its trials in {recorded}: pass --storage URL "
                              "(with its password) or set KDBENCH_STORAGE")
        url = None if recorded in (None, DEFAULT_STORAGE_ID) else recorded
    if storage_kind(url) == "journal":
        path = journal_file(url, study_dir)
        if not path.is_file():
            raise ConfigError(f"study {info['study']!r}: its Optuna storage {path} does not exist; pass --storage URL "
                              "if the search ran with one")
    return url


def unfinished(study_dir: Path, storage: str | None = None, n_trials: int | None = None) -> list[str]:
    """What keeps a study from being finished, one phrase each (empty: finished): a live worker, trials RUNNING
    or WAITING in the storage, a student whose quota (``n_trials``: as the search's --n-trials) is not used."""
    from optuna.trial import TrialState

    from kdbench.search.liveness import live_workers
    from kdbench.search.results import read_study_json
    from kdbench.search.studies import load_studies, study_space, used_trials

    study_dir = Path(study_dir)
    info = read_study_json(study_dir)
    url = study_storage_url(study_dir, info, storage)
    try:
        studies = load_studies(study_dir, url)
    except KeyError as err:  # optuna.load_study: the storage has no such study
        raise ConfigError(f"study {info['study']!r}: the storage has no Optuna study {err}; pass the --storage URL "
                          "the search ran with") from None
    space = study_space(study_dir)
    quota = space.trials_per_student(n_trials if n_trials is not None else info.get("n_trials"))  # as the search ran
    out = [f"worker {w['worker'].get('host')}:{w['worker'].get('pid')} is running"
           + (f" ({w['student']} trial {w['trial']})" if w.get("student") and w.get("trial") is not None else "")
           for w in live_workers(study_dir)]
    for student, study in studies.items():
        trials = study.get_trials(deepcopy=False)
        parts = [f"trial(s) {numbers} {state.name}" for state in (TrialState.RUNNING, TrialState.WAITING)
                 if (numbers := [t.number for t in trials if t.state == state])]
        used = used_trials(study, quota.get(student, 0), space.sampler == "grid")
        if used < quota.get(student, 0):
            parts.append(f"{used} of its {quota[student]} trial(s) used")
        if parts:
            out.append(f"{student}: {', '.join(parts)}")
    return out


def confirm_seeds(study_seeds: list[int], k: int) -> list[int]:
    """The first ``k`` seeds from FIRST_SEED on that the study did not use."""
    used = {int(s) for s in study_seeds}
    out: list[int] = []
    seed = FIRST_SEED
    while len(out) < k:
        if seed not in used:
            out.append(seed)
        seed += 1
    return out


def candidates(study_dir: Path) -> list[dict[str, Any]]:
    """Per student: the chosen trial, the best distillation trial if the chosen one is the baseline, the best baseline."""
    from kdbench.search.baselines import best_kd_and_baseline
    from kdbench.search.results import best_trials, read_study_json, read_trials

    cfg = read_study_json(study_dir)["config"]
    baseline, objective = cfg.get("baseline"), cfg.get("objective", "val_accuracy")
    complete = [t for t in read_trials(study_dir) if t.get("state") == "complete"]
    out = []
    for chosen in best_trials(study_dir):
        mine = [t for t in complete if t["student"] == chosen["student"]]
        # the baseline at the best distillation's input size: the matched comparison the study made
        kd, base = best_kd_and_baseline(mine, baseline, objective)
        if kd is None:
            base = best_trial([t for t in mine if t["method"] == baseline], objective)
        picks = {"chosen": next(t for t in mine if t["trial"] == chosen["trial"]), "best distillation": kd,
                 "baseline": base}
        seen: dict[int, dict[str, Any]] = {}
        for role, t in picks.items():
            if t is not None:
                seen.setdefault(t["trial"], {**t, "roles": []})["roles"].append(role)
        out += list(seen.values())
    return out


def config_dir(study_dir: Path, trial: dict[str, Any]) -> Path:
    """DIR/confirm/<student>/<method>-trial<N>."""
    return Path(study_dir) / CONFIRM_DIR / trial["student"] / f"{trial['method']}-trial{trial['trial']}"


def _record(trial: dict[str, Any], results: dict[str, dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """A trial.json-shaped record of one configuration on the confirmation seeds."""
    body = {k: trial[k] for k in ("trial", "student", "method", "hparams", "train", "config_id")}
    body.update(state="complete", reason="", roles=trial["roles"], seeds=results, study_seeds=seeds)
    for metric in SUMMARY_METRICS:
        values = [r[metric] for r in results.values() if r.get(metric) is not None]
        body[f"mean_{metric}"] = statistics.fmean(values) if values else None
        body[f"std_{metric}"] = statistics.stdev(values) if len(values) > 1 else None
    return body


class _Trainer:
    """Trains one seed of a configuration; opens the store and teacher logits on first use."""

    def __init__(self, info: dict[str, Any], req: ConfirmRequest) -> None:
        self.info, self.req = info, req
        self.store: Any = None
        self.teacher: Any = None  # TeacherFeed of study.json's teacher, opened on first use

    def seed_config(self, trial: dict[str, Any], seed: int) -> Any:
        """The TrainConfig of one fresh seed: the epoch is kept on the study's objective, as in the search."""
        from dataclasses import replace

        from kdbench.search.trial_config import TrialConfig

        from kdbench.search.objective import select_on

        objective = (self.info.get("config") or {}).get("objective", "val_accuracy")
        return replace(TrialConfig.from_dict(trial).seed_config(seed, self.req.device), select_on=select_on(objective))

    def expected(self, trial: dict[str, Any], seed: int) -> dict[str, Any]:
        """What a finished seed's metrics.json must record to be read back (objective.run_record)."""
        from kdbench.search.objective import run_record

        return run_record(trial["student"], trial["method"], trial.get("hparams") or {}, self.seed_config(trial, seed))

    def __call__(self, trial: dict[str, Any], seed: int, sdir: Path) -> None:
        from kdbench.data.store import FrameStore
        from kdbench.distill.feed import TeacherFeed, needs_teacher
        from kdbench.search.trial_config import TrialConfig
        from kdbench.train import train_student

        if self.store is None:
            self.store = FrameStore.open(self.req.store or self.info["store"])
        if needs_teacher(trial["method"]) and not self.info.get("teacher"):
            raise ConfigError(f"{trial['method']} needs a teacher but study.json names none")
        if self.teacher is None and self.info.get("teacher"):  # scratch too: its teacher figures pair with KD's
            self.teacher = TeacherFeed.open(self.store, self.info["teacher"])
        config = TrialConfig.from_dict(trial)
        meta = {"study": self.info.get("study"), "trial": trial["trial"], "seed": seed, "confirm": True,
                "teacher": self.info.get("teacher")}
        cfg = self.seed_config(trial, seed)
        train_student(self.store, config.student, config.method, config.hparams, cfg, teacher=self.teacher,
                      out_dir=sdir, progress=False, meta=meta)


def check_finished(req: ConfirmRequest, info: dict[str, Any]) -> list[str]:
    """What is unfinished about the study (empty: finished); ConfigError when it is unfinished (or cannot be
    checked) and ``req.allow_unfinished`` is off: the choice may still change, a confirmation of it would go stale."""
    try:
        left = unfinished(req.study_dir, req.storage, req.n_trials)
    except ConfigError as err:
        if not req.allow_unfinished:
            raise ConfigError(f"cannot tell whether the study is finished: {err}; or pass --allow-unfinished") from None
        return [f"not checked ({err})"]
    if left and not req.allow_unfinished:
        quota = any(" trial(s) used" in p for p in left)
        raise ConfigError(
            f"study {info['study']!r} is not finished ({'; '.join(left)}): its chosen configurations may still change. "
            "Finish it (rerun `kdbench search` on it)"
            + (", pass the --n-trials the search ran with (if it ran with one)" if quota else "")
            + ", or pass --allow-unfinished to confirm what it chose so far (recorded as unfinished; "
            "the leaderboard does not use such a confirmation)")
    return left


def run_confirm(req: ConfirmRequest, on_event: Callable[..., None] | None = None,
                on_note: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train (or reuse) every candidate on the fresh seeds; write confirm/statistics.json; counts and statistics.

    Refuses (ConfigError) a study that is not finished unless ``req.allow_unfinished``; ``on_note`` gets one
    line per note before any training (which configurations it confirms, and that the study is unfinished)."""
    from kdbench.search.results import read_study_json

    if req.n_seeds is not None and req.n_seeds < 2:
        raise ConfigError(f"--seeds {req.n_seeds}; expected at least 2 (a paired comparison needs 2 seeds, 5 or more to be useful)")
    if req.device != "auto":
        from kdbench.checks import ensure_device

        ensure_device(req.device)  # like `kdbench search`: one error line before any work
    study_dir = Path(req.study_dir)
    info = read_study_json(study_dir)
    cfg = info["config"]
    settings = confirm_race_settings(req, cfg)
    left = check_finished(req, info)
    chosen = candidates(study_dir)
    listed = ", ".join(f"{t['student']} trial {t['trial']} {t['method']} ({', '.join(t['roles'])})" for t in chosen)
    if on_note is not None:
        if left:
            on_note(f"study {info['study']!r} is not finished ({'; '.join(left)}); confirming the configurations "
                    "chosen so far, recorded as study_finished = false (the leaderboard does not use it)")
        on_note(f"confirming {listed}" + (f" (a race of {settings.min_seeds}-{settings.max_seeds} fresh seeds at "
                                          f"margin {settings.margin:g})" if settings else ""))
    seeds = confirm_seeds(info["seeds"], settings.max_seeds if settings else req.n_seeds or DEFAULT_SEEDS)
    runs = _SeedRuns(study_dir, _Trainer(info, req), on_event)
    if settings is None:
        results = {_key(t): {str(s): runs.summary(t, s) for s in seeds} for t in chosen}
        race = None
    else:
        results, race = race_confirm(chosen, seeds, settings, runs, study_dir)
    records = []
    for trial in chosen:
        mine = results[_key(trial)]
        record = _record(trial, mine, [int(s) for s in mine])
        if race is not None:
            record["race"] = race_verdicts(race, trial)
        write_trial(config_dir(study_dir, trial), record)
        records.append(record)
    trained, reused, warnings = runs.trained, runs.reused, runs.warnings
    if race is not None:
        seeds = seeds[:max(len(r) for r in results.values())]
    stats = confirm_statistics(records, seeds, info, cfg, study_dir=study_dir, store_path=req.store or info.get("store"),
                               race=race)
    stats["warnings"] = warnings + stats["warnings"]
    stats.update(study_finished=not left, unfinished=left)  # the leaderboard uses only a finished study's confirmation
    write_json(study_dir / CONFIRM_DIR / "statistics.json", stats)
    return {"statistics": stats, "trained": trained, "reused": reused, "seeds": seeds}


def confirm_statistics(records: list[dict[str, Any]], seeds: list[int], info: dict[str, Any],
                       cfg: dict[str, Any], study_dir: Path | None = None, store_path: Any = None,
                       race: dict[str, Any] | None = None) -> dict[str, Any]:
    """study_statistics on the confirmation records, labelled as a confirmation.

    With ``study_dir``: paired_interval on the fresh seeds' predictions (confirm/<student>/<method>-trial<N>/
    seed_<s>/predictions.npz) when the store at ``store_path`` opens, and the looks so far (``looks``: one per
    seed count this confirmation was computed at, read back from the confirm/statistics.json it replaces),
    p_holm multiplied by their number (Bonferroni) when there are several. With ``race`` (a raced confirmation,
    confirm/race.json) the looks are the race's planned ones, with its own error control: one look here."""
    from kdbench.errors import KdbenchError
    from kdbench.manifest import read_json
    from kdbench.search.statistics import LOOKS_NOTE, confirm_looks, open_store, study_margin, study_statistics

    ok = [{**r, "seeds": {s: v for s, v in r["seeds"].items() if v.get("status") == "ok"}} for r in records]
    chosen = [{"student": r["student"], "trial": r["trial"], "method": r["method"], "config_id": r["config_id"],
               "roles": r["roles"]} for r in records]
    previous = None
    if study_dir is not None:
        ok = [{**r, "run_dir": str(config_dir(study_dir, r))} for r in ok]
        path = Path(study_dir) / CONFIRM_DIR / "statistics.json"
        try:
            previous = read_json(path) if path.is_file() else None
        except (ValueError, KdbenchError):
            previous = None  # unreadable: counted as no earlier look
    store, store_note = open_store(store_path) if study_dir is not None else (None, "no study directory given")
    looks = confirm_looks(None if race else previous, seeds, chosen)
    stats = study_statistics(ok, seeds, baseline=cfg.get("baseline"), objective=cfg.get("objective", "val_accuracy"),
                             store=store, store_note=store_note, margin=study_margin(cfg), looks=len(looks))
    stats.update(stage="confirm", study_seeds=info["seeds"],
                 selection="configurations chosen on the study's seeds by validation; compared here on fresh seeds "
                           "that took no part in the choice",
                 candidates=chosen, looks=looks, looks_note=RACE_LOOKS_NOTE if race else
                 LOOKS_NOTE.format(k=len(looks)) if len(looks) > 1 else
                 "one look: a rerun with more seeds is a second look, and its p_holm is then multiplied by the "
                 "number of looks (Bonferroni)")
    if race is not None:
        stats["race"] = {s: {k: {"best": r["best"], "seeds": r["seeds"], "stop_reason": r["stop_reason"],
                                 "verdicts": {c: v["verdict"] for c, v in r["final"].items()}}
                             for k, r in e.items()} for s, e in race["students"].items()}
    return stats


RACE_LOOKS_NOTE = ("a race on fresh seeds (confirm/race.json): the seeds each choice got were decided on validation "
                   "at planned looks whose error rate is split over them (kdbench.search.racing); the test "
                   "comparisons here are one look at the seeds both sides got")


def confirm_race_settings(req: ConfirmRequest, cfg: dict[str, Any]) -> Any:
    """The race a confirmation runs (RaceSettings at the study's margin), or None for a fixed seed list.

    ``--max-seeds`` races from ``--seeds`` (default the study race's min, else 3); ``--seeds`` alone is a
    fixed list; neither: the study's own race table if it raced, else DEFAULT_SEEDS fixed seeds."""
    from kdbench.search.racing import RaceSettings
    from kdbench.search.space import RACE_DEFAULTS
    from kdbench.search.statistics import study_margin

    race = cfg.get("race")
    if req.max_seeds is None and (req.n_seeds is not None or not race):
        return None
    table = {**RACE_DEFAULTS, **(race or {})}
    if req.max_seeds is not None:
        table.update(max_seeds=req.max_seeds, min_seeds=req.n_seeds if req.n_seeds is not None else
                     min(table["min_seeds"], req.max_seeds))
    try:
        return RaceSettings(margin=study_margin(cfg), **table)
    except ConfigError as err:
        raise ConfigError(str(err).replace("study.seeds.min", "--seeds").replace("study.seeds.max", "--max-seeds")) \
            from None


def _key(trial: dict[str, Any]) -> tuple[str, int]:
    return trial["student"], int(trial["trial"])


class _SeedRuns:
    """The confirmation's seed runs: one fresh seed of a candidate, trained unless it finished before."""

    def __init__(self, study_dir: Path, train: _Trainer, on_event: Callable[..., None] | None) -> None:
        self.study_dir, self.train, self.on_event = study_dir, train, on_event
        self.trained = self.reused = 0
        self.warnings: list[str] = []

    def folder(self, trial: dict[str, Any], seed: int) -> Path:
        return seed_dir(config_dir(self.study_dir, trial), seed)

    def summary(self, trial: dict[str, Any], seed: int) -> dict[str, Any]:
        """The seed's figures (seed_summary), training it first when it is not on disk."""
        from kdbench.search.objective import completed_seed, seed_summary

        sdir = self.folder(trial, seed)
        done = completed_seed(sdir, trial["method"], seed, self.train.expected(trial, seed))
        if done is None:
            if sdir.exists():
                shutil.rmtree(sdir)  # interrupted mid-run: start over
            if self.on_event is not None:
                self.on_event(student=trial["student"], method=trial["method"], trial=trial["trial"], seed=seed)
            self.train(trial, seed, sdir)
            done = completed_seed(sdir, trial["method"], seed, self.train.expected(trial, seed))
            if done is None:
                raise DataError(f"{sdir / 'metrics.json'}: training finished without a readable metrics.json")
            self.trained += 1
        else:
            self.reused += 1
        out = seed_summary(done)
        if out["status"] != "ok":
            self.warnings.append(f"{trial['student']} {trial['method']} trial {trial['trial']} seed {seed}: "
                                 f"{out['status']} ({out['message']}); left out")
        return out


def race_confirm(chosen: list[dict[str, Any]], seeds: list[int], settings: Any, runs: _SeedRuns,
                 study_dir: Path) -> tuple[dict[tuple, dict[str, dict[str, Any]]], dict[str, Any]]:
    """Per student: its candidates race on the fresh seeds (seed index i = seeds[i]), then the best
    distillation against the baseline; (each candidate's seed figures, the confirm/race.json record)."""
    from kdbench.data.store import FrameStore
    from kdbench.search.seed_race import Racer

    if runs.train.store is None:
        runs.train.store = FrameStore.open(runs.train.req.store or runs.train.info["store"])
    results: dict[tuple, dict[str, dict[str, Any]]] = {_key(t): {} for t in chosen}

    def run(trial: dict[str, Any], index: int) -> Path:
        results[_key(trial)][str(seeds[index])] = runs.summary(trial, seeds[index])
        return runs.folder(trial, seeds[index])

    record: dict[str, Any] = {"kind": "kdbench confirm race", "version": 1, "settings": settings.to_dict(),
                              "fresh_seeds": seeds, "students": {}}
    path = Path(study_dir) / CONFIRM_DIR / "race.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    racer = Racer(runs.train.store, run, settings)
    for student in sorted({t["student"] for t in chosen}):
        mine = [t for t in chosen if t["student"] == student]
        record["students"][student] = entry = {}
        if len(mine) >= 2:
            racer.race(mine, entry, "configs", lambda: write_json(path, record))
        pair = [next((t for t in mine if role in t["roles"]), None) for role in ("baseline", "best distillation")]
        if None not in pair and pair[0] is not pair[1]:
            racer.race(pair, entry, "kd_vs_scratch", lambda: write_json(path, record))
    write_json(path, record)
    return results, record


def race_verdicts(race: dict[str, Any], trial: dict[str, Any]) -> dict[str, Any]:
    """A candidate's verdicts in its student's confirmation races (configs, kd_vs_scratch)."""
    races = race["students"].get(trial["student"], {})
    return {k: {key: r["final"][str(trial["trial"])][key] for key in ("verdict", "against", "diff", "ci_low", "ci_high")}
            for k, r in races.items() if str(trial["trial"]) in r["final"]}


def _describe(picks: set[tuple]) -> str:
    return ", ".join(f"{s} trial {n} {cid} ({', '.join(roles)})" for s, n, cid, roles in sorted(picks, key=str)) or "none"


def confirmation_problem(study_dir: Path, stats: dict[str, Any]) -> str | None:
    """Why confirm/statistics.json must not stand for the study (None: it may): it confirmed a study that was not
    finished, it records no configurations, or the ones it confirmed are not the ones the study chooses now."""
    from kdbench.errors import KdbenchError

    if stats.get("study_finished") is False:
        return ("it was made while the study was not finished (--allow-unfinished: "
                + "; ".join(stats.get("unfinished") or ["unfinished"]) + ")")
    recorded = stats.get("candidates")
    if not isinstance(recorded, list) or not recorded:
        return "it records no confirmed configurations"
    try:
        now = candidates(study_dir)
    except (KdbenchError, KeyError, StopIteration) as err:
        return f"the study's chosen configurations cannot be read ({err})"

    def picks(rows: list[dict[str, Any]]) -> set[tuple]:
        return {(str(c.get("student")), c.get("trial"), str(c.get("config_id")), tuple(c.get("roles") or ()))
                for c in rows if isinstance(c, dict)}

    old, new = picks(recorded), picks(now)
    if old != new:
        return f"it confirmed {_describe(old - new)} but the study now chooses {_describe(new - old)}"
    return None
