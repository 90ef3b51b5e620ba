"""CIFAR-10: 32x32 RGB natural images in 10 classes, downloaded as one archive when missing, read with torchvision.

ganforge finds or downloads the archive itself (checked by MD5, unpacked atomically) and asks
torchvision only to read the unpacked batches, never to download: one road for every download.
torchvision is imported inside the loader, because importing it takes seconds and every command
registers the datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ganforge.components.datasets.params import DATA_ROOT_HINT, MIRROR_HINT, SplitDatasetParams
from ganforge.contracts import DataSpec, ImageTensorDataset, LoadedDataset
from ganforge.downloads import DownloadError, RemoteFile, download_and_unpack, mirrors
from ganforge.errors import DataError, DatasetNotFoundError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
CIFAR10_ARCHIVE = RemoteFile("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a", 170_498_071)


def load_cifar10(params: SplitDatasetParams, root: Path) -> LoadedDataset:
    """CIFAR-10 natural images, 32x32 RGB, 10 classes (read with torchvision)."""
    root = (params.root or root).expanduser()
    candidates = [root / "cifar10", root]
    holding = [directory for directory in candidates if (directory / CIFAR10_FOLDER).is_dir()]
    if not holding and not params.download:
        raise DatasetNotFoundError(
            f"CIFAR-10 not found: {_cifar10_wanted(candidates)}\n"
            f"To fix: unpack the archive into {candidates[0]}/, {DATA_ROOT_HINT}, "
            "or set data.params.download: true to download it."
        )
    if not holding:
        _download_cifar10(candidates)
    dataset_dir = holding[0] if holding else candidates[0]

    import torchvision.datasets

    try:
        cifar = torchvision.datasets.CIFAR10(str(dataset_dir), train=params.split == "train", download=False)
    except Exception as error:  # its integrity check (RuntimeError), an unreadable batch file
        raise DataError(f"CIFAR-10 in {dataset_dir / CIFAR10_FOLDER} cannot be used: {error}") from None
    # torchvision keeps CIFAR as [N, H, W, C]; ganforge wants [N, C, H, W].
    images = torch.from_numpy(np.ascontiguousarray(np.asarray(cifar.data, dtype=np.uint8).transpose(0, 3, 1, 2)))
    labels = torch.as_tensor(cifar.targets, dtype=torch.int64)
    images, labels = images[: params.limit], labels[: params.limit]
    return LoadedDataset(ImageTensorDataset(images, labels), DataSpec((3, 32, 32), 10, CIFAR10_CLASSES))


def _download_cifar10(candidates: Sequence[Path]) -> None:
    """The archive downloaded and unpacked into the first candidate; both splits come in it.

    Processes of one launch that download at once each unpack into a folder of their own, and the
    first to rename its folder into place wins (ganforge/downloads.py).
    """
    try:
        download_and_unpack(CIFAR10_ARCHIVE, mirrors(CIFAR10_MIRRORS), candidates[0], CIFAR10_FOLDER)
    except DownloadError as error:
        raise DatasetNotFoundError(
            f"CIFAR-10 is not here and downloading it failed: {error}\n{_cifar10_wanted(candidates)}\n"
            f"To fix: download {CIFAR10_ARCHIVE.name} and unpack it into {candidates[0]}/, {DATA_ROOT_HINT}, "
            f"{MIRROR_HINT}."
        ) from None


def _cifar10_wanted(candidates: Sequence[Path]) -> str:
    looked_in = "\n".join(f"  {directory / CIFAR10_FOLDER}" for directory in candidates)
    return (
        f"need the folder {CIFAR10_FOLDER} (unpacked from {CIFAR10_ARCHIVE.name}, "
        f"https://www.cs.toronto.edu/~kriz/cifar.html) in {candidates[0]}/ or {candidates[1]}/.\n"
        f"Looked for:\n{looked_in}"
    )
