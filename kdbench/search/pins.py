"""What a study pins so every worker and every resume computes the same numbers.

Floating-point results depend on more than the seeds: the memory format a phase runs in (channels_last
rounds differently), the number of intra-op threads (reductions split differently), deterministic
algorithms, torch itself and the device. A study fixes them when it is created and records them in
``study.json`` (``"pins"``); every worker applies them before it trains and every resume uses the
recorded values, not the current shell's (``OMP_NUM_THREADS``, ``KDBENCH_FAST_PATH``, ``--workers``).
Torch's version and the device cannot be changed by a worker: a run whose values differ says so in
one warning line, because its seeds will not be bitwise equal to the study's earlier ones.

The memory format itself is pinned by a rule (``kdbench.fastpath``, ``fast_path = "auto"``) that
never times anything, so the load at start does not choose the arithmetic.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from typing import Any

from kdbench.errors import DataError

PINS_VERSION = 1


@dataclass
class Pins:
    """The settings that change a seed's arithmetic, as a study fixed them."""

    threads: int  # torch intra-op threads of every worker
    fast_path: str  # the format request every seed run uses ("auto": kdbench.fastpath's rule)
    torch: str  # torch.__version__ (recorded; a different one is reported, not changed)
    device: str  # resolved device kind: "cpu" or "cuda:<name>" (recorded; reported when it differs)
    deterministic: bool = True  # torch.use_deterministic_algorithms(warn_only) and cudnn.benchmark off
    compile: bool = False  # torch.compile is never chosen by "auto"
    version: int = PINS_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (study.json's ``pins``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Pins:
        """Read ``to_dict()``'s form back; DataError naming the key when it is not that form."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(body) - known)
        if unknown:
            raise DataError(f"study.json pins: unknown key {unknown[0]!r}; written by a newer kdbench?")
        try:
            return cls(**body)
        except TypeError as err:
            raise DataError(f"study.json pins: {err}") from None

    def apply(self) -> None:
        """Make this process compute as the study does: threads, format request, deterministic algorithms."""
        import torch

        from kdbench.fastpath import ENV_FAST_PATH

        torch.set_num_threads(self.threads)
        if self.fast_path == "auto":
            os.environ.pop(ENV_FAST_PATH, None)
        else:
            os.environ[ENV_FAST_PATH] = self.fast_path
        torch.use_deterministic_algorithms(self.deterministic, warn_only=True)
        torch.backends.cudnn.benchmark = not self.deterministic

    def differences(self, other: Pins) -> list[str]:
        """What a worker cannot pin that differs from the study's record (torch, device), as 'key: here vs study'."""
        return [f"{key} {getattr(other, key)} here, {getattr(self, key)} in the study"
                for key in ("torch", "device") if getattr(self, key) != getattr(other, key)]


def device_kind(device: str) -> str:
    """The device a run resolves to, as pinned: "cpu" or "cuda:<GPU name>"."""
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    return f"cuda:{torch.cuda.get_device_name(dev)}" if dev.type == "cuda" else dev.type


def current_pins(threads: int, device: str) -> Pins:
    """The pins a study created now, on this machine, would record."""
    import torch

    from kdbench.fastpath import resolved_request

    return Pins(threads=threads, fast_path=resolved_request("auto")[0], torch=torch.__version__,
                device=device_kind(device))
