"""What a run generates from the same inputs every time: the epoch grids' noise and labels, the
evaluation's, and the dataset's first images (the real grid, the pre-flight batch).

Each noise tensor comes from a generator of its own, seeded by the run's seed, so the inputs are the
same whatever the run drew before them, and the same after a resume.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from ganforge.generation import balanced_labels
from ganforge.training.batches import checked_labels

SAMPLE_GRID_SIZE = 100
GRID_COLUMNS = 10
# A conditional grid shows one row per class up to this many classes; more get one image each.
MAX_CLASS_ROWS = 20


def seeded_noise(count: int, latent_dim: int, seed: int) -> torch.Tensor:
    """Noise of its own generator: the same whatever the run drew before it."""
    return torch.randn(count, latent_dim, generator=torch.Generator().manual_seed(seed))


def sample_grid_inputs(latent_dim: int, num_classes: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The fixed noise (and labels) of the epoch grids.

    Unconditional: ``SAMPLE_GRID_SIZE`` noise vectors. Conditional: one row per class (up to
    ``MAX_CLASS_ROWS`` classes) with the same ``GRID_COLUMNS`` noise vectors in every row, so that
    a column shows one noise vector drawn as each class; with more classes, one image per class
    (the first ``SAMPLE_GRID_SIZE``).
    """
    if num_classes is None:
        return seeded_noise(SAMPLE_GRID_SIZE, latent_dim, seed), None
    if num_classes <= MAX_CLASS_ROWS:
        columns = seeded_noise(GRID_COLUMNS, latent_dim, seed)
        labels = torch.arange(num_classes, dtype=torch.int64).repeat_interleave(GRID_COLUMNS)
        return columns.repeat(num_classes, 1), labels
    count = min(num_classes, SAMPLE_GRID_SIZE)
    return seeded_noise(count, latent_dim, seed), torch.arange(count, dtype=torch.int64)


def evaluation_inputs(
    count: int, latent_dim: int, num_classes: int | None, seed: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The noise of every evaluation, and for a conditional generator as many labels of each class as can be."""
    labels = None if num_classes is None else balanced_labels(count, num_classes)
    return seeded_noise(count, latent_dim, seed), labels


def first_images(dataset: Dataset, count: int, num_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The dataset's first ``count`` images and their labels, checked against ``num_classes`` where given (a
    conditional model reads them in the pre-flight check)."""
    items = [dataset[i] for i in range(min(count, len(dataset)))]
    labels = torch.tensor([int(label) for _, label in items])
    if num_classes is not None:
        checked_labels(labels, num_classes)
    return torch.stack([image for image, _ in items]), labels
