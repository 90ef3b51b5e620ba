"""Images made by any program, read from a file to be scored: a .pt or .npy array of images.

The file is memory-mapped and only the images asked for are copied out of it, so a file far larger
than memory can be scored by its first few thousand images. Everything that can be told from the
file's header (type, dtype, shape, size) is checked before any image is read.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ganforge.contracts import DataSpec
from ganforge.errors import UsageError, first_line
from ganforge.evaluation.domain_split import ImageSet
from ganforge.evaluation.protocol import non_finite, quantised, scoring_bytes
from ganforge.guards.memory import check_request_fits

ACCEPTED_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
SAMPLE_DTYPES = "uint8 pixels, or float16/bfloat16/float32/float64 values"


class SamplesFileError(UsageError):
    """A file of images that cannot be scored; the message is ``path: problem``."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def read_samples(
    path: Path, spec: DataSpec, limit: int | None = None, *, memory_advice: str = "read fewer images"
) -> tuple[ImageSet, str]:
    """Images made by any program: a .pt or .npy array [N, C, H, W] (or [N, H, W], or channels last).

    uint8 is taken as pixels; floats with negative values as [-1, 1], other floats as [0, 1]. Only
    the first ``limit`` images are read: the file is memory-mapped, so the rest never enters memory.
    Returns the images and the value range they were read as. ``memory_advice`` ends the message
    when the images asked for do not fit in memory.
    """
    suffix = path.suffix.lower()
    if suffix not in (".pt", ".npy"):
        raise SamplesFileError(path, "use a .pt (torch.save of a tensor) or .npy (numpy.save) file")
    if not path.is_file():
        raise SamplesFileError(path, "no such file")
    mapped = _open_mapped(path) if suffix == ".pt" else _open_mapped_numpy(path)
    shape = tuple(mapped.shape)
    if len(shape) == 0 or shape[0] == 0:
        raise SamplesFileError(path, f"holds no images (an array of shape {list(shape)})")
    layout = _layout(shape, spec, path)
    total = shape[0]
    count = total if limit is None else min(limit, total)
    # The images read, their 8-bit copy and their features: weighed before anything is read.
    needed = count * math.prod(spec.shape) * mapped.itemsize + scoring_bytes(count, spec)
    try:
        check_request_fits(f"reading {count:,} images", needed, advice=memory_advice)
    except UsageError as error:
        raise SamplesFileError(path, str(error)) from None
    if isinstance(mapped, np.ndarray):  # a copy of the slice alone, in this machine's byte order
        images = torch.from_numpy(np.array(mapped[:count], dtype=mapped.dtype.newbyteorder("="), order="C", copy=True))
    else:
        images = mapped[:count].clone()
    images = layout(images)
    described = f"{count} images from {path}" if count == total else f"the first {count} of {total} images in {path}"
    return _as_pixels(images, path, described)


def _as_pixels(images: torch.Tensor, path: Path, described: str) -> tuple[ImageSet, str]:
    """uint8 as it is; finite floats in [-1, 1] or [0, 1] quantised, as real images are."""
    if images.dtype == torch.uint8:
        return ImageSet(images, None, described), "uint8"
    bad_values, bad_images = non_finite(images)
    if bad_values:
        raise SamplesFileError(
            path,
            f"{bad_values:,} values in {bad_images:,} of the {len(images):,} images read are NaN or infinite; "
            "only finite images can be scored",
        )
    low, high = float(images.min()), float(images.max())
    if low < 0:
        if low < -1.001 or high > 1.001:
            raise SamplesFileError(path, f"values in [{low:.3f}, {high:.3f}]; expected [-1, 1] or [0, 1]")
        return ImageSet(quantised(images), None, described), "[-1, 1]"
    if high > 1.001:
        raise SamplesFileError(path, f"float values up to {high:.3f}; expected [0, 1] or [-1, 1] floats, or uint8")
    return ImageSet(quantised(images, unit=True), None, described), "[0, 1]"


def _open_mapped(path: Path) -> torch.Tensor:
    """The tensor a .pt file holds, its storage mapped from the file rather than read."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about sparse tensors, which are refused below
            try:
                value = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as error:
                if "mmap" not in str(error):
                    raise
                value = torch.load(path, map_location="cpu", weights_only=True)  # torch's legacy, unzipped format
    except Exception as error:
        raise SamplesFileError(path, f"cannot read it: {type(error).__name__}: {first_line(str(error))}") from None
    if not isinstance(value, torch.Tensor):
        raise SamplesFileError(path, f"holds a {type(value).__name__}, expected one tensor of images")
    if value.layout != torch.strided or value.is_quantized or value.is_nested:
        kind = "quantized" if value.is_quantized else "nested" if value.is_nested else str(value.layout)
        raise SamplesFileError(path, f"holds a {kind} tensor; expected a dense tensor of {SAMPLE_DTYPES}")
    if value.dtype != torch.uint8 and value.dtype not in ACCEPTED_FLOATS:
        raise SamplesFileError(path, f"dtype {value.dtype}; expected {SAMPLE_DTYPES}")
    return value


def _open_mapped_numpy(path: Path) -> np.ndarray:
    """The array a .npy file holds, mapped from the file rather than read."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as error:
        raise SamplesFileError(path, f"cannot read it: {type(error).__name__}: {first_line(str(error))}") from None
    if (array.dtype.kind, array.dtype.itemsize) not in (("u", 1), ("f", 2), ("f", 4), ("f", 8)):
        raise SamplesFileError(path, f"dtype {array.dtype}; expected {SAMPLE_DTYPES}")
    return array


def _layout(shape: tuple[int, ...], spec: DataSpec, path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    """How to turn images of this shape into [N, C, H, W]; checked on the shape alone, before reading."""
    if shape[1:] == tuple(spec.shape):
        return lambda images: images
    if spec.channels == 1 and shape[1:] == spec.shape[1:]:
        return lambda images: images.unsqueeze(1)
    if len(shape) == 4 and shape[1:] == (spec.height, spec.width, spec.channels):
        return lambda images: images.permute(0, 3, 1, 2).contiguous()
    raise SamplesFileError(
        path,
        f"images of shape {shape}; the dataset's images are {tuple(spec.shape)}, so expected "
        f"[N, {', '.join(str(d) for d in spec.shape)}] (or channels last)",
    )
