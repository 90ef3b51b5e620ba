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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ganforge.checkpoints.format import check_saved_format
from ganforge.errors import GanforgeError

EXPORT_FORMAT = "ganforge-export"
EXPORT_VERSION = 1
MANIFEST = "ganforge.json"
WEIGHTS = "generator.safetensors"
GRID = "samples.png"
CARD = "README.md"


class ExportError(GanforgeError):
    """An export folder that cannot be read: damaged, altered, or of another format."""


def is_export(path: Path) -> bool:
    """Whether ``path`` is a folder ``ganforge export`` wrote (it holds the manifest)."""
    return path.is_dir() and (path / MANIFEST).is_file()


@dataclass(frozen=True)
class ExportContents:
    """What an export holds besides its grid and card: the manifest's fields and the generator's weights."""

    manifest: dict[str, Any]
    weights: dict[str, torch.Tensor]


def read_export(folder: Path) -> ExportContents:
    """The manifest and weights of an export, the weights checked against the SHA-256 the manifest records."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportError(f"{manifest_path} cannot be read as JSON: {error}") from None
    check_saved_format(manifest, manifest_path, "export manifest", EXPORT_FORMAT, EXPORT_VERSION, ExportError)
    for field in ("config", "data_spec", "latent_dim", "num_classes", "epoch", "step", "generator", "files"):
        if field not in manifest:
            raise ExportError(f"{manifest_path} has no {field!r}: the export is damaged; export the checkpoint again")
    weights_path = folder / WEIGHTS
    expected = manifest["files"].get(WEIGHTS) if isinstance(manifest["files"], dict) else None
    if not weights_path.is_file():
        raise ExportError(f"{folder} has no {WEIGHTS}: the export is incomplete; export the checkpoint again")
    data = weights_path.read_bytes()  # read once: hashed, then parsed
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise ExportError(
            f"{weights_path} has SHA-256 {actual}, but {MANIFEST} records {expected}: the weights were altered or "
            "damaged after export; export the checkpoint again"
        )
    try:
        weights = load(data)
    except (SafetensorError, ValueError) as error:
        raise ExportError(f"{weights_path} cannot be read as safetensors: {error}") from None
    return ExportContents(manifest, weights)


@dataclass(frozen=True)
class GeneratorToExport:
    """A loaded generator and what its checkpoint says about it."""

    generator: nn.Module
    state: Mapping[str, Any]  # the checkpoint's config, data_spec, latent_dim, epoch, step, ganforge_version
    uses_ema: bool
    num_classes: int | None  # a conditional generator's classes
    architecture: Mapping[str, str]  # name, distribution, version: the plugin that builds it
    scores: Mapping[str, Any] | None  # the evaluation record of this step (values, floor, protocol), if any


def fill_export(
    source: GeneratorToExport, folder: Path, draw_grid: Callable[[Path], None], ganforge_version: str
) -> None:
    """Write the files of an export into ``folder``, a fresh one (the command renames it into place when done)."""
    from safetensors.torch import save

    weights = {name: tensor.detach().cpu().contiguous() for name, tensor in source.generator.state_dict().items()}
    data = save(weights, metadata={"format": EXPORT_FORMAT})
    (folder / WEIGHTS).write_bytes(data)
    manifest = export_manifest(source, hashlib.sha256(data).hexdigest(), ganforge_version)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    draw_grid(folder / GRID)
    (folder / CARD).write_text(model_card(manifest), encoding="utf-8")


def export_manifest(source: GeneratorToExport, weights_sha256: str, ganforge_version: str) -> dict[str, Any]:
    state = source.state
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "ganforge_version": ganforge_version,
        "trained_with_ganforge": state.get("ganforge_version"),
        "architecture": dict(source.architecture),
        "generator": "ema" if source.uses_ema else "generator",
        "epoch": state["epoch"],
        "step": state["step"],
        "latent_dim": state["latent_dim"],
        "num_classes": source.num_classes,
        "data_spec": state["data_spec"],
        "config": state["config"],
        "scores": dict(source.scores) if source.scores is not None else None,
        "files": {WEIGHTS: weights_sha256},
    }


def model_card(manifest: Mapping[str, Any]) -> str:
    """README.md of an export: what the generator is, how it scored, how to use it, and the recipe."""
    config, spec, architecture = manifest["config"], manifest["data_spec"], manifest["architecture"]
    which = "its EMA copy" if manifest["generator"] == "ema" else "the generator as trained (no EMA)"
    lines = [
        f"# {config['name']}: a generator trained with ganforge",
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
        lines.append(
            f"| {name} | {value:.4g} | {floor[name]:.4g} |" if name in floor else f"| {name} | {value:.4g} | |"
        )
    from ganforge.evaluation.protocol import describe_feature_networks

    described = describe_feature_networks(protocol)
    if described:
        lines += ["", *(f"- {line}" for line in described)]
    return lines
