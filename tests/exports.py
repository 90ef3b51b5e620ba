"""An export made once from a tiny conditional run, and copies of it with a manifest or weights of one's own:
the helpers of the tests that hand ganforge hostile exports."""

import json
import shutil
from pathlib import Path

import torch

from tests.cli_results import invoke
from tests.runs import SMOKE

MANIFEST = "ganforge.json"
WEIGHTS = "generator.safetensors"
CONDITIONAL = ["model.params.generator_conditioning=batch_norm", "model.params.discriminator_conditioning=projection"]
# What an evaluated run's export records beside its weights: present, so that its fields are tried too.
SCORES = {
    "epoch": 1,
    "step": 4,
    "values": {"fid": 12.5, "class_accuracy": 0.75},
    "floor": {"fid": 1.5, "class_accuracy": 0.9},
    "protocol": {"generated": "64 samples", "reference": "64 held-out images", "floor": "64 training images"},
}


def make_export(app, folder: Path) -> Path:
    """A conditional smoke run of one epoch, exported, with a scores record and class names in its manifest."""
    args = ["run", SMOKE, "--quiet", "--set", f"output.dir={folder / 'run'}", "--set", "train.epochs=1"]
    for override in CONDITIONAL:
        args += ["--set", override]
    invoke(app, *args)
    export = folder / "export"
    invoke(app, "export", folder / "run", "--out", export)
    manifest = json.loads((export / MANIFEST).read_text(encoding="utf-8"))
    manifest["scores"] = SCORES
    manifest["data_spec"]["class_names"] = ["circle", "square", "stripe", "dot"]
    (export / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return export


def copy_with(export: Path, folder: Path, manifest: bytes | None = None) -> Path:
    """A copy of ``export`` in ``folder``, its manifest replaced by ``manifest`` (bytes as given) where one is."""
    shutil.copytree(export, folder)
    if manifest is not None:
        (folder / MANIFEST).write_bytes(manifest)
    return folder


def with_weights(export: Path, folder: Path, change) -> Path:
    """A copy of ``export`` whose weights are ``change(weights)``, its manifest recording their new SHA-256."""
    import hashlib

    from safetensors.torch import load, save

    copy = copy_with(export, folder)
    weights = change(load((export / WEIGHTS).read_bytes()))
    data = save(weights)
    (copy / WEIGHTS).write_bytes(data)
    manifest = json.loads((copy / MANIFEST).read_text(encoding="utf-8"))
    manifest["files"][WEIGHTS] = hashlib.sha256(data).hexdigest()
    (copy / MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return copy


def poisoned(weights: dict[str, torch.Tensor], value: float) -> dict[str, torch.Tensor]:
    """The weights with ``value`` (NaN, an infinity) in the first value of their last floating-point tensor."""
    name = [key for key, tensor in weights.items() if tensor.is_floating_point()][-1]
    tensor = weights[name].clone()
    tensor.view(-1)[0] = value
    return {**weights, name: tensor}
