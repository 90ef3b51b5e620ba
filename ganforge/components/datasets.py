"""Built-in datasets: MNIST, Fashion-MNIST, CIFAR-10, a folder of images, and synthetic data.

Every factory has the signature ``factory(params, root: Path) -> LoadedDataset``. All of these
datasets fit in memory, so each returns an :class:`ImageTensorDataset` (uint8 images, int64 labels).
"""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, BinaryIO, Literal, cast

import numpy as np
import torch
from PIL import Image, ImageOps
from pydantic import Field, StringConstraints, field_validator

from ganforge.contracts import MAX_SEED, DataSpec, ImageTensorDataset, LoadedDataset, Params
from ganforge.data_root import DATA_ENV
from ganforge.downloads import MIRROR_ENV, DownloadError, RemoteFile, download, download_and_unpack, mirrors
from ganforge.errors import DataError, DatasetNotFoundError
from ganforge.hookspecs import hookimpl
from ganforge.registry import Register

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
# Bounds of the params, far above what fits any machine: beyond them sizes overflow inside PyTorch.
MAX_DATASET_IMAGES = 10**9
MAX_IMAGE_SIZE = 8192


# --- params -------------------------------------------------------------------------------------


def _no_nul(path: Path | None) -> Path | None:
    """The operating system takes no NUL in a path: say so here rather than fail deep in a read."""
    if path is not None and "\0" in str(path):
        raise ValueError("a path cannot hold a NUL character")
    return path


class SplitDatasetParams(Params):
    """Params of the classic datasets with a train and a test split."""

    split: Literal["train", "test"] = Field("train", description="Which split to load: 'train' or 'test'.")
    root: Path | None = Field(
        None, description="Directory holding the dataset; overrides the data root ganforge resolves."
    )
    download: bool = Field(
        True,
        description="Download missing files (the split's alone where it is published apart) into the first folder "
        "looked in, checked by MD5, from the official mirrors or $GANFORGE_DOWNLOAD_MIRROR; false: use only the "
        "files already there.",
    )
    limit: int | None = Field(
        None,
        gt=0,
        le=MAX_DATASET_IMAGES,
        description="Train on only the first N images of the split (quick experiments, tests); null = all. "
        "Evaluation still measures against the whole dataset.",
    )

    _root_without_nul = field_validator("root")(_no_nul)


DEFAULT_IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "bmp", "webp", "gif")


class ImageFolderParams(Params):
    path: Path | None = Field(
        None,
        description="Directory scanned recursively for images (a relative path is relative to the current "
        "directory); default: images/ under the data root ($GANFORGE_DATA).",
    )
    size: int = Field(
        64,
        gt=0,
        le=MAX_IMAGE_SIZE,
        description="Output side length: shorter side resized to it, then center-cropped.",
    )
    channels: Literal[1, 3] = Field(3, description="1 for grayscale, 3 for RGB.")
    extensions: tuple[Annotated[str, StringConstraints(max_length=32)], ...] = Field(
        DEFAULT_IMAGE_EXTENSIONS,
        min_length=1,
        max_length=64,
        description="File extensions counted as images (case-insensitive).",
    )
    labels_from_subfolders: bool = Field(
        True,
        description="If every image is in an immediate subfolder of path, the sorted subfolder names are the classes.",
    )

    _path_without_nul = field_validator("path")(_no_nul)

    @field_validator("extensions")
    @classmethod
    def _normalize_extensions(cls, extensions: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(extension.lower().lstrip(".") for extension in extensions)


class SyntheticParams(Params):
    num_samples: int = Field(1024, gt=0, le=MAX_DATASET_IMAGES, description="Number of images to generate.")
    num_classes: int = Field(10, ge=1, le=100_000, description="Number of classes, each with its own pattern.")
    channels: int = Field(
        1, ge=1, le=64, description="Image channels (1 grayscale, 3 RGB; classes also differ in colour)."
    )
    size: int = Field(28, ge=8, le=MAX_IMAGE_SIZE, description="Image side length in pixels.")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Random seed; the same seed gives the same images.")

    # Read by the memory check before a run (ganforge/training/preflight.py), before any image is made.

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


# --- IDX files (MNIST, Fashion-MNIST) -----------------------------------------------------------

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
GZIP_MAGIC = b"\x1f\x8b"
MAX_IDX_BYTES = 2**31  # of data in one IDX file: MNIST's 60,000 training images take 47 MB
IDX_READ_CHUNK = 2**20  # what one read may allocate before it knows how much is there
IDX_FILE_STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzipped or not) into an array of the dimensions it declares.

    The header comes first, and no more than it declares is ever read or unpacked, plus one byte to
    see that the file ends there: a gzip bomb (a small file that unpacks to far more than its
    header says) is refused after reading what the header promised, and a header that declares
    more than ``MAX_IDX_BYTES`` is refused before any of the data is read.
    """
    try:
        with _open_possibly_gzipped(path) as stream:
            return _read_idx_stream(stream, path, expected_magic)
    except (OSError, EOFError, zlib.error) as error:  # unreadable, a damaged or truncated gzip stream
        raise DataError(f"{path}: cannot read the file: {error}") from None


def _read_idx_stream(stream: BinaryIO, path: Path, expected_magic: int) -> np.ndarray:
    magic_bytes = stream.read(4)
    if len(magic_bytes) < 4:
        raise DataError(f"{path}: file is truncated ({len(magic_bytes)} bytes, no IDX header)")
    magic = int.from_bytes(magic_bytes, "big")
    if magic != expected_magic:
        raise DataError(
            f"{path}: not an IDX file of the expected kind: magic number 0x{magic:08x}, expected 0x{expected_magic:08x}"
        )
    ndim = expected_magic & 0xFF
    header_size = 4 + 4 * ndim
    dims_bytes = stream.read(4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        raise DataError(f"{path}: file is truncated inside its header ({4 + len(dims_bytes)} of {header_size} bytes)")
    dims = tuple(int.from_bytes(dims_bytes[4 * i : 4 * i + 4], "big") for i in range(ndim))
    data_size = math.prod(dims)
    expected_size = header_size + data_size
    if data_size > MAX_IDX_BYTES:
        raise DataError(
            f"{path}: header declares dimensions {dims}, {data_size:,} bytes of data, more than the "
            f"{MAX_IDX_BYTES:,} bytes ganforge reads from one IDX file: the file is damaged or not such a dataset"
        )
    data = bytearray()  # grows with what actually arrives, not with what the header claims
    while len(data) < data_size:
        chunk = stream.read(min(IDX_READ_CHUNK, data_size - len(data)))
        if not chunk:
            break
        data += chunk
    if len(data) < data_size:
        raise DataError(
            f"{path}: file is truncated: header declares dimensions {dims}, "
            f"which need {expected_size} bytes, but the file has {header_size + len(data)}"
        )
    if stream.read(1):
        raise DataError(
            f"{path}: file is longer than its header says: header declares dimensions {dims}, "
            f"which need {expected_size} bytes, and more follows (not read further)"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _open_possibly_gzipped(path: Path) -> BinaryIO:
    # Decide by content, not by name: a ".gz" may have been unpacked in place, and vice versa.
    with path.open("rb") as probe:
        gzipped = probe.read(len(GZIP_MAGIC)) == GZIP_MAGIC
    return cast(BinaryIO, gzip.open(path, "rb")) if gzipped else path.open("rb")


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
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
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


DATA_ROOT_HINT = f"or point ganforge at a data root that has it (set ${DATA_ENV} or data.params.root)"
MIRROR_HINT = f"or at a mirror serving the published files by their names (set ${MIRROR_ENV}=URL)"


# --- CIFAR-10 -----------------------------------------------------------------------------------

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


# --- a folder of images -------------------------------------------------------------------------


def load_image_folder(params: ImageFolderParams, root: Path) -> LoadedDataset:
    """Every image under a directory, resized and center-cropped to a square; classes from subfolders."""
    folder = params.path.expanduser() if params.path is not None else root / "images"
    if not folder.exists():
        raise DatasetNotFoundError(
            f"image folder {folder.absolute()} does not exist; set data.params.path to a folder of images"
        )
    if not folder.is_dir():
        raise DataError(f"image folder {folder.absolute()} is not a directory")
    files = _find_images(folder, params.extensions)
    if not files:
        wanted = ", ".join(f".{extension}" for extension in params.extensions)
        raise DataError(f"no images found under {folder.absolute()} (looked for files ending in {wanted})")
    labels, class_names = _labels_for(files, folder, params.labels_from_subfolders)
    images = np.empty((len(files), params.channels, params.size, params.size), dtype=np.uint8)
    for index, file in enumerate(files):
        images[index] = _read_image(file, params.size, params.channels)
    dataset = ImageTensorDataset(torch.from_numpy(images), torch.tensor(labels, dtype=torch.int64))
    num_classes = len(class_names) if class_names is not None else None
    spec = DataSpec((params.channels, params.size, params.size), num_classes, class_names)
    return LoadedDataset(dataset, spec)


def _find_images(folder: Path, extensions: Sequence[str]) -> list[Path]:
    """Image files under ``folder`` in sorted order, skipping hidden files and folders."""
    wanted = set(extensions)
    # Hidden entries are metadata (.ipynb_checkpoints, macOS "._x.png" resource forks), not data.
    return sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower().lstrip(".") in wanted
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.is_file()
    )


def _labels_for(files: Sequence[Path], folder: Path, from_subfolders: bool) -> tuple[list[int], tuple[str, ...] | None]:
    """Class indices from immediate subfolders (named after them) when every image sits in one, else all 0 and
    no classes."""
    relative = [file.relative_to(folder) for file in files]
    if not from_subfolders or any(len(path.parts) != 2 for path in relative):
        return [0] * len(files), None
    class_names = tuple(sorted({path.parts[0] for path in relative}))
    index_of = {name: index for index, name in enumerate(class_names)}
    return [index_of[path.parts[0]] for path in relative], class_names


def _read_image(file: Path, size: int, channels: int) -> np.ndarray:
    """One image file as uint8 ``[channels, size, size]``: shorter side to ``size``, then center-cropped."""
    try:
        with Image.open(file) as image:
            converted = image.convert("L" if channels == 1 else "RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"cannot read image {file}: {error}") from None
    # ImageOps.fit crops the centre to a square and scales it: the same as resize-then-crop.
    square = ImageOps.fit(converted, (size, size), method=Image.Resampling.BICUBIC)
    pixels = np.asarray(square, dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


# --- synthetic ----------------------------------------------------------------------------------

SYNTHETIC_CHUNK = 4096  # samples rendered at a time, to bound the float memory for large datasets


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


# --- registration -------------------------------------------------------------------------------


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
        "cifar10",
        load_cifar10,
        params=SplitDatasetParams,
        summary="CIFAR-10 natural images, 32x32 RGB, 10 classes (downloaded when missing; read with torchvision).",
    )
    register(
        "image_folder",
        load_image_folder,
        params=ImageFolderParams,
        summary="Images from a directory, resized and center-cropped to a square; classes from subfolders.",
    )
    register(
        "synthetic",
        load_synthetic,
        params=SyntheticParams,
        summary="Generated blobs with a class-specific position and colour; no files needed.",
    )
