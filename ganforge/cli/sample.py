"""The ``sample`` command: images from a checkpoint alone, as a grid or a tensor file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import torch
import typer

from ganforge.cli.render import console
from ganforge.contracts import MAX_SEED
from ganforge.devices import resolve_device
from ganforge.errors import UsageError
from ganforge.files import write_atomically
from ganforge.generation import load_generator
from ganforge.grids import grid_bytes, save_grid
from ganforge.guards.memory import check_request_fits
from ganforge.outputs import check_output_file, reported_write_failure
from ganforge.plugins import Plugins


def sample(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path, typer.Argument(help="A checkpoint, e.g. runs/NAME/checkpoints/last.pt, or a ganforge export folder.")
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="grid.png for a grid; samples.pt for a tensor. Never an input or a checkpoint."
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
    plugins: Plugins = ctx.obj
    as_grid = out.suffix.lower() == ".png"
    if not as_grid and out.suffix.lower() != ".pt":
        raise UsageError(f"--out {out}: use a .png (a grid) or a .pt (a tensor [N, C, H, W] in [-1, 1])")
    if not 0.0 < truncation <= 1.0:  # also refuses nan
        raise UsageError(f"--truncation {truncation}: psi must be in (0, 1]; 1 = no truncation")
    if interpolate is not None and (interpolate < 2 or n % interpolate):
        raise UsageError(
            f"--interpolate {interpolate} with --n {n}: a walk has at least 2 images and --n is a whole number of "
            f"walks (e.g. --interpolate 10 --n 100 for 10 walks of 10)"
        )
    check_output_file(out, "--out", inputs=[checkpoint])
    torch_device = resolve_device(device, option="--device")
    generator = load_generator(checkpoint, plugins.registry, use_ema=ema)
    check_request_fits(
        f"--n {n}: {n:,} images{' in one grid' if as_grid else ''}",
        generator.host_bytes(n) + (grid_bytes(n, generator.spec) if as_grid else 0),
        advice="ask for fewer with --n",
        device=torch_device,
        device_bytes=generator.device_bytes(),
    )
    labels, columns = None, interpolate
    if classes:
        asked = [part for text in classes for part in text.split(",") if part.strip()]
        labels = generator.class_labels(asked, n)
        distinct = len(labels.unique_consecutive())
        if interpolate is None and distinct > 1:
            columns = n // distinct  # one row per class
    images = generator.sample(n, seed, torch_device, truncation=truncation, walk_steps=interpolate, labels=labels)
    with reported_write_failure(out, "--out"):
        if as_grid:
            save_grid(images, out, columns=columns)
        else:
            write_atomically(out, lambda stream: torch.save(images, stream))
    console.print(f"{n} images {tuple(images.shape[1:])} -> {out}", highlight=False)
