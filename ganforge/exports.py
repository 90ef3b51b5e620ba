"""A trained generator to hand to someone else: a folder that holds nothing that unpickles.

``ganforge export`` writes the generator's weights as safetensors (its EMA copy where the run kept
one), a JSON manifest (the run's config, the data spec, where the generator stood, the plugin that
provides its architecture, the scores of its evaluation with their protocol and real floor, and
the weights file's SHA-256), a grid of samples and a model card. ``ganforge sample DIR`` and
``ganforge eval DIR`` read the folder as they read a checkpoint; the architecture is built from
the registry, so its plugin must be installed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ganforge.checkpoints.fields import SavedGenerator
from ganforge.documents import read_document_bytes
from ganforge.export_manifest import (
    EXPORT_FORMAT,
    EXPORT_VERSION,
    MANIFEST,
    WEIGHTS,
    ExportError,
    ExportManifest,
    read_manifest,
)

__all__ = ["EXPORT_FORMAT", "EXPORT_VERSION", "MANIFEST", "WEIGHTS", "ExportError", "ExportManifest"]

GRID = "samples.png"
CARD = "README.md"
# The generator's weights are read whole, to be hashed and then parsed: 4 GiB holds a generator of a billion
# float32 parameters, over ten times the largest ganforge trains.
WEIGHTS_LIMIT = 4 << 30
# An absolute path of the exporting machine inside a text (its cache, its data folder): every part but the last.
_MACHINE_PATH = re.compile(r"(?<![\w.~:/])/(?:[^\s/'\"()]+/)+(?=[^\s/'\"()]+)")


def is_export(path: Path) -> bool:
    """Whether ``path`` is a folder ``ganforge export`` wrote: it holds a manifest (which may then be refused:
    a folder, a link or a device in its place is named as such, not taken for a missing checkpoint)."""
    manifest = path / MANIFEST
    return path.is_dir() and (manifest.exists() or manifest.is_symlink())


@dataclass(frozen=True)
class ExportContents:
    """What an export holds besides its grid and card: the manifest's fields and the generator's weights."""

    manifest: ExportManifest
    weights: dict[str, torch.Tensor]


def read_export(folder: Path) -> ExportContents:
    """The manifest and weights of an export, the weights checked against the SHA-256 the manifest records."""
    manifest = read_manifest(folder / MANIFEST)
    return ExportContents(manifest, read_weights(folder / WEIGHTS, manifest.files.weights))


def read_weights(path: Path, expected_sha256: str) -> dict[str, torch.Tensor]:
    """The tensors of an export's safetensors file: bounded, not through a link, as hashed, and all finite."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    data = read_document_bytes(path, WEIGHTS_LIMIT, "export weights", ExportError)  # read once: hashed, then parsed
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ExportError(
            f"{path} has SHA-256 {actual}, but {MANIFEST} records {expected_sha256}: the weights were altered or "
            "damaged after export; export the checkpoint again"
        )
    try:
        weights = load(data)
    except (SafetensorError, ValueError) as error:
        raise ExportError(f"{path} cannot be read as safetensors: {error}") from None
    bad = non_finite_tensor(weights)
    if bad is not None:
        raise ExportError(f"{path}: tensor {bad!r} holds NaN or infinite values; such a generator draws no images")
    return weights


def non_finite_tensor(weights: Mapping[str, Any]) -> str | None:
    """The name of the first floating-point tensor in ``weights`` holding a NaN or an infinity; None if all finite."""
    for name, tensor in weights.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            return str(name)
    return None


@dataclass(frozen=True)
class GeneratorToExport:
    """A loaded generator and what its checkpoint says about it."""

    generator: nn.Module
    saved: SavedGenerator  # the checkpoint's config, data spec, epoch, step, ganforge version
    latent_dim: int
    uses_ema: bool
    num_classes: int | None  # a conditional generator's classes
    architecture: Mapping[str, str]  # name, distribution, version: the plugin that builds it
    scores: Mapping[str, Any] | None  # the evaluation record of this step (values, floor, protocol), if any


def fill_export(
    source: GeneratorToExport, folder: Path, draw_grid: Callable[[Path], None], ganforge_version: str
) -> None:
    """Write the files of an export into ``folder``, a fresh one (the command renames it into place when done).

    Weights that are not all finite are refused before anything is written: such a generator draws no images.
    """
    from safetensors.torch import save

    weights = {name: tensor.detach().cpu().contiguous() for name, tensor in source.generator.state_dict().items()}
    bad = non_finite_tensor(weights)
    if bad is not None:
        raise ExportError(
            f"the generator's tensor {bad!r} holds NaN or infinite values, so it is not exported: the run diverged "
            "before this checkpoint; export an earlier one"
        )
    data = save(weights, metadata={"format": EXPORT_FORMAT})
    (folder / WEIGHTS).write_bytes(data)
    manifest = export_manifest(source, hashlib.sha256(data).hexdigest(), ganforge_version)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    draw_grid(folder / GRID)
    (folder / CARD).write_text(model_card(manifest), encoding="utf-8")


def export_manifest(source: GeneratorToExport, weights_sha256: str, ganforge_version: str) -> dict[str, Any]:
    """ganforge.json's fields (read back as ``ExportManifest``), with no absolute path of this machine in them."""
    saved = source.saved
    manifest = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "ganforge_version": ganforge_version,
        "trained_with_ganforge": saved.ganforge_version,
        "architecture": dict(source.architecture),
        "generator": "ema" if source.uses_ema else "generator",
        "epoch": saved.epoch,
        "step": saved.step,
        "latent_dim": source.latent_dim,
        "num_classes": source.num_classes,
        "data_spec": saved.data_spec.model_dump(),
        "config": in_schema_order(without_machine_paths(saved.config.model_dump())),
        "scores": machine_paths_shortened(dict(source.scores)) if source.scores is not None else None,
        "files": {WEIGHTS: weights_sha256},
    }
    ExportManifest.model_validate(manifest)  # what is written reads back: a mistake here is ganforge's, not the user's
    return manifest


def without_machine_paths(config: Any) -> Any:
    """The config, less every value that is an absolute path of this machine (a data root, an output folder): the
    one who runs the export has their own, and the defaults (``$GANFORGE_DATA``, ``runs/NAME``) find them."""
    if isinstance(config, dict):
        return {key: without_machine_paths(value) for key, value in config.items() if not _is_machine_path(value)}
    if isinstance(config, list):
        return [without_machine_paths(value) for value in config]
    return config


def machine_paths_shortened(record: Any) -> Any:
    """The record with each absolute path in its texts cut to the file's name: a cached feature network is named
    by its file and its SHA-256, not by where this machine keeps it."""
    if isinstance(record, dict):
        return {key: machine_paths_shortened(value) for key, value in record.items()}
    if isinstance(record, list):
        return [machine_paths_shortened(value) for value in record]
    return _MACHINE_PATH.sub("", record) if isinstance(record, str) else record


def in_schema_order(config: dict[str, Any]) -> dict[str, Any]:
    """The config's sections in the order a config file has them (name, seed, data, model, ...), for its reader."""
    from ganforge.config.schema import RunConfig

    known = [key for key in RunConfig.model_fields if key in config]
    return {key: config[key] for key in [*known, *(key for key in config if key not in known)]}


def _is_machine_path(value: Any) -> bool:
    return isinstance(value, str) and (Path(value).is_absolute() or value.startswith("~"))


def model_card(manifest: Mapping[str, Any]) -> str:
    """README.md of an export: what the generator is, how it scored, how to use it, and the recipe."""
    config, spec, architecture = manifest["config"], manifest["data_spec"], manifest["architecture"]
    which = "its EMA copy" if manifest["generator"] == "ema" else "the generator as trained (no EMA)"
    lines = [
        f"# {config.get('name', 'A generator')}: a generator trained with ganforge",
        "",
        f"Architecture `{architecture['name']}` from `{architecture['distribution']}=={architecture['version']}`, "
        f"trained on `{config['data']['name']}` for {manifest['epoch']} epochs ({manifest['step']} steps) with "
        f"ganforge {manifest['trained_with_ganforge']}; the weights are {which}. It draws images of shape "
        f"{list(spec['shape'])} in [-1, 1] from noise of dimension {manifest['latent_dim']}.",
    ]
    conditional = manifest.get("num_classes") is not None
    if conditional:
        names = spec.get("class_names")
        classes = ", ".join(names) if names else "asked for by index"
        lines += ["", f"Class-conditional, {manifest['num_classes']} classes: {classes}."]
    lines += ["", f"![samples]({GRID})", "", "## Scores", ""]
    lines += scores_section(manifest.get("scores"))
    install = "pip install ganforge"
    if architecture["distribution"] != "ganforge":
        install += f" {architecture['distribution']}=={architecture['version']}"
    lines += [
        "",
        "## Use it",
        "",
        "```bash",
        install,
        "ganforge sample . --n 16 --out grid.png" + (" --class 0" if conditional else ""),
        "ganforge eval .          # the scores above, measured again",
        "```",
        "",
        f"`{WEIGHTS}` is a safetensors file (SHA-256 `{manifest['files'][WEIGHTS]}`) holding the "
        f"generator's state dict; `{MANIFEST}` holds everything else ganforge reads. Nothing here is pickled.",
        "",
        "## Recipe",
        "",
        "```yaml",
        yaml.safe_dump(config, sort_keys=False).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def scores_section(scores: Mapping[str, Any] | None) -> list[str]:
    if not scores:
        return ["Not evaluated: the run scored no evaluation at this step. `ganforge eval .` scores it."]
    protocol = scores.get("protocol", {})
    values, floor = scores["values"], scores.get("floor", {})
    lines = [
        f"Measured after epoch {scores['epoch']} on {protocol.get('generated', 'generated samples')}, "
        f"against {protocol.get('reference', 'the reference images')}; the real floor is "
        f"{protocol.get('floor', 'real images against the reference')}.",
        "",
        "| metric | generated | real floor |",
        "| --- | --- | --- |",
    ]
    for name, value in values.items():
        lines.append(f"| {name} | {_number(value)} | {_number(floor.get(name))} |")
    from ganforge.evaluation.protocol import describe_feature_networks

    described = describe_feature_networks(protocol)
    if described:
        lines += ["", *(f"- {line}" for line in described)]
    return lines


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"
