"""Every class of bad config: exit code 2, a message naming the file and the field, no traceback,
and no run folder left behind."""

import textwrap

import pytest
from typer.testing import CliRunner

GOOD = """
name: tiny
data: {name: synthetic, params: {num_samples: 64, num_classes: 2}}
model: {name: mlp, params: {latent_dim: 8, hidden: [16]}}
train: {epochs: 1, batch_size: 16, device: cpu}
"""


def write_config(directory, text):
    path = directory / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize(
    ("text", "overrides", "expected"),
    [
        (GOOD + "trian: {epochs: 3}\n", [], ["trian", "Extra inputs are not permitted", "accepted keys: name, seed"]),
        (GOOD.replace("epochs: 1", "epoch: 1"), [], ["train.epoch", "accepted keys: epochs, batch_size"]),
        (GOOD.replace("name: mlp", "name: mpl"), [], ["model.name", "unknown architecture 'mpl'", "did you mean"]),
        (GOOD.replace("epochs: 1", "epochs: many"), [], ["train.epochs", "valid integer", "'many'"]),
        (GOOD.replace("batch_size: 16", "batch_size: 0"), [], ["train.batch_size", "greater than or equal to 1"]),
        (GOOD.replace("latent_dim: 8", "latent_dim: -1"), [], ["model.params.latent_dim", "greater than 0"]),
        (GOOD.replace("hidden: [16]", "hidden: [16], depth: 3"), [], ["model.params.depth", "accepted keys"]),
        (GOOD.replace("name: synthetic", "name: synthetic, parms: {}"), [], ["data.parms"]),
        (GOOD.replace("device: cpu}", "device: cpu"), [], ["not valid YAML", "line"]),
        ("- just\n- a list\n", [], ["expected a mapping"]),
        (GOOD.replace("name: tiny\n", ""), [], ["name", "Field required"]),
        (GOOD, ["train.epochs=0"], ["train.epochs", "greater than or equal to 1"]),
        (GOOD, ["loss.name=hinj"], ["loss.name", "did you mean 'hinge'"]),
        (GOOD, ["train.epochs"], ["--set expects dotted.key=value"]),
        (GOOD, ["name.sub=1"], ["--set name.sub", "name is not a section"]),
        (GOOD, ["train.device=cuda:7"], ["train.device", "cuda:7"]),
    ],
)
def test_bad_configs_exit_2_naming_the_field(app, workdir, text, overrides, expected):
    path = write_config(workdir, text)
    args = ["run", str(path)] + [item for override in overrides for item in ("--set", override)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    if not any(fragment.startswith(("--set", "train.device")) for fragment in expected):
        assert str(path) in result.stderr  # errors of the file name the file
    for fragment in expected:
        assert fragment in result.stderr
    assert "Traceback" not in result.output
    assert not (workdir / "runs").exists()


def test_a_missing_config_file(app, workdir):
    result = CliRunner().invoke(app, ["validate", "nowhere.yaml"])
    assert result.exit_code == 2
    assert "cannot read config nowhere.yaml" in result.stderr


def test_validate_accepts_a_good_config_and_writes_nothing(app, workdir):
    path = write_config(workdir, GOOD)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout
    assert sorted(p.name for p in workdir.iterdir()) == ["config.yaml"]


def test_every_example_config_validates(app, monkeypatch):
    from pathlib import Path

    examples = sorted((Path(__file__).parent.parent / "examples").glob("*.yaml"))
    assert {p.name for p in examples} >= {"mnist_mlp.yaml", "mnist_dcgan.yaml", "fashion_dcgan.yaml", "smoke.yaml"}
    for example in examples:
        result = CliRunner().invoke(app, ["validate", str(example)])
        assert result.exit_code == 0, result.output


def test_schema_is_json_with_every_section(app):
    import json

    schema = json.loads(CliRunner().invoke(app, ["schema"]).stdout)
    assert {"name", "seed", "data", "model", "loss", "optim", "train", "output"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False
