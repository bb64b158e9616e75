"""The Optuna objective: one configuration trained on every seed of the study (paired seeds).

Per trial: draw the configuration from the space, then for each seed train the student into
``RUN_DIR/<study>/trials/<student>/<trial>/seed_<s>/`` (``best.pt`` + ``metrics.json``), store the
per-seed metrics on the trial (user attribute ``seed_results``) and return the mean validation
metric. A seed whose ``metrics.json`` already exists (a retried trial after a crash) is read back,
never trained again. A non-finite loss fails the trial with its reason; the search goes on.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from kdbench.manifest import write_json
from kdbench.search.liveness import WORKER_ATTR, Heartbeat
from kdbench.search.space import SearchSpace, grid_id

SEED_LOG = "seed_log.jsonl"
# User attributes a retried trial inherits (the rest is recomputed).
INHERITED_ATTRS = ("student", "method", "hparams", "train", "config_id", "baseline")


class TrialFailed(Exception):
    """A trial that cannot give a value (non-finite loss): recorded as FAIL with this message."""


@dataclass
class SearchContext:
    """Everything a worker's objective needs besides the trial."""

    space: SearchSpace
    study_dir: Path
    store: Any  # FrameStore
    teacher_path: str | None = None
    teacher_logits: Any = None  # np.ndarray [N, 4] or None
    teacher_model: Callable | None = None  # live teacher (no cache), for comparisons
    device: str = "auto"
    heartbeat: Heartbeat | None = None
    on_event: Callable[..., None] | None = None
    extra_meta: dict[str, Any] = field(default_factory=dict)


def trial_dir(study_dir: Path, student: str, number: int) -> Path:
    """The directory of one trial's seed runs."""
    return Path(study_dir) / "trials" / student / str(number)


def log_seed_event(study_dir: Path, **event: Any) -> None:
    """Append one line to the study's seed log (O_APPEND: safe with several processes)."""
    line = json.dumps({**event, "pid": os.getpid(), "time": time.time()}, default=str) + "\n"
    fd = os.open(Path(study_dir) / SEED_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_seed_log(study_dir: Path) -> list[dict[str, Any]]:
    """Every event of the seed log."""
    path = Path(study_dir) / SEED_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def completed_seed(seed_dir: Path, method: str, seed: int) -> dict[str, Any] | None:
    """The metrics.json of a seed run that finished for this method and seed, else None."""
    path = seed_dir / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except ValueError:
        return None
    if metrics.get("method") != method or metrics.get("config", {}).get("seed") != seed:
        return None
    return metrics


def seed_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The per-seed numbers stored on the trial."""
    m = metrics.get("metrics") or {}
    val, test = m.get("val", {}), m.get("test", {})
    return {"status": metrics.get("status"), "val_accuracy": val.get("accuracy"), "val_macro_f1": val.get("macro_f1"),
            "test_accuracy": test.get("accuracy"), "test_macro_f1": test.get("macro_f1"),
            "epochs_run": metrics.get("epochs_run"), "best_epoch": metrics.get("best_epoch"),
            "wall_time_s": metrics.get("wall_time_s"), "message": metrics.get("message", "")}


def _adopt_predecessor(study_dir: Path, student: str, retry_history: list[int], target: Path) -> int | None:
    """Move the seed runs of the trial this one retries into this trial's directory; its number."""
    for number in reversed(retry_history):
        old = trial_dir(study_dir, student, number)
        if old.is_dir() and not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(old, target)
            return number
    return None


def _objective_value(space: SearchSpace, summary: dict[str, Any]) -> float:
    return summary[space.objective]


def make_objective(ctx: SearchContext, student: str) -> Callable[[Any], float]:
    """The objective of one student's Optuna study."""
    import optuna

    from kdbench.train import TrainConfig, train_student

    space = ctx.space

    def emit(**event: Any) -> None:
        if ctx.heartbeat is not None:
            ctx.heartbeat.update(**event)
        if ctx.on_event is not None:
            ctx.on_event(**event)

    def objective(trial: optuna.Trial) -> float:
        if ctx.heartbeat is not None:
            trial.storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, ctx.heartbeat.record)
        sys_attrs = trial.storage.get_trial(trial._trial_id).system_attrs
        origin = sys_attrs.get("failed_trial")
        baseline = bool(space.baseline and space.sampler != "grid"
                        and (trial.number == 0 or origin == 0 or trial.user_attrs.get("baseline")))
        config = space.suggest(trial, baseline=baseline)
        method, hparams, train = config["method"], config["hparams"], config["train"]
        for key, value in (("student", student), ("method", method), ("hparams", hparams), ("train", train),
                           ("config_id", grid_id(config)), ("baseline", baseline)):
            trial.set_user_attr(key, value)
        tdir = trial_dir(ctx.study_dir, student, trial.number)
        adopted = _adopt_predecessor(ctx.study_dir, student, sys_attrs.get("retry_history", []), tdir)
        if adopted is not None:
            trial.set_user_attr("adopted_from", adopted)
        tdir.mkdir(parents=True, exist_ok=True)
        trial.set_user_attr("run_dir", str(tdir.relative_to(ctx.study_dir)))
        results: dict[str, dict[str, Any]] = {}
        state, reason = "complete", ""
        n = len(space.seeds)
        try:
            for i, seed in enumerate(space.seeds):
                sdir = tdir / f"seed_{seed}"
                done = completed_seed(sdir, method, seed)
                if done is not None:
                    log_seed_event(ctx.study_dir, event="reused", student=student, trial=trial.number, seed=seed)
                else:
                    if sdir.exists():
                        shutil.rmtree(sdir)  # a seed interrupted mid-run: start it over
                    log_seed_event(ctx.study_dir, event="start", student=student, trial=trial.number, seed=seed)
                    emit(state="training", student=student, trial=trial.number, method=method, seed=seed, seed_index=i,
                         n_seeds=n, epoch=0, epochs=train["epochs"])
                    done = _train_seed(ctx, trial, student, method, hparams, train, seed, i, sdir, emit,
                                       TrainConfig, train_student)
                    log_seed_event(ctx.study_dir, event="done", student=student, trial=trial.number, seed=seed,
                                   status=done["status"])
                summary = seed_summary(done)
                results[str(seed)] = summary
                trial.set_user_attr("seed_results", results)
                emit(state="seed_done", student=student, trial=trial.number, seed=seed, seed_index=i + 1, n_seeds=n,
                     value=summary[space.objective])
                if summary["status"] != "ok":
                    reason = f"seed {seed}: {summary['status']}: {summary['message']}"
                    raise TrialFailed(reason)
                if space.pruner == "wilcoxon":
                    trial.report(summary[space.objective], step=seed)
                    if trial.should_prune():
                        raise optuna.TrialPruned(f"Wilcoxon test vs the best trial after {i + 1} seed(s)")
        except optuna.TrialPruned as err:
            state, reason = "pruned", str(err)
            raise
        except TrialFailed:
            state = "failed"
            trial.set_user_attr("fail_reason", reason)
            raise
        finally:
            _write_trial_json(ctx, trial.number, student, config, results, state, reason)
        value = statistics.fmean(r[space.objective] for r in results.values())
        _prune_checkpoints(space, tdir, results)
        return value

    return objective


def _train_seed(ctx: SearchContext, trial: Any, student: str, method: str, hparams: dict, train: dict, seed: int,
                index: int, sdir: Path, emit: Callable[..., None], TrainConfig: Any, train_student: Any) -> dict[str, Any]:
    """Train one seed of a trial (reporting epochs to the pruner on the first seed); its metrics.json."""
    import optuna

    space = ctx.space
    key = "val_accuracy" if space.objective == "val_accuracy" else "val_macro_f1"

    def on_epoch(epoch: int, record: dict[str, Any]) -> None:
        emit(epoch=epoch + 1, val=record.get(key))
        if space.pruner == "first_seed_median" and index == 0:
            trial.report(record[key], step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"first seed below the median of earlier trials at epoch {epoch + 1}")

    config = TrainConfig(epochs=train["epochs"], batch_size=train["batch_size"], lr=train["lr"],
                         weight_decay=train["weight_decay"], patience=train["patience"], seed=seed, device=ctx.device,
                         max_batches_per_epoch=train["max_batches_per_epoch"] or None)
    meta = {"study": space.name, "trial": trial.number, "seed": seed, "teacher": ctx.teacher_path, **ctx.extra_meta}
    train_student(ctx.store, student, method, hparams, config, teacher_logits=ctx.teacher_logits,
                  teacher_model=ctx.teacher_model if ctx.teacher_logits is None else None, out_dir=sdir,
                  progress=False, epoch_callback=on_epoch, meta=meta, pretrained=space.pretrained)
    return json.loads((sdir / "metrics.json").read_text())


def _write_trial_json(ctx: SearchContext, number: int, student: str, config: dict, results: dict, state: str,
                      reason: str) -> None:
    """trial.json beside the seed runs: configuration, per-seed metrics, mean/std and state."""
    tdir = trial_dir(ctx.study_dir, student, number)
    body: dict[str, Any] = {"trial": number, "student": student, **config, "config_id": grid_id(config), "state": state,
                            "reason": reason, "seeds": results, "study_seeds": ctx.space.seeds}
    for metric in ("val_accuracy", "test_accuracy", "val_macro_f1", "test_macro_f1"):
        values = [r[metric] for r in results.values() if r.get(metric) is not None]
        body[f"mean_{metric}"] = statistics.fmean(values) if values else None
        body[f"std_{metric}"] = statistics.stdev(values) if len(values) > 1 else None
    write_json(tdir / "trial.json", body)


def _prune_checkpoints(space: SearchSpace, tdir: Path, results: dict[str, dict[str, Any]]) -> None:
    """With keep_checkpoints = 'best', delete best.pt of every seed but the best one."""
    if space.keep_checkpoints != "best" or not results:
        return
    best = max(results, key=lambda s: results[s][space.objective])
    for seed in results:
        if seed != best:
            (tdir / f"seed_{seed}" / "best.pt").unlink(missing_ok=True)
