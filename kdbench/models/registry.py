"""``create_model(name)``: the teacher and students kdbench knows, plus any torchvision or timm
classifier by name, each behind a ``GreyInput`` stem (1-channel input, ImageNet normalisation).

Resolution order for a name: the registry below, then torchvision's classification models, then
timm. Models build from scratch by default; ``pretrained=True`` loads ImageNet weights (needs the
weights in the local cache or a reachable download host, else a ``ConfigError`` at once, never a
hang) and replaces the 1000-class head with a fresh ``num_classes`` one.
"""

from __future__ import annotations

import difflib
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlparse

from torch import nn

from kdbench.errors import ConfigError
from kdbench.models.grey_input import GreyClassifier

_PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: its role in kdbench and where its builder comes from."""

    name: str
    role: str  # "teacher" | "student"
    source: str  # "torchvision" | "timm"
    head: str  # dotted path of the final Linear (for resizing a pretrained head)


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("vgg16", "teacher", "torchvision", "classifier.6"),
        ModelSpec("mobilenet_v3_small", "student", "torchvision", "classifier.3"),
        ModelSpec("mobilenet_v3_large", "student", "torchvision", "classifier.3"),
        ModelSpec("shufflenet_v2_x1_0", "student", "torchvision", "fc"),
        ModelSpec("ghostnet_100", "student", "timm", "classifier"),
    )
}


def list_models(role: str | None = None) -> list[str]:
    """Registered model names, in registry order; ``role`` filters to "teacher" or "student"."""
    if role not in (None, "teacher", "student"):
        raise ConfigError(f"model role {role!r} is not known; expected 'teacher' or 'student'")
    return [name for name, spec in REGISTRY.items() if role is None or spec.role == role]


def _torchvision_names() -> list[str]:
    from kdbench.compat import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def _is_timm_model(name: str) -> bool:
    import kdbench.compat  # noqa: F401  (torchvision workaround before timm imports it)
    import timm

    return bool(timm.is_model(name))


def model_source(name: str) -> str:
    """Which library builds ``name``: 'torchvision' or 'timm'; ConfigError if neither knows it."""
    if name in REGISTRY:
        return REGISTRY[name].source
    tv_names = _torchvision_names()
    if name in tv_names:
        return "torchvision"
    if _is_timm_model(name):
        return "timm"
    import timm

    close = difflib.get_close_matches(name, list(REGISTRY) + tv_names + timm.list_models(), n=5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"unknown model {name!r}. Known kdbench models: {', '.join(REGISTRY)}; also any "
        f"torchvision classification model ({', '.join(tv_names)}) or any timm model "
        f"(see timm.list_models()).{hint}"
    )


def _check_reachable(url: str, what: str, cached_hint: str) -> None:
    """Raise a ConfigError at once when the host of ``url`` cannot be reached (no hang)."""
    parsed = urlparse(url)
    host = parsed.hostname or url
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=_PROBE_TIMEOUT_S):
            return
    except OSError as err:
        raise ConfigError(
            f"could not download the pretrained weights for {what}: they are not in the local cache and "
            f"{host} cannot be reached ({err}); download them on a machine with internet and copy them to "
            f"{cached_hint}, or train from scratch (no --pretrained, pretrained = false)"
        ) from None


def ensure_pretrained_weights(name: str) -> None:
    """ConfigError at once (no download, no hang) when ``name``'s ImageNet weights are neither cached nor reachable."""
    source = model_source(name)
    if source == "torchvision":
        _torchvision_weights(name)
        return
    import kdbench.compat  # noqa: F401
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    url = getattr(cfg, "url", "") if cfg is not None else ""
    if not hub_id and not url:
        raise ConfigError(f"timm has no pretrained weights for {name!r}; train it from scratch")
    if hub_id and not _in_hf_cache(hub_id):
        _check_reachable("https://huggingface.co", f"{name!r} (hf-hub:{hub_id})", "the Hugging Face cache")
    elif url and not hub_id:
        _check_reachable(url, f"{name!r} ({url})", "the torch hub cache")


def _torchvision_weights(name: str):
    """The default ImageNet weights enum of a torchvision model, checked to be cached or downloadable."""
    import torch

    from kdbench.compat import torchvision

    try:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError, AttributeError) as err:
        raise ConfigError(f"torchvision has no pretrained weights for {name!r}: {err}") from None
    cache_dir = os.path.join(torch.hub.get_dir(), "checkpoints")
    if not os.path.exists(os.path.join(cache_dir, os.path.basename(weights.url))):
        _check_reachable(weights.url, f"{name!r} ({weights.url})", cache_dir)
    return weights


def _replace_module(root: nn.Module, dotted: str, new: nn.Module) -> None:
    parent_path, _, child = dotted.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    if isinstance(parent, nn.Sequential) and child.isdigit():
        parent[int(child)] = new
    else:
        setattr(parent, child, new)


def _last_linear(model: nn.Module) -> str | None:
    last = None
    for mod_name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = mod_name
    return last


def _resize_head(model: nn.Module, name: str, num_classes: int) -> None:
    """Replace the final Linear of a pretrained torchvision model with a ``num_classes`` one."""
    head = REGISTRY[name].head if name in REGISTRY else _last_linear(model)
    if head is None:
        raise ConfigError(
            f"cannot find the classifier head (a final nn.Linear) of {name!r} to resize it to "
            f"{num_classes} classes with pretrained=True; use pretrained=False or a model with a "
            "Linear head"
        )
    old = model.get_submodule(head)
    if not isinstance(old, nn.Linear):
        raise ConfigError(f"{name!r}: module {head!r} is {type(old).__name__}, expected nn.Linear")
    if old.out_features != num_classes:
        _replace_module(model, head, nn.Linear(old.in_features, num_classes, bias=old.bias is not None))


def _build_torchvision(name: str, num_classes: int, pretrained: bool) -> nn.Module:
    from kdbench.compat import torchvision

    if not pretrained:
        return torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    weights = _torchvision_weights(name)
    try:
        model = torchvision.models.get_model(name, weights=weights)
    except Exception as err:  # network or corrupt-download errors, surfaced as one clear error
        raise ConfigError(f"could not load pretrained weights for {name!r}: {err}") from err
    _resize_head(model, name, num_classes)
    return model


def _build_timm(name: str, num_classes: int, pretrained: bool) -> nn.Module:
    import kdbench.compat  # noqa: F401
    import timm

    if pretrained:
        ensure_pretrained_weights(name)
    try:
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes)
    except ConfigError:
        raise
    except Exception as err:
        if not pretrained:
            raise
        raise ConfigError(f"could not load pretrained weights for {name!r}: {err}") from err


def _in_hf_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str):
            return True
    return False


_BUILDERS: dict[str, Callable[[str, int, bool], nn.Module]] = {
    "torchvision": _build_torchvision,
    "timm": _build_timm,
}


def create_model(name: str, num_classes: int = 4, pretrained: bool = False) -> nn.Module:
    """Build ``name`` for grey ``[B, 1, S, S]`` input in [0, 1], returning ``[B, num_classes]`` logits."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"model name must be a non-empty string, got {name!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r}")
    source = model_source(name)
    backbone = _BUILDERS[source](name, num_classes, bool(pretrained))
    raise_bn_momentum(backbone)
    return GreyClassifier(backbone, arch=name, num_classes=num_classes)


MIN_BN_MOMENTUM = 0.1


def raise_bn_momentum(model: nn.Module, minimum: float = MIN_BN_MOMENTUM) -> int:
    """Raise batch-norm momentum to at least ``minimum``; returns how many layers changed.

    torchvision's MobileNetV3 sets momentum 0.01, tuned for long ImageNet schedules. In the short
    runs kdbench makes (a few hundred steps), the running statistics then lag far behind the
    weights and an eval-mode model can predict a single class while its train-mode accuracy is
    fine. PyTorch's default of 0.1 tracks them; the learned weights are unaffected.
    """
    changed = 0
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.momentum is not None and module.momentum < minimum:
            module.momentum = minimum
            changed += 1
    return changed


_resolve_source = model_source  # older private name, still imported by kdbench.search.space
