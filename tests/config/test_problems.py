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
    assert "config nowhere.yaml does not exist" in result.stderr


def test_validate_accepts_a_good_config_and_writes_nothing(app, workdir):
    path = write_config(workdir, GOOD)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout
    assert sorted(p.name for p in workdir.iterdir()) == ["config.yaml"]


def test_every_example_config_validates(app, monkeypatch):
    from pathlib import Path

    examples = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))
    assert {p.name for p in examples} >= {"mnist_mlp.yaml", "mnist_dcgan.yaml", "fashion_dcgan.yaml", "smoke.yaml"}
    for example in examples:
        result = CliRunner().invoke(app, ["validate", str(example)])
        assert result.exit_code == 0, result.output


def test_schema_is_json_with_every_section(app):
    import json

    schema = json.loads(CliRunner().invoke(app, ["schema"]).stdout)
    assert {"name", "seed", "data", "model", "loss", "optim", "train", "output"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


# -- every problem at once -------------------------------------------------------------------------

MANY_PROBLEMS = """
name: tiny
model: {name: mlp, params: {latent_dim: -1, hiden: [16]}}
loss: {name: hinj}
train: {epochs: 0, batch_size: 16, device: cpu}
eval: {metrics: [fid, {name: kid, params: {bogus: 1}}, nope]}
"""
EVERY_PROBLEM = [
    "data: Field required",
    "train.epochs: Input should be greater than or equal to 1",
    "invalid params for architecture 'mlp'",
    "model.params.latent_dim: Input should be greater than 0",
    "model.params.hiden: Extra inputs are not permitted",
    "loss.name: unknown loss 'hinj'; did you mean 'hinge'?",
    "invalid params for metric 'kid'",
    "eval.metrics.1.params.bogus: Extra inputs are not permitted",
    "eval.metrics.2.name: unknown metric 'nope'",
]


@pytest.mark.parametrize("command", ["validate", "run"])
def test_every_problem_of_a_config_is_reported_at_once(app, workdir, command):
    path = write_config(workdir, MANY_PROBLEMS)
    result = CliRunner().invoke(app, [command, str(path)])
    assert result.exit_code == 2, result.output
    assert result.stderr.count(f"{path} is invalid:") == 1
    for fragment in EVERY_PROBLEM:
        assert fragment in result.stderr
    assert "more problems" not in result.stderr  # nothing left out
    assert "Traceback" not in result.output
    assert not (workdir / "runs").exists()


def test_a_missing_section_no_longer_hides_a_bad_param(registry, workdir):
    from ganforge.config import InvalidConfigError, load_config

    path = write_config(
        workdir, GOOD.replace("data: {name: synthetic, params: {num_samples: 64, num_classes: 2}}\n", "")
    )
    with pytest.raises(InvalidConfigError) as raised:
        load_config(path, registry, ["model.params.latent_dim=0"])
    assert [problem.where for problem in raised.value.problems] == ["data", "model.params"]
    assert raised.value.leftover_params == ()
    assert "data: Field required" in str(raised.value) and "model.params.latent_dim" in str(raised.value)


def test_a_section_the_schema_rejects_is_named_once_not_looked_up(registry, workdir):
    from ganforge.config import InvalidConfigError, load_config

    path = write_config(workdir, GOOD.replace("name: mlp,", "name: mlp, parms: {},"))
    with pytest.raises(InvalidConfigError) as raised:
        load_config(path, registry, ["loss.name=hinj"])
    assert [problem.where for problem in raised.value.problems] == ["model.parms", "loss.name"]


def test_a_long_report_stays_short_and_says_where_the_rest_are(app, workdir):
    unknown = ", ".join(f"metric{index}" for index in range(30))
    path = write_config(workdir, GOOD + f"eval: {{metrics: [{unknown}]}}\n")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "eval.metrics.0.name: unknown metric 'metric0'" in result.stderr
    shown, rest = result.stderr.split("  ... and more problems, at ")
    assert "unknown metric 'metric29'" not in shown and rest.startswith("eval.metrics.")
    assert len(result.stderr) < 2500


# -- a component renamed with --set, its params left from the file ---------------------------------


@pytest.mark.parametrize(
    ("text", "rename", "expected"),
    [
        (GOOD, "model.name=dcgan", "--set model.name=dcgan kept the model.params the file wrote for 'mlp' (hidden)"),
        (GOOD, "data.name=mnist", "--set data.name=mnist kept the data.params the file wrote for 'synthetic'"),
        (
            GOOD + "loss: {name: wgan_gp, params: {gradient_penalty: 5}}\n",
            "loss.name=hinge",
            "--set loss.name=hinge kept the loss.params the file wrote for 'wgan_gp' (gradient_penalty)",
        ),
    ],
    ids=["model", "data", "loss"],
)
def test_renaming_a_component_with_set_suggests_clearing_its_params(app, workdir, text, rename, expected):
    path = write_config(workdir, text)
    result = CliRunner().invoke(app, ["validate", str(path), "--set", rename])
    assert result.exit_code == 2, result.output
    assert "Extra inputs are not permitted" in result.stderr
    assert expected in " ".join(result.stderr.split())
    section = rename.split(".")[0]
    assert f"add --set '{section}.params={{}}'" in result.stderr


@pytest.mark.parametrize(
    ("text", "overrides"),
    [
        (GOOD, ["model.name=dcgan", "model.params={}"]),
        (GOOD, ["model.params={}", "model.name=dcgan", "model.params.latent_dim=16"]),
        (GOOD + "loss: {name: wgan_gp, params: {gradient_penalty: 5}}\n", ["loss.name=hinge", "loss.params={}"]),
    ],
)
def test_the_suggested_set_clears_the_params(app, workdir, text, overrides):
    path = write_config(workdir, text)
    result = CliRunner().invoke(app, ["validate", str(path), *[arg for item in overrides for arg in ("--set", item)]])
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.params.depth=3"],  # no rename: the override's own key is wrong
        ["model.name=mlp", "model.params.depth=3"],  # the same component named again
        ["model.name=dcgan", "model.params.hidden=[8]"],  # the rejected key came from the override
        ["model={name: dcgan, params: {hidden: [8]}}"],  # the whole section from the override
    ],
)
def test_no_suggestion_where_the_params_are_not_the_files_leftovers(registry, workdir, overrides):
    from ganforge.config import InvalidConfigError, load_config

    path = write_config(workdir, GOOD)
    with pytest.raises(InvalidConfigError) as raised:
        load_config(path, registry, overrides, overrides_option="--set")
    assert raised.value.leftover_params == ()
    assert "Extra inputs are not permitted" in str(raised.value)


def test_the_library_error_carries_what_the_hint_is_made_of(registry, workdir):
    from ganforge.config import InvalidConfigError, LeftoverParams, load_config

    path = write_config(workdir, GOOD.replace("hidden: [16]", "hidden: [16], leaky_slope: 0.1"))
    with pytest.raises(InvalidConfigError) as raised:
        load_config(path, registry, ["model.name=dcgan"])
    assert raised.value.leftover_params == (LeftoverParams("model", "mlp", "dcgan", ("hidden",)),)
    assert "--set" not in str(raised.value)  # the flag is the command line's wording (cli/hints.py)
