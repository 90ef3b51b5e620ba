"""Image grids on disk: a batch of images in [-1, 1] as one PNG, and what making one costs."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from ganforge.contracts import DataSpec
from ganforge.files import write_atomically

FLOAT_BYTES = 4


def save_grid(images: torch.Tensor, path: Path, columns: int | None = None, *, inside: Path | None = None) -> None:
    """Images in [-1, 1] as one image grid (10 columns for 100 images), written whole or not at all."""
    # torchvision and PIL cost seconds to import: only the commands that write a grid pay for them.
    from PIL import Image
    from torchvision.utils import save_image

    columns = columns or math.ceil(math.sqrt(images.shape[0]))
    grid = images.detach().float().cpu().add(1).div(2).clamp(0, 1)
    image_format = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    write_atomically(
        path,
        lambda stream: save_image(grid, stream, nrow=columns, padding=2, format=image_format),
        inside=inside,
    )


def grid_bytes(n: int, spec: DataSpec) -> int:
    """About what a PNG grid of ``n`` images takes beyond the images: float copies, the RGB grid, its bytes."""
    padded_rgb = n * 3 * (spec.height + 2) * (spec.width + 2)
    return 2 * FLOAT_BYTES * n * math.prod(spec.shape) + padded_rgb * (3 * FLOAT_BYTES + 2)
