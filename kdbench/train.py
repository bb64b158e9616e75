"""One training run: fit(student, method, store, config) -> RunResult.

The loop is the same for every method: the student's logits, the teacher's logits (looked up in the
cache by store row, or computed by a live teacher module for comparison), and the method's loss
terms. Early stopping watches validation accuracy; the best epoch's weights are what is evaluated
and saved. A non-finite loss ends the run with status ``"non_finite_loss"`` instead of raising.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from kdbench.data.loader import StoreLoader
from kdbench.data.resized import resized_store
from kdbench.data.store import FrameStore
from kdbench.data.views import VIEWS
from kdbench.distill.base import DistillMethod
from kdbench.manifest import write_json
from kdbench.metrics import classification_metrics

EpochCallback = Callable[[int, dict], None]


@dataclass
class TrainConfig:
    """Settings of one training run (the paper's defaults: batch 256, 20 epochs, early stopping)."""

    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    method_lr: float = 0.05  # SGD learning rate of a method's own parameters (CTKD's temperature)
    patience: int = 5  # epochs without a better validation accuracy before stopping
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:1" ...
    eval_batch_size: int = 512
    max_batches_per_epoch: int | None = None  # cap for smoke runs; None = the whole split
    precise_bn_batches: int = 8  # training batches that re-estimate batch-norm statistics before each validation; 0 = off
    input_size: int | None = None  # train and evaluate at this size (frames resized on the fly); None = the store's

    def resolved_device(self) -> torch.device:
        """The torch device this config asks for (auto = CUDA when present)."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@dataclass
class RunResult:
    """What one run produced: status, metrics of the best epoch, history and timings."""

    status: str  # "ok" | "non_finite_loss"
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = -1
    epochs_run: int = 0
    wall_time_s: float = 0.0
    train_images_per_s: float = 0.0
    message: str = ""
    checkpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form of the result."""
        return asdict(self)


def seed_everything(seed: int) -> None:
    """Seed torch and numpy so a CPU run is reproducible."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


@torch.no_grad()
def predict_logits(model: nn.Module, store: FrameStore, split: str, batch_size: int, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Logits of ``model`` on every frame of a split, and the store rows they belong to."""
    model.eval()
    outs, rows = [], []
    for x, _, idx in StoreLoader(store, split, batch_size):
        with _autocast(device):
            outs.append(model(_to_device(x, device)).float().cpu())
        rows.append(idx)
    if not outs:
        return np.zeros((0, len(VIEWS)), np.float32), np.zeros(0, np.int64)
    return torch.cat(outs).numpy(), torch.cat(rows).numpy()


def evaluate_split(
    logits: np.ndarray, rows: np.ndarray, store: FrameStore, teacher_logits: np.ndarray | None
) -> dict[str, Any]:
    """Classification metrics of logits on store rows, plus agreement with the teacher."""
    metrics = classification_metrics(logits, store.labels[rows], store.sources[rows])
    if teacher_logits is not None and len(rows):
        t = teacher_logits[rows]
        teacher = classification_metrics(t, store.labels[rows], store.sources[rows])
        metrics["teacher_accuracy"] = teacher["accuracy"]
        metrics["teacher_agreement"] = float(np.mean(logits.argmax(1) == t.argmax(1)))
        metrics["relative_accuracy"] = metrics["accuracy"] / teacher["accuracy"] if teacher["accuracy"] > 0 else float("nan")
    return metrics


def fit(
    model: nn.Module,
    method: DistillMethod,
    store: FrameStore,
    config: TrainConfig,
    teacher_logits: np.ndarray | None = None,
    teacher_model: Callable[[torch.Tensor], torch.Tensor] | None = None,
    out_dir: Path | None = None,
    progress: bool = True,
    epoch_callback: EpochCallback | None = None,
    checkpoint_meta: dict[str, Any] | None = None,
) -> RunResult:
    """Train ``model`` with ``method`` on the store's train split; early-stop on validation.

    ``teacher_logits`` ([N, 4], indexed by store row) is the cached teacher; ``teacher_model`` is
    the naive alternative that runs the teacher on every batch. ``epoch_callback(epoch, record)``
    may raise (for example optuna.TrialPruned) to stop the run; the exception propagates.
    """
    if method.needs_teacher and teacher_logits is None and teacher_model is None:
        raise ValueError(f"method {method.name!r} needs a teacher: pass teacher_logits or teacher_model")
    seed_everything(config.seed)
    store = resized_store(store, config.input_size)  # cached teacher logits stay those of the full-size frames
    device = config.resolved_device()
    model.to(device)
    method.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    if isinstance(teacher_model, nn.Module):
        teacher_model.to(device).eval()

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1))
    # A method's own parameters (CTKD's temperature) take plain SGD without weight decay, as in the
    # CTKD paper: Adam would normalise away the lambda scaling of the reversed gradient.
    method_params = [p for p in method.parameters() if p.requires_grad]
    optimizers = [optimizer] + ([torch.optim.SGD(method_params, lr=config.method_lr, momentum=0.9)] if method_params else [])
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    loader = StoreLoader(store, "train", config.batch_size, shuffle=True, seed=config.seed, drop_last=False)
    n_batches = len(loader) if config.max_batches_per_epoch is None else min(len(loader), config.max_batches_per_epoch)

    history: list[dict[str, Any]] = []
    best_acc, best_epoch, best_state = -1.0, -1, None
    status, message = "ok", ""
    images, train_time = 0, 0.0
    start = time.perf_counter()
    n_train = len(store.indices("train"))
    bar = _progress() if progress else None
    with bar if bar is not None else contextlib.nullcontext():
        task = bar.add_task("train", total=config.epochs * n_batches) if bar is not None else None
        for epoch in range(config.epochs):
            model.train()
            loader.set_epoch(epoch)
            terms_sum: dict[str, float] = {}
            t0 = time.perf_counter()
            for b, (x, y, idx) in enumerate(loader):
                if b >= n_batches:
                    break
                x, y = _to_device(x, device), y.to(device, non_blocking=True)
                with _autocast(device):
                    logits = model(x)
                    t_logits = _teacher_batch(teacher_logits, teacher_model, x, idx, device) if method.needs_teacher else None
                terms = method(logits.float(), t_logits, y, epoch)
                loss = sum(terms.values())
                if not torch.isfinite(loss):
                    status = "non_finite_loss"
                    message = f"loss became {loss.item()} at epoch {epoch} batch {b} ({_fmt_terms(terms)})"
                    break
                for opt in optimizers:
                    opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                for opt in optimizers:
                    scaler.step(opt)
                scaler.update()
                images += len(y)
                for k, v in terms.items():
                    terms_sum[k] = terms_sum.get(k, 0.0) + float(v.detach()) * len(y)
                if bar is not None:
                    bar.update(task, advance=1, description=f"epoch {epoch + 1}/{config.epochs}")
            train_time += time.perf_counter() - t0
            if status != "ok":
                break
            scheduler.step()
            if config.precise_bn_batches:
                recalibrate_batch_norm(model, loader, config.precise_bn_batches, device)
            val_logits, val_rows = predict_logits(model, store, "val", config.eval_batch_size, device)
            val = classification_metrics(val_logits, store.labels[val_rows], store.sources[val_rows])
            seen = max(1, min(n_train, n_batches * config.batch_size))
            record = {
                "epoch": epoch,
                "train_loss": {k: v / seen for k, v in terms_sum.items()},
                "val_accuracy": val["accuracy"],
                "val_macro_f1": val["macro_f1"],
                **{f"method_{k}": v for k, v in method.epoch_log().items()},
            }
            history.append(record)
            if val["accuracy"] > best_acc:
                best_acc, best_epoch = val["accuracy"], epoch
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            if bar is not None:
                bar.console.print(
                    f"  epoch {epoch + 1}: loss {sum(record['train_loss'].values()):.4f}  "
                    f"val acc {val['accuracy']:.4f}  best {best_acc:.4f} (epoch {best_epoch + 1})"
                    + "".join(f"  {k} {v:.3f}" for k, v in method.epoch_log().items()),
                    highlight=False,
                )
            if epoch_callback is not None:
                epoch_callback(epoch, record)
            if epoch - best_epoch >= config.patience:
                break

    result = RunResult(
        status=status,
        metrics={},
        history=history,
        best_epoch=best_epoch,
        epochs_run=len(history),
        message=message,
        train_images_per_s=images / train_time if train_time > 0 else 0.0,
    )
    if best_state is not None:
        model.load_state_dict(best_state)
        result.metrics = {
            split: evaluate_split(*predict_logits(model, store, split, config.eval_batch_size, device), store, teacher_logits)
            for split in ("val", "test")
        }
    result.wall_time_s = time.perf_counter() - start
    if out_dir is not None:
        _write_run(out_dir, model, method, store, config, result, checkpoint_meta or {}, best_state is not None)
    return result


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, loader: StoreLoader, max_batches: int, device: torch.device) -> bool:
    """Re-estimate batch-norm running statistics as plain averages over training batches ("precise BN").

    In short runs the exponential running averages lag far behind the weights (the eval-mode model
    can then predict one class while its training loss is near zero). Returns False when the model
    has no batch norm. The weights are untouched; only the running mean and variance change.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return False
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative moving average: every batch weighs the same
    was_training = model.training
    model.train()
    for b, (x, _, _) in enumerate(loader):
        if b >= max_batches:
            break
        with _autocast(device):
            model(_to_device(x, device))
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    model.train(was_training)
    return True


def _write_run(out_dir: Path, model: nn.Module, method: DistillMethod, store: FrameStore, config: TrainConfig,
               result: RunResult, meta: dict[str, Any], has_weights: bool) -> None:
    """Write best.pt (when any epoch finished) and metrics.json into the run directory."""
    from kdbench.models.checkpoint import save_checkpoint

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arch = meta.get("arch", type(model).__name__)
    if has_weights:
        save_checkpoint(model.cpu(), out_dir / "best.pt", arch=arch, num_classes=len(VIEWS), input_size=store.size,
                        extra={"method": method.name})
        result.checkpoint = str(out_dir / "best.pt")
    write_json(out_dir / "metrics.json", {
        **meta,
        "method": method.name,
        "hparams": method.hparams(),
        "config": asdict(config),
        "store": str(store.path),
        "store_hash": store.store_hash,
        **result.to_dict(),
    })


def _teacher_batch(cache: np.ndarray | None, teacher: Callable[[torch.Tensor], torch.Tensor] | None, x: torch.Tensor, idx: torch.Tensor,
                   device: torch.device) -> torch.Tensor:
    """Teacher logits for a batch: from the cache by store row, else from the live teacher."""
    if cache is not None:
        return torch.from_numpy(cache[idx.numpy()]).to(device, non_blocking=True)
    with torch.no_grad():
        return teacher(x).float()


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move an input batch to the device (channels_last on CUDA)."""
    if device.type == "cuda":
        return x.to(device, non_blocking=True, memory_format=torch.channels_last)
    return x


def _autocast(device: torch.device):
    """bf16/fp16 autocast on CUDA, nothing on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def _fmt_terms(terms: dict[str, torch.Tensor]) -> str:
    """Loss terms as 'name=value' for messages."""
    return ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())


def _progress():
    """A rich progress bar over the training batches."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), transient=False)


def train_student(
    store: FrameStore,
    student: str,
    method_name: str,
    hparams: dict[str, Any],
    config: TrainConfig,
    teacher_logits: np.ndarray | None = None,
    teacher_model: Callable[[torch.Tensor], torch.Tensor] | None = None,
    out_dir: Path | None = None,
    progress: bool = True,
    epoch_callback: EpochCallback | None = None,
    pretrained: bool = False,
    meta: dict[str, Any] | None = None,
) -> RunResult:
    """Build the student and the method by name and fit them: the unit a search trial repeats per seed."""
    from kdbench.distill.registry import create_method
    from kdbench.models import create_model

    seed_everything(config.seed)  # the same seed gives the same initial weights
    model = create_model(student, num_classes=len(VIEWS), pretrained=pretrained)
    method = create_method(method_name, **hparams)
    return fit(model, method, store, config, teacher_logits=teacher_logits, teacher_model=teacher_model, out_dir=out_dir, progress=progress,
               epoch_callback=epoch_callback, checkpoint_meta={"arch": student, "student": student, **(meta or {})})
