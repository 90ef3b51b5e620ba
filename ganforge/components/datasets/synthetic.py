"""Synthetic data: one bright blob per class at its own place (and colour), generated from a seed; no files.

It trains and evaluates like a real dataset in seconds, which is what the smoke example and most
tests need. Its params tell the memory check before a run the shape of the images and the memory
loading takes, without generating a single image.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from pydantic import Field

from ganforge.components.datasets.params import MAX_DATASET_IMAGES, MAX_IMAGE_SIZE
from ganforge.contracts import MAX_SEED, DataSpec, ImageTensorDataset, LoadedDataset, Params

SYNTHETIC_CHUNK = 4096  # samples rendered at a time, to bound the float memory for large datasets


class SyntheticParams(Params):
    num_samples: int = Field(1024, gt=0, le=MAX_DATASET_IMAGES, description="Number of images to generate.")
    num_classes: int = Field(10, ge=1, le=100_000, description="Number of classes, each with its own pattern.")
    channels: int = Field(
        1, ge=1, le=64, description="Image channels (1 grayscale, 3 RGB; classes also differ in colour)."
    )
    size: int = Field(28, ge=8, le=MAX_IMAGE_SIZE, description="Image side length in pixels.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Random seed; the same seed gives the same images.")

    # Read by the memory check before a run (ganforge/guards/machine.py), before any image is made.

    def data_spec(self) -> DataSpec:
        """The shape and classes of the images, known without generating them."""
        return DataSpec((self.channels, self.size, self.size), self.num_classes)

    def loading_bytes(self) -> int:
        """The most memory loading takes: the uint8 images and int64 labels kept, and while one chunk is
        rendered its float pixels, noise and clamped copy."""
        pixels = self.channels * self.size * self.size
        kept = self.num_samples * (pixels + 8)
        rendering = min(self.num_samples, SYNTHETIC_CHUNK) * pixels * 4 * 3
        return kept + rendering


def load_synthetic(params: SyntheticParams, root: Path) -> LoadedDataset:
    """Generated images: one bright blob per class at its own place (and colour), no files needed."""
    generator = torch.Generator().manual_seed(params.seed)
    count, size = params.num_samples, params.size
    labels = torch.arange(count) % params.num_classes

    # Class k's blob sits on a circle around the centre at angle 2*pi*k/K; each sample jitters it.
    angles = 2 * math.pi * labels.to(torch.float32) / params.num_classes
    radius = 0.3 * size
    jitter = (torch.rand(count, 2, generator=generator) - 0.5) * 0.08 * size
    centers_x = (size - 1) / 2 + radius * torch.cos(angles) + jitter[:, 0]
    centers_y = (size - 1) / 2 + radius * torch.sin(angles) + jitter[:, 1]
    widths = size * (0.07 + 0.02 * torch.rand(count, generator=generator))
    brightness = 0.85 + 0.15 * torch.rand(count, generator=generator)
    colours = _class_colours(params.num_classes, params.channels)[labels] * brightness[:, None]

    images = torch.empty(count, params.channels, size, size, dtype=torch.uint8)
    grid = torch.arange(size, dtype=torch.float32)
    for start in range(0, count, SYNTHETIC_CHUNK):
        chunk = slice(start, min(start + SYNTHETIC_CHUNK, count))
        # A Gaussian is separable: the outer product of its x and y profiles.
        profile_x = torch.exp(-((grid - centers_x[chunk, None]) ** 2) / (2 * widths[chunk, None] ** 2))
        profile_y = torch.exp(-((grid - centers_y[chunk, None]) ** 2) / (2 * widths[chunk, None] ** 2))
        blob = profile_y[:, :, None] * profile_x[:, None, :]
        pixels = colours[chunk, :, None, None] * blob[:, None]
        pixels += 0.03 * torch.randn(pixels.shape, generator=generator)
        images[chunk] = (pixels.clamp(0, 1) * 255).round().to(torch.uint8)
    dataset = ImageTensorDataset(images, labels)
    return LoadedDataset(dataset, DataSpec((params.channels, size, size), params.num_classes))


def _class_colours(num_classes: int, channels: int) -> torch.Tensor:
    """``[num_classes, channels]`` weights in [0, 1]: white for grayscale, a hue per class for colour."""
    if channels == 1:
        return torch.ones(num_classes, 1)
    hue = 2 * math.pi * torch.arange(num_classes, dtype=torch.float32)[:, None] / num_classes
    phase = 2 * math.pi * torch.arange(channels, dtype=torch.float32)[None, :] / channels
    return 0.5 + 0.5 * torch.cos(hue - phase)
