"""One image file's bytes to square uint8 pixels, with what the doctor should know about it.

Every image is turned upright (EXIF orientation), brought to 8 bits, composited on the background
where it is transparent, converted to the channels asked for and made square by one of three
policies: ``crop`` (shorter side to ``size``, centre cropped), ``pad`` (longer side to ``size``,
the rest filled with the background) or ``stretch`` (both sides to ``size``). This module imports
no torch: it runs in the worker processes of a preparation.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ResizePolicy = Literal["crop", "pad", "stretch"]
RESIZE_POLICIES: tuple[ResizePolicy, ...] = ("crop", "pad", "stretch")
Colour = tuple[int, int, int]
WHITE: Colour = (255, 255, 255)

# Beyond this ratio of the longer side to the shorter, a crop loses most of the image (or a pad
# leaves most of the square empty): worth telling the user.
FAR_FROM_SQUARE_RATIO = 2.0
# JPEG can decode straight to a half, quarter or eighth of its size; asking for twice the target
# keeps enough pixels for the bicubic filter to antialias the last step.
DRAFT_MARGIN = 2
EXIF_ORIENTATION_TAG = 0x0112
HIGH_BIT_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
TRANSPARENT_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


@dataclass(frozen=True)
class DecodeOptions:
    """What every image of a prepared dataset becomes."""

    size: int
    channels: Literal[1, 3] = 3
    resize: ResizePolicy = "crop"
    background: Colour = WHITE


@dataclass
class Decoded:
    """One file's result: its pixels ``[C, S, S]`` (None where it is unusable) and the doctor's findings."""

    pixels: np.ndarray | None
    findings: list[str] = field(default_factory=list)
    problem: str | None = None  # why the file is unusable, in words


def decode_image(data: bytes, options: DecodeOptions) -> Decoded:
    """``data`` (one file's bytes) as ``options`` asks, or the reason it cannot be used."""
    findings: list[str] = []
    try:
        with warnings.catch_warnings():
            # A DecompressionBombWarning is a finding of ours, not noise on the console.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                image = _upright_8bit(opened, options, findings)
    except UnidentifiedImageError:
        return Decoded(None, ["not_image"], "not an image PIL can read")
    except Image.DecompressionBombError as error:
        return Decoded(None, ["unreadable"], f"refused as a decompression bomb ({error})")
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        return Decoded(None, ["unreadable"], f"unreadable or truncated ({error})")
    width, height = image.size
    if max(width, height) > FAR_FROM_SQUARE_RATIO * min(width, height):
        findings.append("far_from_square")
    if _needs_upscaling(width, height, options):
        findings.append("upscaled")
    square = _squared(image, options)
    pixels = np.asarray(square, dtype=np.uint8)
    pixels = pixels[None] if options.channels == 1 else pixels.transpose(2, 0, 1)
    return Decoded(np.ascontiguousarray(pixels), findings)


def _upright_8bit(opened: Image.Image, options: DecodeOptions, findings: list[str]) -> Image.Image:
    """The image loaded, turned upright, and in mode ``L`` or ``RGB`` as ``options.channels`` asks."""
    if opened.format == "JPEG":
        # Decoding at a fraction of the size is most of the speed of preparing photos.
        target = options.size * DRAFT_MARGIN
        opened.draft(opened.mode, (target, target))
    orientation = opened.getexif().get(EXIF_ORIENTATION_TAG, 1)
    image = opened
    image.load()
    if orientation not in (1, None):
        findings.append("exif_rotated")
        image = ImageOps.exif_transpose(image)
    mode = image.mode
    transparent = mode in TRANSPARENT_MODES or (mode == "P" and "transparency" in image.info)
    if mode == "P":
        findings.append("palette")
    if mode in HIGH_BIT_DEPTH_MODES:
        findings.append("high_bit_depth")
        image = _to_8bit(image)
    elif mode == "CMYK":
        findings.append("cmyk")
    elif mode in ("L", "1", "LA") and options.channels == 3:
        findings.append("greyscale")
    if transparent:
        findings.append("transparent")
        image = _on_background(image, options.background)
    return image.convert("L" if options.channels == 1 else "RGB")


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit (or 32-bit integer) greyscale to 8 bits by its full range; float pixels read as [0, 1]."""
    values = np.asarray(image, dtype=np.float64)
    scale = 255.0 if image.mode == "F" else 255.0 / 65535.0
    return Image.fromarray(np.clip(np.rint(values * scale), 0, 255).astype(np.uint8), mode="L")


def _on_background(image: Image.Image, background: Colour) -> Image.Image:
    """A transparent image composited on an opaque background colour."""
    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (*background, 255))
    return Image.alpha_composite(canvas, rgba).convert("RGB")


def _needs_upscaling(width: int, height: int, options: DecodeOptions) -> bool:
    side = {"crop": min(width, height), "pad": max(width, height), "stretch": min(width, height)}[options.resize]
    return side < options.size


def _squared(image: Image.Image, options: DecodeOptions) -> Image.Image:
    size = (options.size, options.size)
    method = Image.Resampling.BICUBIC
    if options.resize == "crop":
        return ImageOps.fit(image, size, method=method)
    if options.resize == "stretch":
        return image.resize(size, method)
    red, green, blue = options.background
    fill = (
        round(0.299 * red + 0.587 * green + 0.114 * blue) if options.channels == 1 else options.background
    )  # ITU-R 601 luma, as PIL's L
    return ImageOps.pad(image, size, method=method, color=fill)
