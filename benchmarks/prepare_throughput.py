"""Images/s of preparing a folder of JPEGs as square uint8 arrays: ganforge against two plain ways.

    python benchmarks/prepare_throughput.py                      # 20,000 synthetic JPEGs, made first
    python benchmarks/prepare_throughput.py --folder ~/photos    # a folder of your own

Contenders, each for every --sizes S, all reading the same files:

  (a) pil_loop     one process: open, convert to RGB, ImageOps.fit to SxS (bicubic), np.asarray
                   into a preallocated uint8 array [N, 3, S, S]. The baseline.
  (b) torchvision  ImageFolder with Resize(S), CenterCrop(S), PILToTensor, through a DataLoader
                   (--loader-workers processes, batches of --batch-size), iterated once.
  (c) ganforge     ganforge.imagesets.prepare_dataset on every core, into a temporary folder.

Every file is read once before the clock starts, so that the page cache holds them for all three.
The figures mean something only on an otherwise idle machine: the script prints the core count
and the load average it found.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchvision
from make_jpegs import write_jpegs
from PIL import Image, ImageOps
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

import ganforge
from ganforge.imagesets.decode import DecodeOptions
from ganforge.imagesets.prepare import prepare_dataset

JPEG_SUFFIXES = (".jpg", ".jpeg")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", type=Path, help="JPEGs to prepare (default: make --count of them first)")
    parser.add_argument("--count", type=int, default=20_000, help="synthetic JPEGs to make when --folder is not given")
    parser.add_argument("--classes", type=int, default=10, help="class subfolders of the synthetic JPEGs")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic JPEGs")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128], help="target sides S")
    parser.add_argument("--loader-workers", type=int, default=2, help="DataLoader worker processes of (b)")
    parser.add_argument("--batch-size", type=int, default=256, help="DataLoader batch size of (b)")
    args = parser.parse_args()

    print_machine()
    with tempfile.TemporaryDirectory(prefix="ganforge-prepare-") as scratch:
        scratch_dir = Path(scratch)
        folder = args.folder or made_jpegs(scratch_dir / "jpegs", args)
        files = jpeg_files(folder)
        if not files:
            sys.exit(f"no .jpg or .jpeg files under {folder}")
        warm_page_cache(files)
        print(f"{len(files):,} JPEG files under {folder}, {sum(f.stat().st_size for f in files) / 1e6:,.1f} MB")
        rates = {}
        for size in args.sizes:
            contenders: dict[str, Callable[[], int]] = {
                "(a) pil_loop": lambda size=size: pil_loop(files, size),
                "(b) torchvision": lambda size=size: torchvision_loader(
                    folder, scratch_dir, size, args.loader_workers, args.batch_size
                ),
                "(c) ganforge": lambda size=size: ganforge_prepare(folder, scratch_dir / f"prepared-{size}", size),
            }
            rates[size] = {name: timed(run, len(files)) for name, run in contenders.items()}
            line = ", ".join(f"{name} {rate:,.0f}" for name, rate in rates[size].items())
            print(f"size {size}: {line} images/s", flush=True)
    print_table(rates)


def print_machine() -> None:
    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    load = os.getloadavg()[0]
    print(f"machine: {platform.node()}: {platform.processor() or platform.machine()}, {cores} cores ({usable} usable)")
    print(
        f"versions: python {platform.python_version()}, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, pillow {Image.__version__}, ganforge {ganforge.__version__}"
    )
    print(f"load average (1 min) at the start: {load:.2f}")
    if usable and load > 0.25 * usable:
        print("warning: something else is running: the figures below are low and their ratios unreliable")


def made_jpegs(out: Path, args: argparse.Namespace) -> Path:
    started = time.perf_counter()
    written = write_jpegs(out, args.count, args.seed, args.classes)
    seconds = time.perf_counter() - started
    print(f"made {args.count:,} synthetic JPEGs ({written / 1e6:,.1f} MB, {args.classes} classes) in {seconds:.1f} s")
    return out


def jpeg_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.suffix.lower() in JPEG_SUFFIXES and path.is_file())


def warm_page_cache(files: list[Path]) -> None:
    for file in files:
        file.read_bytes()


def timed(run: Callable[[], int], images: int) -> float:
    """Images/s of one call."""
    started = time.perf_counter()
    run()
    return images / (time.perf_counter() - started)


def pil_loop(files: list[Path], size: int) -> int:
    pixels = np.empty((len(files), 3, size, size), dtype=np.uint8)
    for index, file in enumerate(files):
        with Image.open(file) as image:
            square = ImageOps.fit(image.convert("RGB"), (size, size), method=Image.Resampling.BICUBIC)
        pixels[index] = np.asarray(square).transpose(2, 0, 1)
    return len(files)


def torchvision_loader(folder: Path, scratch_dir: Path, size: int, workers: int, batch_size: int) -> int:
    transform = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.PILToTensor()])
    dataset = datasets.ImageFolder(str(class_root(folder, scratch_dir)), transform=transform)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers)
    return sum(images.shape[0] for images, _labels in loader)


def class_root(folder: Path, scratch_dir: Path) -> Path:
    """ImageFolder wants class subfolders: a flat folder is given to it as the one class of a new root."""
    if any(path.suffix.lower() in JPEG_SUFFIXES for path in folder.iterdir()):
        root = scratch_dir / "one-class"
        if not root.exists():
            root.mkdir()
            (root / "all").symlink_to(folder.resolve(), target_is_directory=True)
        return root
    return folder


def ganforge_prepare(folder: Path, out: Path, size: int) -> int:
    """ganforge's one call: the folder prepared on every core; the images it kept."""
    manifest = prepare_dataset(folder, out, DecodeOptions(size=size, channels=3, resize="crop"))
    return manifest.count


def print_table(rates: dict[int, dict[str, float]]) -> None:
    print()
    columns = ("(a) pil_loop", 14), ("(b) torchvision", 16), ("(c) ganforge", 14), ("(c)/(a)", 8), ("(c)/(b)", 8)
    print(f"{'size':>5} " + " ".join(f"{name:>{width}}" for name, width in columns))
    for size, row in rates.items():
        pil, loader, ours = row["(a) pil_loop"], row["(b) torchvision"], row["(c) ganforge"]
        ratios = f"{ours / pil:.2f}x", f"{ours / loader:.2f}x"
        print(f"{size:>5} {pil:>14,.0f} {loader:>16,.0f} {ours:>14,.0f} {ratios[0]:>8} {ratios[1]:>8}")
    print("images/s")


if __name__ == "__main__":
    main()
