"""Fully connected generator and discriminator, for any image shape; unconditional or class-conditional."""

from __future__ import annotations

import math

import torch
from pydantic import Field
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


class MLPParams(Params):
    latent_dim: int = Field(
        default=64, gt=0, le=MAX_LATENT_DIM, description="Size of the noise vector z the generator reads."
    )
    hidden: list[Width] = Field(
        default=[256, 256],
        min_length=1,
        max_length=MAX_LAYERS,
        description=f"Widths of the hidden layers (each 1 to {MAX_WIDTH}, at most {MAX_LAYERS} layers): the "
        "generator uses them in this order, the discriminator reversed.",
    )
    leaky_slope: float = Field(
        default=0.2, ge=0.0, lt=1.0, description="Negative slope of the discriminator's LeakyReLU activations."
    )
    dropout: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Dropout probability after each hidden activation of the discriminator; 0 = no dropout.",
    )
    spectral_norm: bool = SPECTRAL_NORM
    generator_conditioning: GeneratorConditioning = GENERATOR_CONDITIONING
    discriminator_conditioning: DiscriminatorConditioning = DISCRIMINATOR_CONDITIONING
    label_embedding_dim: int = LABEL_EMBEDDING_DIM


class MLPGenerator(nn.Module):
    def __init__(self, params: MLPParams, image_shape: tuple[int, int, int], num_classes: int | None = None) -> None:
        super().__init__()
        self.image_shape = image_shape
        conditioning = params.generator_conditioning if num_classes is not None else "none"
        self.label_embedding = None
        width = params.latent_dim
        if conditioning == "concat":
            assert num_classes is not None
            self.label_embedding = ClassEmbedding(num_classes, params.label_embedding_dim)
            width += params.label_embedding_dim
        self.conditional = conditioning != "none"
        layers: list[nn.Module] = []
        for hidden_width in params.hidden:
            layers.append(nn.Linear(width, hidden_width))
            if conditioning == "batch_norm":
                assert num_classes is not None
                layers.append(ConditionalBatchNorm(hidden_width, num_classes, spatial=False))
            layers.append(nn.ReLU())
            width = hidden_width
        layers += [nn.Linear(width, math.prod(image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if not self.conditional:
            return self.net(z).view(z.shape[0], *self.image_shape)
        return conditional_generate(self.net, z, labels, self.label_embedding).view(z.shape[0], *self.image_shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, params: MLPParams, image_shape: tuple[int, int, int], num_classes: int | None = None) -> None:
        super().__init__()
        conditioning = params.discriminator_conditioning if num_classes is not None else "none"
        self.conditioning = conditioning
        width = math.prod(image_shape)
        self.label_embedding = None
        if conditioning == "concat":
            assert num_classes is not None
            self.label_embedding = ClassEmbedding(num_classes, params.label_embedding_dim)
            width += params.label_embedding_dim
        layers: list[nn.Module] = [nn.Flatten()]
        for hidden_width in reversed(params.hidden):
            layers += [nn.Linear(width, hidden_width), nn.LeakyReLU(params.leaky_slope)]
            if params.dropout > 0:
                layers.append(nn.Dropout(params.dropout))
            width = hidden_width
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.projection, self.class_head = label_heads(conditioning, num_classes, width)

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.conditioning == "none":
            return self.net(images).squeeze(-1)
        labels = require_labels(labels, "discriminator")
        x = images
        if self.label_embedding is not None:
            x = torch.cat([images.flatten(1), self.label_embedding(labels)], dim=1)
        return conditional_judge(self.net, x, labels, self.projection, self.class_head)


def build_mlp(params: MLPParams, data: DataSpec) -> GANModels:
    """Fully connected GAN: ReLU MLP generator with tanh output, LeakyReLU MLP discriminator."""
    shape = tuple(data.shape)
    num_classes = conditioning_classes("mlp", params.generator_conditioning, params.discriminator_conditioning, data)
    discriminator = MLPDiscriminator(params, shape, num_classes)
    if params.spectral_norm:
        spectrally_normalised(discriminator)
    return GANModels(
        generator=MLPGenerator(params, shape, num_classes),
        discriminator=discriminator,
        latent_dim=params.latent_dim,
        num_classes=num_classes,
        class_logits=params.discriminator_conditioning == "classifier",
    )
