"""Fully connected generator and discriminator, for any image shape."""

from __future__ import annotations

import math

import torch
from pydantic import Field
from torch import nn

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


class MLPGenerator(nn.Module):
    def __init__(self, params: MLPParams, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.image_shape = image_shape
        layers: list[nn.Module] = []
        width = params.latent_dim
        for hidden_width in params.hidden:
            layers += [nn.Linear(width, hidden_width), nn.ReLU()]
            width = hidden_width
        layers += [nn.Linear(width, math.prod(image_shape)), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.image_shape)


class MLPDiscriminator(nn.Module):
    def __init__(self, params: MLPParams, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(image_shape)
        for hidden_width in reversed(params.hidden):
            layers += [nn.Linear(width, hidden_width), nn.LeakyReLU(params.leaky_slope)]
            if params.dropout > 0:
                layers.append(nn.Dropout(params.dropout))
            width = hidden_width
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).squeeze(-1)


def build_mlp(params: MLPParams, data: DataSpec) -> GANModels:
    """Fully connected GAN: ReLU MLP generator with tanh output, LeakyReLU MLP discriminator."""
    shape = tuple(data.shape)
    discriminator = MLPDiscriminator(params, shape)
    if params.spectral_norm:
        spectrally_normalised(discriminator)
    return GANModels(generator=MLPGenerator(params, shape), discriminator=discriminator, latent_dim=params.latent_dim)
