"""A prepared dataset on disk, and opened for training: held in memory, or memory-mapped where it does not fit.

A prepared dataset is a folder of three files:

- ``images.u8``: every image's uint8 pixels, ``[N, C, S, S]`` in C order, nothing else. Raw bytes
  rather than .npy or a container, so that numpy and torch map it with no header to trust, and a
  row is found by arithmetic alone;
- ``labels.i64``: the int64 class index of each image (0 for all where there are no classes);
- ``manifest.json``: what the two hold (count, shape, classes), how they were made (the source's
  fingerprint, the resize policy) and what the doctor found. It is written last, and the folder
  appears under its name only once complete (see prepare.py), so a half-written dataset never loads.

The manifest is read through the bounded reader and checked field by field; both data files must
have exactly the size the manifest says.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ganforge.contracts import DataSpec, ImageTensorDataset, LoadedDataset, map_images
from ganforge.documents import decode_text, parse_json
from ganforge.errors import DataError, DatasetNotFoundError
from ganforge.files import open_regular_file, read_bounded
from ganforge.imagesets.decode import ResizePolicy
from ganforge.imagesets.doctor import DoctorReport

MANIFEST_FILE = "manifest.json"
IMAGES_FILE = "images.u8"
LABELS_FILE = "labels.i64"
FORMAT = "ganforge-prepared"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 4 * 2**20
MAX_IMAGES = 10**9
MAX_SIZE = 8192
MAX_CLASSES = 100_000

Storage = Literal["auto", "memory", "mapped"]


class SourceRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(max_length=4096)
    kind: Literal["folder", "zip", "tar"]
    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")


class Manifest(BaseModel):
    """What a prepared dataset holds and how it was made."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["ganforge-prepared"] = FORMAT
    version: Literal[1] = FORMAT_VERSION
    count: int = Field(gt=0, le=MAX_IMAGES)
    channels: Literal[1, 3]
    size: int = Field(gt=0, le=MAX_SIZE)
    resize: ResizePolicy
    background: tuple[int, int, int]
    extensions: tuple[str, ...] = Field(max_length=64)
    class_names: tuple[str, ...] | None = Field(None, max_length=MAX_CLASSES)
    source: SourceRecord
    doctor: DoctorReport
    seconds: float = Field(ge=0, description="How long the preparation took.")
    ganforge_version: str = Field(max_length=64)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.count, self.channels, self.size, self.size)

    @property
    def image_bytes(self) -> int:
        return self.count * self.channels * self.size * self.size

    @property
    def spec(self) -> DataSpec:
        classes = len(self.class_names) if self.class_names is not None else None
        return DataSpec((self.channels, self.size, self.size), classes, self.class_names)


def read_manifest(folder: Path) -> Manifest:
    """A prepared dataset's manifest, checked; a DataError naming the file where it is not one."""
    path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise DatasetNotFoundError(f"{folder.absolute()} is not a prepared dataset: no such folder")
    try:
        text = decode_text(read_bounded(path, MAX_MANIFEST_BYTES), f"{path.absolute()}")
        return Manifest.model_validate(parse_json(text, f"{path.absolute()}"))
    except FileNotFoundError:
        raise DataError(f"{folder.absolute()} is not a prepared dataset: it has no {MANIFEST_FILE}") from None
    except OSError as error:
        raise DataError(f"cannot read {path.absolute()}: {error.strerror or error}") from None
    except (ValueError, ValidationError) as error:  # json's errors are ValueErrors
        problem = str(error).splitlines()[0] if not isinstance(error, ValidationError) else _first_problem(error)
        raise DataError(f"{path.absolute()} is not a prepared dataset's manifest: {problem}") from None


def open_prepared(folder: Path, storage: Storage = "auto") -> LoadedDataset:
    """The prepared dataset in ``folder``: read into memory (``memory``) or memory-mapped (``mapped``, ``auto``).

    ``auto`` maps the images too, so that a run starts at once whatever their size and the processes
    of a distributed run share one copy in the page cache; the trainer then copies them whole to a
    GPU where they fit there, and gathers each batch from the map otherwise.
    """
    manifest = read_manifest(folder)
    labels = _read_labels(folder, manifest)
    images_path = folder / IMAGES_FILE
    _check_size(images_path, manifest.image_bytes)
    if storage == "memory":
        dataset: ImageTensorDataset = ImageTensorDataset(_read_images(images_path, manifest), labels)
    else:
        dataset = map_images(images_path, manifest.shape, labels, copy_to_gpu=storage == "auto")
    return LoadedDataset(dataset, manifest.spec)


def _check_size(path: Path, expected: int) -> None:
    try:
        handle = open_regular_file(path)
    except OSError as error:
        raise DataError(f"cannot read {path.absolute()}: {error.strerror or error}") from None
    try:
        size = os.fstat(handle).st_size
    finally:
        os.close(handle)
    if size != expected:
        raise DataError(
            f"{path.absolute()} holds {size} bytes where its manifest says {expected}: the prepared dataset is "
            "damaged; prepare it again"
        )


def _read_labels(folder: Path, manifest: Manifest) -> torch.Tensor:
    path = folder / LABELS_FILE
    expected = manifest.count * 8
    try:
        data = read_bounded(path, expected)
    except OSError as error:
        raise DataError(f"cannot read {path.absolute()}: {error.strerror or error}") from None
    if len(data) != expected:
        raise DataError(f"{path.absolute()} holds {len(data)} bytes where its manifest says {expected}")
    labels = torch.from_numpy(np.frombuffer(data, dtype="<i8").astype(np.int64))
    classes = len(manifest.class_names) if manifest.class_names is not None else 1
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= classes):
        raise DataError(f"{path.absolute()} holds labels outside [0, {classes}): the prepared dataset is damaged")
    return labels


def _read_images(path: Path, manifest: Manifest) -> torch.Tensor:
    images = np.empty(manifest.shape, dtype=np.uint8)
    with os.fdopen(open_regular_file(path), "rb") as file:
        if file.readinto(memoryview(images).cast("B")) != manifest.image_bytes:
            raise DataError(f"{path.absolute()} ended early: the prepared dataset is damaged; prepare it again")
    return torch.from_numpy(images)


def _first_problem(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the top level"
    return f"{where}: {first['msg']}"
