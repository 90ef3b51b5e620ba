"""A small valid config written to a folder, and `ganforge validate` / `run` invoked on it: a refusal is
checked the same way by every test of hostile settings (exit 2, an error line, no traceback)."""

import textwrap

import yaml
from typer.testing import CliRunner

from tests.runs import SMOKE

GOOD = """
name: tiny
data: {name: synthetic, params: {num_samples: 64, num_classes: 2}}
model: {name: mlp, params: {latent_dim: 8, hidden: [16]}}
train: {epochs: 1, batch_size: 16, device: cpu}
"""
LONGEST_MESSAGE = 2500  # characters: a few lines, whatever the size of the input


def write(directory, text, name="config.yaml"):
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def invoke(app, *args):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def validate(app, path, *overrides):
    return invoke(app, "validate", path, *[item for override in overrides for item in ("--set", override)])


def refused(app, path, *overrides, command="validate", options=()):
    args = [command, path, *(["--quiet"] if command == "run" else []), *options]
    result = invoke(app, *args, *[item for override in overrides for item in ("--set", override)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") or "\nerror: " in result.output, result.output
    return result.stderr


def tiny_config(directory, name="safety", **sections):
    config = {
        "name": name,
        "seed": 0,
        "data": {"name": "synthetic", "params": {"num_samples": 64, "num_classes": 4, "size": 8}},
        "model": {"name": "mlp", "params": {"latent_dim": 8, "hidden": [16]}},
        "loss": {"name": "non_saturating"},
        "train": {"epochs": 1, "batch_size": 16, "device": "cpu", "log_every": 2},
        **sections,
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def refused_before_training(app, workdir, *overrides):
    args = ["run", str(SMOKE), "--quiet"]
    for override in overrides:
        args += ["--set", override]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "epoch 1" not in result.output
    return result.output
