"""MNIST and Fashion-MNIST: 28x28 grayscale IDX files, found in the data root (or a system folder), else downloaded.

The two share everything but where they live, their mirrors, their checksums and their class
names: an :class:`IdxDataset` holds those, and one loader serves both. A file already on disk is
the user's and is never replaced; a download fills in only the split's missing files, each checked
by MD5 (of the published .gz, or of its content where a mirror gzipped the same data again).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ganforge.components.datasets.idx import IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, read_idx
from ganforge.components.datasets.params import DATA_ROOT_HINT, MIRROR_HINT, SplitDatasetParams
from ganforge.contracts import DataSpec, ImageTensorDataset, LoadedDataset
from ganforge.downloads import DownloadError, RemoteFile, download, mirrors
from ganforge.errors import DataError, DatasetNotFoundError

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_FILE_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class IdxDataset:
    """Where an IDX dataset may live and how to obtain it."""

    title: str
    subdirs: tuple[str, ...]  # relative to the data root, searched in order; downloads go to the first
    system_dirs: tuple[Path, ...]
    mirrors: tuple[str, ...]  # base URLs serving the published files, tried in order
    files: dict[str, RemoteFile]  # the published file of each stem in IDX_FILE_STEMS

    def search_dirs(self, root: Path) -> list[Path]:
        return [root / subdir if subdir else root for subdir in self.subdirs] + list(self.system_dirs)


# The unpacked sizes: 60,000 and 10,000 images of 28x28 bytes, or as many labels, after the header.
IDX_CONTENT_BYTES = {
    "train-images-idx3-ubyte": 16 + 60_000 * 28 * 28,
    "train-labels-idx1-ubyte": 8 + 60_000,
    "t10k-images-idx3-ubyte": 16 + 10_000 * 28 * 28,
    "t10k-labels-idx1-ubyte": 8 + 10_000,
}


def _published_idx_files(published: dict[str, tuple[str, int, str]]) -> dict[str, RemoteFile]:
    """Each stem's .gz from (MD5, size) of the published file and the MD5 of its content."""
    return {
        stem: RemoteFile(f"{stem}.gz", md5, size, unpacked_md5=content_md5, unpacked_bytes=IDX_CONTENT_BYTES[stem])
        for stem, (md5, size, content_md5) in published.items()
    }


# The MD5s of the files as published (the datasets' pages and torchvision list them), and of their
# content (what a mirror or a distribution that gzipped the files again still serves).
MNIST = IdxDataset(
    "MNIST",
    ("mnist", "MNIST/raw", ""),
    (),
    ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://yann.lecun.com/exdb/mnist/"),
    _published_idx_files(
        {
            "train-images-idx3-ubyte": (
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                9_912_422,
                "6bbc9ace898e44ae57da46a324031adb",
            ),
            "train-labels-idx1-ubyte": (
                "d53e105ee54ea40749a09fcbcd1e9432",
                28_881,
                "a25bea736e30d166cdddb491f175f624",
            ),
            "t10k-images-idx3-ubyte": (
                "9fb629c4189551a2d022fa330f9573f3",
                1_648_877,
                "2646ac647ad5339dbf082846283269ea",
            ),
            "t10k-labels-idx1-ubyte": (
                "ec29112dd5afa0611ce80d1b7f02629c",
                4_542,
                "27ae3e4e09519cfbb04c329615203637",
            ),
        }
    ),
)
MNIST_CLASSES = tuple(str(digit) for digit in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FASHION_MNIST = IdxDataset(
    "Fashion-MNIST",
    ("fashion_mnist", "fashion-mnist", "FashionMNIST/raw", ""),
    (DEBIAN_FASHION_MNIST_DIR,),
    ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
    _published_idx_files(
        {
            "train-images-idx3-ubyte": (
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                26_421_880,
                "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            ),
            "train-labels-idx1-ubyte": (
                "25c81989df183df01b3e8a0aad5dffbe",
                29_515,
                "9018921c3c673c538a1fc5bad174d6f9",
            ),
            "t10k-images-idx3-ubyte": (
                "bef4ecab320f06d8554ea6380940ec79",
                4_422_102,
                "8181f5470baa50b63fa0f6fddb340f0a",
            ),
            "t10k-labels-idx1-ubyte": (
                "bb300cfdad3c16e7a12a480ee83cd310",
                5_148,
                "15d484375f8d13e6eb1aabb0c3f46965",
            ),
        }
    ),
)


def load_mnist(params: SplitDatasetParams, root: Path) -> LoadedDataset:
    """MNIST handwritten digits, 28x28 grayscale, 10 classes."""
    return _load_idx_dataset(MNIST, params, root, MNIST_CLASSES)


def load_fashion_mnist(params: SplitDatasetParams, root: Path) -> LoadedDataset:
    """Fashion-MNIST clothing images, 28x28 grayscale, 10 classes."""
    return _load_idx_dataset(FASHION_MNIST, params, root, FASHION_MNIST_CLASSES)


def _load_idx_dataset(
    which: IdxDataset, params: SplitDatasetParams, root: Path, class_names: tuple[str, ...]
) -> LoadedDataset:
    root = (params.root or root).expanduser()
    stems = IDX_FILE_STEMS[params.split]
    search_dirs = which.search_dirs(root)
    files = _find_idx_files(stems, search_dirs)
    if files is None and params.download:
        _download_idx_files(which, params.split, stems, search_dirs)
        files = _find_idx_files(stems, search_dirs)
    if files is None:
        raise DatasetNotFoundError(_idx_not_found_message(which, params.split, stems, search_dirs))
    images_path, labels_path = files
    images = read_idx(images_path, IDX_IMAGES_MAGIC)
    labels = read_idx(labels_path, IDX_LABELS_MAGIC)
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    num_classes = len(class_names)
    if labels.size and labels.max() >= num_classes:
        raise DataError(f"{labels_path}: label {labels.max()} is out of range for {num_classes} classes")
    images, labels = images[: params.limit], labels[: params.limit]
    height, width = images.shape[1:]
    dataset = ImageTensorDataset(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels))
    return LoadedDataset(dataset, DataSpec((1, height, width), num_classes, class_names))


def _find_idx_files(stems: Sequence[str], search_dirs: Sequence[Path]) -> tuple[Path, ...] | None:
    """The files named by ``stems`` from the first directory that holds all of them (plain or .gz)."""
    for directory in search_dirs:
        found = [_existing_variant(directory, stem) for stem in stems]
        if all(found):
            return tuple(found)
    return None


def _existing_variant(directory: Path, stem: str) -> Path | None:
    for name in (stem, f"{stem}.gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _download_idx_files(which: IdxDataset, split: str, stems: Sequence[str], search_dirs: Sequence[Path]) -> None:
    """Fill in the split's files missing from the first folder looked in; a file already there is never replaced.

    A file already there is the user's: if it is damaged, reading it says so and names it, rather
    than a download silently overwriting it. Processes of one launch that download at once each
    write a file of their own and rename it into place (ganforge/downloads.py): the result is whole.
    """
    folder = search_dirs[0]
    try:
        for stem in stems:
            if _existing_variant(folder, stem) is None:
                download(which.files[stem], mirrors(which.mirrors), folder)
    except DownloadError as error:
        raise DatasetNotFoundError(
            f"{which.title} ({split} split) is not here and downloading it failed: {error}\n"
            f"{_idx_files_wanted(stems, search_dirs)}\n"
            f"To fix: put the files in {folder}/, {DATA_ROOT_HINT}, {MIRROR_HINT}."
        ) from None


def _idx_not_found_message(which: IdxDataset, split: str, stems: Sequence[str], search_dirs: Sequence[Path]) -> str:
    return (
        f"{which.title} ({split} split) not found: {_idx_files_wanted(stems, search_dirs)}\n"
        f"To fix: put the files in {search_dirs[0]}/, {DATA_ROOT_HINT}, "
        "or set data.params.download: true to download them."
    )


def _idx_files_wanted(stems: Sequence[str], search_dirs: Sequence[Path]) -> str:
    looked_in = "\n".join(f"  {directory}" for directory in search_dirs)
    return (
        f"need the files {stems[0]} and {stems[1]} (each may be gzipped, ending in .gz) in one directory.\n"
        f"Looked in:\n{looked_in}"
    )
