"""Batches for the training loop: from a dataset held on the device, or through a DataLoader."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from ganforge.contracts import ImageTensorDataset, LoadedDataset, to_signed_unit


class InMemoryBatches:
    """The whole dataset as one uint8 tensor on the device; batches drawn there by index.

    Each epoch takes every image exactly once, in the order of a fresh permutation, with one
    exception: when the last batch would hold a single image, that image sits the epoch out.
    """

    def __init__(self, dataset: ImageTensorDataset, batch_size: int, device: torch.device, generator: torch.Generator):
        self.images = dataset.images.to(device)
        self.batch_size = batch_size
        self.generator = generator

    def __len__(self) -> int:
        return batches_per_epoch(self.images.shape[0], self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        count = self.images.shape[0]
        order = torch.randperm(count, generator=self.generator).to(self.images.device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            # index_select gathers rows about twice as fast as advanced indexing on a CPU.
            yield to_signed_unit(torch.index_select(self.images, 0, order[start : start + self.batch_size]))


class LoaderBatches:
    """Any other dataset, through a DataLoader with its own seeded shuffle."""

    def __init__(
        self, loaded: LoadedDataset, batch_size: int, device: torch.device, generator: torch.Generator, num_workers: int
    ):
        count = len(loaded.dataset)
        self.device = device
        self.steps = batches_per_epoch(count, batch_size)
        self.loader = DataLoader(
            loaded.dataset,
            batch_size=batch_size,
            shuffle=True,
            generator=generator,
            num_workers=num_workers,
            drop_last=self.steps * batch_size < count,
            pin_memory=device.type == "cuda",
        )

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[torch.Tensor]:
        for images, _labels in self.loader:
            yield images.to(self.device, non_blocking=True)


def batches_per_epoch(count: int, batch_size: int) -> int:
    # A last batch of a single image is dropped: batch norm cannot train on one sample.
    full, remainder = divmod(count, batch_size)
    return full + (1 if remainder > 1 else 0)
