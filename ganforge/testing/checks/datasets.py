"""Contract checks of datasets: items as the spec says, a stable length, pickling; never a download."""

from __future__ import annotations

import pickle

import torch

from ganforge.contracts import (
    DOWNLOAD_PARAM,
    LoadedDataset,
    declares_param,
)
from ganforge.data_root import default_data_root
from ganforge.errors import DatasetNotFoundError, first_line
from ganforge.registry import Component
from ganforge.testing.checks.common import CheckSkipped, ContractError, expect


def _dataset(component: Component) -> LoadedDataset:
    # Checking a component must never start a download: its files are there or the checks skip.
    params = {DOWNLOAD_PARAM: False} if declares_param(component.params_model, DOWNLOAD_PARAM) else {}
    try:
        return component.build(params, default_data_root())
    except DatasetNotFoundError as error:
        raise CheckSkipped(f"its files are not here ({first_line(str(error))})") from None


def _sample_indices(length: int) -> list[int]:
    return sorted({0, length // 2, length - 1, *range(0, length, max(1, length // 32))})


def check_items_match_the_spec(component: Component) -> None:
    """Items are (float image of the declared shape in [-1, 1], int label within num_classes)."""
    loaded = _dataset(component)
    expect(isinstance(loaded, LoadedDataset), f"the factory returned {type(loaded).__name__}, not LoadedDataset")
    length = len(loaded.dataset)
    expect(length > 0, "the dataset is empty")
    for index in _sample_indices(length):
        image, label = loaded.dataset[index]
        expect(
            tuple(image.shape) == tuple(loaded.spec.shape),
            f"item {index} has shape {tuple(image.shape)}, the spec says {loaded.spec.shape}",
        )
        expect(image.dtype == torch.float32, f"item {index} has dtype {image.dtype}, expected torch.float32")
        low, high = image.min().item(), image.max().item()
        expect(low >= -1 and high <= 1, f"item {index} has values in [{low:.3f}, {high:.3f}], expected [-1, 1]")
        if loaded.spec.num_classes is not None:
            expect(
                0 <= int(label) < loaded.spec.num_classes,
                f"item {index} has label {label}, outside 0..{loaded.spec.num_classes - 1}",
            )


def check_length_is_stable(component: Component) -> None:
    """Two builds with the same params have the same length and the same first item."""
    first, second = _dataset(component), _dataset(component)
    expect(len(first.dataset) == len(second.dataset), "two builds have different lengths")
    expect(torch.equal(first.dataset[0][0], second.dataset[0][0]), "two builds differ at item 0")


def check_picklable(component: Component) -> None:
    """The dataset pickles, as DataLoader worker processes need."""
    loaded = _dataset(component)
    try:
        again = pickle.loads(pickle.dumps(loaded.dataset))
    except Exception as error:
        raise ContractError(f"the dataset cannot be pickled for DataLoader workers: {error}") from None
    expect(len(again) == len(loaded.dataset), "the unpickled dataset has another length")
