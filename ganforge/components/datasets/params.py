"""What the built-in datasets' params share: size bounds, paths without NUL, the train/test split params.

The bounds sit far above what fits any machine; they exist because beyond them sizes overflow
inside PyTorch. ``SplitDatasetParams`` are the params of every dataset published with a train and
a test split (MNIST, Fashion-MNIST, CIFAR-10); the two hints that end its "not found" messages
name those params (``root``, ``download``) and the environment variables behind them, so they are
written here once for all of those datasets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ganforge.contracts import Params
from ganforge.data_root import DATA_ENV
from ganforge.downloads import MIRROR_ENV

MAX_DATASET_IMAGES = 10**9
MAX_IMAGE_SIZE = 8192

DATA_ROOT_HINT = f"or point ganforge at a data root that has it (set ${DATA_ENV} or data.params.root)"
MIRROR_HINT = f"or at a mirror serving the published files by their names (set ${MIRROR_ENV}=URL)"


def path_without_nul(path: Path | None) -> Path | None:
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

    _root_without_nul = field_validator("root")(path_without_nul)
