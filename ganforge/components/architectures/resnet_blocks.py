"""The pieces of the residual GAN (resnet.py): up- and down-sampling residual blocks and self-attention.

After Miyato et al. 2018 (SNGAN, appendix B) and Brock et al. 2019 (BigGAN): a generator block is
BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3 beside an upsampled 1x1-conv shortcut; a discriminator
block is ReLU-conv3x3-ReLU-conv3x3-avgpool beside a 1x1-conv-then-avgpool shortcut, and D's first
block ("optimised") convolves the image before any ReLU and pools before its shortcut's conv.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.components.architectures.conditioning import ConditionalBatchNorm


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)


def conv1x1(in_channels: int, out_channels: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=bias)


def batch_norm(channels: int, num_classes: int | None) -> nn.Module:
    """A plain batch norm, or a conditional one (the label's own gain and bias) for a conditional generator."""
    return nn.BatchNorm2d(channels) if num_classes is None else ConditionalBatchNorm(channels, num_classes, True)


def normalise(norm: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    return norm(x, labels) if isinstance(norm, ConditionalBatchNorm) else norm(x)


class GeneratorBlock(nn.Module):
    """A residual generator block that doubles the side (``upsample``) or keeps it."""

    def __init__(self, in_channels: int, out_channels: int, upsample: bool, num_classes: int | None) -> None:
        super().__init__()
        self.upsample = upsample
        self.norm1 = batch_norm(in_channels, num_classes)
        self.conv1 = conv3x3(in_channels, out_channels)
        self.norm2 = batch_norm(out_channels, num_classes)
        self.conv2 = conv3x3(out_channels, out_channels)
        # SNGAN's rule: a learned shortcut wherever the block resamples or changes the width.
        self.shortcut = conv1x1(in_channels, out_channels) if upsample or in_channels != out_channels else None

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest") if self.upsample else x

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(self._resample(F.relu(normalise(self.norm1, x, labels))))
        h = self.conv2(F.relu(normalise(self.norm2, h, labels)))
        skip = self._resample(x)
        return h + (self.shortcut(skip) if self.shortcut is not None else skip)


class DiscriminatorBlock(nn.Module):
    """A residual discriminator block that halves the side (``downsample``) or keeps it; ``first``: D's first
    block, which reads the image itself (no ReLU before its first conv, the shortcut pooled before its conv)."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool, first: bool = False) -> None:
        super().__init__()
        self.downsample = downsample
        self.first = first
        self.conv1 = conv3x3(in_channels, out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        learned = first or downsample or in_channels != out_channels
        self.shortcut = conv1x1(in_channels, out_channels) if learned else None

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, 2) if self.downsample else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = self._resample(self.conv2(F.relu(h)))
        if self.shortcut is None:
            return h + x
        if self.first:  # pooling first costs a quarter of the 1x1 conv; the same function, both being linear
            return h + self.shortcut(self._resample(x))
        return h + self._resample(self.shortcut(x))


class SelfAttention(nn.Module):
    """Self-attention over the feature map (Zhang et al. 2019, SAGAN, as BigGAN uses it): keys and values
    pooled 2x2, the result added through a learned gain that starts at 0, so the block begins as the identity
    (and its other weights get no gradient until that gain moves)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        inner = max(1, channels // 8)
        self.query = conv1x1(channels, inner, bias=False)
        self.key = conv1x1(channels, inner, bias=False)
        self.value = conv1x1(channels, max(1, channels // 2), bias=False)
        self.out = conv1x1(max(1, channels // 2), channels, bias=False)
        self.gain = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        batch, _channels, height, width = x.shape
        query = self.query(x).flatten(2)  # [B, C/8, HW]
        key = F.max_pool2d(self.key(x), 2).flatten(2)  # [B, C/8, HW/4]
        value = F.max_pool2d(self.value(x), 2).flatten(2)  # [B, C/2, HW/4]
        attention = torch.softmax(query.transpose(1, 2) @ key, dim=-1)  # [B, HW, HW/4]
        attended = (value @ attention.transpose(1, 2)).view(batch, -1, height, width)
        return x + self.gain * self.out(attended)


class SumPool(nn.Module):
    """ReLU, then the sum over the feature map (SNGAN's global sum pooling): D's features ``h`` ``[B, C]``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x).sum(dim=(2, 3))
