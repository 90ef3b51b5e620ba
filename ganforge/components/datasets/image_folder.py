"""A folder of images (any size, any of PIL's formats) as one square dataset; classes from its subfolders.

Every image is read at load time, its shorter side scaled to ``size`` and its centre cropped, so
that the whole folder becomes one uint8 tensor like the other built-in datasets. Hidden files and
folders are metadata, not data, and are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import torch
from PIL import Image, ImageOps
from pydantic import Field, StringConstraints, field_validator

from ganforge.components.datasets.params import MAX_IMAGE_SIZE, path_without_nul
from ganforge.contracts import DataSpec, ImageTensorDataset, LoadedDataset, Params
from ganforge.errors import DataError, DatasetNotFoundError

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

    _path_without_nul = field_validator("path")(path_without_nul)

    @field_validator("extensions")
    @classmethod
    def _normalize_extensions(cls, extensions: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(extension.lower().lstrip(".") for extension in extensions)


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
