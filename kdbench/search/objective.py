"""The Optuna objective: one configuration trained on every seed of the study (paired seeds).

Per trial: draw the configuration from the space, then for each seed train the student into
``RUN_DIR/<study>/trials/<student>/<trial>/seed_<s>/`` (``best.pt`` + ``metrics.json``), store the
per-seed figures on the trial as flat user attributes (``seed_<s>_<metric>``, ``seed_<s>_status``,
``seed_<s>_wall_time_s``: see ``seed_attrs``; the full record is the trial's ``trial.json``), set flat
``mean_/std_<metric>`` and ``n_seeds`` attributes, and return the mean validation metric. A seed whose
``metrics.json`` already exists (a retried trial after a crash) is read back, never trained again. A
run that is not ``ok`` (non-finite loss or weights) fails the trial for good with its reason; the
search goes on. Any other way a trial stops (a signal, an exception such as a full disk) queues it
again with the same parameters before it is marked FAIL, so the same command resumes it.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from kdbench import layout
from kdbench.distill.feed import TeacherFeed
from kdbench.search.hardware_aware import TRIAL_JSON_ATTRS, budget_used, objective_values, price_of
from kdbench.search.liveness import (DUPLICATE_ATTR, FINAL_ATTR, INTERRUPTED_ATTR, SLOT_ATTR, WORKER_ATTR, Heartbeat,
                                     queue_retry, retried_numbers, superseded)
from kdbench.search.seed_attrs import METRICS, seed_attrs, seed_results_of
from kdbench.search.space import SearchSpace
from kdbench.search.trial_record import write_trial

SEED_LOG = "seed_log.jsonl"
REUSED_ATTR = "same_as_trial"  # user attribute: this trial's configuration had finished as that trial; not trained again


class TrialFailed(Exception):
    """A trial that cannot give a value (non-finite loss): recorded as FAIL with this message."""


@dataclass
class SearchContext:
    """Everything a worker's objective needs besides the trial."""

    space: SearchSpace
    study_dir: Path
    store: Any  # FrameStore
    teacher_path: str | None = None
    teacher: TeacherFeed | None = None  # the study's teacher as every run reads it (None: no teacher)
    device: str = "auto"
    heartbeat: Heartbeat | None = None
    on_event: Callable[..., None] | None = None
    quota: dict[str, int] = field(default_factory=dict)  # trials per student (the budget a new trial checks)
    extra_meta: dict[str, Any] = field(default_factory=dict)
    study_id: str | None = None  # study.json's study_id, recorded in every trial.json (readers skip other studies')


def trial_dir(study_dir: Path, student: str, number: int) -> Path:
    """The directory of one trial's seed runs."""
    return layout.trial_dir(study_dir, student, number)


def log_seed_event(study_dir: Path, **event: Any) -> None:
    """Append one line to the study's seed log (O_APPEND: safe with several processes)."""
    line = json.dumps({**event, "pid": os.getpid(), "time": time.time()}, default=str) + "\n"
    fd = os.open(Path(study_dir) / SEED_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _log_trial_end(ctx: SearchContext, number: int, config: Any, state: str, note: str, seeds_done: int) -> None:
    """A trial that ends before training its seeds (pruned, failed, a reused twin) in the seed log: the progress lines
    say so, and the seeds it will not train leave the ETA's plan."""
    if config is None:  # stopped before it had a configuration (e.g. infeasible before pricing): nothing planned ran
        return
    log_seed_event(ctx.study_dir, event="trial_end", student=config.student, trial=number, seed=None,
                   method=config.method, state=state, note=note, seeds_done=seeds_done, n_seeds=len(ctx.space.seeds))


def read_seed_log(study_dir: Path) -> list[dict[str, Any]]:
    """Every event of the seed log."""
    path = Path(study_dir) / SEED_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def completed_seed(seed_dir: Path, method: str, seed: int, expected: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The metrics.json of a seed run that finished for this method and seed, else None.

    With ``expected`` (``run_record(...)``: student, method settings, every training setting) the
    recorded run must equal it too, so a folder trained for another configuration (another storage's
    trial of the same number, an edited space) is never reused.
    """
    path = seed_dir / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except ValueError:
        return None
    if metrics.get("method") != method or metrics.get("config", {}).get("seed") != seed:
        return None
    if expected is not None and recorded_run(metrics) != expected:
        return None
    return metrics


def run_record(student: str, method: str, hparams: dict[str, Any], config: Any) -> dict[str, Any]:
    """What identifies a seed run's arithmetic: student, method, its resolved settings, the TrainConfig but its device."""
    from kdbench.distill.registry import create_method

    train = config.to_dict()
    train.pop("device", None)
    record = {"student": student, "method": method, "hparams": create_method(method, **hparams).hparams(), "config": train}
    return json.loads(json.dumps(record, default=str))  # as metrics.json holds it (lists, not tuples)


def recorded_run(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """``run_record``'s form of a metrics.json (None when it cannot be read as one)."""
    from kdbench.errors import ConfigError
    from kdbench.train import TrainConfig

    try:
        train = TrainConfig.from_dict(metrics.get("config") or {}).to_dict()
    except (ConfigError, TypeError, ValueError):
        return None
    train.pop("device", None)
    record = {"student": metrics.get("student"), "method": metrics.get("method"), "hparams": metrics.get("hparams"),
              "config": train}
    return json.loads(json.dumps(record, default=str))


def seed_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The per-seed numbers stored on the trial."""
    m = metrics.get("metrics") or {}
    out = {"status": metrics.get("status"), "epochs_run": metrics.get("epochs_run"),
           "best_epoch": metrics.get("best_epoch"), "wall_time_s": metrics.get("wall_time_s"),
           "message": metrics.get("message", "")}
    for split in ("val", "test"):
        split_metrics = m.get(split) or {}
        for key in ("accuracy", "macro_f1", "clip_accuracy"):
            if key != "clip_accuracy" or split_metrics.get(key) is not None:
                out[f"{split}_{key}"] = split_metrics.get(key)
    return out


def _adopt_predecessor(study_dir: Path, student: str, retry_history: list[int], target: Path) -> int | None:
    """Move the seed runs of the trial this one retries into this trial's directory; its number."""
    for number in reversed(retry_history):
        old = trial_dir(study_dir, student, number)
        if old.is_dir() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(old, target)
            (target / "trial.json").unlink(missing_ok=True)  # the predecessor's record, not this trial's
            return number
    return None


def chain_key(trial: Any) -> tuple[int, int]:
    """Order of precedence among trials of one slot: the first number of its retry chain, then its own."""
    return trial.system_attrs.get("failed_trial", trial.number), trial.number


def taken_reason(study: Any, trial: Any, quota: int | None, grid: bool) -> str | None:
    """Why a new trial must not train: its slot is held by a trial that precedes it, or the budget is used.

    In a slot (baseline, grid cell, retry chain) the live trial whose retry chain started first wins,
    so a retry that adopts finished seeds is never displaced by a duplicate queued by another worker.
    """
    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    live = [t for t in trials if t.number != trial.number and not superseded(t, retried)]
    slot = trial.system_attrs.get(SLOT_ATTR)
    if slot is not None:
        first = min((t for t in live if t.system_attrs.get(SLOT_ATTR) == slot and chain_key(t) < chain_key(trial)),
                    key=chain_key, default=None)
        return None if first is None else f"duplicate of trial {first.number} ({slot}); not trained"
    if grid:
        return "not a grid cell (queued cells only); not trained"
    earlier = [t for t in live if t.number < trial.number]
    if quota is not None and budget_used(earlier, quota) >= quota:  # infeasible (untrained) trials: see budget_used
        return f"over the budget of {quota} trial(s) (a concurrent worker took the last one); not trained"
    return None


def describe_stop(err: BaseException) -> str:
    """One line saying why a trial stopped: the signal, or the exception's type and first line."""
    if isinstance(err, KeyboardInterrupt):
        return f"interrupted ({getattr(err, 'signal_name', 'SIGINT')})"
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def _hardware_attrs(ctx: SearchContext, trial: Any, config: Any) -> Any:
    """The trial's family and, with a target, its price before training (prunes what the target cannot run)."""
    if ctx.space.families or ctx.space.target:
        from kdbench.search.hardware_aware import before_training

        return before_training(ctx, trial, config)
    return None


def make_objective(ctx: SearchContext, student: str) -> Callable[[Any], float]:
    """The objective of one student's Optuna study."""
    import optuna

    from kdbench.search.trial_config import TrialConfig

    space = ctx.space

    def emit(**event: Any) -> None:
        if ctx.heartbeat is not None:
            ctx.heartbeat.update(**event)
        if ctx.on_event is not None:
            ctx.on_event(**event)

    def objective(trial: optuna.Trial) -> float:
        storage = trial.storage
        if ctx.heartbeat is not None:
            storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, ctx.heartbeat.record)
        frozen = storage.get_trial(trial._trial_id)
        taken = taken_reason(trial.study, frozen, ctx.quota.get(student), space.sampler == "grid")
        if taken is not None:
            storage.set_trial_system_attr(trial._trial_id, DUPLICATE_ATTR, taken)
            raise TrialFailed(taken)
        config, results = None, {}
        try:
            config = TrialConfig.from_dict({"student": student, **space.suggest(trial)})
            twin = same_configuration(trial.study, frozen, config.config_id)
            if twin is not None:  # a sampler proposing a finished configuration again: its results, not training
                _hardware_attrs(ctx, trial, config)
                _log_trial_end(ctx, trial.number, config, "reused", f"same configuration as trial {twin.number}", 0)
                return _reuse_results(trial, config, twin)  # its value(s): the twin was priced the same
            tdir = _start_trial(ctx, trial, frozen, config)
            price = _hardware_attrs(ctx, trial, config)
            _run_seeds(ctx, trial, config, tdir, results, emit)
            value = statistics.fmean(r[space.objective] for r in results.values())
            _prune_checkpoints(space, tdir, results)
            for key, mean in seed_means(results).items():
                trial.set_user_attr(key, mean)
            _write_trial_json(ctx, trial, config, results, "complete", "")
            return objective_values(space, value, price)  # + the priced latency in multi-objective mode
        except optuna.TrialPruned as err:
            _write_trial_json(ctx, trial, config, results, "pruned", str(err))
            _log_trial_end(ctx, trial.number, config, "pruned", str(err), len(results))
            raise
        except TrialFailed as err:
            trial.set_user_attr(FINAL_ATTR, str(err))
            _write_trial_json(ctx, trial, config, results, "failed", str(err))
            _log_trial_end(ctx, trial.number, config, "failed", str(err), len(results))
            raise
        except BaseException as err:
            _stop_and_requeue(trial, ctx, config, results, describe_stop(err))
            raise

    return objective


def same_configuration(study: Any, trial: Any, config_id: str) -> Any:
    """The first earlier COMPLETE trial that trained this configuration (not itself a reuse), or None."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if (t.number < trial.number and t.user_attrs.get("config_id") == config_id
                and REUSED_ATTR not in t.user_attrs):
            return t
    return None


def _reuse_results(trial: Any, config: Any, twin: Any) -> float:
    """Record a finished twin's results on this trial (no directory, no trial.json: it is not a new run)."""
    trial.set_user_attr(REUSED_ATTR, twin.number)
    copied = {k: v for k, v in twin.user_attrs.items() if k.startswith(("mean_", "std_", "n_seeds"))}
    for seed, summary in seed_results_of(twin).items():  # flat, also from an older study's twin
        copied.update(seed_attrs(seed, summary))
    for key, value in {**config.to_dict(), **copied}.items():
        trial.set_user_attr(key, value)
    return twin.values if len(twin.values) > 1 else twin.value


def _start_trial(ctx: SearchContext, trial: Any, frozen: Any, config: Any) -> Path:
    """Record the configuration on the trial and give it its directory (adopting a predecessor's seeds)."""
    from kdbench.distill.registry import resolved_hparams

    settings = resolved_hparams(config.method, config.hparams)  # what it runs with, defaults included (dashboard)
    for key, value in {**config.to_dict(), "baseline": bool(frozen.user_attrs.get("baseline")),
                       "method_settings": settings}.items():
        trial.set_user_attr(key, value)
    tdir = trial_dir(ctx.study_dir, config.student, trial.number)
    adopted = _adopt_predecessor(ctx.study_dir, config.student, frozen.system_attrs.get("retry_history", []), tdir)
    if adopted is not None:
        trial.set_user_attr("adopted_from", adopted)
    tdir.mkdir(parents=True, exist_ok=True)
    trial.set_user_attr("run_dir", str(tdir.relative_to(ctx.study_dir)))
    return tdir


def _stop_and_requeue(trial: Any, ctx: SearchContext, config: Any, results: dict, reason: str) -> None:
    """A trial stopped by a fault: queue its retry (same params) before Optuna marks it FAIL."""
    import contextlib

    with contextlib.suppress(Exception):  # a broken storage: the next worker queues it (see liveness)
        trial.storage.set_trial_system_attr(trial._trial_id, INTERRUPTED_ATTR, reason)
        queue_retry(trial.study, trial.storage.get_trial(trial._trial_id))
    if config is not None:
        with contextlib.suppress(Exception):  # a full disk or read-only folder may be the reason itself
            _write_trial_json(ctx, trial, config, results, "interrupted", reason + "; queued again")


def _run_seeds(ctx: SearchContext, trial: Any, config: Any, tdir: Path, results: dict[str, dict[str, Any]],
               emit: Callable[..., None]) -> None:
    """Train (or read back) every seed of the trial into ``results``; TrialFailed / TrialPruned stop it."""
    import optuna

    space, student, n = ctx.space, config.student, len(ctx.space.seeds)
    for i, seed in enumerate(space.seeds):
        done = ensure_seed(ctx, trial, trial.number, config, seed, i, n, layout.seed_dir(tdir, seed), emit)
        summary = seed_summary(done)
        results[str(seed)] = summary
        for key, value in seed_attrs(seed, summary).items():
            trial.set_user_attr(key, value)
        emit(state="seed_done", student=student, trial=trial.number, seed=seed, seed_index=i + 1, n_seeds=n,
             value=summary[space.objective])
        if summary["status"] != "ok":
            raise TrialFailed(f"seed {seed}: {summary['status']}: {summary['message']}")
        if space.pruner == "wilcoxon":
            trial.report(summary[space.objective], step=seed)
            if trial.should_prune():
                raise optuna.TrialPruned(f"Wilcoxon test vs the best trial after {i + 1} seed(s)")


def ensure_seed(ctx: SearchContext, trial: Any, number: int, config: Any, seed: int, index: int, n: int,
                sdir: Path, emit: Callable[..., None]) -> dict[str, Any]:
    """The metrics.json of seed ``seed`` of trial ``number``: read back when that very run finished, else
    trained (a run interrupted mid-way starts over). ``trial``: the Optuna trial (its pruner sees the
    epochs of the first seed), or None (a race adds a seed to a finished trial)."""
    student = config.student
    expected = run_record(student, config.method, config.hparams, seed_train_config(ctx, config, seed))
    done = completed_seed(sdir, config.method, seed, expected)
    if done is not None:
        log_seed_event(ctx.study_dir, event="reused", student=student, trial=number, seed=seed)
        return done
    if sdir.exists():
        shutil.rmtree(sdir)  # a seed interrupted mid-run: start it over
    log_seed_event(ctx.study_dir, event="start", student=student, trial=number, seed=seed)
    emit(state="training", student=student, trial=number, method=config.method, seed=seed, seed_index=index,
         n_seeds=n, epoch=0, epochs=config.train.epochs)
    done = _train_seed(ctx, trial, number, config, seed, index, sdir, emit)
    log_seed_event(ctx.study_dir, event="done", student=student, trial=number, seed=seed, status=done["status"],
                   method=config.method, val=seed_summary(done).get(select_on(ctx.space.objective)))
    return done


def select_on(objective: str) -> str:
    """The validation figure that keeps a seed run's epoch for a study objective (TrainConfig.select_on)."""
    return "val_accuracy" if objective == "val_accuracy" else "val_macro_f1"


def seed_train_config(ctx: SearchContext, config: Any, seed: int) -> Any:
    """The TrainConfig of one seed run of a trial: the epoch is chosen on the study's objective."""
    return replace(config.seed_config(seed, ctx.device), select_on=select_on(ctx.space.objective))


def _train_seed(ctx: SearchContext, trial: Any, number: int, config: Any, seed: int, index: int, sdir: Path,
                emit: Callable[..., None]) -> dict[str, Any]:
    """Train one seed of a trial (reporting epochs to the pruner on the first seed); its metrics.json."""
    import optuna

    from kdbench.train import train_student

    space = ctx.space
    cfg = seed_train_config(ctx, config, seed)
    key = cfg.select_on

    def on_epoch(epoch: int, record: dict[str, Any]) -> None:
        emit(epoch=epoch + 1, val=record.get(key))
        if space.pruner == "first_seed_median" and index == 0 and trial is not None:
            trial.report(record[key], step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"first seed below the median of earlier trials at epoch {epoch + 1}")

    meta = {"study": space.name, "trial": number, "seed": seed, "teacher": ctx.teacher_path, **ctx.extra_meta}
    train_student(ctx.store, config.student, config.method, config.hparams, cfg, teacher=ctx.teacher, out_dir=sdir,
                  progress=False, epoch_callback=on_epoch, meta=meta, pretrained=space.pretrained)
    return json.loads((sdir / "metrics.json").read_text())


def seed_means(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Flat mean_/std_<metric> over the seeds, and n_seeds."""
    out: dict[str, Any] = {"n_seeds": len(results)}
    for metric in METRICS:
        values = [r[metric] for r in results.values() if r.get(metric) is not None]
        if values or not metric.endswith("clip_accuracy"):
            out[f"mean_{metric}"] = statistics.fmean(values) if values else None
            out[f"std_{metric}"] = statistics.stdev(values) if len(values) > 1 else None
    return out


def _write_trial_json(ctx: SearchContext, trial: Any, config: Any, results: dict, state: str, reason: str) -> None:
    """trial.json beside the seed runs: configuration, per-seed metrics, mean/std and state.

    ``first_trial`` is the number of the first trial of a retry chain (the trial's own number unless
    it retries one a fault stopped): selections break ties on it, so a fault cannot change them.
    """
    tdir = trial_dir(ctx.study_dir, config.student, trial.number)
    first = trial.storage.get_trial(trial._trial_id).system_attrs.get("failed_trial", trial.number)
    from kdbench.distill.registry import resolved_hparams

    body: dict[str, Any] = {"trial": trial.number, "first_trial": first, "study_id": ctx.study_id,
                            **config.to_dict(), "method_settings": resolved_hparams(config.method, config.hparams),
                            "state": state,
                            "reason": reason, "seeds": results, "study_seeds": ctx.space.seeds}
    body.update({k: v for k, v in seed_means(results).items() if k != "n_seeds"})
    body.update({k: trial.user_attrs[k] for k in TRIAL_JSON_ATTRS if k in trial.user_attrs})  # family, input size
    if (price := price_of(trial)) is not None:
        body["price"] = price
    write_trial(tdir, body)


def _prune_checkpoints(space: SearchSpace, tdir: Path, results: dict[str, dict[str, Any]]) -> None:
    """With keep_checkpoints = 'best', delete best.pt of every seed but the best one."""
    if space.keep_checkpoints != "best" or not results:
        return
    best = max(results, key=lambda s: results[s][space.objective])
    for seed in results:
        if seed != best:
            (layout.seed_dir(tdir, seed) / "best.pt").unlink(missing_ok=True)
