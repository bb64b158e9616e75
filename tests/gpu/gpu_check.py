"""Helpers of tests/gpu/check.sh: the CUDA probe, the search space, the checks of each step's files, the speed.

    python tests/gpu/gpu_check.py cuda                 # exit 0 with CUDA (prints the device), 1 without
    python tests/gpu/gpu_check.py space FILE           # a 2-trial search space for the check
    python tests/gpu/gpu_check.py run RUN_DIR          # a training run: status ok, trained on CUDA, its formats
    python tests/gpu/gpu_check.py study STUDY_DIR      # a search: every trial finished
    python tests/gpu/gpu_check.py export EXPORT_DIR    # an fp16 ONNX variant was written
    python tests/gpu/gpu_check.py profile RESULTS      # ONNX Runtime's CUDA provider measured something
    python tests/gpu/gpu_check.py speed [--device D]   # images/s: kdbench's fast path vs a plain eager loop
    python tests/gpu/gpu_check.py formats [FORMAT...]  # steady-state training steps/s per fast-path format (AMP;
                                                       # FORMAT-fp32 without), mobilenet_v3_small, 112 px, batch 256

Each check prints what it found and exits 1 (with the reason) when it does not hold.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

SPACE = """[study]
name = "gpu"
students = ["mobilenet_v3_small"]
seeds = [0, 1]
objective = "val_accuracy"
sampler = "grid"
pruner = "none"
n_trials = 2
baseline = "scratch"
keep_checkpoints = "best"

[train]
epochs = 2
patience = 2
batch_size = 128
lr = 2e-3

[space]
method = ["scratch", "vanilla"]
"""


def fail(reason: str) -> None:
    """Print the reason and exit 1."""
    print(f"FAILED: {reason}", flush=True)
    sys.exit(1)


def check_cuda() -> None:
    """Exit 0 when torch sees a CUDA device (printing it), else 1."""
    import torch

    if not torch.cuda.is_available():
        sys.exit(1)
    print(f"CUDA device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")


def check_run(run: Path, device: str) -> None:
    """A run trained to status ok on ``device``; print the formats the fast path chose and the speed."""
    metrics = json.loads((run / "metrics.json").read_text())
    if metrics.get("status") != "ok":
        fail(f"{run}: status {metrics.get('status')!r}: {metrics.get('message')}")
    if not str(metrics["config"].get("device", "")).startswith(device):
        fail(f"{run}: trained on {metrics['config'].get('device')!r}, expected {device}")
    for phase, choice in metrics.get("fast_path", {}).items():
        trials = ", ".join(f"{t['format']} {t['status']}"
                           + (f" {t['images_per_s']:.0f}/s" if t.get("images_per_s") else "")
                           + (f" ({t['reason']})" if t.get("reason") else "") for t in choice.get("trials", []))
        print(f"  {phase}: format {choice['format']} ({choice['source']}){'; probe: ' + trials if trials else ''}")
    print(f"  {metrics['train_images_per_s']:.0f} training images/s, val accuracy "
          f"{metrics['metrics']['val']['accuracy']:.3f}")


def check_study(study: Path) -> None:
    """Every trial of the search finished (the study's trial folders each hold a metrics.json with status ok)."""
    runs = sorted(study.rglob("metrics.json"))
    if not runs:
        fail(f"{study}: no trial wrote a metrics.json")
    bad = [str(r) for r in runs if json.loads(r.read_text()).get("status") != "ok"]
    if bad:
        fail(f"{study}: runs not ok: {bad}")
    print(f"  {len(runs)} seed runs, all ok")


def check_export(export: Path) -> None:
    """An fp16 ONNX file is among the export's variants."""
    files = sorted(p.name for p in export.rglob("*.onnx"))
    if not any("fp16" in name for name in files):
        fail(f"{export}: no fp16 ONNX file among {files}")
    print(f"  ONNX files: {', '.join(files)}")


def check_profile(results: Path) -> None:
    """ONNX Runtime's CUDA provider measured at least one model (and every CUDA record is ok); print images/s."""
    records = json.loads(results.read_text())
    cuda = [r for r in records if r.get("runtime") == "onnxruntime-cuda"]
    if not cuda:
        fail(f"{results}: no onnxruntime-cuda record among {sorted({r.get('runtime') for r in records})}")
    for r in records:
        rate = r.get("throughput") or r.get("fps")
        print(f"  {r['runtime']:18s} {r.get('precision')} batch {r.get('batch')}: {r.get('status')}"
              f"{f', {rate:.0f} images/s' if rate else ''}{' (' + str(r.get('error')) + ')' if r.get('error') else ''}")
    if not all(r.get("status") == "ok" for r in cuda):
        fail(f"{results}: onnxruntime-cuda records failed (see above)")


def eager_rate(store, device, batch: int, steps: int) -> float:
    """Images/s of a plain eager loop: float32 batches from the loader copied each step, fp32, NCHW, and the loss
    read back every step (the loop before the fast path)."""
    import torch

    from kdbench.data.loader import StoreLoader
    from kdbench.models import create_model

    torch.manual_seed(0)
    model = create_model("mobilenet_v3_small").to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = StoreLoader(store, "train", batch, shuffle=True)
    done, start = 0, None
    for b, (x, y, _) in enumerate(loader):
        if b == 2:  # two warm-up steps (each step's float(loss) has waited for the device)
            start, done = time.perf_counter(), 0
        if b >= steps + 2:
            break
        loss = torch.nn.functional.cross_entropy(model(x.to(device)), y.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        float(loss.detach())  # the per-step read-back of the old loop
        done += len(y)
    return done / (time.perf_counter() - start)


def _fast_rate(store, device_name: str, **config) -> tuple[float, object]:
    """Images/s of kdbench's training pass (fast path, prefetching feed) over one epoch, and the result."""
    from kdbench.train import TrainConfig, train_student

    result = train_student(store, "mobilenet_v3_small", "scratch", {},
                           TrainConfig(epochs=1, batch_size=256, device=device_name, precise_bn_batches=0, **config),
                           progress=False)
    if result.status != "ok":
        fail(f"fast-path training: {result.status}: {result.message}")
    return result.train_images_per_s, result


def format_rate(fmt: str, device_name: str, steps: int = 30) -> tuple[float, float]:
    """Images/s of training steps of mobilenet_v3_small (112 px, batch 256, one batch on the device) in ``fmt``
    (AMP on CUDA; ``fmt`` ending in ``-fp32``: without), the best of 3 x ``steps``; and the warm-up's seconds
    (8 steps, 1 on a CPU run; compiling included). The step alone: no loader, so what the format does for the device."""
    import copy

    import torch

    from kdbench import fastpath
    from kdbench.models import create_model

    device, amp = torch.device(device_name), not fmt.endswith("-fp32") and device_name.startswith("cuda")
    layout = fmt.removesuffix("-fp32")
    torch.manual_seed(0)
    model = fastpath.to_format(copy.deepcopy(create_model("mobilenet_v3_small")).to(device).train(), layout)
    forward, opt = fastpath.compiled(model, layout), torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=amp)
    x = torch.rand(256, 1, 112, 112, device=device).contiguous(memory_format=fastpath.memory_format(layout))
    y = torch.randint(0, 4, (256,), device=device)

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                loss = torch.nn.functional.cross_entropy(forward(x).float(), y)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    warm = run(8 if steps >= 8 else 1)
    return max(steps * 256 / run(steps) for _ in range(3)), warm


def check_formats(formats: list[str], device_name: str) -> None:
    """Print each format's steady-state training rate (the evidence behind ``fastpath.rule_format`` on CUDA)."""
    steps = 30 if device_name.startswith("cuda") else 2  # on a CPU (a plumbing run) 30 steps take minutes
    for fmt in formats or ["nchw-fp32", "nchw", "channels_last"]:
        rate, warm = format_rate(fmt, device_name, steps)
        print(f"  {fmt:26s} {rate:8.0f} images/s (best of 3 x {steps} steps; warm-up {warm:.1f} s)", flush=True)


def _with_draw_threads(n: int, run):
    """``run()`` with the training feed making augmented batches in ``n`` threads (the default: half the cores)."""
    from kdbench import train

    default = train.default_workers
    train.default_workers = lambda device: n
    try:
        return run()
    finally:
        train.default_workers = default


def check_speed(device_name: str, frames: int) -> None:
    """Print images/s of kdbench's training (fast path, prefetching feed; plain and augmented) and of a plain eager
    loop, same store. The first pass of a process pays the device's start-up (cuDNN and cuBLAS loading, kernel
    selection): it is printed on its own, and the compared passes run after it, each in steady state."""
    import torch

    from kdbench.data.prefetch import default_workers
    from kdbench.data.store import FrameStore
    from synthetic_store import write_store

    device = torch.device(device_name)
    with tempfile.TemporaryDirectory() as tmp:
        store = FrameStore.open(write_store(Path(tmp) / "store", frames, 112))
        first, _ = _fast_rate(store, device_name)
        fast, result = _fast_rate(store, device_name)
        augmented, _ = _fast_rate(store, device_name, augment_versions=2)
        by_threads = {n: _with_draw_threads(n, lambda: _fast_rate(store, device_name, augment_versions=2)[0])
                      for n in (1, 2)}
        steps = max(4, min(60, len(store.indices("train")) // 256 - 3))
        eager = eager_rate(store, device, 256, steps)
    fmt = f"{result.fast_path['train']['format']}, AMP {'on' if device.type == 'cuda' else 'off'}"
    print(f"  first pass of the process (start-up included): {first:.0f} images/s")
    print(f"  fast path ({fmt}): {fast:.0f} images/s; with augmentation (2 versions): {augmented:.0f} images/s; "
          f"plain eager loop: {eager:.0f} images/s; ratio {fast / eager:.2f}")
    print("  augmented, by draw threads: " + ", ".join(f"{n}: {r:.0f}" for n, r in by_threads.items())
          + f", {default_workers(device)} (the default): {augmented:.0f} images/s")


def main() -> None:
    """Dispatch the subcommand."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["cuda", "space", "run", "study", "export", "profile", "speed", "formats"])
    parser.add_argument("path", nargs="*", help="the file or folder to check (or write); `formats`: the formats")
    parser.add_argument("--device", default="cuda", help="the device the check expects (cpu: a plumbing run)")
    parser.add_argument("--frames", type=int, default=24_000, help="frames of the synthetic store for `speed`")
    args = parser.parse_args()
    if args.what == "cuda":
        check_cuda()
    elif args.what == "space":
        Path(args.path[0]).write_text(SPACE)
    elif args.what == "speed":
        check_speed(args.device, args.frames)
    elif args.what == "formats":
        check_formats(args.path, args.device)
    else:
        {"run": lambda p: check_run(p, args.device), "study": check_study, "export": check_export,
         "profile": check_profile}[args.what](Path(args.path[0]))


if __name__ == "__main__":
    main()
