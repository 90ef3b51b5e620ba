"""image_folder: any folder of images (or a .zip or .tar of them) as one square dataset; classes from its
subfolders. prepared: a dataset made by ``ganforge data prepare``.

image_folder prepares its source on first use into ganforge's cache (see ganforge/imagesets/):
each image decoded once, on every core, and the doctor's findings told; later runs open the
prepared copy at once, and a changed folder is prepared again. Both open the prepared images
memory-mapped, or read whole into memory (``storage``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from ganforge.components.datasets.params import MAX_IMAGE_SIZE, path_without_nul
from ganforge.contracts import LoadedDataset, Params
from ganforge.errors import DataError, DatasetNotFoundError
from ganforge.imagesets.cache import prepared_in_cache
from ganforge.imagesets.decode import WHITE, DecodeOptions, ResizePolicy
from ganforge.imagesets.prepare import IMAGE_EXTENSIONS
from ganforge.imagesets.prepared import Storage, open_prepared

STORAGE_DESCRIPTION = (
    "'auto': memory-mapped from disk, so a run starts at once whatever the size; copied whole to the GPU when "
    "training on one where they take at most half its free memory, else each batch gathered from the map in the "
    "background. 'mapped': always gathered from the map. 'memory': read whole into the process's memory first."
)


class ImageFolderParams(Params):
    path: Path | None = Field(
        None,
        description="A folder of images (scanned recursively), or a .zip or .tar of them (a relative path is "
        "relative to the current directory); default: images/ under the data root ($GANFORGE_DATA).",
    )
    size: int = Field(64, gt=0, le=MAX_IMAGE_SIZE, description="Output side length in pixels.")
    channels: Literal[1, 3] = Field(3, description="1 for greyscale, 3 for RGB.")
    resize: ResizePolicy = Field(
        "crop",
        description="How an image becomes square: 'crop' (shorter side to size, centre cropped), 'pad' (longer "
        "side to size, the rest filled with the background) or 'stretch'.",
    )
    background: tuple[
        Annotated[int, Field(ge=0, le=255)], Annotated[int, Field(ge=0, le=255)], Annotated[int, Field(ge=0, le=255)]
    ] = Field(WHITE, description="RGB colour behind transparent pixels and around padded images.")
    extensions: tuple[Annotated[str, StringConstraints(max_length=32)], ...] = Field(
        IMAGE_EXTENSIONS,
        min_length=1,
        max_length=64,
        description="File extensions counted as images (case-insensitive); other files are reported, not read.",
    )
    labels_from_subfolders: bool = Field(
        True,
        description="If every image is in a subfolder of path, the sorted names of those first-level folders are "
        "the classes.",
    )
    storage: Storage = Field("auto", description=STORAGE_DESCRIPTION)

    _path_without_nul = field_validator("path")(path_without_nul)

    @field_validator("extensions")
    @classmethod
    def _normalize_extensions(cls, extensions: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(extension.lower().lstrip(".") for extension in extensions)


class PreparedParams(Params):
    path: Path | None = Field(
        None,
        description="A folder made by `ganforge data prepare` (a relative path is relative to the current "
        "directory); default: prepared/ under the data root ($GANFORGE_DATA).",
    )
    storage: Storage = Field("auto", description=STORAGE_DESCRIPTION)

    _path_without_nul = field_validator("path")(path_without_nul)


def load_image_folder(params: ImageFolderParams, root: Path) -> LoadedDataset:
    """Every image under a folder (or in an archive), prepared once into the cache, then opened from there."""
    source = params.path.expanduser() if params.path is not None else root / "images"
    if not source.exists():
        raise DatasetNotFoundError(
            f"image folder {source.absolute()} does not exist; set data.params.path to a folder of images"
        )
    options = DecodeOptions(params.size, params.channels, params.resize, params.background)
    prepared, manifest = prepared_in_cache(source, options, params.extensions, params.labels_from_subfolders)
    if manifest.doctor.usable < manifest.doctor.files:
        # Left out, not fatal: one bad file among thousands should not stop a run; the user is told which.
        for line in manifest.doctor.lines():
            print(f"image_folder {source}: {line}", file=sys.stderr)
    return open_prepared(prepared, params.storage)


def load_prepared(params: PreparedParams, root: Path) -> LoadedDataset:
    """A dataset ``ganforge data prepare`` made."""
    folder = params.path.expanduser() if params.path is not None else root / "prepared"
    if not folder.exists():
        raise DatasetNotFoundError(
            f"prepared dataset {folder.absolute()} does not exist; make one with `ganforge data prepare SOURCE "
            f"--size S --out {folder}`"
        )
    if not folder.is_dir():
        raise DataError(f"prepared dataset {folder.absolute()} is not a folder")
    return open_prepared(folder, params.storage)
