"""Built-in augmentations: DiffAugment's translation, cutout and colour (Zhao et al. 2020).

Each transforms a batch of images in [-1, 1] differentiably, so that gradients reach the generator
through the discriminator's view of its images. ``strength`` is the probability that one image is
transformed: 1 is DiffAugment (every image, every step), 0 the identity; ADA (Karras et al. 2020)
moves it during training (training/adaptive.py). Each op is split into a deterministic function of
its drawn parameters (tested against hand computations) and the draw itself, from the generator
the caller passes.
"""

from __future__ import annotations

import torch
from pydantic import Field

from ganforge.contracts import Augmentation, Params
from ganforge.hookspecs import hookimpl


def translate(images: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Each image moved by its integer ``shifts[b] = (dy, dx)`` pixels; what comes in from outside is 0."""
    batch, _, height, width = images.shape
    rows = torch.arange(height, device=images.device).view(1, height, 1) - shifts[:, 0].view(batch, 1, 1)
    cols = torch.arange(width, device=images.device).view(1, 1, width) - shifts[:, 1].view(batch, 1, 1)
    inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    which = torch.arange(batch, device=images.device).view(batch, 1, 1)
    # Advanced indexing gathers [B, H, W, C]: differentiable with respect to the pixels taken.
    moved = images[which, :, rows.clamp(0, height - 1), cols.clamp(0, width - 1)].permute(0, 3, 1, 2)
    return moved * inside.unsqueeze(1).to(images.dtype)


def cut_out(images: torch.Tensor, centres: torch.Tensor, size: int) -> torch.Tensor:
    """Each image with a ``size`` x ``size`` square set to 0, its rows and columns from ``centre - size // 2``."""
    batch, _, height, width = images.shape
    top = (centres[:, 0] - size // 2).view(batch, 1, 1)
    left = (centres[:, 1] - size // 2).view(batch, 1, 1)
    rows = torch.arange(height, device=images.device).view(1, height, 1)
    cols = torch.arange(width, device=images.device).view(1, 1, width)
    hole = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return images * (~hole).unsqueeze(1).to(images.dtype)


def adjust_colour(
    images: torch.Tensor, brightness: torch.Tensor, saturation: torch.Tensor, contrast: torch.Tensor
) -> torch.Tensor:
    """Brightness added, then saturation and contrast scaled about the pixel's and the image's mean.

    ``brightness`` in [-0.5, 0.5], ``saturation`` in [0, 2], ``contrast`` in [0.5, 1.5], one per image.
    """
    per_image = (-1, 1, 1, 1)
    images = images + brightness.view(per_image)
    grey = images.mean(dim=1, keepdim=True)
    images = (images - grey) * saturation.view(per_image) + grey
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    return (images - mean) * contrast.view(per_image) + mean


def chosen(images: torch.Tensor, transformed: torch.Tensor, strength: float, generator: torch.Generator | None):
    """``transformed`` where an image's draw falls below ``strength``, else the image as it was."""
    if strength >= 1:
        return transformed
    if strength <= 0:
        return images
    picked = torch.rand(images.shape[0], generator=generator, device=generator_device(generator, images))
    return torch.where(picked.to(images.device).view(-1, 1, 1, 1) < strength, transformed, images)


def generator_device(generator: torch.Generator | None, images: torch.Tensor) -> torch.device:
    return generator.device if generator is not None else images.device


class TranslationParams(Params):
    ratio: float = Field(0.125, gt=0, le=0.5, description="Largest shift, as a fraction of the image's side.")


class Translation(Augmentation):
    """DiffAugment's translation (Zhao et al. 2020): each image shifted by up to ratio x its side, zero padded."""

    def __init__(self, params: TranslationParams) -> None:
        self.ratio = params.ratio

    def __call__(self, images, strength=1.0, generator=None):
        if strength <= 0:
            return images
        batch, _, height, width = images.shape
        limits = torch.tensor([int(height * self.ratio + 0.5), int(width * self.ratio + 0.5)])
        drawn = torch.rand(batch, 2, generator=generator, device=generator_device(generator, images))
        shifts = (drawn.cpu() * (2 * limits + 1)).floor().long() - limits
        return chosen(images, translate(images, shifts.to(images.device)), strength, generator)


class CutoutParams(Params):
    ratio: float = Field(0.5, gt=0, le=1, description="The square's side, as a fraction of the image's side.")


class Cutout(Augmentation):
    """DiffAugment's cutout (Zhao et al. 2020): a square of ratio x the side, anywhere in the image, set to 0."""

    def __init__(self, params: CutoutParams) -> None:
        self.ratio = params.ratio

    def __call__(self, images, strength=1.0, generator=None):
        if strength <= 0:
            return images
        batch, _, height, width = images.shape
        size = int(min(height, width) * self.ratio + 0.5)
        drawn = torch.rand(batch, 2, generator=generator, device=generator_device(generator, images)).cpu()
        centres = (drawn * torch.tensor([height, width])).floor().long()
        return chosen(images, cut_out(images, centres.to(images.device), size), strength, generator)


class Colour(Augmentation):
    """DiffAugment's colour (Zhao et al. 2020): random brightness, saturation and contrast for each image."""

    def __init__(self, params: Params) -> None:
        pass

    def __call__(self, images, strength=1.0, generator=None):
        if strength <= 0:
            return images
        drawn = torch.rand(3, images.shape[0], generator=generator, device=generator_device(generator, images))
        drawn = drawn.to(images.device, images.dtype)
        transformed = adjust_colour(images, drawn[0] - 0.5, drawn[1] * 2, drawn[2] + 0.5)
        return chosen(images, transformed, strength, generator)


@hookimpl
def register_augmentations(register) -> None:
    register("translation", Translation, params=TranslationParams)
    register("cutout", Cutout, params=CutoutParams)
    register("colour", Colour, aliases=["color"])
