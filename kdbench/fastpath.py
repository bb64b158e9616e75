"""How a model runs on this machine: a format chosen by a fixed rule (``auto``) or by a measured trial (``probe``).

``auto`` (the default) never looks at a clock, so the same command gives the same arithmetic
whatever the machine's load: on CUDA ``channels_last``; on a CPU ``channels_last`` for a model with
depthwise convolutions (the mobile students) and ``nchw`` otherwise (VGG16). The rule's format is
still checked against a float64 step (below) and falls back to ``nchw`` when it fails; the check is
deterministic. ``probe`` is the measured choice described next: fastest here, but which format wins
can depend on the load at probe time, and the format changes the rounding, so it is opt-in.

A *format* is how the same model runs: ``nchw`` (eager, default layout), ``channels_last`` (eager,
NHWC weights and inputs), ``compile+<layout>`` (``torch.compile`` of that layout) and, on CUDA,
``cudagraphs+<layout>`` (compiled with CUDA graphs, ``mode="reduce-overhead"``). For each
(phase, architecture, input size, device, batch, threads, torch version) the candidates run a few
steps on real frames, interleaved round by round, and the fastest is kept in
``$KDBENCH_CACHE_DIR/train_format.json`` (default ``~/.cache/kdbench``), so the trial runs once.

A candidate is dropped, with the reason, when it raises (e.g. an inductor error) or when it changes
the result beyond float tolerance: in training, the loss and the gradient of the first step from the
same weights and batch (dropout masks identical: same RNG state, inductor's ``fallback_random``),
against a float64 run, allowing ``FLOAT_FACTOR`` times the plain format's own float error (at
least ``FLOAT_FLOORS``); in
evaluation, the logits. (Random ops on 4-D activations draw in memory order, so a model with
dropout on feature maps keeps NCHW: the check cannot tell a different mask from a wrong result.) Compilation costs minutes on a small CPU, so ``probe`` tries it only
when the planned training is long enough to repay it (``COMPILE_MIN_RUN_S``) and chooses by
``warm-up + planned steps x step time``. ``KDBENCH_FAST_PATH`` (e.g. ``nchw`` in the test suite)
replaces ``auto``. A probe taken while the load exceeds the cores decides its own run but is not cached.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from kdbench.errors import ConfigError

LAYOUTS = ("nchw", "channels_last")
FAST_PATHS = ("auto", "probe", "off", "nchw", "channels_last", "compile+nchw", "compile+channels_last",
              "cudagraphs+nchw", "cudagraphs+channels_last")
ENV_CACHE_DIR = "KDBENCH_CACHE_DIR"
ENV_FAST_PATH = "KDBENCH_FAST_PATH"
CACHE_FILE = "train_format.json"
COMPILE_MIN_RUN_S = 300.0  # probe compilation only when the planned eager training lasts at least this long
MIN_PROBE_RUN_STEPS = 20  # shorter training runs take the plain format rather than pay for the probe
PROBE_ROUNDS = 3  # interleaved timing rounds per candidate (the best counts)
PROBE_STEPS = 1  # steps per round (the untimed first step has warmed caches and optimizer state)
MARGIN = 0.03  # another format must beat the plain one by this fraction to be chosen
FLOAT_FACTOR = 10.0  # a candidate may differ from float64 by this many times the plain format's own error
# ... and always by this much (relative L2): the loss or logits, and the gradient. Weight gradients are
# long float32 sums with cancellation: channels_last's depthwise-conv kernels land ~1e-3 from float64
# where NCHW's land ~1e-6 (mobilenet_v3_small, phantom frames); a wrong kernel is off by O(1).
FLOAT_FLOORS = (1e-4, 5e-2)
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Trial:
    """One candidate's probe: measured speed, or why it was dropped or not tried."""

    format: str
    status: str  # "ok" | "dropped" | "skipped"
    images_per_s: float | None = None
    warmup_s: float | None = None
    rel_error: float | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Trial:
        """Read ``to_dict()``'s form back (keys an older kdbench wrote and this one does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in body.items() if k in known})


@dataclass
class FormatChoice:
    """The format a phase runs in, where the choice came from, and the trials behind it."""

    phase: str  # "train" | "eval"
    format: str
    source: str  # "rule" | "measured" | "cache" | "config" | "env" | "default" (run too short to probe)
    key: str = ""
    trials: list[Trial] = field(default_factory=list)
    load_avg: float | None = None  # 1-minute load average when the trials ran (busy hosts make them noisy)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (as recorded in a run's metrics.json)."""
        return {"phase": self.phase, "format": self.format, "source": self.source, "key": self.key,
                "trials": [t.to_dict() for t in self.trials], "load_avg": self.load_avg}

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> FormatChoice:
        """Read ``to_dict()``'s form back."""
        return cls(phase=body["phase"], format=body["format"], source=body["source"], key=body.get("key", ""),
                   trials=[Trial.from_dict(t) for t in body.get("trials", [])], load_avg=body.get("load_avg"))


# ---- applying a format --------------------------------------------------------------------------


def check_fast_path(value: str) -> str:
    """``value`` if it names a fast path, else a ConfigError listing them."""
    if value not in FAST_PATHS:
        raise ConfigError(f"fast_path={value!r} is not allowed; expected one of {list(FAST_PATHS)}")
    return value


def memory_format(fmt: str) -> torch.memory_format:
    """The memory format of a format's weights and inputs."""
    return torch.channels_last if fmt.endswith("channels_last") else torch.contiguous_format


def to_format(model: nn.Module, fmt: str) -> nn.Module:
    """Convert ``model``'s weights to the format's layout in place (same Parameter objects); returns it."""
    return model.to(memory_format=memory_format(fmt))


def format_input(x: torch.Tensor, fmt: str, device: torch.device) -> torch.Tensor:
    """An input batch on ``device`` in the format's layout."""
    return x.to(device, non_blocking=True, memory_format=memory_format(fmt))


def compiled(model: nn.Module, fmt: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """What to call for a forward pass: the model itself, or its compiled wrapper (sharing its weights)."""
    if fmt.startswith("compile+"):
        return torch.compile(model)
    if fmt.startswith("cudagraphs+"):
        return torch.compile(model, mode="reduce-overhead")
    return model


def candidates(phase: str, device: torch.device, with_compile: bool) -> list[str]:
    """The formats worth trying for a phase on a device (compiled ones only when asked)."""
    out = list(LAYOUTS)
    if phase == "train" and with_compile:
        out += ["compile+channels_last"] if device.type == "cuda" else ["compile+nchw", "compile+channels_last"]
        if device.type == "cuda":  # small students are launch-bound there: CUDA graphs trained mobilenet_v3_small
            out += ["cudagraphs+nchw", "cudagraphs+channels_last"]  # 2.4x faster on an H200 (73 s of compiling)
    return out


# ---- the cache ----------------------------------------------------------------------------------


def cache_path() -> Path:
    """The choice cache file: ``$KDBENCH_CACHE_DIR/train_format.json`` or ``~/.cache/kdbench/...``."""
    root = os.environ.get(ENV_CACHE_DIR) or Path.home() / ".cache" / "kdbench"
    return Path(root) / CACHE_FILE


def format_key(phase: str, arch: str, size: int, device: torch.device, batch: int) -> str:
    """The cache key: phase, architecture, input size, device (with the GPU's name), batch, threads, torch."""
    dev = device.type if device.type != "cuda" else f"cuda:{torch.cuda.get_device_name(device)}"
    return f"{phase}|{arch}|{size}px|{dev}|b{batch}|t{torch.get_num_threads()}|torch{torch.__version__}"


def read_cache() -> dict[str, Any]:
    """Every cached choice (an unreadable cache file counts as empty: it is only a cache)."""
    try:
        body = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def write_cache(key: str, choice: FormatChoice) -> None:
    """Add one choice to the cache file (read-merge-write, atomic; a failure to write is not an error)."""
    path = cache_path()
    body = read_cache()
    body[key] = choice.to_dict()
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(body, indent=2, sort_keys=True))
        os.replace(tmp, path)


# ---- measuring ----------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    """Wait for queued device work (timings on CUDA are otherwise meaningless)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device):
    """The autocast kdbench trains and evaluates under: fp16 on CUDA, nothing on CPU."""
    return torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else contextlib.nullcontext()


class _Probe:
    """One candidate running on its own copy of the model, from the same weights and RNG state."""

    def __init__(self, model: nn.Module, fmt: str, phase: str, device: torch.device, lr: float,
                 exact: bool = False) -> None:
        self.fmt, self.phase, self.device, self.exact = fmt, phase, device, exact
        self.model = to_format(copy.deepcopy(model).to(device), fmt).train(phase == "train")
        if exact:  # the float64 reference every candidate's float error is measured against
            self.model.double()
        self.forward = compiled(self.model, fmt)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=lr) if phase == "train" else None

    def step(self, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn) -> list[torch.Tensor]:
        """One training step ([loss, flat gradient]) or one inference batch ([logits])."""
        x = format_input(x.double() if self.exact else x, self.fmt, self.device)
        cast = contextlib.nullcontext() if self.exact else autocast(self.device)
        if self.optimizer is None:
            with torch.no_grad(), cast:
                return [self.forward(x).double()]
        with cast:
            loss = loss_fn(self.forward(x).double(), y.to(self.device))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad = torch.cat([p.grad.detach().double().flatten() for p in self.model.parameters() if p.grad is not None])
        self.optimizer.step()
        return [loss.detach(), grad]


def _errors(outs: list[torch.Tensor], reference: list[torch.Tensor]) -> list[float]:
    """Relative L2 error of each output (loss or logits, then the gradient) against the float64 reference."""
    return [float("inf") if a.shape != b.shape or not torch.isfinite(a).all()
            else float((a - b).norm() / b.norm().clamp_min(1e-30)) for a, b in zip(outs, reference)]


def _first_step(probe: _Probe, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn,
                rng: tuple[torch.Tensor, torch.Tensor | None]) -> tuple[float, list[torch.Tensor]]:
    """The warm-up step with a fixed RNG state (same dropout masks for every candidate): seconds, outputs."""
    inductor = contextlib.nullcontext()
    if "+" in probe.fmt:
        import torch._inductor.config as inductor_config

        inductor = inductor_config.patch(fallback_random=True)  # eager's RNG inside compiled code
    with inductor:
        torch.set_rng_state(rng[0])
        if rng[1] is not None:  # dropout on CUDA draws from the device's generator
            torch.cuda.set_rng_state(rng[1], probe.device)
        _sync(probe.device)
        t0 = time.perf_counter()
        out = probe.step(x, y, loss_fn)
        _sync(probe.device)
    return time.perf_counter() - t0, out


def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, formats: list[str], phase: str,
            device: torch.device, loss_fn: LossFn, lr: float = 1e-3, timed: bool = True) -> list[Trial]:
    """Probe each format on copies of ``model`` with the batch ``(x, y)``; ``formats[0]`` sets the float tolerance.

    Every candidate's first step (loss and gradient, or logits) is compared with a float64 run of
    the plain model; a candidate whose error exceeds ``FLOAT_FACTOR`` times the first format's own
    float error (at least ``FLOAT_FLOORS``) is dropped. ``timed=False``: the check only, no clock.
    """
    rng = (torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None)
    probes: dict[str, _Probe] = {}
    trials: dict[str, Trial] = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        reference = _first_step(_Probe(model, "nchw", phase, device, lr, exact=True), x, y, loss_fn, rng)[1]
        limits: list[float] = []
        for fmt in formats:
            try:
                probe = _Probe(model, fmt, phase, device, lr)
                warm, outs = _first_step(probe, x, y, loss_fn, rng)
            except Exception as err:  # noqa: BLE001 - any failure drops the candidate, with its reason
                first = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
                trials[fmt] = Trial(fmt, "dropped", reason=f"{type(err).__name__}: {first}")
                continue
            errors = _errors(outs, reference)
            limits = limits or [max(FLOAT_FACTOR * e, floor) for e, floor in zip(errors, FLOAT_FLOORS)]
            if any(e > lim for e, lim in zip(errors, limits)):
                what = ", ".join(f"{name} by {e:.2e} (tolerance {lim:.2e})" for name, e, lim
                                 in zip(("output", "gradient"), errors, limits) if e > lim)
                trials[fmt] = Trial(fmt, "dropped", rel_error=max(errors), reason=f"differs from float64: {what}")
                continue
            probes[fmt], trials[fmt] = probe, Trial(fmt, "ok", warmup_s=warm, rel_error=max(errors))
        if timed:
            _time_rounds(probes, trials, x, y, loss_fn, device)
    return [trials[f] for f in formats]


def _time_rounds(probes: dict[str, _Probe], trials: dict[str, Trial], x: torch.Tensor, y: torch.Tensor,
                 loss_fn: LossFn, device: torch.device) -> None:
    """Images/s of each probe: rounds of a few steps, candidates interleaved, the best round counts.

    A round's time is its wall time or, on CPU, its process CPU time / threads when smaller: on a
    busy host the wall clock measures the other processes too (the best round likewise keeps the
    least disturbed measurement).
    """
    times: dict[str, list[float]] = {fmt: [] for fmt in probes}
    for _ in range(PROBE_ROUNDS):
        for fmt, probe in probes.items():
            _sync(device)
            t0, cpu0 = time.perf_counter(), time.process_time()
            for _ in range(PROBE_STEPS):
                probe.step(x, y, loss_fn)
            _sync(device)
            wall, cpu = time.perf_counter() - t0, (time.process_time() - cpu0) / torch.get_num_threads()
            times[fmt].append(wall if device.type == "cuda" else min(wall, cpu))
    for fmt, values in times.items():
        trials[fmt].images_per_s = PROBE_STEPS * len(x) / max(min(values), 1e-9)
        trials[fmt].warmup_s = max(0.0, trials[fmt].warmup_s - len(x) / trials[fmt].images_per_s)


def pick(trials: list[Trial], planned_steps: int, batch: int) -> str:
    """The format with the least ``warm-up + planned steps x step time`` (compile's warm-up counts).

    Eager formats' warm-up is ignored (it is paid by any format); the plain format is kept unless
    another is faster by more than ``MARGIN``.
    """
    ok = [t for t in trials if t.status == "ok" and t.images_per_s]
    if not ok:
        return "nchw"

    def cost(t: Trial) -> float:
        warm = (t.warmup_s or 0.0) if "+" in t.format else 0.0
        return warm + max(planned_steps, 1) * batch / t.images_per_s

    best = min(ok, key=cost)
    plain = next((t for t in ok if t.format == "nchw"), None)
    if plain is not None and best is not plain and cost(best) > (1.0 - MARGIN) * cost(plain):
        return "nchw"
    return best.format


# ---- choosing -----------------------------------------------------------------------------------


def resolved_request(requested: str) -> tuple[str, str]:
    """(the request after ``KDBENCH_FAST_PATH`` replaced ``auto``, where it came from: "config" | "env")."""
    if check_fast_path(requested) == "auto" and os.environ.get(ENV_FAST_PATH):
        return check_fast_path(os.environ[ENV_FAST_PATH]), "env"
    return requested, "config"


def requested_format(requested: str, phase: str, device: torch.device) -> tuple[str | None, str]:
    """(the format a fixed request names, or None for ``auto``/``probe``; where the request came from)."""
    requested, source = resolved_request(requested)
    if requested in ("auto", "probe"):
        return None, source
    fmt = "nchw" if requested == "off" else requested
    if fmt.startswith("cudagraphs+") and device.type != "cuda":
        raise ConfigError(f"fast_path={fmt!r} needs a CUDA device; this run is on {device}")
    if phase == "eval":
        fmt = fmt.split("+")[-1]  # evaluation runs eager in the layout of the request
    return fmt, source


def choose(model: nn.Module, x: torch.Tensor, y: torch.Tensor, phase: str, device: torch.device, requested: str,
           arch: str, batch: int, planned_steps: int = 0, loss_fn: LossFn | None = None, lr: float = 1e-3) -> FormatChoice:
    """The format to run ``phase`` in: the request, the rule (``auto``) or the cached or measured fastest (``probe``)."""
    fixed, source = requested_format(requested, phase, device)
    if fixed is not None:
        return FormatChoice(phase, fixed, source)
    loss_fn = loss_fn or nn.functional.cross_entropy
    if resolved_request(requested)[0] == "auto":
        return rule_choice(model, x, y, phase, device, arch, batch, loss_fn, lr)
    key = format_key(phase, arch, int(x.shape[-1]), device, batch)
    cached = read_cache().get(key)
    try:
        trials = [Trial.from_dict(t) for t in cached["trials"] if t["status"] != "skipped"] if cached else []
    except (KeyError, TypeError, AttributeError):  # an entry in another shape: it is only a cache, measure again
        cached, trials = None, []
    source = "cache" if cached else "measured"
    if not trials and phase == "train" and planned_steps < MIN_PROBE_RUN_STEPS:
        return FormatChoice(phase, "nchw", "default", key, [Trial("probe", "skipped", reason=(
            f"a run of {planned_steps} steps is shorter than the probe would be; the next longer run measures"))])
    if not trials:
        trials = measure(model, x, y, candidates(phase, device, False), phase, device, loss_fn, lr)
    if phase == "train" and _compile_pays(trials, planned_steps, batch):
        eager = pick(trials, planned_steps, batch)
        todo = [f for f in candidates(phase, device, True) if "+" in f and f.endswith(eager)]
        trials = [t for t in trials if t.format not in todo]
        trials += measure(model, x, y, ["nchw"] + todo, phase, device, loss_fn, lr)[1:]
        source = "measured"
    elif phase == "train" and not any("+" in t.format for t in trials):
        trials.append(Trial("compile", "skipped", reason=f"planned training shorter than {COMPILE_MIN_RUN_S:g} s: "
                                                           "compilation would not pay for itself"))
    load = os.getloadavg()[0] if source == "measured" and hasattr(os, "getloadavg") else (cached or {}).get("load_avg")
    choice = FormatChoice(phase, pick(trials, planned_steps, batch), source, key, trials, load)
    if source == "measured" and not busy(load):  # a probe on a busy host decides this run only
        write_cache(key, choice)
    return choice


def busy(load: float | None) -> bool:
    """Whether a 1-minute load average exceeds this host's cores (timings taken then are not cached)."""
    return load is not None and load > (os.cpu_count() or 1)


def has_depthwise(model: nn.Module) -> bool:
    """Whether the model has a depthwise convolution (groups == input channels > 1)."""
    return any(isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels for m in model.modules())


def rule_format(model: nn.Module, device: torch.device) -> tuple[str, str]:
    """``auto``'s format and why, from the device and the model alone (no timing, so no load dependence)."""
    if device.type == "cuda":  # depthwise: measured on an H200 (tests/gpu/gpu_check.py formats), AMP channels_last
        if has_depthwise(model):  # 7.7k vs nchw 9.4k images/s (mobilenet_v3_small, 112 px, batch 256)
            return "nchw", "rule: CUDA, depthwise convolutions: nchw (channels_last measured slower)"
        return "channels_last", "rule: CUDA, no depthwise convolution: channels_last (tensor cores)"
    if has_depthwise(model):
        return "channels_last", "rule: CPU, depthwise convolutions run channels_last"
    return "nchw", "rule: CPU, no depthwise convolution: nchw"


def rule_choice(model: nn.Module, x: torch.Tensor, y: torch.Tensor, phase: str, device: torch.device, arch: str,
                batch: int, loss_fn: LossFn, lr: float) -> FormatChoice:
    """The rule's format, kept only if its first step matches float64 (a deterministic check); else nchw."""
    fmt, why = rule_format(model, device)
    key = format_key(phase, arch, int(x.shape[-1]), device, batch)
    if fmt == "nchw":
        return FormatChoice(phase, fmt, "rule", key, [Trial(fmt, "ok", reason=why)])
    if key not in _RULE_CHECKS:  # a function of the key alone (see check_inputs), so checked once per process
        probe, xs, ys = check_inputs(model, x, y)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(CHECK_SEED)  # the dropout masks of the check: not the run's RNG state either
            trials = measure(probe, xs, ys, ["nchw", fmt], phase, device, loss_fn, lr, timed=False)
        for t in trials:
            t.reason = t.reason or why
        _RULE_CHECKS[key] = trials
    trials = [Trial.from_dict(t.to_dict()) for t in _RULE_CHECKS[key]]
    return FormatChoice(phase, fmt if trials[1].status == "ok" else "nchw", "rule", key, trials)


_RULE_CHECKS: dict[str, list[Trial]] = {}  # format_key -> the rule's float64 check (no clock, so reusable)
CHECK_SEED = 0  # the fixed weights and batch the rule's float64 check runs on
CHECK_CLASSES = 4  # the four views


def check_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A copy of ``model`` re-initialised from CHECK_SEED and a fixed batch of ``x``'s shape: the rule's check.

    The check's tolerance is relative to nchw's own float error, which moves by orders of magnitude with the
    weights (4e-5 for one seed's shufflenet_v2_x1_0, 1e-2 for another's): run on a seed run's own weights it
    kept channels_last for some seeds and not others, and, reused, made a seed's format depend on which run
    filled the process's memo (a resumed search then trained with another format than the uninterrupted
    one). On fixed weights and a fixed batch its outcome is a function of the format key alone."""
    probe = copy.deepcopy(model).cpu()
    g = torch.Generator().manual_seed(CHECK_SEED)
    with torch.no_grad():
        for name, p in probe.named_parameters():  # every weight from the generator: nothing of the seed's left
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=g) / max(p[0].numel(), 1) ** 0.5)
            else:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
        for module in probe.modules():
            if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
                module.reset_running_stats()
    xs = torch.rand(tuple(x.shape), generator=g, dtype=torch.float32).to(x.dtype)
    ys = torch.randint(0, CHECK_CLASSES, tuple(y.shape), generator=g).to(y.dtype)
    return probe, xs, ys


def _compile_pays(trials: list[Trial], planned_steps: int, batch: int) -> bool:
    """Whether compilation is worth probing: not tried yet and the planned eager training is long."""
    if any("+" in t.format for t in trials):
        return False
    speeds = [t.images_per_s for t in trials if t.status == "ok" and t.images_per_s]
    return bool(speeds) and planned_steps * batch / max(speeds) >= COMPILE_MIN_RUN_S


def inference(model: nn.Module, device: torch.device, arch: str, requested: str = "auto",
              probe_batch: int = 32) -> Callable[[torch.Tensor], torch.Tensor]:
    """A no-grad forward in the fastest evaluation format, chosen on the first batch's first frames.

    For models used only for inference, such as the teacher pass that fills the logit cache.
    """
    state: dict[str, str] = {}

    def forward(x: torch.Tensor) -> torch.Tensor:
        if "format" not in state:
            xs = x[:probe_batch]
            labels = torch.zeros(len(xs), dtype=torch.long)
            state["format"] = choose(model, xs, labels, "eval", device, requested, arch, len(xs)).format
            to_format(model, state["format"])
        with torch.no_grad():
            return model(format_input(x, state["format"], device))

    return forward
