"""Image grids on disk: a batch of images in [-1, 1] as one PNG, and what making one costs."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import IO

import torch

from ganforge.contracts import DataSpec
from ganforge.files import write_atomically
from ganforge.marks import png_mark

FLOAT_BYTES = 4


def save_grid(images: torch.Tensor, path: Path, columns: int | None = None, *, inside: Path | None = None) -> None:
    """Images in [-1, 1] as one image grid (10 columns for 100 images), written whole or not at all."""
    write_atomically(path, grid_writer(images, path.suffix, columns), inside=inside)


def grid_writer(images: torch.Tensor, suffix: str, columns: int | None = None) -> Callable[[IO[bytes]], None]:
    """What writes the grid of ``images`` to a stream, in the format of ``suffix``; a PNG carries ganforge's mark."""
    from PIL import Image

    picture = Image.fromarray(grid_pixels(images, columns).numpy())
    image_format = Image.registered_extensions().get(suffix.lower(), "PNG")
    options = {"pnginfo": png_mark()} if image_format == "PNG" else {}
    return lambda stream: picture.save(stream, format=image_format, **options)


def grid_pixels(images: torch.Tensor, columns: int | None = None) -> torch.Tensor:
    """Images in [-1, 1] as one 8-bit RGB grid ``[H, W, 3]`` with 2-pixel gaps: what is saved, and what trackers get."""
    # torchvision costs seconds to import: only the commands that make a grid pay for it.
    from torchvision.utils import make_grid

    columns = columns or math.ceil(math.sqrt(images.shape[0]))
    grid = make_grid(images.detach().float().cpu().add(1).div(2).clamp(0, 1), nrow=columns, padding=2)
    return grid.mul(255).add(0.5).clamp(0, 255).to(torch.uint8).permute(1, 2, 0)


def grid_bytes(n: int, spec: DataSpec) -> int:
    """About what a PNG grid of ``n`` images takes beyond the images: float copies, the RGB grid, its bytes."""
    padded_rgb = n * 3 * (spec.height + 2) * (spec.width + 2)
    return 2 * FLOAT_BYTES * n * math.prod(spec.shape) + padded_rgb * (3 * FLOAT_BYTES + 2)
