"""Tiny image files written for the tests of imagesets: noise, flat colours, a source with every fault planted once,
and a record of a folder's files to show that nothing touched them."""

import hashlib
import io
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)
EXIF_ORIENTATION = 0x0112
ROTATE_90_CLOCKWISE = 6  # the EXIF orientation of a photo taken with the camera turned right

# The planted source's files, each fault once (few/ is the class with two images); size 8 is what it is prepared to.
PLANTED_SIZE = 8
PLANTED_GOOD = 12
PLANTED_FINDINGS = {
    "unreadable": 1,  # colour/truncated.jpg
    "not_image": 2,  # colour/fake.png (text), colour/notes.txt
    "transparent": 2,  # colour/rgba.png, colour/palette_transparent.png
    "palette": 2,  # colour/palette.png, colour/palette_transparent.png
    "high_bit_depth": 1,  # colour/grey16.png
    "cmyk": 1,  # colour/cmyk.jpg
    "greyscale": 1,  # colour/grey.png
    "exif_rotated": 1,  # colour/rotated.jpg
    "upscaled": 1,  # colour/small.png
    "far_from_square": 1,  # colour/wide.png
    "duplicate": 1,  # colour/good00_copy.png
    "few_images_class": 1,  # few/
    "deep_nesting": 1,  # colour/sub/nested.png
}
PLANTED_FILES = PLANTED_GOOD + 14 + 2
PLANTED_USABLE = PLANTED_FILES - 3


def noise(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels.squeeze(2) if channels == 1 else pixels, mode=mode)


def encoded(image: Image.Image, image_format: str = "PNG", **options: object) -> bytes:
    stream = io.BytesIO()
    image.save(stream, image_format, **options)
    return stream.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def columns(colours: list[tuple[int, int, int]], height: int) -> Image.Image:
    """An image one pixel wide per colour, ``height`` rows of the same colours."""
    return Image.fromarray(np.array([colours] * height, dtype=np.uint8), mode="RGB")


def half_red_half_blue(side: int) -> Image.Image:
    """Left half red, right half blue: turned a quarter, the halves are top and bottom."""
    pixels = np.zeros((side, side, 3), dtype=np.uint8)
    pixels[:, : side // 2] = RED
    pixels[:, side // 2 :] = BLUE
    return Image.fromarray(pixels, mode="RGB")


def rotated_jpeg(side: int = 16) -> bytes:
    """A JPEG stored left red, right blue, whose EXIF says: turn me 90 degrees clockwise to view."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATE_90_CLOCKWISE
    return encoded(half_red_half_blue(side), "JPEG", quality=95, exif=exif)


def good_images(folder: Path, count: int, *, first_seed: int = 0, side: int = 16) -> list[Path]:
    return [
        write(folder / f"good{index:02d}.png", encoded(noise(side, side, first_seed + index))) for index in range(count)
    ]


def planted_source(root: Path) -> Path:
    """A folder of two classes, colour/ and few/, with each fault of the doctor's list planted once."""
    colour = root / "colour"
    good = good_images(colour, PLANTED_GOOD)
    write(colour / "good00_copy.png", good[0].read_bytes())
    photo = encoded(noise(16, 16, 100), "JPEG", quality=90)
    write(colour / "truncated.jpg", photo[: len(photo) // 2])
    write(colour / "fake.png", b"this is a text file with an image's name\n")
    write(colour / "notes.txt", b"notes about the photos\n")
    write(colour / "rgba.png", encoded(noise(16, 16, 101, "RGBA")))
    palette = noise(16, 16, 102).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    write(colour / "palette.png", encoded(palette))
    write(colour / "palette_transparent.png", encoded(noise(16, 16, 103).quantize(16), transparency=0))
    grey16 = Image.fromarray(np.arange(256, dtype=np.uint16).reshape(16, 16) * 257)
    write(colour / "grey16.png", encoded(grey16))
    write(colour / "cmyk.jpg", encoded(noise(16, 16, 104).convert("CMYK"), "JPEG"))
    write(colour / "grey.png", encoded(noise(16, 16, 105, "L")))
    write(colour / "rotated.jpg", rotated_jpeg())
    write(colour / "small.png", encoded(noise(4, 4, 106)))
    write(colour / "wide.png", encoded(noise(24, 8, 107)))
    write(colour / "sub" / "nested.png", encoded(noise(16, 16, 108)))
    good_images(root / "few", 2, first_seed=200)
    return root


def many_images(folder: Path, count: int, *, side: int = 8, classes: int = 1) -> Path:
    """``count`` distinct noise PNGs, spread over ``classes`` class folders where there are more than one."""
    for index in range(count):
        where = folder / f"class{index % classes}" if classes > 1 else folder
        write(where / f"{index:05d}.png", encoded(noise(side, side, 1000 + index)))
    return folder


def zipped(folder: Path, archive: Path) -> Path:
    with zipfile.ZipFile(archive, "w") as stream:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                stream.write(path, path.relative_to(folder).as_posix())
    return archive


def tarred(folder: Path, archive: Path) -> Path:
    """A .tar.gz of ``folder``'s files, in an order other than their names' (as tar writes what it finds)."""
    with tarfile.open(archive, "w:gz") as stream:
        for path in sorted(folder.rglob("*"), reverse=True):
            if path.is_file():
                stream.add(path, path.relative_to(folder).as_posix())
    return archive


def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    """Every entry under ``root``: its kind, the SHA-256 of a file's bytes (a folder's: its mode), and mtime."""
    record = {}
    for folder, subfolders, names in os.walk(root):
        for name in subfolders + names:
            path = Path(folder) / name
            info = path.lstat()
            content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
            record[path.relative_to(root).as_posix()] = (content, info.st_mode, info.st_mtime_ns)
    return record
