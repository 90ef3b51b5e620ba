"""Small IDX files (MNIST's format) written by hand, for the tests of the datasets, the downloads and
the Inception metrics that read them."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from ganforge.components.datasets import idx, mnist

TINY_COUNT = 5


def idx_header(magic, *dims):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", dim) for dim in dims)


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    return idx_header(magic, *array.shape) + array.astype(np.uint8).tobytes()


def tiny_images(count: int = TINY_COUNT) -> np.ndarray:
    """Distinct 28x28 images, each with a black pixel and a white one, so [-1, 1] is reached."""
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    for index in range(count):
        images[index, index, :] = 255
        images[index, 27, 27] = 10 * index
    return images


def tiny_labels(count: int = TINY_COUNT) -> np.ndarray:
    return (np.arange(count) * 3 % 10).astype(np.uint8)


def write_idx_split(
    directory: Path, split: str = "train", gzipped: bool = False, images=None, labels=None
) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    images_stem, labels_stem = mnist.IDX_FILE_STEMS[split]
    written = []
    for stem, array, magic in (
        (images_stem, tiny_images() if images is None else images, idx.IDX_IMAGES_MAGIC),
        (labels_stem, tiny_labels() if labels is None else labels, idx.IDX_LABELS_MAGIC),
    ):
        content = idx_bytes(array, magic)
        path = directory / (f"{stem}.gz" if gzipped else stem)
        path.write_bytes(gzip.compress(content) if gzipped else content)
        written.append(path)
    return written[0], written[1]
