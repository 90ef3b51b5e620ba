"""The data side of evaluation: a dataset's training images and the images held out from them.

A dataset with a ``split`` param that takes ``"test"`` (mnist, fashion_mnist, cifar10, a plugin's)
gives its train and test splits. Any other dataset is partitioned once, seeded: the first sixth of
a fixed permutation is held out. A ``limit`` param is set to None: the domain is the whole dataset.
What a dataset must do for this is stated in ganforge/contracts/ (dataset factory). The domain
classifier learns from the training side and is tested on the held-out side, which is also the
real set that generated images are compared with. A dataset scored channel by channel with another
dataset's classifier (``LoadedDataset.channel_classifier``: Stacked MNIST) brings that dataset's
domain with it, loaded the same way, so its classifier is the one that dataset is scored with.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel
from torch.utils.data import DataLoader

from ganforge.contracts import (
    ALL_IMAGES,
    DOWNLOAD_PARAM,
    LIMIT_PARAM,
    SPLIT_PARAM,
    TEST_SPLIT,
    TRAIN_SPLIT,
    ChannelClassifier,
    DataSpec,
    ImageTensorDataset,
    LoadedDataset,
    MappedImageDataset,
    declares_param,
    to_uint8,
)
from ganforge.errors import ParamsError, UsageError
from ganforge.evaluation.digests import tensor_digest
from ganforge.registry import Component, Kind, Registry

HELD_OUT_FRACTION = 6  # one image in six is held out where a dataset has no test split
PARTITION_SEED = 0
LOADER_BATCH = 1000


@dataclass(frozen=True)
class ImageSet:
    """Images as uint8 ``[N, C, H, W]`` (what 8-bit data is, at a quarter of float's memory) and labels.

    ``rows``, for images memory-mapped from a file: the rows of ``source`` this set holds, read as
    they are used. A set taken from such a one is rows too, so a dataset larger than memory is never
    copied whole. Without ``rows`` the set is ``source`` itself.
    """

    source: torch.Tensor
    labels: torch.Tensor | None
    description: str
    rows: torch.Tensor | None = None

    @property
    def images(self) -> torch.Tensor:
        """The set's images as one tensor: read whole from the map for a set of rows."""
        return self.source if self.rows is None else torch.index_select(self.source, 0, self.rows)

    def __len__(self) -> int:
        return self.source.shape[0] if self.rows is None else len(self.rows)

    def gather(self, indices: torch.Tensor) -> torch.Tensor:
        """The images at ``indices`` of this set."""
        return self.source[indices] if self.rows is None else torch.index_select(self.source, 0, self.rows[indices])

    def chunks(self, size: int) -> Iterator[torch.Tensor]:
        """The images in order, ``size`` at a time."""
        if self.rows is None:
            yield from self.source.split(size)
            return
        for start in range(0, len(self), size):
            yield self.gather(torch.arange(start, min(start + size, len(self))))

    def subset(self, count: int, seed: int) -> ImageSet:
        """``count`` images drawn without replacement (all of them, in order, when count >= N)."""
        if count >= len(self):
            return self
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:count]
        return self.take(order, f"{count} drawn from {self.description} (seed {seed})")

    def content_digest(self) -> str:
        """A sha256 of the images' shape and pixels: the same digest means the same images, in the same order."""
        return tensor_digest(self.images)

    def take(self, indices: torch.Tensor, description: str) -> ImageSet:
        labels = self.labels[indices] if self.labels is not None else None
        if self.rows is not None:
            return ImageSet(self.source, labels, description, self.rows[indices])
        return ImageSet(self.source[indices], labels, description)


@dataclass(frozen=True)
class Domain:
    """A dataset's training side and held-out side, and its spec."""

    dataset: str
    params: dict[str, Any]
    spec: DataSpec
    train: ImageSet
    held_out: ImageSet
    # The domain whose classifier reads this one's images channel by channel (LoadedDataset.channel_classifier).
    channel_domain: Domain | None = None

    @property
    def labelled(self) -> bool:
        return self.spec.num_classes is not None and self.train.labels is not None


def load_domain(
    component: Component, params: BaseModel | dict[str, Any] | None, root: Path, registry: Registry | None = None
) -> Domain:
    """The dataset's training and held-out images; for a dataset scored channel by channel with another
    dataset's classifier, that dataset's domain too, found in ``registry`` (by default the installed plugins')."""
    params = _whole_dataset(component, component.parse_params(params))
    name = component.qualified_name
    test_params = _test_split_params(component, params)
    if test_params is not None:
        train_params = component.parse_params({**params.model_dump(), SPLIT_PARAM: TRAIN_SPLIT})
        train_loaded = component.build(train_params, root)
        held_loaded = component.build(test_params, root)
        train = _image_set(train_loaded, f"{name} {SPLIT_PARAM}={TRAIN_SPLIT}")
        held_out = _image_set(held_loaded, f"{name} {SPLIT_PARAM}={TEST_SPLIT}")
        recorded = train_params.model_dump(mode="json")
    else:
        loaded = component.build(params, root)
        everything = _image_set(loaded, name)
        train, held_out = _partition(everything)
        train_loaded = loaded
        recorded = params.model_dump(mode="json")
    # Whether files may be downloaded does not change the images: it must not change the domain's identity
    # (the key of its cached classifier and floor).
    recorded.pop(DOWNLOAD_PARAM, None)
    channel_domain = _channel_domain(train_loaded.channel_classifier, name, root, registry)
    return Domain(name, recorded, train_loaded.spec, train, held_out, channel_domain)


def _channel_domain(
    declared: ChannelClassifier | None, dataset: str, root: Path, registry: Registry | None
) -> Domain | None:
    if declared is None:
        return None
    if registry is None:
        from ganforge.plugins import default_plugins

        registry = default_plugins().registry
    try:
        component = registry.get(Kind.DATASET, declared.dataset)
    except UsageError as error:
        raise UsageError(
            f"dataset {dataset} is scored channel by channel with dataset {declared.dataset!r}'s classifier: {error}"
        ) from None
    return load_domain(component, dict(declared.params), root, registry)


def _whole_dataset(component: Component, params: BaseModel) -> BaseModel:
    """A ``limit`` param picks a training subset; the domain a run is measured against is the whole dataset."""
    if not declares_param(component.params_model, LIMIT_PARAM):
        return params
    return component.parse_params({**params.model_dump(), LIMIT_PARAM: ALL_IMAGES})


def _test_split_params(component: Component, params: BaseModel) -> BaseModel | None:
    if not declares_param(component.params_model, SPLIT_PARAM):
        return None
    try:
        return component.parse_params({**params.model_dump(), SPLIT_PARAM: TEST_SPLIT})
    except ParamsError:  # a split param without a "test" value
        return None


def _partition(everything: ImageSet) -> tuple[ImageSet, ImageSet]:
    count = len(everything)
    held_count = max(1, count // HELD_OUT_FRACTION)
    order = torch.randperm(count, generator=torch.Generator().manual_seed(PARTITION_SEED))
    parts = []
    for indices, which in ((order[held_count:], "training part"), (order[:held_count], "held-out part")):
        description = f"{everything.description}, {which} ({len(indices)} of {count}, partition seed {PARTITION_SEED})"
        parts.append(everything.take(indices, description))
    return parts[0], parts[1]


def _image_set(loaded: LoadedDataset, description: str) -> ImageSet:
    dataset = loaded.dataset
    if isinstance(dataset, MappedImageDataset):
        rows = torch.arange(len(dataset))
        return ImageSet(dataset.images, dataset.labels, description, rows)
    if isinstance(dataset, ImageTensorDataset):
        return ImageSet(dataset.images, dataset.labels, description)
    images, labels = [], []
    for batch_images, batch_labels in DataLoader(dataset, batch_size=LOADER_BATCH, shuffle=False):
        images.append(to_uint8(batch_images))
        labels.append(torch.as_tensor(batch_labels, dtype=torch.int64))
    labelled = loaded.spec.num_classes is not None
    return ImageSet(torch.cat(images), torch.cat(labels) if labelled else None, description)
