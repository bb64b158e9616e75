"""One training run: fit(student, method, store, config) -> RunResult.

The loop is the same for every method: the student's logits, the teacher's logits (looked up in the
cache by store row, or computed by a live teacher module for comparison), and the method's loss
terms. Each epoch is a training pass (``_train_epoch``), a check that the weights are finite, and a
validation (``_validate``); the epoch with the best ``config.select_on`` (validation accuracy or
macro-F1, the study's objective) is kept, early stopping watches the same figure, and the kept
weights are evaluated on val and test (``_evaluate_best``) and saved. The memory format (and
compilation) of training and evaluation is the fastest measured for this model, size, device and
batch (``kdbench.fastpath``). A non-finite loss ends the run with status ``"non_finite_loss"``,
non-finite weights after an epoch with ``"non_finite"``; neither raises, and no checkpoint with
non-finite weights is written.

``TrainConfig.unlabelled`` > 0 adds that share of the store's unlabelled frames to every training
epoch of a method with a teacher (``unlabelled_share``): the teacher labels them, and on them only
the distillation term applies (``kdbench.distill.base``). Scratch has no teacher and trains on the
labelled frames only. The run records how many frames of each kind it saw (``frames_seen``).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from kdbench import fastpath
from kdbench.data.augment import CHOICES as AUGMENT_CHOICES
from kdbench.data.augment import AugmentConfig, AugmentedLoader, settings_from_dict, teacher_lookup
from kdbench.data.loader import StoreLoader, check_share, unlabelled_pool
from kdbench.data.prefetch import default_workers, prefetch
from kdbench.data.resized import resized_store
from kdbench.data.store import FrameStore
from kdbench.data.views import NO_LABEL, VIEWS
from kdbench.distill.base import DistillMethod
from kdbench.distill.feed import TeacherFeed
from kdbench.errors import ConfigError
from kdbench.manifest import write_json
from kdbench.recipe import LEGACY, LR_SCHEDULES
from kdbench.metrics import classification_metrics, clip_ids
from kdbench.predictions import save_predictions

EpochCallback = Callable[[int, dict], None]
SELECT_ON = ("val_accuracy", "val_macro_f1")
METHOD_OPTIMIZERS = ("student", "sgd")
EVAL_PROBE_BATCH = 64


@dataclass
class TrainConfig:
    """Settings of one training run (the paper's defaults: batch 256, 20 epochs, early stopping)."""

    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    # A method's own parameters (CTKD's temperature): "student" puts them in the student's AdamW, with
    # its learning rate, cosine schedule and weight decay, as the official CTKD code does (one SGD over
    # the student and the temperature module, zhengli97/CTKD train_student.py); "sgd" gives them their
    # own constant-lr SGD (momentum 0.9, no weight decay) at ``method_lr``.
    method_optimizer: str = "student"
    method_lr: float = 0.05
    patience: int = 5  # epochs without a better ``select_on`` before stopping
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:1" ...
    eval_batch_size: int = 512
    max_batches_per_epoch: int | None = None  # cap for smoke runs; None = the whole split
    precise_bn_batches: int = 8  # training batches that re-estimate batch-norm statistics before each validation; 0 = off
    select_on: str = "val_accuracy"  # the validation figure that picks the epoch: "val_accuracy" | "val_macro_f1"
    fast_path: str = "auto"  # memory format / compilation: "auto" (measured, cached) | "off" | a format of kdbench.fastpath
    input_size: int | None = None  # train and evaluate at this size (frames resized on the fly); None = the store's
    # Augmentation that keeps the teacher cache (kdbench.data.augment): K fixed augmented versions of
    # every training frame; the student sees version epoch mod K ("cycle") or a seeded random one
    # ("random"); the cached teacher logits of that version are looked up. 0 = no augmentation.
    augment_versions: int = 0
    augment_choice: str = "cycle"
    augment_seed: int = 0  # fixes the versions' pixels (and the augmented cache's key); not the training seed
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # strengths; a dict is read with from_dict
    # Share of the store's unlabelled frames added to every training epoch of a method with a teacher, which labels
    # them: 0 = off, 1 = all of them every epoch, else round(share x pool) drawn per epoch from the seed
    # (kdbench.data.loader). Scratch ignores it (``unlabelled_share``). Records without it read as 0.
    unlabelled: float = 0.0
    # The learning-rate schedule: "cosine_epochs" (cosine over the epochs, stepped once per epoch, no warm-up: the
    # default, so older records read back as what they ran) or "warmup_cosine" (per step: linear warm-up over
    # ``warmup`` of the planned steps, then cosine to zero). kdbench.recipe.RECOMMENDED is what new runs use.
    lr_schedule: str = LEGACY.lr_schedule
    warmup: float = LEGACY.warmup  # share of the planned steps spent warming up ("warmup_cosine" only)
    # Exponential moving average of the weights, updated after every step with this decay (0 = off): the average,
    # not the raw weights, is validated, kept and saved. Early steps use min(ema, (1 + t) / (10 + t)).
    ema: float = LEGACY.ema

    def __post_init__(self) -> None:
        self.unlabelled = check_share(self.unlabelled, "train unlabelled")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"train lr_schedule={self.lr_schedule!r} is not allowed; expected one of {list(LR_SCHEDULES)}")
        for key in ("warmup", "ema"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ConfigError(f"train {key}={value!r}; expected a number in [0, 1)")
            setattr(self, key, float(value))
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig.from_dict(self.augment)
        if not isinstance(self.augment, AugmentConfig):
            raise ConfigError(f"train augment={self.augment!r}; expected a table of augmentation strengths")
        versions = self.augment_versions
        if isinstance(versions, bool) or not isinstance(versions, (int, np.integer)) or versions < 0:
            raise ConfigError(f"train augment_versions={versions!r}; expected a whole number >= 0 (0 turns augmentation off)")
        self.augment_versions = int(versions)
        if self.augment_choice not in AUGMENT_CHOICES:
            raise ConfigError(f"train augment_choice={self.augment_choice!r} is not allowed; "
                              f"expected one of {list(AUGMENT_CHOICES)}")
        if isinstance(self.augment_seed, bool) or not isinstance(self.augment_seed, int) or self.augment_seed < 0:
            raise ConfigError(f"train augment_seed={self.augment_seed!r}; expected an integer >= 0")
        if self.select_on not in SELECT_ON:
            raise ConfigError(f"train select_on={self.select_on!r} is not allowed; expected one of {list(SELECT_ON)}")
        if self.method_optimizer not in METHOD_OPTIMIZERS:
            raise ConfigError(f"train method_optimizer={self.method_optimizer!r} is not allowed; "
                              f"expected one of {list(METHOD_OPTIMIZERS)}")
        fastpath.check_fast_path(self.fast_path)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (``augment`` as a nested dict), as metrics.json records it."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Read ``to_dict()``'s form back; missing keys take their defaults (older records), unknown ones are a ConfigError."""
        return settings_from_dict(cls, data, "train")

    def resolved_device(self) -> torch.device:
        """The torch device this config asks for (auto = CUDA when present)."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@dataclass
class RunResult:
    """What one run produced: status, metrics of the best epoch, history and timings."""

    status: str  # "ok" | "non_finite_loss" | "non_finite" (weights)
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = -1
    epochs_run: int = 0
    wall_time_s: float = 0.0
    train_images_per_s: float = 0.0
    train_time_s: float = 0.0  # wall seconds of the training passes (no validation, no final evaluation)
    train_cpu_s: float = 0.0  # process CPU seconds of the training passes (wall time x cores busy)
    message: str = ""
    checkpoint: str | None = None
    fast_path: dict[str, Any] = field(default_factory=dict)  # {"train": FormatChoice, "eval": FormatChoice} as dicts
    # training frames seen over every epoch (each epoch's own count is in its history record)
    frames_seen: dict[str, int] = field(default_factory=lambda: {"labelled": 0, "unlabelled": 0})
    unlabelled_share: float = 0.0  # the share of the unlabelled pool the run trained on (0 for scratch: no teacher)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form of the result."""
        return asdict(self)


def unlabelled_share(method: DistillMethod, config: TrainConfig) -> float:
    """The share of the store's unlabelled frames a run of ``method`` trains on: ``config.unlabelled`` for a method
    with a teacher (which labels them), 0 for one without (scratch cannot use them)."""
    return config.unlabelled if method.needs_teacher else 0.0


def seed_everything(seed: int) -> None:
    """Seed torch and numpy so a CPU run is reproducible."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))


@torch.no_grad()
def predict_logits(model: nn.Module, store: FrameStore, split: str, batch_size: int, device: torch.device,
                   fmt: str = "nchw") -> tuple[np.ndarray, np.ndarray]:
    """Logits of ``model`` on every frame of a split (inputs in ``fmt``'s layout), and their store rows."""
    model.eval()
    outs, rows = [], []
    for x, _, idx in StoreLoader(store, split, batch_size):
        with fastpath.autocast(device):
            outs.append(model(fastpath.format_input(x, fmt, device)).float().cpu())
        rows.append(idx)
    if not outs:
        return np.zeros((0, len(VIEWS)), np.float32), np.zeros(0, np.int64)
    return torch.cat(outs).numpy(), torch.cat(rows).numpy()


def evaluate_split(
    logits: np.ndarray, rows: np.ndarray, store: FrameStore, teacher_logits: np.ndarray | None
) -> dict[str, Any]:
    """Classification metrics (frame and clip level) of logits on store rows, plus agreement with the teacher."""
    labels, sources = store.labels[rows], store.sources[rows]
    with _blas_threads():  # the clip bootstrap's matrix products would otherwise take every core
        metrics = classification_metrics(logits, labels, sources, clips=clip_ids(store, rows))
    if teacher_logits is not None and len(rows):
        t = teacher_logits[rows]
        teacher = classification_metrics(t, labels, sources)
        metrics["teacher_accuracy"] = teacher["accuracy"]
        metrics["teacher_agreement"] = float(np.mean(logits.argmax(1) == t.argmax(1)))
        metrics["relative_accuracy"] = metrics["accuracy"] / teacher["accuracy"] if teacher["accuracy"] > 0 else float("nan")
    return metrics


def _blas_threads():
    """numpy's BLAS limited to torch's thread count (a worker's share of the cores), when threadpoolctl is present."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # not a dependency: without it BLAS keeps its own default
        return contextlib.nullcontext()
    return threadpool_limits(torch.get_num_threads(), user_api="blas")


def non_finite_weights(model: nn.Module) -> str | None:
    """None when every floating-point weight and buffer is finite, else how many values are not."""
    bad = {k: int((~torch.isfinite(v)).sum()) for k, v in model.state_dict().items() if v.is_floating_point()}
    bad = {k: n for k, n in bad.items() if n}
    if not bad:
        return None
    return f"{sum(bad.values())} non-finite values in {len(bad)} tensors (first: {next(iter(bad))})"


@dataclass
class _Loop:
    """The pieces of one run that the epoch, validation and final evaluation share."""

    model: nn.Module
    method: DistillMethod
    store: FrameStore
    config: TrainConfig
    device: torch.device
    loader: StoreLoader | AugmentedLoader  # the training batches (augmented when config.augment_versions > 0)
    bn_loader: StoreLoader  # precise BN's batches: the training split's plain frames, the distribution evaluated on
    n_batches: int
    optimizers: list[torch.optim.Optimizer]
    scheduler: Any
    average: WeightAverage | None  # the weights' moving average (config.ema > 0): what is validated and kept
    scaler: Any
    train_format: fastpath.FormatChoice
    eval_format: fastpath.FormatChoice
    forward: Callable[[torch.Tensor], torch.Tensor]
    teacher_logits: np.ndarray | None = None  # [N, 4]: the teacher on plain frames (evaluation's teacher figures)
    teacher_model: Callable[[torch.Tensor], torch.Tensor] | None = None
    train_cache: np.ndarray | None = None  # what training looks up: [N, 4] plain, or [K, N, 4] with augmentation


@dataclass
class _Epoch:
    """What one training pass produced. Batches are counted in windows of ``check_every``: their loss terms are
    summed on the device, and one wait for the device per window checks that every loss was finite."""

    terms: dict[str, float] = field(default_factory=dict)  # loss terms summed over images
    images: int = 0
    unlabelled: int = 0  # of which unlabelled frames (label NO_LABEL)
    seconds: float = 0.0
    cpu_seconds: float = 0.0  # process CPU time (all threads): with wall time, shows contention on a busy host
    status: str = "ok"
    message: str = ""
    epoch: int = 0  # the epoch of the pass (for the message)
    check_every: int = 16  # batches between finiteness checks (the only waits for the device in a pass)
    sums: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # terms x images, on the device
    window: list[tuple[int, torch.Tensor, dict[str, torch.Tensor], int, int]] = field(default_factory=list, repr=False)

    def add(self, b: int, loss: torch.Tensor, terms: dict[str, torch.Tensor], images: int, unlabelled: int) -> bool:
        """Keep batch ``b`` (nothing read back from the device); every ``check_every`` batches, ``check()``."""
        self.window.append((b, loss.detach(), {k: v.detach() for k, v in terms.items()}, images, unlabelled))
        return self.check() if len(self.window) >= self.check_every else True

    def check(self) -> bool:
        """Count the window's batches up to its first non-finite loss (one device wait); False when there was one
        (status "non_finite_loss", the message naming the epoch, the batch and the batches checked together)."""
        if not self.window:
            return True
        finite = torch.isfinite(torch.stack([w[1] for w in self.window])).tolist()
        bad = finite.index(False) if False in finite else len(finite)
        for _, _, terms, images, unlabelled in self.window[:bad]:
            self.images, self.unlabelled = self.images + images, self.unlabelled + unlabelled
            for k, v in terms.items():  # float64: the sums Python floats gave, in the same order (MPS has no float64)
                v = v.to(torch.float32 if v.device.type == "mps" else torch.float64) * images
                self.sums[k] = self.sums[k] + v if k in self.sums else v
        if bad < len(finite):
            b, loss, terms = self.window[bad][:3]
            self.status, self.message = "non_finite_loss", (
                f"loss became {loss.item()} at epoch {self.epoch} batch {b} ({_fmt_terms(terms)}); found by the "
                f"check of batches {self.window[0][0]}-{self.window[-1][0]}")
        self.window.clear()
        return bad == len(finite)

    def finish(self) -> None:
        """The summed terms as Python floats (one read from the device)."""
        self.terms = {k: float(v) for k, v in self.sums.items()}


def _optimizers(model: nn.Module, method: DistillMethod, config: TrainConfig,
                n_batches: int) -> tuple[list[torch.optim.Optimizer], Any]:
    """The student's AdamW with its schedule (``config.lr_schedule``), holding the method's own parameters too unless
    they get their own SGD."""
    own = [p for p in method.parameters() if p.requires_grad]
    joined = own if config.method_optimizer == "student" else []
    optimizer = torch.optim.AdamW([*model.parameters(), *joined], lr=config.lr, weight_decay=config.weight_decay)
    if config.lr_schedule == "warmup_cosine":
        factor = warmup_cosine(config.epochs * max(n_batches, 1), config.warmup)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    else:
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1))
    extra = [torch.optim.SGD(own, lr=config.method_lr, momentum=0.9)] if own and not joined else []
    return [optimizer, *extra], scheduler


def warmup_cosine(total_steps: int, warmup: float) -> Callable[[int], float]:
    """The learning-rate factor of step t: linear from 1/w to 1 over the first w = round(warmup x total) steps (at
    least 1), then cosine from 1 down to 0 at ``total_steps``."""
    warm = max(1, round(warmup * total_steps))
    rest = max(1, total_steps - warm)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1.0 + math.cos(math.pi * min(step - warm, rest) / rest))

    return factor


class WeightAverage:
    """An exponential moving average of a model's floating-point weights and buffers (``TrainConfig.ema``)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay, self.updates = decay, 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Fold the model's current weights in: avg = d x avg + (1 - d) x w, d = min(decay, (1 + t) / (10 + t))."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        current = model.state_dict()
        averages = list(self.state.values())
        torch._foreach_mul_(averages, d)
        torch._foreach_add_(averages, [current[k].detach() for k in self.state], alpha=1 - d)

    @contextlib.contextmanager
    def swapped_in(self, model: nn.Module):
        """The model holds the average for the duration, its own weights again after."""
        own = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.state, strict=False)
        try:
            yield
        finally:
            model.load_state_dict(own)


def _choose_formats(model: nn.Module, store: FrameStore, config: TrainConfig, device: torch.device, arch: str,
                    n_batches: int) -> tuple[fastpath.FormatChoice, fastpath.FormatChoice]:
    """The training and evaluation formats for this model, size, device and batch (measured once, cached)."""
    x, y, _ = next(iter(StoreLoader(store, "train", config.batch_size)))
    train = fastpath.choose(model, x, y, "train", device, config.fast_path, arch, config.batch_size,
                            planned_steps=config.epochs * n_batches, lr=config.lr)
    split = "val" if len(store.indices("val")) else "train"
    probe = min(config.eval_batch_size, EVAL_PROBE_BATCH)  # the speed ranking, at a fraction of a full batch's cost
    xv, yv, _ = next(iter(StoreLoader(store, split, probe)))
    evaluation = fastpath.choose(model, xv, yv, "eval", device, config.fast_path, arch, probe)
    return train, evaluation


def _train_loaders(store: FrameStore, config: TrainConfig,
                   share: float = 0.0) -> tuple[StoreLoader | AugmentedLoader, StoreLoader]:
    """The training loader (augmented when ``augment_versions`` > 0, with ``share`` of the unlabelled frames) and
    the plain one precise BN reads (labelled training frames only)."""
    plain = StoreLoader(store, "train", config.batch_size, shuffle=True, seed=config.seed, drop_last=False)
    if config.augment_versions:
        return AugmentedLoader(store, "train", config.batch_size, versions=config.augment_versions, seed=config.seed,
                               config=config.augment, shuffle=True, choice=config.augment_choice,
                               augment_seed=config.augment_seed, unlabelled=share), plain
    if share:
        return StoreLoader(store, "train", config.batch_size, shuffle=True, seed=config.seed, unlabelled=share), plain
    return plain, plain


def _setup(model: nn.Module, method: DistillMethod, store: FrameStore, config: TrainConfig, arch: str,
           teacher_logits: np.ndarray | None, teacher_model: Callable | None,
           augmented_logits: np.ndarray | None = None) -> _Loop:
    """Place the model, choose its formats, and build the optimizers and the loaders of a run."""
    device = config.resolved_device()
    model.to(device)
    method.to(device)
    if isinstance(teacher_model, nn.Module):
        teacher_model.to(device).eval()
    loader, bn_loader = _train_loaders(store, config, unlabelled_share(method, config))
    n_batches = len(loader) if config.max_batches_per_epoch is None else min(len(loader), config.max_batches_per_epoch)
    train_format, eval_format = _choose_formats(model, store, config, device, arch, n_batches)
    fastpath.to_format(model, train_format.format)
    optimizers, scheduler = _optimizers(model, method, config, n_batches)
    return _Loop(model=model, method=method, store=store, config=config, device=device, loader=loader,
                 bn_loader=bn_loader, n_batches=n_batches, optimizers=optimizers, scheduler=scheduler,
                 average=WeightAverage(model, config.ema) if config.ema else None,
                 scaler=torch.amp.GradScaler("cuda", enabled=device.type == "cuda"), train_format=train_format,
                 eval_format=eval_format, forward=fastpath.compiled(model, train_format.format),
                 teacher_logits=teacher_logits, teacher_model=teacher_model,
                 train_cache=augmented_logits if config.augment_versions else teacher_logits)


def _train_epoch(loop: _Loop, epoch: int, on_batch: Callable[[], None] | None = None) -> _Epoch:
    """One pass over the training batches (prepared ahead in a thread, ``kdbench.data.prefetch``); the losses are
    checked every ``_Epoch.check_every`` batches and at the end, and a non-finite one stops the pass."""
    loop.model.train()
    loop.loader.set_epoch(epoch)
    loop.bn_loader.set_epoch(epoch)
    out, fmt, device = _Epoch(epoch=epoch), loop.train_format.format, loop.device
    t0, cpu0 = time.perf_counter(), time.process_time()
    with prefetch(loop.loader, device, limit=loop.n_batches, workers=default_workers(device)) as batches:
        for b, batch in enumerate(batches):
            (x, y, idx), k = batch[:3], (batch[3] if len(batch) > 3 else None)  # k: the augmented version of each frame
            unlabelled = int((y == NO_LABEL).sum())  # the CPU labels: no device sync
            x, y = fastpath.format_input(x, fmt, device), y.to(device, non_blocking=True)
            with fastpath.autocast(device):
                logits = loop.forward(x)
                t_logits = (_teacher_batch(loop.train_cache, loop.teacher_model, x, idx, device, k)
                            if loop.method.needs_teacher else None)
            terms = loop.method(logits.float(), t_logits, y, epoch)
            loss = sum(terms.values())
            _step(loop, loss)
            if not out.add(b, loss, terms, len(y), unlabelled):
                break
            if on_batch is not None:
                on_batch()
    if out.check():
        out.finish()
    out.seconds, out.cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    return out


def _step(loop: _Loop, loss: torch.Tensor) -> None:
    """Backward and one step of every optimizer (through the AMP scaler on CUDA)."""
    for opt in loop.optimizers:
        opt.zero_grad(set_to_none=True)
    loop.scaler.scale(loss).backward()
    for opt in loop.optimizers:
        loop.scaler.step(opt)
    loop.scaler.update()
    if loop.config.lr_schedule != "cosine_epochs":  # a per-step schedule
        loop.scheduler.step()
    if loop.average is not None:
        loop.average.update(loop.model)


def _evaluated(loop: _Loop):
    """The weights a run validates and keeps: the moving average when there is one, else the model's own."""
    return loop.average.swapped_in(loop.model) if loop.average is not None else contextlib.nullcontext()


@contextlib.contextmanager
def _eval_layout(loop: _Loop):
    """The model in the evaluation format's layout for the duration (back to the training layout after)."""
    fastpath.to_format(loop.model, loop.eval_format.format)
    try:
        yield loop.eval_format.format
    finally:
        fastpath.to_format(loop.model, loop.train_format.format)


def _validate(loop: _Loop, epoch: int, trained: _Epoch) -> dict[str, Any]:
    """Precise batch-norm statistics, then the epoch's record: mean loss terms and validation figures."""
    config = loop.config
    if config.precise_bn_batches:
        recalibrate_batch_norm(loop.model, loop.bn_loader, config.precise_bn_batches, loop.device, loop.train_format.format)
    with _eval_layout(loop) as fmt:
        logits, rows = predict_logits(loop.model, loop.store, "val", config.eval_batch_size, loop.device, fmt)
    val = evaluate_split(logits, rows, loop.store, None)
    seen = max(1, trained.images)
    return {
        "epoch": epoch,
        "train_loss": {k: v / seen for k, v in trained.terms.items()},
        "val_accuracy": val["accuracy"],
        "val_macro_f1": val["macro_f1"],
        "val_clip_accuracy": val.get("clip_accuracy"),
        "frames_seen": _frames_seen(trained),
        **{f"method_{k}": v for k, v in loop.method.epoch_log().items()},
    }


def _frames_seen(trained: _Epoch) -> dict[str, int]:
    """An epoch's training frames: labelled and unlabelled."""
    return {"labelled": trained.images - trained.unlabelled, "unlabelled": trained.unlabelled}


def _evaluate_best(loop: _Loop, best_state: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Load the kept epoch's weights; their metrics on val and test, and the logits and rows behind them."""
    loop.model.load_state_dict(best_state)
    predictions: dict[str, np.ndarray] = {}
    metrics: dict[str, Any] = {}
    with _eval_layout(loop) as fmt:
        for split in ("val", "test"):
            logits, rows = predict_logits(loop.model, loop.store, split, loop.config.eval_batch_size, loop.device, fmt)
            predictions[f"{split}_logits"], predictions[f"{split}_rows"] = logits.astype(np.float32), rows.astype(np.int64)
            metrics[split] = evaluate_split(logits, rows, loop.store, loop.teacher_logits)
            if loop.teacher_logits is not None:  # the relative accuracy's paired interval needs the teacher's hits
                predictions[f"{split}_teacher_logits"] = np.asarray(loop.teacher_logits[rows], dtype=np.float32)
    return metrics, predictions


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
    augmented_logits: np.ndarray | None = None,
) -> RunResult:
    """Train ``model`` with ``method`` on the store's train split (plus ``unlabelled_share(method, config)`` of its
    unlabelled frames, whose teacher logits the same cache holds); keep the epoch best on ``config.select_on``.

    ``teacher_logits`` ([N, 4], indexed by store row) is the cached teacher; ``teacher_model`` is
    the naive alternative that runs the teacher on every batch (on the augmented frames, when
    augmenting). With ``config.augment_versions`` = K > 0 a cached teacher is ``augmented_logits``
    ([K, N, 4] of ``kdbench.distill.augmented_cache.load_or_build_augmented_logits`` with the config's seed
    and strengths), looked up as ``[k, row]``; ``teacher_logits`` then only gives the evaluation's
    teacher figures. ``epoch_callback(epoch, record)`` may raise (for example optuna.TrialPruned)
    to stop the run; the exception propagates.
    """
    _check_teacher(method, store, config, teacher_logits, teacher_model, augmented_logits)
    _check_unlabelled(method, store, config, augmented_logits)
    start = time.perf_counter()
    seed_everything(config.seed)
    store = resized_store(store, config.input_size)  # cached teacher logits stay those of the full-size frames
    meta = checkpoint_meta or {}
    loop = _setup(model, method, store, config, meta.get("arch") or getattr(model, "arch", type(model).__name__),
                  teacher_logits, teacher_model, augmented_logits)
    result = RunResult(status="ok", metrics={}, fast_path={"train": loop.train_format.to_dict(), "eval": loop.eval_format.to_dict()},
                       unlabelled_share=unlabelled_share(method, config))
    best_score, best_state, images, train_time = -1.0, None, 0, 0.0
    bar = _progress() if progress else None
    with bar if bar is not None else contextlib.nullcontext():
        task = bar.add_task("train", total=config.epochs * loop.n_batches) if bar is not None else None
        callbacks = [cb for cb in (_console_callback(bar, config) if bar is not None else None, epoch_callback) if cb]
        for epoch in range(config.epochs):
            advance = (lambda e=epoch: bar.update(task, advance=1, description=f"epoch {e + 1}/{config.epochs}")) if bar else None
            trained = _train_epoch(loop, epoch, advance)
            images, train_time = images + trained.images, train_time + trained.seconds
            result.frames_seen = {k: n + result.frames_seen[k] for k, n in _frames_seen(trained).items()}
            result.train_cpu_s += trained.cpu_seconds
            result.status, result.message = trained.status, trained.message
            bad = non_finite_weights(model) if trained.status == "ok" else None
            if bad:
                result.status, result.message = "non_finite", f"weights became non-finite in epoch {epoch}: {bad}"
            if result.status != "ok":
                break
            if config.lr_schedule == "cosine_epochs":
                loop.scheduler.step()
            with _evaluated(loop):
                record = _validate(loop, epoch, trained)
                if record[config.select_on] > best_score:
                    best_score, result.best_epoch = record[config.select_on], epoch
                    best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            record.update(best_epoch=result.best_epoch, best_score=best_score)
            result.history.append(record)
            for callback in callbacks:
                callback(epoch, record)
            if epoch - result.best_epoch >= config.patience:
                break
    result.epochs_run = len(result.history)
    result.train_images_per_s = images / train_time if train_time > 0 else 0.0
    result.train_time_s = train_time
    predictions = None
    if best_state is not None:
        result.metrics, predictions = _evaluate_best(loop, best_state)
    result.wall_time_s = time.perf_counter() - start
    if out_dir is not None:
        _write_run(out_dir, model, method, store, config, result, meta, predictions)
    return result


def _check_teacher(method: DistillMethod, store: FrameStore, config: TrainConfig, teacher_logits: np.ndarray | None,
                   teacher_model: Callable | None, augmented_logits: np.ndarray | None) -> None:
    """A teacher method gets a teacher, and with augmentation one that saw the augmented frames."""
    if not method.needs_teacher:
        return
    if teacher_logits is None and teacher_model is None and augmented_logits is None:
        raise ValueError(f"method {method.name!r} needs a teacher: pass teacher_logits or teacher_model")
    k = config.augment_versions
    if not k or teacher_model is not None:
        return
    expected = (k, len(store), len(VIEWS))
    if augmented_logits is None:
        raise ConfigError(f"train augment_versions={k} with method {method.name!r}: the teacher must see the augmented "
                          "frames; pass the augmented teacher logits [K, N, 4] (kdbench.distill.feed.TeacherFeed) or a "
                          "live teacher, not only the plain cache")
    if tuple(augmented_logits.shape) != expected:
        raise ConfigError(f"augmented teacher logits have shape {tuple(augmented_logits.shape)}; expected {list(expected)} "
                          f"(augment_versions, store frames, classes)")


def _check_unlabelled(method: DistillMethod, store: FrameStore, config: TrainConfig,
                      augmented_logits: np.ndarray | None) -> None:
    """``config.unlabelled`` > 0 needs a store with unlabelled frames (any method), and an augmented cache that covers
    them when the run distils on them (``kdbench.distill.feed.augmented_split``)."""
    pool = unlabelled_pool(store, config.unlabelled)
    if not unlabelled_share(method, config) or augmented_logits is None or not config.augment_versions:
        return
    if not np.isfinite(augmented_logits[:, pool]).all():
        raise ConfigError(f"train unlabelled={config.unlabelled:g} with augment_versions={config.augment_versions}: the "
                          "augmented teacher logits do not cover the store's unlabelled frames; build them with "
                          "split='train+unlabelled' (kdbench.distill.feed.TeacherFeed does)")


def _console_callback(bar: Any, config: TrainConfig) -> EpochCallback:
    """An epoch callback that prints the epoch's line above the progress bar."""
    def show(epoch: int, record: dict[str, Any]) -> None:
        extra = "".join(f"  {k[len('method_'):]} {v:.3f}" for k, v in record.items() if k.startswith("method_"))
        bar.console.print(
            f"  epoch {epoch + 1}: loss {sum(record['train_loss'].values()):.4f}  val acc {record['val_accuracy']:.4f}"
            f"  macro-F1 {record['val_macro_f1']:.4f}  best {config.select_on} {record['best_score']:.4f} "
            f"(epoch {record['best_epoch'] + 1})" + extra, highlight=False)

    return show


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, loader: StoreLoader, max_batches: int, device: torch.device,
                           fmt: str = "nchw") -> bool:
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
        with fastpath.autocast(device):
            model(fastpath.format_input(x, fmt, device))
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    model.train(was_training)
    return True


def _write_run(out_dir: Path, model: nn.Module, method: DistillMethod, store: FrameStore, config: TrainConfig,
               result: RunResult, meta: dict[str, Any], predictions: dict[str, np.ndarray] | None) -> None:
    """Write best.pt and predictions.npz (when a finite epoch was kept) and metrics.json into the run directory."""
    from kdbench.models.checkpoint import save_checkpoint

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fastpath.to_format(model.cpu(), "nchw")
    bad = non_finite_weights(model) if predictions is not None else None
    if bad:  # never reached by fit's own checks; the last guard before a checkpoint is written
        result.status, result.message, predictions = "non_finite", f"kept weights are non-finite: {bad}", None
    if predictions is not None:
        save_checkpoint(model, out_dir / "best.pt", arch=meta.get("arch", type(model).__name__), num_classes=len(VIEWS),
                        input_size=store.size, extra={"method": method.name})
        result.checkpoint = str(out_dir / "best.pt")
        save_predictions(out_dir / "predictions.npz", predictions)
    write_json(out_dir / "metrics.json", {
        **meta,
        "method": method.name,
        "hparams": method.hparams(),
        "config": config.to_dict(),
        "store": str(store.path),
        "store_hash": store.store_hash,
        **result.to_dict(),
    })


def _teacher_batch(cache: np.ndarray | None, teacher: Callable[[torch.Tensor], torch.Tensor] | None, x: torch.Tensor,
                   idx: torch.Tensor, device: torch.device, k: torch.Tensor | None = None) -> torch.Tensor:
    """Teacher logits for a batch: from the cache by store row (``cache[k, idx]`` for augmented version k), else the live teacher on x."""
    if cache is not None:
        rows = cache[idx.numpy()] if k is None else teacher_lookup(cache, idx.numpy(), k.numpy())
        return torch.from_numpy(rows).to(device, non_blocking=True)
    with torch.no_grad():
        return teacher(x).float()


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
    augmented_logits: np.ndarray | None = None,
    teacher: TeacherFeed | None = None,
) -> RunResult:
    """Build the student and the method by name and fit them: the unit a search trial repeats per seed.

    ``teacher`` (a ``kdbench.distill.feed.TeacherFeed``) gives the teacher's logits the way every command reads
    them; ``teacher_logits``/``teacher_model``/``augmented_logits`` are ``fit``'s own (lower-level) arguments."""
    from kdbench.distill.registry import create_method
    from kdbench.models import create_model

    seed_everything(config.seed)  # the same seed gives the same initial weights
    model = create_model(student, num_classes=len(VIEWS), pretrained=pretrained)
    method = create_method(method_name, **hparams)
    given = ({"teacher_logits": teacher_logits, "teacher_model": teacher_model, "augmented_logits": augmented_logits}
             if teacher is None else teacher.for_run(method_name, store, config))
    return fit(model, method, store, config, out_dir=out_dir, progress=progress, epoch_callback=epoch_callback,
               checkpoint_meta={"arch": student, "student": student, **(meta or {})}, **given)
