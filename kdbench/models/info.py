"""Model size and cost: parameter count, multiply-accumulates at a given input size, bytes in MB.

MACs are counted by forward hooks on every ``nn.Conv2d`` and ``nn.Linear`` during one batch-1
forward pass (bias additions, norms, activations and pooling are not counted, the usual convention
of timm/fvcore-style "GMACs"):

- Conv2d: ``C_out * H_out * W_out * (C_in / groups) * kH * kW`` (so depthwise and grouped
  convolutions count only the channels each filter sees);
- Linear: ``in_features * out_features`` per output row (rows = output numel / out_features).
"""

from __future__ import annotations

import torch
from torch import nn

from kdbench.errors import ConfigError


def conv2d_macs(module: nn.Conv2d, output: torch.Tensor) -> int:
    """Multiply-accumulates of one Conv2d call, from its output shape (all batch rows)."""
    kh, kw = module.kernel_size
    per_output = (module.in_channels // module.groups) * kh * kw
    return int(output.numel()) * per_output


def linear_macs(module: nn.Linear, output: torch.Tensor) -> int:
    """Multiply-accumulates of one Linear call, from its output shape (all batch rows)."""
    rows = int(output.numel()) // module.out_features
    return rows * module.in_features * module.out_features


def count_macs(model: nn.Module, size: int = 112, channels: int = 1) -> int:
    """MACs of one forward pass of ``model`` on a ``[1, channels, size, size]`` zero input."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"input size must be a positive integer (pixels), got {size!r}")
    total = 0

    def hook(module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += conv2d_macs(module, output)
        elif isinstance(module, nn.Linear):
            total += linear_macs(module, output)

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    was_training = model.training
    try:
        first = next(iter(model.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
        dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, channels, size, size, device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def size_mb(model: nn.Module) -> float:
    """Bytes of all parameters and buffers, as stored (fp32 = 4 bytes each), divided by 1e6."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors) / 1e6


def model_info(model: nn.Module, size: int = 112) -> dict[str, int | float]:
    """``{"params", "macs", "size_mb"}`` of a kdbench model (grey 1-channel input) at ``size`` px."""
    return {"params": count_params(model), "macs": count_macs(model, size), "size_mb": size_mb(model)}
