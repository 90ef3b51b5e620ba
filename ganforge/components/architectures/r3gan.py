"""R3GAN's networks (Huang et al. 2024, "The GAN is dead; long live the GAN! A Modern GAN Baseline").

A stage per resolution, from the base (4x4; 7x7 for 28 px) to the image side, each with its width,
its residual blocks and their cardinality (r3gan_blocks.py: grouped-convolution inverted bottlenecks,
no normalisation, [1, 2, 1]-filtered resampling, the paper's initialisation). G: z (joined by the
label's embedding when conditional) scales a learned basis at the base, then each stage's blocks,
doubling between stages, and a 1x1 convolution to the image. D mirrors it: a 1x1 convolution from
the image, each stage's blocks, halving between stages, and a depthwise basis convolution to the
score (when conditional, to a vector whose inner product with the label's embedding is the score).
Defaults: the paper's preset for the image side (brownvc/R3GAN's train.py): CIFAR-10's at 28 and 32 px,
FFHQ's at 64 and 256 px, and at 128 px FFHQ-256's stages up to 128 (the paper has no 128 px preset).

G has no tanh in the paper; its images are clamped to [-1, 1] (the architecture contract) with the
identity's gradient, so training sees the paper's G wherever its pixels are in range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import nn

from ganforge.components.architectures.conditioning import ClassEmbedding, require_labels
from ganforge.components.architectures.limits import MAX_LATENT_DIM, Width
from ganforge.components.architectures.r3gan_blocks import (
    DiscriminativeBasis,
    GenerativeBasis,
    Resample,
    ResidualBlock,
    conv,
)
from ganforge.contracts import DataSpec, GANModels, Params
from ganforge.errors import ParamsError

MAX_BLOCKS = 16
PAPER_BLOCKS = 2  # every stage of every preset of the paper
CHANNELS_PER_GROUP = 16  # inside a block, in every preset of the paper (768 wide, expansion 2: 96 groups)
# Widths per stage, from the base to the image side, of the paper's preset for each side.
PAPER_WIDTHS = {
    28: (768,) * 3,  # CIFAR-10's, from a 7x7 base
    32: (768,) * 4,  # CIFAR-10
    64: (768,) * 4 + (384,),  # FFHQ 64 px
    128: (768,) * 4 + (384, 192),  # FFHQ 256 px up to its 128x128 stage
    256: (768,) * 4 + (384, 192, 96),  # FFHQ 256 px
}
Blocks = Annotated[int, Field(ge=1, le=MAX_BLOCKS)]


class R3GANParams(Params):
    latent_dim: int = Field(
        default=64, gt=0, le=MAX_LATENT_DIM, description="Size of the noise vector z (64 in all the paper's presets)."
    )
    widths: list[Width] | None = Field(
        default=None,
        max_length=8,
        description=(
            "Channels per stage, from the base (4x4; 7x7 for 28 px) up to the image side: one entry per doubling "
            "plus one; D uses them in reverse. None: the paper's preset for the side: CIFAR-10 at 32 px [768, 768, "
            "768, 768] (and 28 px [768, 768, 768]), FFHQ 64 px [768, 768, 768, 768, 384], FFHQ 256 px [768, 768, "
            "768, 768, 384, 192, 96] (at 128 px its first six). The paper's ImageNet 32 and 64 px: 1536 at every "
            "stage."
        ),
    )
    blocks: list[Blocks] | None = Field(
        default=None,
        max_length=8,
        description="Residual blocks per stage, in the order of widths, in G and in D. None: 2 at every stage "
        "(all the paper's presets).",
    )
    cardinality: list[Width] | None = Field(
        default=None,
        max_length=8,
        description=(
            "Groups of each stage's grouped 3x3 convolution, in the order of widths; each must divide the stage's "
            "width times expansion. None: 16 channels a group, as in the paper's CIFAR-10 and FFHQ presets (768 "
            "wide: 96 groups; 384: 48), or fewer channels where a block's inner width is not a multiple of 16. The "
            "paper's ImageNet presets (1536 wide) keep 96 groups of 32."
        ),
    )
    expansion: int = Field(
        default=2, ge=1, le=16, description="How many times wider a residual block is inside than outside (paper: 2)."
    )
    conditioning: Literal["none", "embedding"] = Field(
        default="none",
        description=(
            "'none' (unconditional) or 'embedding', the paper's design: G joins z with a learned embedding of "
            "the label (generator_embedding_dim); D's last layer gives a vector whose inner product with another "
            "embedding of the label (discriminator_embedding_dim) is the score. Needs a dataset with classes."
        ),
    )
    generator_embedding_dim: int = Field(
        default=64, gt=0, le=MAX_LATENT_DIM, description="Size of G's label embedding (paper: latent_dim, 64)."
    )
    discriminator_embedding_dim: int | None = Field(
        default=None,
        gt=0,
        le=MAX_LATENT_DIM,
        description="Size of D's label embedding. None: the base stage's width (the paper's choice: 768 for CIFAR-10).",
    )


@dataclass(frozen=True)
class Stages:
    """Each stage's width, blocks and cardinality, from the ``base`` x ``base`` one up to the image side."""

    base: int
    widths: tuple[int, ...]
    blocks: tuple[int, ...]
    cardinality: tuple[int, ...]
    expansion: int

    @property
    def total_blocks(self) -> int:
        return sum(self.blocks)

    def residual_blocks(self, stage: int) -> list[ResidualBlock]:
        width, groups = self.widths[stage], self.cardinality[stage]
        return [ResidualBlock(width, groups, self.expansion, self.total_blocks) for _ in range(self.blocks[stage])]


def stages_of(params: R3GANParams, data: DataSpec) -> Stages:
    channels, height, width = data.shape
    if height != width or height not in PAPER_WIDTHS:
        raise ParamsError(
            f"architecture 'r3gan' cannot take images of shape {channels}x{height}x{width}: it takes square images "
            f"of side {', '.join(map(str, PAPER_WIDTHS))} (any number of channels)"
        )
    base = 7 if height == 28 else 4
    count = int(math.log2(height // base)) + 1
    meaning = f"one per stage, {base}x{base} to {height}x{height}"
    widths = per_stage(params.widths, PAPER_WIDTHS[height], "widths", meaning)
    blocks = per_stage(params.blocks, (PAPER_BLOCKS,) * count, "blocks", meaning)
    groups = tuple(paper_groups(stage_width * params.expansion) for stage_width in widths)
    cardinality = per_stage(params.cardinality, groups, "cardinality", meaning)
    for stage, (stage_width, groups) in enumerate(zip(widths, cardinality, strict=True)):
        inner = stage_width * params.expansion
        if inner % groups:
            raise ParamsError(
                f"params.cardinality: stage {stage} ({base << stage}x{base << stage}) is {stage_width} x "
                f"expansion {params.expansion} = {inner} channels inside its blocks, which {groups} groups do not "
                "divide; give a divisor of it"
            )
    return Stages(base, widths, blocks, cardinality, params.expansion)


def per_stage(given: list[int] | None, paper: tuple[int, ...], field: str, meaning: str) -> tuple[int, ...]:
    if given is None:
        return paper
    if len(given) != len(paper):
        raise ParamsError(f"params.{field}: given {given} ({len(given)} entries), but it needs {len(paper)}: {meaning}")
    return tuple(given)


def paper_groups(inner_width: int) -> int:
    """Groups of CHANNELS_PER_GROUP channels; where they do not divide the width, groups as wide as do."""
    return inner_width // math.gcd(inner_width, CHANNELS_PER_GROUP)


def clamped_to_signed_unit(images: torch.Tensor) -> torch.Tensor:
    """Values clamped to [-1, 1], gradients those of the identity (straight through): the paper's G has no
    tanh and its code clamps only the images it saves; ``x - x.detach()`` is exactly 0, so values stay in range."""
    return images.clamp(-1.0, 1.0).detach() + (images - images.detach())


def label_embedding(num_classes: int | None, dim: int, gain: float) -> ClassEmbedding | None:
    """The reference's bias-free linear map of the one-hot label, as an embedding: N(0, gain² / num_classes)."""
    if num_classes is None:
        return None
    embedding = ClassEmbedding(num_classes, dim)
    nn.init.normal_(embedding.embedding.weight, mean=0.0, std=gain / math.sqrt(num_classes))
    return embedding


class R3GANGenerator(nn.Module):
    def __init__(self, stages: Stages, latent_dim: int, image_channels: int, embedding: ClassEmbedding | None) -> None:
        super().__init__()
        self.embedding = embedding
        in_features = latent_dim + (embedding.embedding.embedding_dim if embedding is not None else 0)
        layers: list[nn.Module] = [GenerativeBasis(in_features, stages.widths[0], stages.base)]
        layers += stages.residual_blocks(0)
        for stage in range(1, len(stages.widths)):
            layers.append(Resample(stages.widths[stage - 1], stages.widths[stage], up=True))
            layers += stages.residual_blocks(stage)
        self.body = nn.Sequential(*layers)
        self.output = conv(stages.widths[-1], image_channels)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.embedding is not None:
            z = torch.cat([z, self.embedding(require_labels(labels, "generator"))], dim=1)
        return clamped_to_signed_unit(self.output(self.body(z)))


class R3GANDiscriminator(nn.Module):
    def __init__(self, stages: Stages, image_channels: int, embedding: ClassEmbedding | None) -> None:
        super().__init__()
        self.embedding = embedding
        self.input = conv(image_channels, stages.widths[-1])
        layers: list[nn.Module] = []
        for stage in range(len(stages.widths) - 1, 0, -1):
            layers += stages.residual_blocks(stage)
            layers.append(Resample(stages.widths[stage], stages.widths[stage - 1], up=False))
        layers += stages.residual_blocks(0)
        out_features = embedding.embedding.embedding_dim if embedding is not None else 1
        layers.append(DiscriminativeBasis(stages.widths[0], out_features, stages.base))
        self.body = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        features = self.body(self.input(images))
        if self.embedding is None:
            return features.squeeze(1)
        return (features * self.embedding(require_labels(labels, "discriminator"))).sum(dim=1)


def conditioned_classes(params: R3GANParams, data: DataSpec) -> int | None:
    if params.conditioning == "none":
        return None
    if data.num_classes is None:
        raise ParamsError(
            "architecture 'r3gan': conditioning 'embedding' needs a dataset with classes, and this one has none (its "
            "DataSpec's num_classes is None); set params.conditioning to 'none'"
        )
    return data.num_classes


def build_r3gan(params: R3GANParams, data: DataSpec) -> GANModels:
    """R3GAN's generator and discriminator, a stage per resolution of the image."""
    stages = stages_of(params, data)
    num_classes = conditioned_classes(params, data)
    d_embedding_dim = params.discriminator_embedding_dim or stages.widths[0]
    generator = R3GANGenerator(
        stages, params.latent_dim, data.channels, label_embedding(num_classes, params.generator_embedding_dim, 1.0)
    )
    discriminator = R3GANDiscriminator(
        stages, data.channels, label_embedding(num_classes, d_embedding_dim, 1 / math.sqrt(d_embedding_dim))
    )
    return GANModels(
        generator=generator, discriminator=discriminator, latent_dim=params.latent_dim, num_classes=num_classes
    )
