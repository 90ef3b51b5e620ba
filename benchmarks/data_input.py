"""The training data path alone: can a prepared dataset feed the trainer, and in how little memory?

    python benchmarks/data_input.py                                   # both parts, full sizes
    python benchmarks/data_input.py --images 4000 --large-images 4000 --large-batches 50   # a quick try

Part 1, rate: a prepared dataset of --images images at --size px (random pixels, written straight
in the prepared format), opened in memory and memory-mapped; each through the trainer's own batch
path (ganforge.training.batches.make_batches, one CPU process), batches of --batch-size. Against
it, the images/s a DCGAN training step at that size consumes on this machine (the registry's
dcgan, a few D+G steps of the trainer's GANStep; --set changes its config). The target: the batch
path delivers at least 5 times what the step consumes.

Part 2, memory: a prepared set of --large-images at --large-size px (by default 42,000 at 256 px,
8.3 GB on disk), memory-mapped, --large-batches batches through the same path; the process's
RssAnon (memory of its own, not the page cache's) read from /proc/self/status after each batch.
The target: under 2 GB. It runs in a fresh process, so part 1's in-memory copy does not count.

Both write into a temporary folder (--workdir) and remove it afterwards; part 2 checks the free
disk first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import ganforge
from ganforge.config import load_config
from ganforge.contracts import LoadedDataset
from ganforge.imagesets.doctor import DoctorReport
from ganforge.imagesets.prepared import IMAGES_FILE, LABELS_FILE, MANIFEST_FILE, Manifest, SourceRecord, open_prepared
from ganforge.plugins import load_plugins
from ganforge.training import batches as batch_paths
from ganforge.training.distributed import Processes
from ganforge.training.run_folder import RunFolder
from ganforge.training.trainer import Trainer

RATE_TARGET = 5.0
RSS_ANON_TARGET = 2 * 1024**3
DISK_MARGIN = 1024**3
WRITE_BLOCK = 64 * 1024**2
CLASSES = 10
STORAGES = ("memory", "mapped")
TrainerBatches = Any  # whatever make_batches returns: InMemoryBatches, LoaderBatches, MappedBatches where it exists


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("both", "rate", "memory"), default="both")
    parser.add_argument("--images", type=int, default=40_000, help="part 1: images of the prepared set")
    parser.add_argument("--size", type=int, default=128, help="part 1: their side, and the DCGAN's")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=300, help="part 1: batches timed per storage and round")
    parser.add_argument("--rounds", type=int, default=2, help="part 1: rounds of both storages, the best counts")
    parser.add_argument("--device", default="cpu", help="where the trainer's batches go and the step runs")
    parser.add_argument("--train-steps", type=int, default=3, help="part 1: D+G steps timed, after one warm-up")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="the DCGAN run's config")
    parser.add_argument("--large-images", type=int, default=42_000, help="part 2: images of the large set")
    parser.add_argument("--large-size", type=int, default=256, help="part 2: their side")
    parser.add_argument("--large-batches", type=int, default=300, help="part 2: batches taken from the map")
    parser.add_argument("--workdir", type=Path, default=None, help="where the sets are written (default: temp)")
    args = parser.parse_args()

    if args.part != "memory":
        print_machine()
    with tempfile.TemporaryDirectory(prefix="ganforge-data-input-", dir=args.workdir) as scratch:
        scratch_dir = Path(scratch)
        if args.part in ("both", "rate"):
            rate_part(args, scratch_dir)
        if args.part == "memory":
            memory_part(args, scratch_dir)
    if args.part == "both":
        # A fresh process: part 1's in-memory copy of its set would count in this one's RssAnon.
        memory_args = ["--part", "memory", "--batch-size", str(args.batch_size), "--device", args.device]
        memory_args += ["--large-images", str(args.large_images), "--large-size", str(args.large_size)]
        memory_args += ["--large-batches", str(args.large_batches)]
        if args.workdir is not None:
            memory_args += ["--workdir", str(args.workdir)]
        sys.exit(subprocess.run([sys.executable, __file__, *memory_args]).returncode)


def print_machine() -> None:
    cores = os.cpu_count()
    print(f"machine: {platform.node()}: {platform.processor() or platform.machine()}, {cores} cores")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, ganforge {ganforge.__version__}")
    print(f"torch threads {torch.get_num_threads()}; load average (1 min) at the start: {os.getloadavg()[0]:.2f}")


# -- part 1: the batch path's rate against a training step's ---------------------------------------


def rate_part(args: argparse.Namespace, scratch_dir: Path) -> None:
    folder = scratch_dir / "prepared"
    seconds = timed_write(folder, args.images, args.size)
    print(f"part 1: wrote {args.images:,} images at {args.size} px ({gigabytes(folder)} GB) in {seconds:.1f} s")
    device = torch.device(args.device)
    paths = {
        storage: trainer_batches(open_prepared_set(folder, storage), args.batch_size, device) for storage in STORAGES
    }
    delivered: dict[str, list[float]] = {storage: [] for storage in STORAGES}
    for index in range(args.rounds):
        # Each round starts with the other one: what the machine does meanwhile falls on both alike.
        order = STORAGES[index % 2 :] + STORAGES[: index % 2]
        for storage in order:
            delivered[storage].append(batch_rate(paths[storage], args.batches, device))
        print(f"  round {index + 1}: " + ", ".join(f"{s} {delivered[s][-1]:,.0f}" for s in order) + " images/s")
    for storage, batches in paths.items():
        print(f"  {storage:<7} {type(batches).__name__:<16} {max(delivered[storage]):>10,.0f} images/s, best round")
    if not hasattr(batch_paths, "MappedBatches"):
        print("  (ganforge.training.batches has no MappedBatches yet: the mapped set went through InMemoryBatches)")
    del paths
    consumed = training_rate(args, scratch_dir)
    for storage, rates in delivered.items():
        ratio = max(rates) / consumed
        verdict = "meets" if ratio >= RATE_TARGET else "misses"
        print(f"  {storage:<7} delivers {ratio:,.1f}x what the step consumes ({verdict} the {RATE_TARGET:.0f}x target)")


def batch_rate(batches: TrainerBatches, count: int, device: torch.device) -> float:
    """Images/s of ``count`` batches, after three not counted; epochs start again as needed."""
    warmup, taken, images_delivered, started = 3, 0, 0, 0.0
    while taken < warmup + count:
        for images, _labels in batches:
            if images.dtype != torch.float32 or images.device.type != device.type:
                raise AssertionError(f"the batch path gave {images.dtype} images on {images.device}")
            taken += 1
            if taken == warmup:
                synchronize(device)
                started = time.perf_counter()
            elif taken > warmup:
                images_delivered += images.shape[0]
            if taken == warmup + count:
                break
    synchronize(device)
    return images_delivered / (time.perf_counter() - started)


def training_rate(args: argparse.Namespace, scratch_dir: Path) -> float:
    """Images/s that D+G steps of the registry's dcgan consume at ``args.size``, on a batch already made."""
    run = load_config(step_config(args, scratch_dir), load_plugins().registry, args.overrides, overrides_option="--set")
    trainer = Trainer(run, RunFolder(run.config.run_dir()))
    real, labels = next(iter(trainer.batches))
    trainer.gan_step.train_on(real, labels, 0)  # warm-up: first allocations, the optimisers' state
    synchronize(trainer.device)
    started = time.perf_counter()
    for step in range(1, args.train_steps + 1):
        trainer.gan_step.train_on(real, labels, step)
    synchronize(trainer.device)
    rate = args.train_steps * real.shape[0] / (time.perf_counter() - started)
    print(
        f"  training step: dcgan {run.model.params.model_dump(exclude_defaults=True) or 'defaults'} at "
        f"{args.size} px, batch {real.shape[0]}, {trainer.gan_step.speed.describe()}: {rate:,.1f} images/s consumed"
    )
    return rate


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_config(args: argparse.Namespace, scratch_dir: Path) -> Path:
    """The run whose step is timed: synthetic images of the size (only one batch is used), no evaluation."""
    config = {
        "name": "data_input",
        "seed": 0,
        "data": {"name": "synthetic", "params": {"num_samples": args.batch_size, "channels": 3, "size": args.size}},
        "model": {"name": "dcgan", "params": {"latent_dim": 64, "generator_width": 32, "discriminator_width": 32}},
        "loss": {"name": "non_saturating"},
        "train": {"epochs": 1, "batch_size": args.batch_size, "device": args.device, "log_every": 1000},
        "eval": {"every": 0},
        "output": {"dir": str(scratch_dir / "run")},
    }
    path = scratch_dir / "step.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


# -- part 2: memory while batches come from a large mapped set ------------------------------------


def memory_part(args: argparse.Namespace, scratch_dir: Path) -> None:
    folder = scratch_dir / "large"
    needed = args.large_images * (3 * args.large_size**2 + 8)
    free = shutil.disk_usage(scratch_dir).free
    if free < needed + DISK_MARGIN:
        sys.exit(
            f"part 2 needs {needed / 1e9:.1f} GB (and {DISK_MARGIN / 1e9:.0f} GB to spare) in {scratch_dir}, "
            f"{free / 1e9:.1f} GB free: give --workdir on a larger disk, or fewer --large-images"
        )
    seconds = timed_write(folder, args.large_images, args.large_size)
    print(
        f"part 2: wrote {args.large_images:,} images at {args.large_size} px ({gigabytes(folder)} GB) "
        f"in {seconds:.1f} s; RssAnon before opening it {rss_anon() / 1e6:,.0f} MB"
    )
    batches = trainer_batches(open_prepared_set(folder, "mapped"), args.batch_size, torch.device(args.device))
    highest, taken = rss_anon(), 0
    started = time.perf_counter()
    while taken < args.large_batches:
        for _batch in batches:
            taken += 1
            highest = max(highest, rss_anon())
            if taken == args.large_batches:
                break
    seconds = time.perf_counter() - started
    verdict = "meets" if highest < RSS_ANON_TARGET else "misses"
    print(
        f"  {type(batches).__name__}: {taken} batches of {args.batch_size} ({taken * args.batch_size:,} images) "
        f"in {seconds:.1f} s; RssAnon at most {highest / 1e6:,.0f} MB, at the end {rss_anon() / 1e6:,.0f} MB, "
        f"RssFile {rss_field('RssFile') / 1e6:,.0f} MB ({verdict} the {RSS_ANON_TARGET / 1024**3:.0f} GiB target)"
    )


def rss_anon() -> int:
    return rss_field("RssAnon")


def rss_field(name: str) -> int:
    """A field of /proc/self/status in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {name}: this part needs Linux")


# -- ganforge's prepared format and batch path: what to adjust when either changes ------------------


def timed_write(folder: Path, count: int, size: int) -> float:
    started = time.perf_counter()
    write_prepared_set(folder, count, size)
    return time.perf_counter() - started


def write_prepared_set(folder: Path, count: int, size: int) -> None:
    """Random pixels written straight in the prepared format (images.u8, labels.i64, manifest.json), with a
    manifest that says so: the batch path never looks at the pixels, so one block of random bytes is repeated.
    """
    folder.mkdir()
    block = np.random.default_rng(0).integers(0, 256, WRITE_BLOCK, dtype=np.uint8).tobytes()
    remaining = count * 3 * size * size
    with (folder / IMAGES_FILE).open("wb") as images:
        while remaining:
            remaining -= images.write(block[: min(remaining, len(block))])
    (np.arange(count, dtype="<i8") % CLASSES).tofile(folder / LABELS_FILE)
    manifest = Manifest(
        count=count,
        channels=3,
        size=size,
        resize="crop",
        background=(255, 255, 255),
        extensions=(),
        class_names=tuple(f"class_{k}" for k in range(CLASSES)),
        source=SourceRecord(path="random pixels (benchmarks/data_input.py)", kind="folder", fingerprint="0" * 64),
        doctor=DoctorReport(files=count, usable=count),
        seconds=0.0,
        ganforge_version="benchmark",
    )
    (folder / MANIFEST_FILE).write_text(manifest.model_dump_json())


def open_prepared_set(folder: Path, storage: str) -> LoadedDataset:
    return open_prepared(folder, storage)


def trainer_batches(loaded: LoadedDataset, batch_size: int, device: torch.device) -> TrainerBatches:
    """The batches a one-process run draws from ``loaded`` (unconditional, no DataLoader workers)."""
    return batch_paths.make_batches(loaded, batch_size, num_workers=0, seed=0, processes=Processes(device))


def gigabytes(folder: Path) -> str:
    return f"{sum(path.stat().st_size for path in folder.iterdir()) / 1e9:.2f}"


if __name__ == "__main__":
    main()
