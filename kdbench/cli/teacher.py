"""`kdbench teacher train|cache`: train the teacher, and cache its logits on a store."""

from __future__ import annotations

from pathlib import Path

import typer

from kdbench.cli.console import console, metrics_table
from kdbench.cli.options import complete_student, recipe_options
from kdbench.errors import ConfigError
from kdbench.recipe import LEGACY

# --lr-schedule, --warmup, --ema: the teacher keeps the recipe it was measured with (kdbench.recipe)
_RECIPE = recipe_options(LEGACY)

app = typer.Typer(help="Train the VGG16 teacher, or cache an existing teacher's logits on a frame store.",
                  no_args_is_help=True)


@app.command("train")
def train(
    store: Path = typer.Option(..., help="Frame store written by `kdbench data prepare`."),
    out: Path = typer.Option(Path("teacher.pt"), "--out", "-o", metavar="FILE", help="Where to write the teacher checkpoint (metrics JSON goes beside it)."),
    arch: str = typer.Option("vgg16", autocompletion=complete_student, help="Teacher architecture (any registered model name)."),
    epochs: int = typer.Option(20, help="Maximum epochs; early stopping on validation accuracy may end sooner."),
    batch_size: int = typer.Option(64, help="Training batch size."),
    lr: float = typer.Option(1e-4, help="AdamW learning rate (VGG16 without batch norm wants a small one)."),
    patience: int = typer.Option(5, help="Stop after this many epochs without a better validation accuracy."),
    seed: int = typer.Option(0, help="Random seed (runs are deterministic on CPU)."),
    pretrained: bool = typer.Option(False, help="Start from ImageNet weights (needs internet access)."),
    lr_schedule: str = _RECIPE["lr_schedule"],
    warmup: float = _RECIPE["warmup"],
    ema: float = _RECIPE["ema"],
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, or cuda[:N]."),
) -> None:
    """Train a teacher from scratch (or from ImageNet weights) with early stopping on validation."""
    from kdbench.checks import check_training_options, ensure_writable_dir
    from kdbench.data.store import FrameStore
    from kdbench.manifest import write_json
    from kdbench.models.checkpoint import estimate_checkpoint_mb
    from kdbench.train import TrainConfig, train_student

    check_training_options(lr=lr, epochs=epochs, batch_size=batch_size, patience=patience, device=device)
    frames = FrameStore.open(store)
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder; expected a checkpoint file path such as {out / 'teacher.pt'}")
    # best.pt is written in a run folder beside --out (temp file + rename), then moved onto --out
    ensure_writable_dir(out.parent, "--out folder", need_mb=2 * estimate_checkpoint_mb(arch) + 1)
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, patience=patience, seed=seed, device=device,
                         lr_schedule=lr_schedule, warmup=warmup, ema=ema)
    console.print(f"training teacher [bold]{arch}[/] on {frames.path} ({len(frames)} frames, {frames.size} px)")
    run_dir = out.with_suffix("")
    result = train_student(frames, arch, "scratch", {}, config, out_dir=run_dir, pretrained=pretrained,
                           meta={"role": "teacher"})
    if result.checkpoint is None:
        raise typer.Exit(_fail(f"teacher training produced no checkpoint: {result.status} {result.message}"))
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(result.checkpoint).replace(out)
    write_json(out.with_suffix(".json"), result.to_dict() | {"arch": arch, "checkpoint": str(out)})
    console.print(metrics_table(f"teacher {arch}: best epoch {result.best_epoch + 1} of {result.epochs_run}", result.metrics))
    console.print(f"wrote {out} and {out.with_suffix('.json')}")


@app.command("cache")
def cache(
    store: Path = typer.Option(..., help="Frame store written by `kdbench data prepare`."),
    teacher: Path = typer.Option(..., help="Teacher: a kdbench checkpoint (.pt) or an ONNX file."),
    batch_size: int = typer.Option(256, help="Inference batch size."),
    device: str = typer.Option("cpu", help="Device for a .pt teacher: cpu or cuda[:N]."),
    rebuild: bool = typer.Option(False, help="Recompute even when a valid cache entry exists."),
) -> None:
    """Compute the teacher's logits for every frame once; training then reads them from the cache."""
    from rich.progress import Progress

    from kdbench.checks import ensure_device, ensure_readable_file, positive_int
    from kdbench.data.store import FrameStore
    from kdbench.distill.cache import build_teacher_logits, cache_paths, cache_status

    positive_int(batch_size, "--batch-size")
    ensure_device(device)
    frames = FrameStore.open(store)
    ensure_readable_file(teacher, "--teacher")
    key, identity, reason = cache_status(frames, teacher, rebuild)  # hashes the teacher file once
    if reason is None:
        console.print(f"cache is up to date: {cache_paths(frames, key)[0]}")
        return
    console.print(f"building teacher-logit cache ({reason})")
    with Progress(console=console) as bar:
        task = bar.add_task("teacher logits", total=len(frames))
        build_teacher_logits(frames, teacher, key, identity, reason, batch_size, device,
                             progress=lambda done, total: bar.update(task, completed=done))
    console.print(f"wrote {cache_paths(frames, key)[0]}")


def _fail(message: str) -> int:
    """Print an error and return the exit code."""
    console.print(f"[bold red]error:[/] {message}")
    return 1
