"""Convolutional GAN after DCGAN (Radford et al. 2015), adapting to the image size and channel count.

A square image of side ``H = base * 2**doublings`` is generated from a ``base x base`` projection
of z, doubled ``doublings`` times by stride-2 transposed convolutions, and judged by as many
stride-2 convolutions, which bring it back to ``base x base`` before a final linear score. Both
can be class-conditional (``generator_conditioning``, ``discriminator_conditioning``:
conditioning.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from ganforge.components.architectures.conditioning import (
    DISCRIMINATOR_CONDITIONING,
    GENERATOR_CONDITIONING,
    LABEL_EMBEDDING_DIM,
    ClassEmbedding,
    ConditionalBatchNorm,
    DiscriminatorConditioning,
    GeneratorConditioning,
    conditional_generate,
    conditional_judge,
    conditioning_classes,
    label_heads,
    require_labels,
)
from ganforge.components.architectures.limits import MAX_LATENT_DIM, MAX_LAYERS, MAX_WIDTH, Width
from ganforge.components.architectures.spectral import SPECTRAL_NORM, spectrally_normalised
from ganforge.contracts import DataSpec, GANModels, Params
from ganforge.errors import ParamsError

MIN_BASE_SIZE = 4
INIT_STD = 0.02


class DCGANParams(Params):
    latent_dim: int = Field(
        default=100, gt=0, le=MAX_LATENT_DIM, description="Size of the noise vector z the generator reads."
    )
    generator_channels: list[Width] | None = Field(
        default=None,
        max_length=MAX_LAYERS,
        description=(
            "Generator channels from the base projection to the last upsampling block: one entry per doubling of "
            f"the image size, plus one with generator_output 'conv'; each 1 to {MAX_WIDTH}. None: halving per level "
            "down to generator_width."
        ),
    )
    generator_width: int = Field(
        default=64,
        gt=0,
        le=MAX_WIDTH,
        description="Channels of the generator's last block when generator_channels is None.",
    )
    generator_norm: Literal["batch", "none"] = Field(
        default="batch", description="Normalisation after the projection and each upsampling block of the generator."
    )
    generator_activation: Literal["relu", "leaky_relu"] = Field(
        default="relu", description="Activation of the generator's hidden layers (leaky_relu uses leaky_slope)."
    )
    generator_output: Literal["conv_transpose", "conv"] = Field(
        default="conv_transpose",
        description=(
            "Generator output layer: 'conv_transpose' = the last upsampling ConvTranspose2d makes the image (classic "
            "DCGAN); 'conv' = a stride-1 Conv2d of output_kernel_size after all upsampling blocks."
        ),
    )
    output_kernel_size: int = Field(
        default=7,
        gt=0,
        le=63,
        description="Kernel size (odd) of the output Conv2d; used only with generator_output 'conv'.",
    )
    discriminator_channels: list[Width] | None = Field(
        default=None,
        max_length=MAX_LAYERS,
        description=(
            "Channels of the discriminator's stride-2 convolutions, one per halving of the image size; each 1 to "
            f"{MAX_WIDTH}. None: discriminator_width doubling per level."
        ),
    )
    discriminator_width: int = Field(
        default=64,
        gt=0,
        le=MAX_WIDTH,
        description="Channels of the discriminator's first conv when discriminator_channels is None.",
    )
    discriminator_kernel_size: int = Field(
        default=4, ge=2, le=7, description="Kernel size of the discriminator's stride-2 convolutions."
    )
    discriminator_norm: Literal["batch", "none"] = Field(
        default="batch", description="Normalisation after each discriminator conv except the first."
    )
    leaky_slope: float = Field(
        default=0.2,
        ge=0.0,
        lt=1.0,
        description="Negative slope of LeakyReLU: the discriminator's, and the generator's with leaky_relu.",
    )
    dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Dropout probability after each discriminator activation; 0 = none."
    )
    spectral_norm: bool = SPECTRAL_NORM
    pixel_range: Literal["symmetric", "unit"] = Field(
        default="symmetric",
        description=(
            "The pixel range the networks work in. 'symmetric': G ends in tanh and D reads images in [-1, 1]; "
            "'unit': G ends in a sigmoid and D reads images mapped to [0, 1], as programs that keep data in [0, 1] "
            "do (seed 000). The same functions either way, but not the same training: the scale of D's first "
            "layer's input and of G's last pre-activation differ. Images outside the networks stay in [-1, 1]."
        ),
    )
    weight_init: Literal["dcgan", "glorot", "default"] = Field(
        default="dcgan",
        description=(
            "'dcgan': conv and linear weights N(0, 0.02), biases 0, BatchNorm weights N(1, 0.02); "
            "'glorot': Glorot/Xavier-uniform weights, biases 0 (Keras' defaults, as seed 000 had); "
            "'default': PyTorch's own initialisation."
        ),
    )
    generator_conditioning: GeneratorConditioning = GENERATOR_CONDITIONING
    discriminator_conditioning: DiscriminatorConditioning = DISCRIMINATOR_CONDITIONING
    label_embedding_dim: int = LABEL_EMBEDDING_DIM

    @field_validator("output_kernel_size")
    @classmethod
    def _odd_kernel(cls, size: int) -> int:
        if size % 2 == 0:
            raise ValueError("must be odd, so that 'same' padding keeps the image size")
        return size


@dataclass(frozen=True)
class Geometry:
    """How the image side factorises: ``side = base * 2**doublings``."""

    side: int
    base: int
    doublings: int

    def describe(self) -> str:
        return f"{self.side} = {self.base} * 2^{self.doublings}"


def image_geometry(shape: tuple[int, int, int]) -> Geometry:
    channels, height, width = shape
    base, doublings = height, 0
    while base % 2 == 0 and base // 2 >= MIN_BASE_SIZE:
        base //= 2
        doublings += 1
    if height != width or doublings == 0:
        raise ParamsError(
            f"architecture 'dcgan' cannot handle the data shape {channels}x{height}x{width}: it needs square images "
            f"whose side is base * 2^n with base >= {MIN_BASE_SIZE} and n >= 1 (e.g. 28 = 7 * 2^2, 32 = 4 * 2^3, "
            "64 = 4 * 2^4); use architecture 'mlp' for other shapes"
        )
    return Geometry(height, base, doublings)


def generator_channels(params: DCGANParams, geometry: Geometry) -> list[int]:
    convolutional_output = params.generator_output == "conv"
    needed = geometry.doublings + 1 if convolutional_output else geometry.doublings
    if params.generator_channels is None:
        return [params.generator_width * 2 ** (needed - 1 - level) for level in range(needed)]
    if len(params.generator_channels) != needed:
        blocks = geometry.doublings if convolutional_output else geometry.doublings - 1
        output_layer = "Conv2d" if convolutional_output else "ConvTranspose2d"
        raise ParamsError(
            f"params.generator_channels: given {params.generator_channels} ({entries(params.generator_channels)}), "
            f"but a {geometry.side}x{geometry.side} image with generator_output {params.generator_output!r} needs "
            f"{needed}: {geometry.describe()}, so one entry for the {geometry.base}x{geometry.base} projection plus "
            f"one per upsampling block before the output {output_layer} ({blocks} of them)"
        )
    return list(params.generator_channels)


def discriminator_channels(params: DCGANParams, geometry: Geometry) -> list[int]:
    needed = geometry.doublings
    if params.discriminator_channels is None:
        return [params.discriminator_width * 2**level for level in range(needed)]
    if len(params.discriminator_channels) != needed:
        raise ParamsError(
            f"params.discriminator_channels: given {params.discriminator_channels} "
            f"({entries(params.discriminator_channels)}), but a {geometry.side}x{geometry.side} image needs "
            f"{needed}: {geometry.describe()}, so one entry for each stride-2 convolution that halves it down to "
            f"{geometry.base}x{geometry.base}"
        )
    return list(params.discriminator_channels)


def entries(values: list[int]) -> str:
    return "1 entry" if len(values) == 1 else f"{len(values)} entries"


def activation(name: str, leaky_slope: float) -> nn.Module:
    return nn.LeakyReLU(leaky_slope) if name == "leaky_relu" else nn.ReLU()


class SymmetricSigmoid(nn.Module):
    """A sigmoid output in [0, 1], handed on in ganforge's [-1, 1]: ``2 * sigmoid(x) - 1``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2.0 * torch.sigmoid(x) - 1.0


class DCGANGenerator(nn.Module):
    def __init__(
        self,
        params: DCGANParams,
        channels: list[int],
        geometry: Geometry,
        image_channels: int,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        batch_norm = params.generator_norm == "batch"
        conditioning = params.generator_conditioning if num_classes is not None else "none"
        self.conditional = conditioning != "none"
        self.label_embedding = None
        inputs = params.latent_dim
        if conditioning == "concat":
            assert num_classes is not None
            self.label_embedding = ClassEmbedding(num_classes, params.label_embedding_dim)
            inputs += params.label_embedding_dim

        def norm_and_activation(width: int) -> list[nn.Module]:
            norm: list[nn.Module] = []
            if conditioning == "batch_norm":
                assert num_classes is not None
                norm = [ConditionalBatchNorm(width, num_classes, spatial=True)]
            elif batch_norm:
                norm = [nn.BatchNorm2d(width)]
            return [*norm, activation(params.generator_activation, params.leaky_slope)]

        base = geometry.base
        # A bias right before BatchNorm is cancelled by its mean subtraction, so layers feeding one have none.
        layers: list[nn.Module] = [
            nn.Linear(inputs, channels[0] * base * base, bias=not batch_norm),
            nn.Unflatten(1, (channels[0], base, base)),
            *norm_and_activation(channels[0]),
        ]
        for in_width, out_width in pairwise(channels):
            layers += [
                nn.ConvTranspose2d(in_width, out_width, kernel_size=4, stride=2, padding=1, bias=not batch_norm),
                *norm_and_activation(out_width),
            ]
        if params.generator_output == "conv":
            kernel = params.output_kernel_size
            layers.append(nn.Conv2d(channels[-1], image_channels, kernel, stride=1, padding=kernel // 2))
        else:
            layers.append(nn.ConvTranspose2d(channels[-1], image_channels, kernel_size=4, stride=2, padding=1))
        layers.append(SymmetricSigmoid() if params.pixel_range == "unit" else nn.Tanh())
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if not self.conditional:
            return self.net(z)
        return conditional_generate(self.net, z, labels, self.label_embedding)


class DCGANDiscriminator(nn.Module):
    def __init__(
        self,
        params: DCGANParams,
        channels: list[int],
        geometry: Geometry,
        image_channels: int,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        kernel = params.discriminator_kernel_size
        self.reads_unit_range = params.pixel_range == "unit"
        self.conditioning = params.discriminator_conditioning if num_classes is not None else "none"
        self.label_embedding = None
        inputs = image_channels
        if self.conditioning == "concat":
            assert num_classes is not None
            # The label's embedding joins the image as constant feature maps (one per embedding dimension).
            self.label_embedding = ClassEmbedding(num_classes, params.label_embedding_dim)
            inputs += params.label_embedding_dim
        layers: list[nn.Module] = []
        for level, (in_width, out_width) in enumerate(pairwise([inputs, *channels])):
            # DCGAN leaves the first layer unnormalised, so D sees the raw image statistics.
            batch_norm = params.discriminator_norm == "batch" and level > 0
            layers.append(
                nn.Conv2d(in_width, out_width, kernel, stride=2, padding=(kernel - 1) // 2, bias=not batch_norm)
            )
            if batch_norm:
                layers.append(nn.BatchNorm2d(out_width))
            layers.append(nn.LeakyReLU(params.leaky_slope))
            if params.dropout > 0:
                layers.append(nn.Dropout(params.dropout))
        features = channels[-1] * geometry.base * geometry.base
        layers += [nn.Flatten(), nn.Linear(features, 1)]
        self.net = nn.Sequential(*layers)
        self.projection, self.class_head = label_heads(self.conditioning, num_classes, features)

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.reads_unit_range:
            images = (images + 1.0) * 0.5
        if self.conditioning == "none":
            return self.net(images).squeeze(-1)
        labels = require_labels(labels, "discriminator")
        x = images
        if self.label_embedding is not None:
            maps = self.label_embedding(labels).to(images.dtype)[:, :, None, None]
            x = torch.cat([images, maps.expand(-1, -1, *images.shape[2:])], dim=1)
        return conditional_judge(self.net, x, labels, self.projection, self.class_head)


def init_dcgan_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:  # a conditional one's gains are the labels'
        nn.init.normal_(module.weight, mean=1.0, std=INIT_STD)
        nn.init.zeros_(module.bias)


def init_glorot_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


INITIALISERS = {"dcgan": init_dcgan_weights, "glorot": init_glorot_weights}


def build_dcgan(params: DCGANParams, data: DataSpec) -> GANModels:
    """DCGAN: transposed-conv generator and strided-conv discriminator, sized to the image."""
    geometry = image_geometry(tuple(data.shape))
    num_classes = conditioning_classes("dcgan", params.generator_conditioning, params.discriminator_conditioning, data)
    if params.generator_conditioning == "batch_norm" and params.generator_norm != "batch":
        raise ParamsError(
            "architecture 'dcgan': generator_conditioning 'batch_norm' makes the generator's batch norms "
            "conditional, but generator_norm is 'none'; set generator_norm to 'batch', or use 'concat'"
        )
    generator = DCGANGenerator(params, generator_channels(params, geometry), geometry, data.channels, num_classes)
    discriminator = DCGANDiscriminator(
        params, discriminator_channels(params, geometry), geometry, data.channels, num_classes
    )
    initialise = INITIALISERS.get(params.weight_init)
    if initialise is not None:
        generator.apply(initialise)
        discriminator.apply(initialise)
    if params.spectral_norm:
        spectrally_normalised(discriminator)
    return GANModels(
        generator=generator,
        discriminator=discriminator,
        latent_dim=params.latent_dim,
        num_classes=num_classes,
        class_logits=params.discriminator_conditioning == "classifier",
    )
