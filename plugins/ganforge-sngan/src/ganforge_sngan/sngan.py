"""The ResNet SNGAN of Miyato et al. 2018 ("Spectral Normalization for Generative Adversarial Networks"),
scaled down to images of side 28 or 32.

The generator projects z to a ``base x base`` map (base 7 for side 28, 4 for side 32) and doubles
it with residual up-blocks (two for 28: 7 -> 14 -> 28; three for 32: 4 -> 8 -> 16 -> 32) before a
BatchNorm -> ReLU -> conv3x3 -> tanh output. The discriminator is the paper's CIFAR-10 one: an
"optimised" residual down-block, a second down-block, two residual blocks at that resolution,
then ReLU, a sum over space and a linear score, every conv and linear layer spectrally
normalised. Weights start Glorot-uniform, with gain sqrt(2) on the residual paths' convolutions
(ReLU follows them) and 1 on shortcuts and the in/out layers.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganforge import DataSpec, GANModels, Params, ParamsError

BASE_SIZES = {28: 7, 32: 4}  # image side -> side of the generator's first feature map
RESIDUAL_GAIN = math.sqrt(2.0)
DISCRIMINATOR_PLAIN_BLOCKS = 2  # residual blocks after the two down-blocks, as in the paper's CIFAR-10 model


class SNGANParams(Params):
    latent_dim: int = Field(default=128, gt=0, description="Size of the noise vector z the generator reads.")
    generator_channels: int = Field(
        default=128,
        gt=0,
        description="Width of the generator: channels of its projection and of every residual up-block.",
    )
    discriminator_channels: int = Field(
        default=128,
        gt=0,
        description="Width of the discriminator: channels of every residual block, and of the pooled feature vector.",
    )


def base_size(shape: tuple[int, int, int]) -> int:
    channels, height, width = shape
    if height != width or height not in BASE_SIZES:
        supported = " or ".join(f"{side}x{side} (from a {base}x{base} base)" for side, base in BASE_SIZES.items())
        raise ParamsError(
            f"architecture 'sngan' cannot handle the data shape {channels}x{height}x{width}: it supports square "
            f"images of {supported}, with any channel count; use architecture 'dcgan' for other sizes"
        )
    return BASE_SIZES[height]


def glorot(layer: nn.Conv2d | nn.Linear, gain: float = 1.0) -> nn.Conv2d | nn.Linear:
    nn.init.xavier_uniform_(layer.weight, gain=gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def conv(in_width: int, out_width: int, kernel: int, *, gain: float = 1.0, bias: bool = True) -> nn.Conv2d:
    return glorot(nn.Conv2d(in_width, out_width, kernel, padding=kernel // 2, bias=bias), gain)


def sn_conv(in_width: int, out_width: int, kernel: int, *, gain: float = 1.0) -> nn.Module:
    # Initialise before wrapping: spectral_norm seeds its power iteration from the weight it finds.
    return spectral_norm(conv(in_width, out_width, kernel, gain=gain))


class UpBlock(nn.Module):
    """BN -> ReLU -> upsample x2 -> conv3x3 -> BN -> ReLU -> conv3x3, plus upsample x2 -> conv1x1.

    ``bias=False`` drops the biases of the block's output layers, for a block whose output feeds
    only a BatchNorm (whose mean subtraction would cancel them).
    """

    def __init__(self, in_width: int, out_width: int, *, bias: bool = True) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.BatchNorm2d(in_width),
            nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="nearest"),
            conv(in_width, out_width, 3, gain=RESIDUAL_GAIN, bias=False),  # BatchNorm follows
            nn.BatchNorm2d(out_width),
            nn.ReLU(),
            conv(out_width, out_width, 3, gain=RESIDUAL_GAIN, bias=bias),
        )
        self.shortcut = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"), conv(in_width, out_width, 1, bias=bias)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class DiscriminatorBlock(nn.Module):
    """ReLU -> conv3x3 -> ReLU -> conv3x3 [-> avg-pool x2], plus a shortcut, all spectrally normalised.

    ``first``: the paper's "optimised" first block, which sees the image itself and so starts with
    the convolution, not a ReLU. The shortcut is conv1x1 -> avg-pool x2 for a down-block (or a
    change of width) and the identity otherwise.
    """

    def __init__(self, in_width: int, out_width: int, *, downsample: bool, first: bool = False) -> None:
        super().__init__()
        leading = [] if first else [nn.ReLU()]
        pool = [nn.AvgPool2d(2)] if downsample else []
        self.residual = nn.Sequential(
            *leading,
            sn_conv(in_width, out_width, 3, gain=RESIDUAL_GAIN),
            nn.ReLU(),
            sn_conv(out_width, out_width, 3, gain=RESIDUAL_GAIN),
            *pool,
        )
        learned = downsample or in_width != out_width
        self.shortcut = nn.Sequential(sn_conv(in_width, out_width, 1), *pool) if learned else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


class SNGANGenerator(nn.Module):
    def __init__(self, latent_dim: int, width: int, base: int, side: int, image_channels: int) -> None:
        super().__init__()
        doublings = round(math.log2(side // base))
        # The projection keeps its bias: it reaches the output through the first block's shortcut.
        self.project = nn.Sequential(
            glorot(nn.Linear(latent_dim, width * base * base)), nn.Unflatten(1, (width, base, base))
        )
        self.blocks = nn.Sequential(*(UpBlock(width, width, bias=level < doublings - 1) for level in range(doublings)))
        self.output = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(), conv(width, image_channels, 3), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.output(self.blocks(self.project(z)))


class SNGANDiscriminator(nn.Module):
    def __init__(self, width: int, image_channels: int) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            DiscriminatorBlock(image_channels, width, downsample=True, first=True),
            DiscriminatorBlock(width, width, downsample=True),
            *(DiscriminatorBlock(width, width, downsample=False) for _ in range(DISCRIMINATOR_PLAIN_BLOCKS)),
            nn.ReLU(),
        )
        self.score = spectral_norm(glorot(nn.Linear(width, 1)))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.blocks(images).sum(dim=(2, 3))  # global sum pooling, as in the paper
        return self.score(features).squeeze(1)


def build_sngan(params: SNGANParams, data: DataSpec) -> GANModels:
    """SNGAN (Miyato et al. 2018): ResNet generator, spectrally normalised ResNet discriminator; 28x28 or 32x32."""
    base = base_size(tuple(data.shape))
    generator = SNGANGenerator(params.latent_dim, params.generator_channels, base, data.height, data.channels)
    discriminator = SNGANDiscriminator(params.discriminator_channels, data.channels)
    return GANModels(generator=generator, discriminator=discriminator, latent_dim=params.latent_dim)
