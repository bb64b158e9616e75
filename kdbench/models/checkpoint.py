"""Model checkpoints: ``{"arch", "num_classes", "input_size", "state_dict", "kdbench_version", ...}``.

Loading uses ``torch.load(weights_only=True)``: a checkpoint can hold tensors and plain
containers/numbers/strings only, so opening a file from elsewhere cannot run code. The
architecture is rebuilt with ``create_model`` and the weights loaded strictly; any mismatch is a
``ConfigError`` naming the missing and unexpected keys and the shape mismatches.

``save_checkpoint`` records ``tensor_sha256``, a hash of every tensor's name, dtype, shape and
bytes; ``load_checkpoint`` recomputes it, so bytes changed inside the file (zeroed by a bad disk,
a truncated copy) are a ``DataError`` instead of a model with silently wrong weights. Checkpoints
written before the checksum existed (no ``tensor_sha256``) still load.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdbench import __version__
from kdbench.errors import ConfigError, DataError
from kdbench.models.registry import create_model

RESERVED_KEYS = ("arch", "num_classes", "input_size", "state_dict", "kdbench_version", "tensor_sha256")
_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR)
_MAX_LISTED = 10
_PLAIN_TYPES = (str, int, float, bool, type(None))


def _check_storable(value: Any, where: str) -> None:
    """Raise a ConfigError if ``value`` could not be read back by ``torch.load(weights_only=True)``."""
    if isinstance(value, _PLAIN_TYPES) or isinstance(value, torch.Tensor):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_storable(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise ConfigError(f"checkpoint extra {where}: key {key!r} is not a str or int")
            _check_storable(item, f"{where}[{key!r}]")
        return
    raise ConfigError(
        f"checkpoint extra {where} = {value!r} has type {type(value).__name__}; expected str, int, "
        "float, bool, None, a tensor, or lists/dicts of those (safe to load with weights_only=True)"
    )


def tensor_checksum(state: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in sorted key order."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def verify_checksum(path: Path, obj: dict) -> None:
    """DataError if ``obj`` carries a tensor checksum that its state dict no longer matches."""
    stored = obj.get("tensor_sha256")
    if stored is None:
        return  # written before checksums existed
    state = obj.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(f"checkpoint {path}: 'state_dict' is not a dict of tensors; the file is damaged")
    actual = tensor_checksum(state)
    if actual != stored:
        raise DataError(f"checkpoint {path} is corrupt: its tensors hash to {actual[:16]}, but it was saved "
                        f"with tensor_sha256 {str(stored)[:16]}; restore or retrain it")


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike,
    arch: str,
    num_classes: int,
    input_size: int,
    extra: dict | None = None,
) -> Path:
    """Write ``model``'s weights and metadata to ``path`` atomically; returns the path."""
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(RESERVED_KEYS))
    if clash:
        raise ConfigError(f"checkpoint extra keys {clash} clash with reserved keys {list(RESERVED_KEYS)}")
    _check_storable(extra, "extra")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "arch": str(arch),
        "num_classes": int(num_classes),
        "input_size": int(input_size),
        "state_dict": state,
        "kdbench_version": __version__,
        "tensor_sha256": tensor_checksum(state),
        **extra,
    }
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch's zip writer reports a failed write as RuntimeError
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno not in _WRITE_ERRNOS:
            raise
        reason = err.strerror if isinstance(err, OSError) else f"torch.save failed: {str(err).strip().splitlines()[0]}"
        raise DataError(f"cannot write checkpoint {path} ({reason}); check free space and that the folder "
                        f"is writable") from None
    return path


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f", ... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")


def state_dict_mismatches(model: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Human-readable differences between ``model``'s state dict and ``state`` (empty if none)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: checkpoint {list(state[k].shape)} vs model {list(expected[k].shape)}"
        for k in expected
        if k in state and isinstance(state[k], torch.Tensor) and state[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {_listed(missing)}")
    if unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_listed(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches ({len(shapes)}): {_listed(shapes)}")
    return problems


def _read(path: Path, map_location: Any) -> Any:
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist (expected a .pt file written by kdbench)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(
            f"refusing to load checkpoint {path}: it holds objects other than tensors and plain "
            f"containers, which torch.load(weights_only=True) will not unpickle ({first}). Only "
            "load checkpoints you trust; re-save it as a plain state dict."
        ) from None
    except Exception as err:  # truncated or foreign files fail in many ways inside the unpickler
        raise DataError(
            f"checkpoint {path} is not a readable torch checkpoint ({type(err).__name__}: {err})"
        ) from None


def verify_checkpoint(path: str | os.PathLike) -> None:
    """Read a checkpoint and check its tensor checksum, without building the model (DataError if damaged)."""
    path = Path(path)
    obj = _read(path, "cpu")
    if isinstance(obj, dict) and "state_dict" in obj:
        verify_checksum(path, obj)


def _is_plain_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def load_checkpoint(
    path: str | os.PathLike,
    map_location: Any = "cpu",
    arch: str | None = None,
    num_classes: int | None = None,
) -> tuple[nn.Module, dict]:
    """Rebuild and strictly load a checkpoint; returns ``(model in eval mode, metadata dict)``.

    A plain state dict (no metadata) is accepted when ``arch`` is given; its keys may be either a
    kdbench model's (``backbone.*``) or the bare torchvision/timm model's.
    """
    path = Path(path)
    obj = _read(path, map_location)
    if isinstance(obj, dict) and "state_dict" in obj:
        verify_checksum(path, obj)
        meta = {k: v for k, v in obj.items() if k not in ("state_dict", "tensor_sha256")}
        state = obj["state_dict"]
        if "arch" not in meta and arch is None:
            raise ConfigError(f"checkpoint {path} has no 'arch' key; pass arch= to load it")
        if arch is not None and "arch" in meta and meta["arch"] != arch:
            raise ConfigError(f"checkpoint {path} holds arch {meta['arch']!r}, but arch={arch!r} was requested")
        meta.setdefault("arch", arch)
        if num_classes is not None and meta.get("num_classes", num_classes) != num_classes:
            raise ConfigError(
                f"checkpoint {path} has num_classes={meta['num_classes']}, but num_classes={num_classes} was requested"
            )
        meta.setdefault("num_classes", num_classes if num_classes is not None else 4)
    elif _is_plain_state_dict(obj):
        if arch is None:
            raise ConfigError(
                f"checkpoint {path} is a plain state dict with no metadata; pass arch= (e.g. "
                "arch='mobilenet_v3_small') to say which model it belongs to"
            )
        state = obj
        meta = {"arch": arch, "num_classes": num_classes if num_classes is not None else 4}
    else:
        raise DataError(
            f"checkpoint {path} holds a {type(obj).__name__}; expected a dict with 'arch' and "
            "'state_dict' (kdbench) or a plain state dict of tensors"
        )
    if not isinstance(state, dict):
        raise DataError(f"checkpoint {path}: 'state_dict' is a {type(state).__name__}, expected a dict")
    model = create_model(meta["arch"], num_classes=int(meta["num_classes"]))
    if state and not any(k.startswith("backbone.") for k in state):
        state = {f"backbone.{k}": v for k, v in state.items()}  # a bare torchvision/timm state dict
    problems = state_dict_mismatches(model, state)
    if problems:
        raise ConfigError(
            f"checkpoint {path} does not match arch {meta['arch']!r} with num_classes="
            f"{meta['num_classes']}: " + "; ".join(problems)
        )
    model.load_state_dict(state, strict=True)
    model.to(map_location if isinstance(map_location, (str, torch.device)) else "cpu")
    model.eval()
    return model, meta


def estimate_checkpoint_mb(arch: str, num_classes: int = 4) -> float:
    """Size of a checkpoint of ``arch`` in MiB, from its tensors built on the meta device (0 if it cannot be)."""
    try:
        with torch.device("meta"):
            model = create_model(arch, num_classes=num_classes)
    except (RuntimeError, NotImplementedError, TypeError):  # an init that needs real tensors: no estimate
        return 0.0
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**20
