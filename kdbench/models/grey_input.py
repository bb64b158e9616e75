"""The grey-input stem every kdbench model starts with, and the wrapper that puts it on a backbone.

Frames are single-channel; ImageNet backbones expect three normalised channels. ``GreyInput`` maps
``[B, 1, S, S]`` in ``[0, 1]`` to ``[B, 3, S, S]`` normalised with the ImageNet mean/std, so the
same model works with or without pretrained weights and an exported ONNX file takes one channel.
Because the three output channels come from one input channel, the repeat and the normalisation
fold into a single broadcast multiply-add: ``x * (1 / std) - mean / std``.
"""

from __future__ import annotations

import torch
from torch import nn

from kdbench.errors import DataError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


class GreyInput(nn.Module):
    """Repeat a grey channel to RGB and apply ImageNet mean/std normalisation."""

    def __init__(
        self,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        # Not persistent: they are constants of the architecture, not learned state, so the
        # state dict holds only the backbone's weights.
        self.register_buffer("scale", 1.0 / std_t, persistent=False)
        self.register_buffer("shift", mean_t / std_t, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 1, S, S]`` in ``[0, 1]`` -> ``[B, 3, S, S]`` ImageNet-normalised."""
        if x.dim() != 4 or x.shape[1] != 1:
            raise DataError(
                f"model input has shape {tuple(x.shape)}; expected [B, 1, S, S] "
                "(grey frames, float32 in [0, 1])"
            )
        return x * self.scale - self.shift


class GreyClassifier(nn.Module):
    """A backbone classifier behind a ``GreyInput`` stem; remembers its architecture name."""

    def __init__(self, backbone: nn.Module, arch: str, num_classes: int) -> None:
        super().__init__()
        self.stem = GreyInput()
        self.backbone = backbone
        self.arch = arch
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Grey frames ``[B, 1, S, S]`` -> logits ``[B, num_classes]``."""
        return self.backbone(self.stem(x))
