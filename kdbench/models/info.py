"""Model size and cost: parameter count, multiply-accumulates at a given input size, bytes in MB.

MACs come from PyTorch's own ``torch.utils.flop_counter.FlopCounterMode`` over one batch-1 forward
pass: it counts every convolution and matrix product the model really runs (``aten.convolution``,
``mm``/``addmm``, ``bmm`` and the attention matmuls of transformers, fused or not) from their
shapes, as 2 FLOPs per multiply-accumulate; kdbench reports MACs = FLOPs / 2. Bias additions,
norms, activations and pooling are not counted, the usual convention of timm's "GMACs". So:

- Conv2d: ``C_out * H_out * W_out * (C_in / groups) * kH * kW`` (depthwise and grouped convolutions
  count only the channels each filter sees);
- Linear: ``in_features * out_features`` per output row;
- attention: ``Q @ K^T`` and ``attn @ V``, ``2 * N^2 * C`` per block for N tokens of width C (the
  part that forward hooks on Conv2d/Linear modules miss).

It works on models built on the ``meta`` device (shapes only), which is how ``kdbench models``
counts without allocating weights.
"""

from __future__ import annotations

import torch
from torch import nn

from kdbench.errors import ConfigError


def count_macs(model: nn.Module, size: int = 112, channels: int = 1) -> int:
    """MACs of one forward pass of ``model`` on a ``[1, channels, size, size]`` zero input."""
    from torch.utils.flop_counter import FlopCounterMode

    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError(f"input size must be a positive integer (pixels), got {size!r}")
    was_training = model.training
    first = next(iter(model.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    counter = FlopCounterMode(display=False, custom_mapping=_extra_formulas())
    try:
        model.eval()
        with torch.no_grad(), counter:
            model(torch.zeros(1, channels, size, size, device=device, dtype=dtype))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def _extra_formulas() -> dict:
    """Formulas FlopCounterMode lacks: the CPU kernel of scaled_dot_product_attention (torch 2.13)."""
    from torch.utils import flop_counter

    def cpu_flash_attention(query, key, value, *_args, out_shape=None, **_kwargs) -> int:
        return flop_counter.sdpa_flop_count(query, key, value)

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    return {} if op is None or op in flop_counter.flop_registry else {op: cpu_flash_attention}


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
