"""Contract checks of datasets: items as the spec says, a stable length, pickling; never a download."""

from __future__ import annotations

import pickle

import torch

from ganforge.contracts import (
    DOWNLOAD_PARAM,
    ContractViolation,
    LoadedDataset,
    declares_param,
    has_shape,
    in_signed_unit,
    labels_in_range,
    require,
    value_range,
)
from ganforge.data_root import default_data_root
from ganforge.errors import DatasetNotFoundError, first_line
from ganforge.registry import Component
from ganforge.testing.checks.common import CheckSkipped


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
    length = len(loaded.dataset)
    require(length > 0, "the dataset is empty")
    for index in _sample_indices(length):
        image, label = loaded.dataset[index]
        require(
            has_shape(image, loaded.spec.shape),
            f"item {index} has shape {tuple(image.shape)}, the spec says {loaded.spec.shape}",
        )
        require(image.dtype == torch.float32, f"item {index} has dtype {image.dtype}, expected torch.float32")
        low, high = value_range(image)
        require(in_signed_unit(image), f"item {index} has values in [{low:.3f}, {high:.3f}], expected [-1, 1]")
        if loaded.spec.num_classes is not None:
            require(
                labels_in_range(int(label), loaded.spec.num_classes),
                f"item {index} has label {label}, outside 0..{loaded.spec.num_classes - 1}",
            )


def check_length_is_stable(component: Component) -> None:
    """Two builds with the same params have the same length and the same first item."""
    first, second = _dataset(component), _dataset(component)
    require(len(first.dataset) == len(second.dataset), "two builds have different lengths")
    require(torch.equal(first.dataset[0][0], second.dataset[0][0]), "two builds differ at item 0")


def check_picklable(component: Component) -> None:
    """The dataset pickles, as DataLoader worker processes need."""
    loaded = _dataset(component)
    try:
        again = pickle.loads(pickle.dumps(loaded.dataset))
    except Exception as error:
        raise ContractViolation(f"the dataset cannot be pickled for DataLoader workers: {error}") from None
    require(len(again) == len(loaded.dataset), "the unpickled dataset has another length")
