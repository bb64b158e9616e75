"""`kdbench distill`: one training run of a student with one distillation method."""

from __future__ import annotations

from pathlib import Path

import typer

from kdbench.cli.console import console, metrics_table, warn
from kdbench.cli.options import complete_method, complete_student, recipe_options
from kdbench.recipe import RECOMMENDED

_RECIPE = recipe_options(RECOMMENDED)  # --lr-schedule, --warmup, --ema


def command(
    store: Path = typer.Option(..., help="Frame store written by `kdbench data prepare`."),
    student: str = typer.Option("mobilenet_v3_small", autocompletion=complete_student, help="Student architecture (see `kdbench models`)."),
    method: str = typer.Option("vanilla", autocompletion=complete_method, help="Distillation method: scratch, vanilla, conditional, ctkd, dkd, dist, wttm, nkd, logit_std."),
    teacher: Path = typer.Option(None, help="Teacher checkpoint (.pt) or ONNX file; needed by every method but scratch."),
    temperature: float = typer.Option(None, help="Distillation temperature T (method default when omitted)."),
    alpha: float = typer.Option(None, help="Weight of the distillation term (method default when omitted)."),
    param: list[str] = typer.Option(None, "--param", help="Further method settings as KEY=VALUE, e.g. --param schedule=cosine --param e_cap=10."),
    batch_size: int = typer.Option(256, help="Training batch size."),
    epochs: int = typer.Option(20, help="Maximum epochs; early stopping on validation accuracy may end sooner."),
    lr: float = typer.Option(1e-3, help="AdamW learning rate."),
    patience: int = typer.Option(5, help="Stop after this many epochs without a better validation accuracy."),
    seed: int = typer.Option(0, help="Random seed (runs are deterministic on CPU)."),
    pretrained: bool = typer.Option(False, "--pretrained/--no-pretrained", help="Start the student from ImageNet weights (downloaded once; needs internet or a filled cache)."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, or cuda[:N]."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Read the teacher's cached logits (--no-cache: run the teacher on every training batch; slow, for comparison)."),
    augment_versions: int = typer.Option(0, help="Echo augmentation with the teacher cache: K fixed augmented versions of each training frame, the teacher's logits cached for each (0 = off)."),
    augment_choice: str = typer.Option("cycle", help="Which version the student sees: cycle (epoch mod K) or random (seeded per frame and epoch)."),
    augment_seed: int = typer.Option(0, help="Seed that fixes the augmented versions' pixels (and their cache)."),
    unlabelled: float = typer.Option(0.0, "--unlabelled", metavar="FRACTION", help="Share of the store's unlabelled frames (`data prepare --unlabelled`) added to each training epoch, labelled by the teacher: on them only the distillation term applies (0 = off, 1 = all of them every epoch, 0.5 = half of them, drawn per epoch from the seed). Scratch has no teacher and ignores it."),
    lr_schedule: str = _RECIPE["lr_schedule"],
    warmup: float = _RECIPE["warmup"],
    ema: float = _RECIPE["ema"],
    out: Path = typer.Option(..., "--out", "-o", help="Run directory: best.pt and metrics.json are written here."),
) -> None:
    """Train one student with one distillation method; write the best checkpoint and its metrics."""
    from kdbench.checks import check_training_options, ensure_readable_file
    from kdbench.cli.options import parse_key_values
    from kdbench.data.store import FrameStore
    from kdbench.distill.registry import create_method
    from kdbench.errors import ConfigError
    from kdbench.train import TrainConfig, train_student

    hparams = parse_key_values(param, "--param")
    if temperature is not None:
        hparams["temperature"] = temperature
    if alpha is not None:
        hparams["alpha"] = alpha
    check_training_options(lr=lr, epochs=epochs, batch_size=batch_size, patience=patience, device=device)
    from kdbench.data.loader import check_share, unlabelled_pool

    check_share(unlabelled, "--unlabelled")
    from kdbench.data.augment import CHOICES, versions_beyond_epochs

    if augment_choice in CHOICES and isinstance(epochs, int):  # K > --epochs: never seen (cycle) or barely (random)
        too_many = versions_beyond_epochs(augment_versions, [augment_choice], epochs,
                                          f"--augment-versions {augment_versions}", f"--epochs {epochs}")
        if too_many:
            warn(too_many)
    needs_teacher = create_method(method, **hparams).needs_teacher  # validates the settings early
    if pretrained:
        from kdbench.models.registry import ensure_pretrained_weights

        ensure_pretrained_weights(student)  # offline: one clear error now, not after the teacher pass
    frames = FrameStore.open(store)
    unlabelled_pool(frames, unlabelled)  # a ConfigError naming the store when it has none to add
    if unlabelled and not needs_teacher:
        warn(f"--unlabelled {unlabelled:g} ignored: method {method!r} has no teacher to label them; training on the "
             "labelled frames only")
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed, device=device,
                         augment_versions=augment_versions, augment_choice=augment_choice, augment_seed=augment_seed,
                         unlabelled=unlabelled, lr_schedule=lr_schedule, warmup=warmup, ema=ema)
    if needs_teacher and teacher is None:
        raise ConfigError(f"method {method!r} distils from a teacher: pass --teacher PATH (.pt or .onnx)")
    if teacher is not None:
        ensure_readable_file(teacher, "--teacher")
    _check_out(out, student)
    feed = _open_teacher(frames, teacher, cache) if teacher is not None else None
    if feed is not None and needs_teacher and config.augment_versions:  # built here under a bar, then reused
        _with_bar("augmented teacher logits", None, lambda update: feed.augmented_logits(frames, config, update))
    result = train_student(frames, student, method, hparams, config, out_dir=out, pretrained=pretrained, teacher=feed,
                           meta={"teacher": str(teacher) if teacher else None, "pretrained": pretrained})
    if result.status != "ok":
        console.print(f"[bold yellow]run stopped:[/] {result.status}: {result.message}")
    if result.metrics:
        console.print(metrics_table(f"{student} / {method}: best epoch {result.best_epoch + 1} of {result.epochs_run}, "
                                    f"{result.train_images_per_s:.0f} img/s", result.metrics))
    console.print(f"wrote {out / 'metrics.json'}")
    if result.status != "ok":
        raise typer.Exit(1)


def _check_out(out: Path, student: str) -> None:
    """--out must be writable with room for best.pt (twice: the temp file, then the rename) before training."""
    from kdbench.checks import ensure_writable_dir
    from kdbench.models.checkpoint import estimate_checkpoint_mb

    ensure_writable_dir(out, "--out", need_mb=2 * estimate_checkpoint_mb(student) + 1)


def _with_bar(title: str, total: int | None, work):
    """``work(update)`` under a transient progress bar; ``update(done, total)`` moves it."""
    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task(title, total=total)
        return work(lambda done, n: bar.update(task, completed=done, total=n))


def _open_teacher(frames, teacher: Path, cache: bool):
    """The teacher as this run reads it: cached logits (built on first use, with a bar) or the live model."""
    from kdbench.distill.feed import TeacherFeed

    if not cache:
        return TeacherFeed.open(frames, teacher, cache=False)
    return _with_bar("teacher logits", len(frames), lambda update: TeacherFeed.open(frames, teacher, progress=update))
