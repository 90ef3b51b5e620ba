"""The ``export`` command: a run's generator as a folder to share, with nothing in it that unpickles."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from ganforge import __version__
from ganforge.cli.render import console
from ganforge.devices import resolve_device
from ganforge.documents import validated
from ganforge.errors import UsageError
from ganforge.export_manifest import ExportError, ScoresRecord
from ganforge.exports import GeneratorToExport, fill_export, is_export
from ganforge.generation import CheckpointGenerator, load_generator
from ganforge.grids import save_grid
from ganforge.outputs import check_output_folder, write_output_folder
from ganforge.plugins import Plugins
from ganforge.registry import Kind
from ganforge.training.run_folder import RunFolder, evaluation_values

GRID_COLUMNS = 10
GRID_IMAGES = 100


def export(
    ctx: typer.Context,
    target: Annotated[Path, typer.Argument(help="A run folder (its checkpoints/last.pt) or a checkpoint file.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="A new (or empty) folder for the export, outside any run folder.")
    ],
    ema: Annotated[bool, typer.Option("--ema/--no-ema", help="Export the EMA generator when the run kept one.")] = True,
    device: Annotated[
        str, typer.Option("--device", help="Where the sample grid is drawn: auto, cpu, cuda, mps.")
    ] = "auto",
) -> None:
    """Export a generator: safetensors weights, its config and data spec as JSON, a sample grid, a model card."""
    plugins: Plugins = ctx.obj
    if is_export(target):
        raise UsageError(f"{target} is an export already; give the run folder or checkpoint it came from")
    checkpoint = RunFolder(target).checkpoint_path() if target.is_dir() else target
    check_output_folder(out, "--out")
    torch_device = resolve_device(device, option="--device")
    loaded = load_generator(checkpoint, plugins.registry, use_ema=ema)
    model_name = loaded.saved.config.model.name
    provider = plugins.registry.get(Kind.ARCHITECTURE, model_name).provider
    source = GeneratorToExport(
        generator=loaded.generator,
        saved=loaded.saved,
        latent_dim=loaded.latent_dim,
        uses_ema=loaded.uses_ema,
        num_classes=loaded.num_classes,
        architecture={"name": model_name, "distribution": provider.distribution, "version": provider.version},
        scores=evaluation_at(checkpoint, loaded.saved.step),
    )
    write_output_folder(
        out,
        "--out",
        lambda folder: fill_export(source, folder, lambda path: draw_grid(loaded, path, torch_device), __version__),
    )
    console.print(f"{loaded.describe()} -> {out}", highlight=False)


def draw_grid(loaded: CheckpointGenerator, path: Path, device: Any) -> None:
    """The card's samples from noise seed 0: one row per class for a conditional generator of up to 10 classes."""
    labels = None
    if loaded.num_classes is not None and loaded.num_classes <= GRID_IMAGES // GRID_COLUMNS:
        labels = loaded.class_labels(["all"], loaded.num_classes * GRID_COLUMNS)
    count = GRID_IMAGES if labels is None else len(labels)
    save_grid(loaded.sample(count, 0, device, labels=labels), path, columns=GRID_COLUMNS)


def evaluation_at(checkpoint: Path, step: int) -> Mapping[str, Any] | None:
    """The run's evaluation of the checkpoint's step (values, floor, protocol), where the run folder logged one;
    an ExportError names the line's field that the manifest could not hold."""
    run = checkpoint.parent.parent
    if checkpoint.parent.name != "checkpoints" or not (run / "config.yaml").is_file():
        return None
    found = None
    for record in RunFolder(run).metrics.read():
        if record["event"] == "eval" and record["step"] == step and isinstance(record.get("floor"), dict):
            found = record
    if found is None:
        return None
    scores = {
        "epoch": found.get("epoch"),
        "step": found.get("step"),
        "values": evaluation_values(found),
        "floor": found["floor"],
        "protocol": found.get("protocol", {}),
    }
    where = f"the evaluation at step {step} in {RunFolder(run).metrics.path}"
    validated(scores, ScoresRecord, where, ExportError)
    return scores
