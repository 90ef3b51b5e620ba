"""The pieces of R3GAN (r3gan.py), after Huang et al. 2024 and their code (brownvc/R3GAN, R3GAN/Networks.py).

No normalisation layers anywhere. A residual block is an inverted bottleneck: a 1x1 convolution widens
the channels ``expansion`` times, a grouped 3x3 convolution (``cardinality`` groups) mixes space, a 1x1
convolution narrows them back; the first two are each followed by a per-channel bias and a leaky ReLU
(slope 0.2), and no convolution has a bias of its own. Resampling by 2 filters with the binomial
[1, 2, 1], held over two pixels: the separable kernel [1, 3, 3, 1] ⊗ [1, 3, 3, 1] / 64.

Initialisation, the paper's variance scaling (as Fixup, Zhang et al. 2019): every weight is drawn
N(0, gain² / fan_in). In a residual branch the first two convolutions get the leaky ReLU's gain times
L^(-1/4), L being the residual blocks of the whole network (3 layers per branch: the exponent is
-1 / (2·3 - 2)), and the last one starts at zero, so that each block starts as the identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_SLOPE = 0.2
LEAKY_GAIN = math.sqrt(2 / (1 + LEAKY_SLOPE**2))
LAYERS_PER_BRANCH = 3


def msr_initialised(layer: nn.Conv2d | nn.Linear, gain: float = 1.0) -> nn.Conv2d | nn.Linear:
    """Weights N(0, gain² / fan_in), fan_in being what one output unit reads (He et al. 2015)."""
    fan_in = layer.weight[0].numel()
    nn.init.normal_(layer.weight, mean=0.0, std=gain / math.sqrt(fan_in))
    return layer


def conv(in_channels: int, out_channels: int, kernel_size: int = 1, groups: int = 1, gain: float = 1.0) -> nn.Conv2d:
    layer = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups, bias=False)
    return msr_initialised(layer, gain)


class BiasedLeakyReLU(nn.Module):
    """A per-channel bias (starting at 0), then the leaky ReLU: the biases of R3GAN's layers live here."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), LEAKY_SLOPE)


def branch_gain(blocks_in_network: int) -> float:
    """The gain of a residual branch's first two convolutions: the activation's, shrunk by L^(-1/(2m - 2))."""
    return LEAKY_GAIN * blocks_in_network ** (-1 / (2 * LAYERS_PER_BRANCH - 2))


class ResidualBlock(nn.Module):
    """x + conv1x1(act(grouped conv3x3(act(conv1x1(x))))), with the inner width ``expansion`` times x's."""

    def __init__(self, channels: int, cardinality: int, expansion: int, blocks_in_network: int) -> None:
        super().__init__()
        inner = channels * expansion
        gain = branch_gain(blocks_in_network)
        self.widen = conv(channels, inner, gain=gain)
        self.act1 = BiasedLeakyReLU(inner)
        self.mix = conv(inner, inner, kernel_size=3, groups=cardinality, gain=gain)
        self.act2 = BiasedLeakyReLU(inner)
        self.narrow = conv(inner, channels)
        nn.init.zeros_(self.narrow.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.narrow(self.act2(self.mix(self.act1(self.widen(x)))))


def resampling_kernel(taps: tuple[int, ...] = (1, 2, 1)) -> torch.Tensor:
    """The [1, 1, k, k] low-pass kernel of a factor-2 resampling: the taps convolved with the box [1, 1] (a
    pixel held over two), the outer product of that with itself, normalised to sum 1."""
    row = torch.tensor([*taps, 0.0]) + torch.tensor([0.0, *taps])
    kernel = torch.outer(row, row)
    return (kernel / kernel.sum()).view(1, 1, *kernel.shape)


class Resample(nn.Module):
    """Doubling (``up``) or halving the side of every channel on its own through the filtered kernel; a 1x1
    convolution changes the width where asked, on the lower resolution's side (before up, after down)."""

    def __init__(self, in_channels: int, out_channels: int, up: bool) -> None:
        super().__init__()
        self.up = up
        self.project = conv(in_channels, out_channels) if in_channels != out_channels else None
        self.register_buffer("kernel", resampling_kernel(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up and self.project is not None:
            x = self.project(x)
        channels = x.shape[1]
        kernel = self.kernel.to(x.dtype).expand(channels, 1, -1, -1)
        pad = (kernel.shape[-1] - 2) // 2
        if self.up:  # zeros between the pixels, then the filter: 4x the kernel keeps the mean
            return F.conv_transpose2d(x, 4 * kernel, stride=2, padding=pad, groups=channels)
        x = F.conv2d(x, kernel, stride=2, padding=pad, groups=channels)
        return self.project(x) if self.project is not None else x


class GenerativeBasis(nn.Module):
    """G's start: a learned ``side x side`` map per channel, each scaled by a linear function of the input."""

    def __init__(self, in_features: int, channels: int, side: int) -> None:
        super().__init__()
        self.basis = nn.Parameter(torch.randn(channels, side, side))
        self.linear = msr_initialised(nn.Linear(in_features, channels, bias=False))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.basis.unsqueeze(0) * self.linear(z)[:, :, None, None]


class DiscriminativeBasis(nn.Module):
    """D's end: a depthwise ``side x side`` convolution to one value per channel, then a linear map."""

    def __init__(self, channels: int, out_features: int, side: int) -> None:
        super().__init__()
        self.basis = msr_initialised(nn.Conv2d(channels, channels, side, groups=channels, bias=False))
        self.linear = msr_initialised(nn.Linear(channels, out_features, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.basis(x).flatten(1))
