"""Residual GAN after SNGAN (Miyato et al. 2018) and BigGAN (Brock et al. 2019), for 28 to 256 px.

G: z -> linear to ``base x base`` (4, or 7 for 28 px) -> residual up-blocks, one stage per doubling
-> BN-ReLU-conv3x3-tanh. D: residual down-blocks (the first one "optimised") down to its last side,
more blocks there, ReLU, a sum over the feature map and a linear score. Defaults: SNGAN's CIFAR-10
networks. Both can be class-conditional: conditional batch norm in G, projection in D
(conditioning.py); spectral norm on D by default, on G optionally (as BigGAN). Blocks: resnet_blocks.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from ganforge.components.architectures.conditioning import (
    conditional_judge,
    conditioning_classes,
    label_heads,
    require_labels,
)
from ganforge.components.architectures.limits import MAX_LATENT_DIM, MAX_WIDTH, Width
from ganforge.components.architectures.resnet_blocks import (
    DiscriminatorBlock,
    GeneratorBlock,
    SelfAttention,
    SumPool,
    conv3x3,
)
from ganforge.components.architectures.spectral import spectrally_normalised
from ganforge.contracts import DataSpec, GANModels, Params
from ganforge.errors import ParamsError

SIDES = (28, 32, 64, 128, 256)
CHANNELS = (1, 3)
MAX_BLOCKS = 16


class ResNetParams(Params):
    latent_dim: int = Field(
        default=128, gt=0, le=MAX_LATENT_DIM, description="Size of the noise vector z the generator reads."
    )
    generator_width: int = Field(
        default=256,
        gt=0,
        le=MAX_WIDTH,
        description="Channels of every generator stage when generator_channels is None.",
    )
    generator_channels: list[Width] | None = Field(
        default=None,
        max_length=8,
        description=(
            "Generator channels per resolution, from the base (4x4; 7x7 for 28 px) to the image side: one entry "
            "per doubling plus one. None: generator_width everywhere (SNGAN's CIFAR-10 G, 256). At 64 px, halving "
            "as SNGAN's larger Gs do: [1024, 512, 256, 128, 64]; BigGAN's 128 px G: [1536, 1536, 768, 384, 192, 96]."
        ),
    )
    discriminator_width: int = Field(
        default=128,
        gt=0,
        le=MAX_WIDTH,
        description="Channels of every discriminator stage when discriminator_channels is None.",
    )
    discriminator_channels: list[Width] | None = Field(
        default=None,
        max_length=8,
        description=(
            "Discriminator channels per stage: one entry per downsampling stage, plus one for the blocks at its "
            "last side. None: discriminator_width everywhere (SNGAN's CIFAR-10 D, 128). At 64 px, doubling as "
            "SNGAN's larger Ds do: [64, 128, 256, 512, 1024]; BigGAN's 128 px D: [96, 192, 384, 768, 1536, 1536]."
        ),
    )
    discriminator_downsamples: int | None = Field(
        default=None,
        ge=1,
        le=6,
        description=(
            "How many discriminator stages halve the image. None: down to 8x8 at 32 px and 7x7 at 28 px (SNGAN's "
            "and BigGAN's CIFAR-10 D), to 4x4 above (64 px: 4)."
        ),
    )
    discriminator_final_blocks: int | None = Field(
        default=None,
        ge=1,
        le=MAX_BLOCKS,
        description="Residual blocks at the discriminator's last side, after its downsampling. None: 2 at 28 and "
        "32 px (SNGAN's CIFAR-10 D), 1 above.",
    )
    blocks_per_resolution: int = Field(
        default=1,
        ge=1,
        le=MAX_BLOCKS,
        description="Residual blocks per generator and discriminator stage; the first of each stage resamples.",
    )
    attention_side: int | None = Field(
        default=None,
        gt=0,
        description=(
            "The side of the feature map at which both networks get a self-attention block (SAGAN, as in BigGAN: "
            "64 for 128 px), after the stage that makes it; a side both networks pass through, from half the image "
            "side down. None: no attention."
        ),
    )
    spectral_norm: bool = Field(
        default=True,
        description="Spectral normalisation (Miyato et al. 2018) of every linear, convolutional and embedding "
        "layer of the discriminator, its projection included.",
    )
    generator_spectral_norm: bool = Field(
        default=False,
        description="Spectral normalisation of the generator's linear and convolutional layers too (BigGAN); not "
        "of its conditional batch norms' gains.",
    )
    weight_init: Literal["glorot", "orthogonal", "default"] = Field(
        default="glorot",
        description=(
            "'glorot': Glorot-uniform weights, gain sqrt(2) in the residual branches' convolutions and 1 elsewhere, "
            "biases 0 (SNGAN); 'orthogonal': orthogonal weights, biases 0 (BigGAN); 'default': PyTorch's own."
        ),
    )
    generator_conditioning: Literal["none", "batch_norm"] = Field(
        default="none",
        description="How the generator reads the class label: 'none' (unconditional) or 'batch_norm': each "
        "residual block's batch norms take the label's own gain and bias (Miyato & Koyama 2018). Needs a dataset "
        "with classes and discriminator_conditioning 'projection'.",
    )
    discriminator_conditioning: Literal["none", "projection"] = Field(
        default="none",
        description="How the discriminator uses the class label: 'none' (unconditional) or 'projection': "
        "score + <embed(y), h> on the summed features h (Miyato & Koyama 2018). Needs generator_conditioning "
        "'batch_norm'.",
    )


@dataclass(frozen=True)
class Layout:
    """The resolutions: G grows ``base`` to ``side`` in ``doublings``; D halves ``side`` ``downsamples`` times."""

    side: int
    base: int
    doublings: int
    downsamples: int
    final_blocks: int

    def attention_sides(self) -> list[int]:
        """Sides where both networks have a stage's output: below the image's, down to G's first and D's last."""
        lowest = max(self.base * 2, self.side >> self.downsamples)
        return [self.side >> level for level in range(1, self.doublings + 1) if self.side >> level >= lowest]


def layout_of(params: ResNetParams, data: DataSpec) -> Layout:
    channels, height, width = data.shape
    if height != width or height not in SIDES or channels not in CHANNELS:
        raise ParamsError(
            f"architecture 'resnet' cannot take images of shape {channels}x{height}x{width}: it takes square "
            f"images of side {', '.join(map(str, SIDES))} with 1 or 3 channels; use 'dcgan' or 'mlp' for others"
        )
    base = 7 if height == 28 else 4
    doublings = int(math.log2(height // base))
    small = height <= 32
    downsamples = params.discriminator_downsamples or (2 if small else doublings)
    if downsamples > doublings:
        raise ParamsError(
            f"params.discriminator_downsamples: {downsamples} halvings of a {height}x{height} image go below "
            f"{base}x{base}; at most {doublings}"
        )
    final_blocks = params.discriminator_final_blocks or (2 if small else 1)
    layout = Layout(height, base, doublings, downsamples, final_blocks)
    if params.attention_side is not None and params.attention_side not in layout.attention_sides():
        accepted = ", ".join(map(str, layout.attention_sides())) or "none"
        raise ParamsError(
            f"params.attention_side: {params.attention_side} is not a side both networks have for "
            f"{height}x{height} images; accepted: {accepted} (or null for no attention)"
        )
    return layout


def stage_channels(given: list[int] | None, width: int, needed: int, field: str, meaning: str) -> list[int]:
    if given is None:
        return [width] * needed
    if len(given) != needed:
        raise ParamsError(f"params.{field}: given {given} ({len(given)} entries), but it needs {needed}: {meaning}")
    return list(given)


class ResNetGenerator(nn.Module):
    def __init__(self, params: ResNetParams, layout: Layout, image_channels: int, num_classes: int | None) -> None:
        super().__init__()
        channels = stage_channels(
            params.generator_channels,
            params.generator_width,
            layout.doublings + 1,
            "generator_channels",
            f"one for the {layout.base}x{layout.base} base and one per doubling up to {layout.side}x{layout.side}",
        )
        self.conditional = num_classes is not None
        self.base = (channels[0], layout.base, layout.base)
        self.project = nn.Linear(params.latent_dim, math.prod(self.base))
        self.blocks = nn.ModuleList()
        for level in range(layout.doublings):
            for index in range(params.blocks_per_resolution):
                width_in = channels[level] if index == 0 else channels[level + 1]
                self.blocks.append(GeneratorBlock(width_in, channels[level + 1], index == 0, num_classes))
            if params.attention_side == layout.base << (level + 1):
                self.blocks.append(SelfAttention(channels[level + 1]))
        # The output's batch norm is unconditional, as in SNGAN's and BigGAN's conditional generators.
        self.output = nn.Sequential(nn.BatchNorm2d(channels[-1]), nn.ReLU(), conv3x3(channels[-1], image_channels))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.conditional:
            labels = require_labels(labels, "generator")
        x = self.project(z).view(-1, *self.base)
        for block in self.blocks:
            x = block(x, labels)
        return torch.tanh(self.output(x))


class ResNetDiscriminator(nn.Module):
    def __init__(self, params: ResNetParams, layout: Layout, image_channels: int, num_classes: int | None) -> None:
        super().__init__()
        channels = stage_channels(
            params.discriminator_channels,
            params.discriminator_width,
            layout.downsamples + 1,
            "discriminator_channels",
            f"one per halving of the image ({layout.downsamples}) and one for the blocks at its last side",
        )
        blocks: list[nn.Module] = []
        width_in = image_channels
        for level in range(layout.downsamples):
            for index in range(params.blocks_per_resolution):
                blocks.append(DiscriminatorBlock(width_in, channels[level], index == 0, first=not blocks))
                width_in = channels[level]
            if params.attention_side == layout.side >> (level + 1):
                blocks.append(SelfAttention(width_in))
        for _ in range(layout.final_blocks):
            blocks.append(DiscriminatorBlock(width_in, channels[-1], downsample=False))
            width_in = channels[-1]
        self.net = nn.Sequential(*blocks, SumPool(), nn.Linear(width_in, 1))
        self.conditional = num_classes is not None
        self.projection, _ = label_heads("projection", num_classes, width_in)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if not self.conditional:
            return self.net(images).squeeze(-1)
        labels = require_labels(labels, "discriminator")
        return conditional_judge(self.net, images, labels, self.projection, None)


def initialise(network: nn.Module, scheme: str) -> None:
    for module in network.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            if scheme == "orthogonal":
                nn.init.orthogonal_(module.weight)
            else:
                nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    if scheme == "glorot":
        # SNGAN's residual branches start with gain sqrt(2), for the ReLU before each of their convolutions.
        for module in network.modules():
            if isinstance(module, GeneratorBlock | DiscriminatorBlock):
                nn.init.xavier_uniform_(module.conv1.weight, gain=math.sqrt(2))
                nn.init.xavier_uniform_(module.conv2.weight, gain=math.sqrt(2))


def spectrally_normalised_generator(generator: nn.Module) -> None:
    for module in list(generator.modules()):
        if isinstance(module, nn.Linear | nn.Conv2d):
            spectral_norm(module)


def build_resnet(params: ResNetParams, data: DataSpec) -> GANModels:
    """SNGAN/BigGAN residual generator and discriminator, sized to the image."""
    layout = layout_of(params, data)
    num_classes = conditioning_classes("resnet", params.generator_conditioning, params.discriminator_conditioning, data)
    generator = ResNetGenerator(params, layout, data.channels, num_classes)
    discriminator = ResNetDiscriminator(params, layout, data.channels, num_classes)
    if params.weight_init != "default":
        initialise(generator, params.weight_init)
        initialise(discriminator, params.weight_init)
    if params.spectral_norm:
        spectrally_normalised(discriminator)
    if params.generator_spectral_norm:
        spectrally_normalised_generator(generator)
    return GANModels(
        generator=generator, discriminator=discriminator, latent_dim=params.latent_dim, num_classes=num_classes
    )
