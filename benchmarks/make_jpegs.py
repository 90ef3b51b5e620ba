"""A folder of synthetic JPEG photos for the data-preparation benchmarks, the same for the same seed.

    python benchmarks/make_jpegs.py /tmp/jpegs --count 20000 --classes 10

Each image has its own size (each side drawn from 300 to 800 px, so aspect ratios vary from
3:8 to 8:3) and content a JPEG encoder cannot shrink to nothing: a smooth colour gradient, a few
filled shapes and pixel noise, so that decoding costs about what a photo of that size costs.
Image ``i`` depends only on the seed and ``i``: any number of worker processes writes the same
files. With ``--classes K`` image ``i`` goes to the subfolder ``class_{i % K}``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

MIN_SIDE, MAX_SIDE = 300, 800
JPEG_QUALITY = 90
NOISE_AMPLITUDE = 12  # grey levels either side: visible grain, as a camera's
NOISE_BANK_SIDE = 1024  # one bank of noise per process, windows of it taken per image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write into: new, or empty")
    parser.add_argument("--count", type=int, default=20_000, help="number of images")
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same files")
    parser.add_argument("--classes", type=int, default=0, help="spread the images over this many subfolders")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: every core)")
    args = parser.parse_args()
    if args.count < 1 or args.classes < 0:
        sys.exit("--count must be at least 1 and --classes at least 0")
    try:
        started = time.perf_counter()
        written = write_jpegs(args.out, args.count, args.seed, args.classes, args.workers)
    except FileExistsError as error:
        sys.exit(str(error))
    seconds = time.perf_counter() - started
    folders = f" in {args.classes} class subfolders" if args.classes else ""
    print(
        f"wrote {args.count:,} JPEG files ({written / 1e6:,.1f} MB) to {args.out}{folders}, "
        f"seed {args.seed}, in {seconds:.1f} s"
    )


def write_jpegs(out: Path, count: int, seed: int, classes: int = 0, workers: int | None = None) -> int:
    """Write ``count`` JPEGs into ``out`` (new or empty); the bytes written."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder: choose a new one")
    out.mkdir(parents=True, exist_ok=True)
    for label in range(classes):
        (out / class_folder(label)).mkdir()
    workers = workers or os.cpu_count() or 1
    chunk = max(1, min(256, count // (workers * 8)))
    tasks = [(out, seed, classes, range(start, min(start + chunk, count))) for start in range(0, count, chunk)]
    with Pool(workers, initializer=_start_worker, initargs=(seed,)) as pool:
        return sum(pool.imap_unordered(_write_range, tasks))


def class_folder(label: int) -> str:
    return f"class_{label:02d}"


def jpeg_path(out: Path, index: int, classes: int) -> Path:
    name = f"{index:06d}.jpg"
    return out / class_folder(index % classes) / name if classes else out / name


_noise_bank: np.ndarray | None = None


def _start_worker(seed: int) -> None:
    # Fresh noise for every pixel would cost more than the encoding; a window at a random place in
    # one bank per process is as incompressible, and the bank depends only on the seed.
    global _noise_bank
    rng = np.random.default_rng([seed, 2**32 - 1])
    side = NOISE_BANK_SIDE + MAX_SIDE
    _noise_bank = rng.integers(-NOISE_AMPLITUDE, NOISE_AMPLITUDE + 1, (side, side, 3), dtype=np.int16)


def _write_range(task: tuple[Path, int, int, range]) -> int:
    out, seed, classes, indices = task
    written = 0
    for index in indices:
        data = jpeg_bytes(np.random.default_rng([seed, index]))
        jpeg_path(out, index, classes).write_bytes(data)
        written += len(data)
    return written


def jpeg_bytes(rng: np.random.Generator) -> bytes:
    """One synthetic photo, encoded: gradient, shapes, noise."""
    width, height = (int(side) for side in rng.integers(MIN_SIDE, MAX_SIDE + 1, 2))
    # A few random colours on a coarse grid, scaled up smoothly: a gradient with some structure.
    grid = rng.integers(0, 256, (int(rng.integers(2, 6)), int(rng.integers(2, 6)), 3), dtype=np.uint8)
    image = Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 9))):
        x0, x1 = sorted(int(x) for x in rng.integers(0, width, 2))
        y0, y1 = sorted(int(y) for y in rng.integers(0, height, 2))
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x1, y1), fill=fill)
    pixels = np.asarray(image, dtype=np.int16)
    top, left = (int(offset) for offset in rng.integers(0, NOISE_BANK_SIDE, 2))
    assert _noise_bank is not None
    pixels = pixels + _noise_bank[top : top + height, left : left + width]
    noisy = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    noisy.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


if __name__ == "__main__":
    main()
