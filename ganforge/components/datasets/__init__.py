"""ganforge's built-in datasets, one module per family, registered here through the datasets hook.

``mnist`` (MNIST and Fashion-MNIST, read by ``idx``), ``stacked_mnist`` (built from MNIST's files),
``cifar10``, ``image_folder``, ``prepared`` and ``synthetic``; ``params`` holds what their params share.
Every factory has the signature ``factory(params, root: Path) -> LoadedDataset``. Each returns an
:class:`~ganforge.contracts.ImageTensorDataset` (uint8 images, int64 labels); ``image_folder`` and
``prepared`` a :class:`~ganforge.contracts.MappedImageDataset` where the images do not fit in memory.
"""

from __future__ import annotations

from ganforge.components.datasets.cifar10 import load_cifar10
from ganforge.components.datasets.image_folder import (
    ImageFolderParams,
    PreparedParams,
    load_image_folder,
    load_prepared,
)
from ganforge.components.datasets.mnist import load_fashion_mnist, load_mnist
from ganforge.components.datasets.params import SplitDatasetParams
from ganforge.components.datasets.stacked_mnist import StackedMNISTParams, load_stacked_mnist
from ganforge.components.datasets.synthetic import SyntheticParams, load_synthetic
from ganforge.hookspecs import hookimpl
from ganforge.registry import Register


@hookimpl
def register_datasets(register: Register) -> None:
    register(
        "mnist",
        load_mnist,
        params=SplitDatasetParams,
        summary="MNIST handwritten digits, 28x28 grayscale, 10 classes (IDX files, downloaded when missing).",
    )
    register(
        "fashion_mnist",
        load_fashion_mnist,
        params=SplitDatasetParams,
        summary="Fashion-MNIST clothing, 28x28 grayscale, 10 classes (IDX files, downloaded when missing).",
    )
    register(
        "stacked_mnist",
        load_stacked_mnist,
        params=StackedMNISTParams,
        summary="Stacked MNIST: three MNIST digits as R, G and B, 1,000 classes (modes); scored per channel.",
    )
    register(
        "cifar10",
        load_cifar10,
        params=SplitDatasetParams,
        summary="CIFAR-10 natural images, 32x32 RGB, 10 classes (downloaded when missing; read with torchvision).",
    )
    register(
        "image_folder",
        load_image_folder,
        params=ImageFolderParams,
        summary="Your own images: a folder, .zip or .tar, prepared once into the cache; classes from subfolders.",
    )
    register(
        "prepared",
        load_prepared,
        params=PreparedParams,
        summary="A dataset made by `ganforge data prepare`: in memory, or memory-mapped where it does not fit.",
    )
    register(
        "synthetic",
        load_synthetic,
        params=SyntheticParams,
        summary="Generated blobs with a class-specific position and colour; no files needed.",
    )
