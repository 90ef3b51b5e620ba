"""Contract checks of augmentations: shape and dtype kept, identity at strength 0, differentiable, seeded."""

from __future__ import annotations

import torch

from ganforge.contracts import (
    Augmentation,
    all_finite,
    describe_value,
    require,
)
from ganforge.registry import Component
from ganforge.testing.checks.common import SEED


def _augmentation(component: Component) -> Augmentation:
    return component.build({})


def _images_to_augment(requires_grad: bool = False) -> torch.Tensor:
    images = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(SEED)) * 2 - 1
    return images.requires_grad_(requires_grad)


def _augmented(augmentation: Augmentation, images: torch.Tensor, strength: float, seed: int = SEED) -> torch.Tensor:
    out = augmentation(images, strength, torch.Generator().manual_seed(seed))
    require(isinstance(out, torch.Tensor), f"at strength {strength} it returned {describe_value(out)}, not images")
    return out


def check_augmentation_keeps_shape_and_dtype(component: Component) -> None:
    """Images [B, C, H, W] in, the same shape and dtype out, finite, at strengths 0.5 and 1."""
    augmentation = _augmentation(component)
    images = _images_to_augment()
    for strength in (0.5, 1.0):
        out = _augmented(augmentation, images, strength)
        require(
            out.shape == images.shape and out.dtype == images.dtype,
            f"at strength {strength}: {tuple(images.shape)} {images.dtype} in, {tuple(out.shape)} {out.dtype} out",
        )
        require(all_finite(out), f"at strength {strength} it returned non-finite values")


def check_augmentation_is_identity_at_strength_zero(component: Component) -> None:
    """Strength 0 leaves every image as it was (ADA starts there)."""
    images = _images_to_augment()
    out = _augmented(_augmentation(component), images, 0.0)
    require(torch.equal(out, images), "strength 0 changed the images; it must return them unchanged")


def check_augmentation_is_differentiable(component: Component) -> None:
    """Gradients flow from the augmented images to the images (G learns through D's view of them)."""
    images = _images_to_augment(requires_grad=True)
    out = _augmented(_augmentation(component), images, 1.0)
    require(out.requires_grad, "the result does not depend differentiably on the images (detached?)")
    out.square().sum().backward()
    require(images.grad is not None and bool(images.grad.abs().sum() > 0), "no gradient reached the images")


def check_augmentation_draws_from_the_generator_given(component: Component) -> None:
    """The same generator state gives the same result, another state another: runs repeat exactly."""
    augmentation, images = _augmentation(component), _images_to_augment()
    first, again = _augmented(augmentation, images, 1.0), _augmented(augmentation, images, 1.0)
    require(torch.equal(first, again), "two calls with generators seeded alike gave different images")
    other = _augmented(augmentation, images, 1.0, seed=SEED + 1)
    require(not torch.equal(first, other), "generators seeded differently gave the same images: nothing is random")
