"""Gradient penalties on the discriminator, for any loss to add (the built-in losses and plugins alike).

Each differentiates D's output with respect to its input and keeps the graph (create_graph), so
the penalty's own gradient reaches D's weights.
"""

from __future__ import annotations

import torch
from torch import nn


def r1_penalty(discriminator: nn.Module, real: torch.Tensor, gamma: float) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): gamma/2 * mean over samples of the squared gradient norm of D at real images."""
    return _zero_centred(discriminator, real, gamma)


def r2_penalty(discriminator: nn.Module, fake: torch.Tensor, gamma: float) -> torch.Tensor:
    """R2 (Roth et al. 2017; with R1 in R3GAN, Huang et al. 2024): R1's form at generated images."""
    return _zero_centred(discriminator, fake, gamma)


def _zero_centred(discriminator: nn.Module, images: torch.Tensor, gamma: float) -> torch.Tensor:
    images = images.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(discriminator(images).sum(), images, create_graph=True)
    return 0.5 * gamma * gradient.pow(2).flatten(1).sum(dim=1).mean()


def gradient_penalty(discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor, weight: float) -> torch.Tensor:
    """WGAN-GP: one interpolation weight per sample, gradient norm over all non-batch dims."""
    alpha_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    alpha = torch.rand(alpha_shape, device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1.0 - alpha) * fake.detach()).requires_grad_(True)
    (gradient,) = torch.autograd.grad(discriminator(mixed).sum(), mixed, create_graph=True)
    norms = gradient.flatten(1).norm(2, dim=1)
    return weight * (norms - 1.0).pow(2).mean()
