"""Is the StoreLoader fast enough? Frames/s it delivers vs. images/s a student trains at on this CPU.

Run as a script (prints both rates and their ratio; ratio > 1 means the loader is not the
bottleneck of a CPU training step):

    python tests/benchmarks/bench_loader.py [--store STORE] [--batch 64] [--seconds 3]

Without --store it writes a phantom (`kdbench data synth`) and a 112 px store in a temp folder.
Also a pytest-benchmark: ``pytest -o addopts="" tests/benchmarks/bench_loader.py`` (the project skips
benchmarks by default).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def build_store(base: Path, size: int = 112, videos_per_view: int = 10) -> Path:
    """Write a phantom and prepare a frame store from it; returns the store path."""
    from kdbench.data.prepare import prepare_store
    from kdbench.data.synth import synthesize

    synthesize(base / "phantom", videos_per_view=videos_per_view, seed=0, frames=16)
    sources = {"echonet_dynamic": base / "phantom" / "EchoNet-Dynamic",
               "echonet_lvh": base / "phantom" / "EchoNet-LVH", "tmed2": base / "phantom" / "TMED2"}
    prepare_store(sources, base / "store", size=size, frames_per_video=16, workers=2)
    return base / "store"


def loader_rate(store_path: Path, batch: int = 64, seconds: float = 3.0) -> float:
    """Frames per second a shuffled StoreLoader yields (epochs repeated until `seconds` pass)."""
    from kdbench.data.loader import StoreLoader
    from kdbench.data.store import FrameStore

    loader = StoreLoader(FrameStore.open(store_path), None, batch_size=batch, shuffle=True, seed=0)
    frames, epoch, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        loader.set_epoch(epoch)
        for x, _, _ in loader:
            frames += x.shape[0]
        epoch += 1
    return frames / (time.perf_counter() - start)


def train_rate(size: int = 112, batch: int = 64, steps: int = 6) -> float:
    """Images per second of forward+backward+SGD step of mobilenet_v3_small (4 classes) on CPU."""
    import torch

    from kdbench.compat import torchvision

    model = torchvision.models.mobilenet_v3_small(num_classes=4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, 1, size, size)
    y = torch.randint(0, 4, (batch,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x.repeat(1, 3, 1, 1)), y)
        loss.backward()
        opt.step()

    model.train()
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start)


def test_loader_throughput(benchmark, tmp_path):
    """pytest-benchmark: time one epoch of the StoreLoader over a small 112 px store."""
    from kdbench.data.loader import StoreLoader
    from kdbench.data.store import FrameStore

    store = FrameStore.open(build_store(tmp_path, videos_per_view=4))
    loader = StoreLoader(store, None, batch_size=64, shuffle=True)
    n = benchmark(lambda: sum(x.shape[0] for x, _, _ in loader))
    assert n == len(store)


def main() -> None:
    """Print the loader rate, the training rate and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="an existing frame store (default: build a phantom one)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or build_store(Path(tmp))
        from kdbench.data.store import FrameStore

        opened = FrameStore.open(store)
        load = loader_rate(store, args.batch, args.seconds)
        train = train_rate(opened.size, args.batch)
    print(f"store: {store} ({len(opened)} frames, {opened.size} px), batch {args.batch}")
    print(f"StoreLoader: {load:,.0f} frames/s")
    print(f"mobilenet_v3_small train step: {train:,.1f} images/s")
    print(f"ratio loader/train: {load / train:,.0f}x")


if __name__ == "__main__":
    main()
