"""Contract checks of losses: finite differentiable scalars, the direction of each, penalties per sample."""

from __future__ import annotations

import torch

from ganforge.contracts import (
    GANLoss,
    all_finite,
    generator_loss_of,
    is_differentiable,
    is_scalar,
    require,
)
from ganforge.registry import Component
from ganforge.testing.checks.common import SEED, CheckSkipped


def _loss(component: Component) -> GANLoss:
    return component.build({})


def _scores(value: float, requires_grad: bool = True) -> torch.Tensor:
    return torch.full((6,), value, requires_grad=requires_grad)


def check_loss_is_a_finite_differentiable_scalar(component: Component) -> None:
    """Both losses are finite scalars with gradients w.r.t. the scores, also at extreme scores."""
    loss = _loss(component)
    for value in (0.3, 30.0, -30.0):
        real, fake = _scores(value), _scores(-value)
        d_loss = loss.discriminator_loss(real, fake)
        g_loss = generator_loss_of(loss, _scores(value), _scores(-value, requires_grad=False))
        for name, result in (("discriminator_loss", d_loss), ("generator_loss", g_loss)):
            require(is_scalar(result), f"{name} returned shape {tuple(result.shape)}, expected a scalar")
            require(all_finite(result), f"{name} is {result.item()} at scores {value}")
            require(is_differentiable(result), f"{name} is not differentiable w.r.t. the scores")


def check_loss_direction(component: Component) -> None:
    """Raising real scores and lowering fake ones lowers D's loss; raising fake scores lowers G's."""
    loss = _loss(component)
    real, fake = _scores(0.3), _scores(0.3)
    loss.discriminator_loss(real, fake).backward()
    require(bool((real.grad <= 0).all()) and bool(real.grad.sum() < 0), "raising real scores raises D's loss")
    require(bool((fake.grad >= 0).all()) and bool(fake.grad.sum() > 0), "lowering fake scores raises D's loss")
    generated = _scores(0.3)
    generator_loss_of(loss, generated, _scores(0.3, requires_grad=False)).backward()
    require(bool(generated.grad.sum() < 0), "raising the scores of generated images raises G's loss: wrong sign")


def check_penalty_is_per_sample(component: Component) -> None:
    """A penalty is a mean over samples: the same samples twice over give the same value, not double."""
    loss = _loss(component)
    weight = torch.full((1, 4, 4), 0.5)  # a linear critic with gradient norm 2 at every image

    def critic(images: torch.Tensor) -> torch.Tensor:
        return (images * weight).flatten(1).sum(dim=1)

    torch.manual_seed(SEED)
    real, fake = torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4)
    penalty = loss.penalty(critic, real, fake)
    if penalty is None:
        raise CheckSkipped("the loss has no penalty with its default params")
    require(is_scalar(penalty) and all_finite(penalty), "the penalty must be a finite scalar")
    doubled = loss.penalty(critic, torch.cat([real, real]), torch.cat([fake, fake]))
    require(
        abs(doubled.item() - penalty.item()) <= 1e-5 * max(1.0, abs(penalty.item())),
        f"the penalty grows with the batch ({penalty.item():.4g} for 4 samples, {doubled.item():.4g} for the same "
        "4 twice): take the mean over samples, not the sum",
    )
