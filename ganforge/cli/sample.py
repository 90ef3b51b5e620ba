"""The ``sample`` command: images from a checkpoint alone, as a grid or a tensor file."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from pathlib import Path
from typing import IO, Annotated

import torch
import typer

from ganforge.cli.render import console
from ganforge.contracts import MAX_SEED
from ganforge.devices import resolve_device
from ganforge.errors import UsageError
from ganforge.generation import CheckpointGenerator, load_generator
from ganforge.grids import FLOAT_BYTES, grid_bytes, grid_writer
from ganforge.guards.memory import check_request_fits
from ganforge.marks import GRID, TENSOR_FILE, OutputMark, mark_tensor_file
from ganforge.outputs import check_output_file, write_output_file
from ganforge.plugins import Plugins


def sample(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path, typer.Argument(help="A checkpoint, e.g. runs/NAME/checkpoints/last.pt, or a ganforge export folder.")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="grid.png for a grid; samples.pt for a tensor. New, or a file ganforge sample wrote; never an input, "
            "a checkpoint or a file of a run folder.",
        ),
    ],
    n: Annotated[int, typer.Option("--n", min=1, help="How many images.")] = 100,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed of the noise.")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    ema: Annotated[bool, typer.Option("--ema/--no-ema", help="Use the EMA generator when the run kept one.")] = True,
    truncation: Annotated[
        float,
        typer.Option(
            "--truncation",
            help="psi in (0, 1]: each noise vector scaled by psi towards the mean, 0 (the truncation trick): more "
            "typical images, less variety. 1 = none.",
        ),
    ] = 1.0,
    interpolate: Annotated[
        int | None,
        typer.Option(
            "--interpolate",
            help="STEPS: walks along great circles (slerp) between random noise vectors, STEPS images each, one "
            "walk per grid row; --n must be a multiple of STEPS.",
        ),
    ] = None,
    classes: Annotated[
        list[str] | None,
        typer.Option(
            "--class",
            "--classes",
            help="Conditional generators: the class to draw, by name (Sneaker) or index (7); repeat it or use "
            "commas (0,1,2) for several, 'all' for every class. --n is split evenly over them, one grid row per "
            "class. Without it, each class in turn.",
        ),
    ] = None,
) -> None:
    """Generate images from a checkpoint alone: no dataset needed."""
    check_output_file(out, "--out", output_mark(out), inputs=[checkpoint])
    check_sample_options(out, n, truncation, interpolate)
    torch_device = resolve_device(device, option="--device")
    plugins: Plugins = ctx.obj
    generator = load_generator(checkpoint, plugins.registry, use_ema=ema)
    as_grid = out.suffix.lower() == ".png"
    check_room_for(generator, n, as_grid=as_grid, device=torch_device)
    labels, columns = labels_and_columns(generator, classes, n, interpolate)
    images = generator.sample(n, seed, torch_device, truncation=truncation, walk_steps=interpolate, labels=labels)
    write_images(images, out, checkpoint, as_grid=as_grid, columns=columns)
    console.print(f"{n} images {tuple(images.shape[1:])} -> {out}", highlight=False)


def check_sample_options(out: Path, n: int, truncation: float, interpolate: int | None) -> None:
    """What the options ask for together can be done: a grid or a tensor file, a psi, whole walks."""
    if out.suffix.lower() not in (".png", ".pt"):
        raise UsageError(f"--out {out}: use a .png (a grid) or a .pt (a tensor [N, C, H, W] in [-1, 1])")
    if not 0.0 < truncation <= 1.0:  # also refuses nan
        raise UsageError(f"--truncation {truncation}: psi must be in (0, 1]; 1 = no truncation")
    if interpolate is not None and (interpolate < 2 or n % interpolate):
        raise UsageError(
            f"--interpolate {interpolate} with --n {n}: a walk has at least 2 images and --n is a whole number of "
            f"walks (e.g. --interpolate 10 --n 100 for 10 walks of 10)"
        )


def check_room_for(generator: CheckpointGenerator, n: int, *, as_grid: bool, device: torch.device) -> None:
    """Refuses, before generating, n images (and their grid) that this machine's memory cannot hold."""
    check_request_fits(
        f"--n {n}: {n:,} images{' in one grid' if as_grid else ''}",
        generator.host_bytes(n) + (grid_bytes(n, generator.spec) if as_grid else tensor_file_bytes(n, generator)),
        advice="ask for fewer with --n",
        device=device,
        device_bytes=generator.device_bytes(),
    )


def tensor_file_bytes(n: int, generator: CheckpointGenerator) -> int:
    """The tensor file of ``n`` images, held whole in memory before it is written (see tensor_file_writer)."""
    return FLOAT_BYTES * n * math.prod(generator.spec.shape)


def labels_and_columns(
    generator: CheckpointGenerator, classes: list[str] | None, n: int, interpolate: int | None
) -> tuple[torch.Tensor | None, int | None]:
    """The class of each image --class asks for (None without it), and the grid's columns: one walk per row with
    --interpolate, else one class per row when several are drawn (None: the grid chooses)."""
    if not classes:
        return None, interpolate
    asked = [part for text in classes for part in text.split(",") if part.strip()]
    labels = generator.class_labels(asked, n)
    distinct = len(labels.unique_consecutive())
    if interpolate is None and distinct > 1:
        return labels, n // distinct
    return labels, interpolate


def output_mark(out: Path) -> OutputMark:
    """The mark of what --out will hold, by its suffix (checked already): a grid, or a tensor file."""
    return GRID if out.suffix.lower() == ".png" else TENSOR_FILE


def write_images(images: torch.Tensor, out: Path, checkpoint: Path, *, as_grid: bool, columns: int | None) -> None:
    """The images as a PNG grid, or as a tensor file; written whole or not at all, both marked as ganforge's."""
    write = grid_writer(images, out.suffix, columns) if as_grid else tensor_file_writer(images)
    write_output_file(out, "--out", output_mark(out), write, inputs=[checkpoint])


def tensor_file_writer(images: torch.Tensor) -> Callable[[IO[bytes]], None]:
    """What writes ``images`` as torch's file of one tensor, marked (a second copy of them is made in memory)."""
    archive = io.BytesIO()
    torch.save(images, archive)
    mark_tensor_file(archive)
    return lambda stream: stream.write(archive.getbuffer())
