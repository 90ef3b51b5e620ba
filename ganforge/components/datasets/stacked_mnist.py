"""Stacked MNIST: three MNIST digits as the R, G and B channels of one image, 1,000 classes (modes).

The benchmark of mode collapse of Metz et al. (2017, unrolled GANs), Srivastava et al. (2017,
VEEGAN) and Lin et al. (2018, PacGAN): a generator that covers the data makes all 1,000 digit
triples, equally often. Each image stacks three MNIST images drawn independently and uniformly from
the split (seeded, so the same params give the same images), its label is ``100 * d_R + 10 * d_G +
d_B``. It is built from the MNIST IDX files the ``mnist`` dataset reads (and downloads), no files of
its own, and is scored channel by channel with the MNIST domain classifier: see
``LoadedDataset.channel_classifier`` and ganforge/evaluation/channels.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, field_validator

from ganforge.components.datasets.mnist import load_mnist
from ganforge.components.datasets.params import MAX_DATASET_IMAGES, SplitDatasetParams, path_without_nul
from ganforge.contracts import MAX_SEED, ChannelClassifier, DataSpec, ImageTensorDataset, LoadedDataset, Params

DIGITS = 10
CHANNELS = 3  # R, G, B: one digit each
MNIST_SIZE = 28
MNIST_SPLIT_IMAGES = {"train": 60_000, "test": 10_000}
# The training-set size of PacGAN's Stacked MNIST experiments (Lin et al. 2018), which VEEGAN's protocol follows.
PUBLISHED_COUNT = 128_000
STACK_CHUNK = 16_384  # images stacked at a time: indexing the digits whole would copy them three times over


class StackedMNISTParams(Params):
    split: Literal["train", "test"] = Field(
        "train", description="Which MNIST split the digits are drawn from: 'train' or 'test'."
    )
    count: int = Field(
        PUBLISHED_COUNT,
        gt=0,
        le=MAX_DATASET_IMAGES,
        description="How many stacked images to make; 128,000 as in PacGAN's experiments (Lin et al. 2018).",
    )
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="Seed of the digits drawn; the same seed gives the same images."
    )
    size: Literal[28, 32] = Field(
        28, description="Image side: 28 (MNIST's), or 32 (each digit padded with 2 black pixels, as some protocols)."
    )
    root: Path | None = Field(
        None, description="Directory holding MNIST's IDX files; overrides the data root ganforge resolves."
    )
    download: bool = Field(
        True, description="Download MNIST's missing files of the split, as the mnist dataset does; false: never."
    )

    _root_without_nul = field_validator("root")(path_without_nul)

    # Read by the memory check before a run (ganforge/guards/machine.py), before any image is made.
    def data_spec(self) -> DataSpec:
        """The shape and classes of the images, known without making them."""
        return DataSpec((CHANNELS, self.size, self.size), DIGITS**CHANNELS, class_names())

    def loading_bytes(self) -> int:
        """The most memory loading takes: MNIST's split, the stacked images and their labels, one chunk's indices."""
        split_images = MNIST_SPLIT_IMAGES[self.split]
        stacked = self.count * (CHANNELS * self.size * self.size + 8)
        return split_images * (MNIST_SIZE * MNIST_SIZE + 1) + stacked + STACK_CHUNK * CHANNELS * 8


def class_names() -> tuple[str, ...]:
    """ "R-G-B" for each class in label order: class 371 is "3-7-1"."""
    return tuple(f"{label // 100}-{label // 10 % 10}-{label % 10}" for label in range(DIGITS**CHANNELS))


def load_stacked_mnist(params: StackedMNISTParams, root: Path) -> LoadedDataset:
    """Stacked MNIST: three MNIST digits as R, G and B, 3x28x28 (or 32x32), 1,000 classes."""
    mnist_params = SplitDatasetParams(split=params.split, root=params.root, download=params.download)
    digits = load_mnist(mnist_params, root).dataset
    assert isinstance(digits, ImageTensorDataset)  # what load_mnist gives
    images, labels = stack_digits(digits.images, digits.labels, params.count, params.seed)
    if params.size != MNIST_SIZE:
        border = (params.size - MNIST_SIZE) // 2
        images = torch.nn.functional.pad(images, (border,) * 4)  # black, as MNIST's own background
    # The classifier learns MNIST's training digits whichever split is stacked: evaluation builds it with
    # the train and test splits itself. Its params are only where the digits are read from.
    classifier_params = {"root": None if params.root is None else str(params.root), "download": params.download}
    return LoadedDataset(
        ImageTensorDataset(images, labels),
        params.data_spec(),
        ChannelClassifier("mnist", classifier_params),
    )


def stack_digits(
    digits: torch.Tensor, digit_labels: torch.Tensor, count: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` images ``[count, 3, H, W]``, each channel a digit drawn uniformly from ``digits`` ``[N, 1, H, W]``,
    and their labels ``100 * d_R + 10 * d_G + d_B``."""
    generator = torch.Generator().manual_seed(seed)
    drawn = torch.randint(0, len(digits), (count, CHANNELS), generator=generator)
    images = torch.empty((count, CHANNELS, *digits.shape[2:]), dtype=torch.uint8)
    for start in range(0, count, STACK_CHUNK):
        chosen = drawn[start : start + STACK_CHUNK]
        images[start : start + len(chosen)] = digits[chosen.flatten(), 0].view(len(chosen), CHANNELS, *digits.shape[2:])
    place_values = DIGITS ** torch.arange(CHANNELS - 1, -1, -1)
    labels = (digit_labels.to(torch.int64)[drawn] * place_values).sum(dim=1)
    return images, labels
