"""Prefetching: a loader's next batches prepared in a background thread while the training step runs.

``prefetch(loader, device, limit)`` iterates the loader's own batches, in its order and with its content (the
loader's iterator simply runs in a thread, ``depth`` batches ahead; nothing is reordered, no random state is
shared), so a run with and without it trains on the same numbers. On the CPU the batches stay where they are.

On CUDA the thread also pins each batch's memory and the batch is copied to the device without blocking: plain
frames travel as uint8 (``raw_batches()``, a quarter of float32's bytes) and are resized (``input_size``) and
divided by 255 there; augmented
ones travel as their draws (``AugmentedLoader.draw_jobs()``: the posed uint8 frames, the parameters and the
half-resolution speckle) and the pixel arithmetic runs on the GPU (``finish_drawn``), so the CPU only draws and warps.

A loader with ``batch_jobs()`` (``AugmentedLoader``: one function per batch) can have its batches made by
``workers`` threads at once, still handed over in order (augmentation spends most of its time in OpenCV and numpy
code that releases the GIL). The thread holds at most ``depth`` batches (plus 2 x ``workers`` in the making); it
stops when the consumer stops early (``limit`` batches, a ``break``), and an error in it is raised in the consumer,
at the batch where it happened.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice
from typing import Any

import torch

_DONE = object()  # the producer's end-of-epoch marker


class _Failed:
    """An exception raised in the producer thread, carried to the consumer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _pin(batch: tuple[Any, ...]) -> tuple[Any, ...]:
    """The batch's tensors (nested in tuples too) in pinned (page-locked) memory, so copies to the GPU overlap."""
    return tuple(t.pin_memory() if isinstance(t, torch.Tensor) else _pin(t) if isinstance(t, tuple) else t
                 for t in batch)


def _put(out: queue.Queue, item: Any, stop: threading.Event) -> bool:
    """Put ``item`` on ``out``, waiting for room unless ``stop`` is set; whether it was put."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _in_order(jobs: Iterable[Callable[[], Any]], workers: int) -> Iterator[Any]:
    """The results of ``jobs`` in their order, ``workers`` of them running at once (at most 2 x workers made ahead)."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="kdbench-batch")
    pending: deque = deque()
    try:
        for job in jobs:
            pending.append(pool.submit(job))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _produce(batches: Iterator[tuple[Any, ...]], out: queue.Queue, stop: threading.Event, limit: int | None,
             pin: bool) -> None:
    """Put up to ``limit`` batches on ``out`` (then the end marker), until ``stop`` is set."""
    try:
        for batch in islice(batches, limit):  # never makes a batch past the limit
            if not _put(out, _pin(batch) if pin else batch, stop):
                break
        item = _DONE
    except BaseException as error:  # noqa: BLE001 - handed to the consumer, which raises it
        item = _Failed(error)
    finally:
        getattr(batches, "close", lambda: None)()  # a pool of batch threads ends here
    _put(out, item, stop)


def default_workers(device: torch.device | str) -> int:
    """Threads that make batches for a run on ``device``: on CUDA half the cores (at most 8), to keep a GPU fed
    with augmented batches; on the CPU 1 (the step itself takes the cores)."""
    if torch.device(device).type != "cuda":
        return 1
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def to_device(batch: tuple[Any, ...], device: torch.device, raw: bool = False,
              size: int | None = None) -> tuple[Any, ...]:
    """The batch with its frames (first item: a tensor, or a tuple of them) on ``device``; ``raw``: uint8 frames
    [B, S0, S0] become float32 [B, 1, S, S] in [0, 1] there, resized to ``size`` as ``kdbench.data.resized`` does
    (then divided by 255, as the loader does)."""
    x, *rest = batch
    if isinstance(x, tuple):
        return (tuple(None if t is None else t.to(device, non_blocking=True) for t in x), *rest)
    x = x.to(device, non_blocking=True)
    if raw:
        x = x[:, None].to(torch.float32)
        if size is not None and x.shape[-1] != size:
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                                                antialias=True)
        x = x.div_(255.0)
    return (x, *rest)


def _source(loader: Any, device: torch.device, cuda: bool,
            workers: int) -> tuple[Iterator[tuple[Any, ...]], Callable[[tuple], tuple]]:
    """Where the batches come from, and what brings each to the device (on CUDA: augmented batches as their draws,
    finished there by ``loader.finish_drawn``; plain frames as uint8, ``raw_batches``, divided there)."""
    if cuda and hasattr(loader, "draw_jobs"):
        return _in_order(loader.draw_jobs(), workers), lambda batch: loader.finish_drawn(to_device(batch, device))
    if cuda and hasattr(loader, "raw_batches"):
        return loader.raw_batches(), lambda batch: to_device(batch, device, raw=True, size=loader.store.size)
    jobs = workers > 1 and hasattr(loader, "batch_jobs")
    return (_in_order(loader.batch_jobs(), workers) if jobs else iter(loader)), lambda batch: to_device(batch, device)


@contextmanager
def prefetch(loader: Any, device: torch.device | str = "cpu", limit: int | None = None, depth: int = 2,
             workers: int = 1) -> Iterator[Iterator[tuple[Any, ...]]]:
    """Within the block, an iterator over ``loader``'s batches (at most ``limit``) made ``depth`` ahead in a
    thread (``workers`` > 1: that many threads making batches at once, for a loader with ``batch_jobs()``, in
    order); on CUDA pinned and on the device (see ``_source``)."""
    device = torch.device(device)
    cuda = device.type == "cuda" and torch.cuda.is_available()
    source, finish = _source(loader, device, cuda, workers)
    out: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    thread = threading.Thread(target=_produce, args=(source, out, stop, limit, cuda), name="kdbench-prefetch",
                              daemon=True)
    thread.start()

    def consume() -> Iterator[tuple[Any, ...]]:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield finish(item) if cuda else item

    try:
        yield consume()
    finally:
        stop.set()
        thread.join()
