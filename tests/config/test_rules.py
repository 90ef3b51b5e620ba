"""The rules of a valid config beyond its YAML: numbers bounded to what can run, an architecture that
fits the images, output folders and run names that are folder names, devices ganforge trains on."""

import pytest
import torch
from typer.testing import CliRunner

from ganforge.devices import resolve_device
from ganforge.errors import UsageError
from tests.runs import SMOKE
from tests.small_configs import GOOD, refused, refused_before_training, validate, write


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (f"seed={2**70}", "seed: Input should be less than or equal to 9223372036854775807"),
        ("seed=-1", "seed: Input should be greater than or equal to 0"),
        (f"model.params.hidden=[{2**62}]", "model.params.hidden.0: Input should be less than or equal to 65536"),
        ("model.params.hidden=[" + ", ".join(["8"] * 65) + "]", "model.params.hidden: List should have at most 64"),
        ("model.params.latent_dim=1.0e+11", "model.params.latent_dim: Input should be less than or equal to 65536"),
        (
            "data.params.num_samples=1.0e+12",
            "data.params.num_samples: Input should be less than or equal to 1000000000",
        ),
        ("data.params.size=100000", "data.params.size: Input should be less than or equal to 8192"),
        (f"data.params.seed={2**64}", "data.params.seed: Input should be less than or equal to 9223372036854775807"),
        ("eval.samples=1.0e+12", "eval.samples: Input should be less than or equal to 1000000"),
        ("train.batch_size=1.0e+9", "train.batch_size: Input should be less than or equal to 1048576"),
        ("train.batch_size=1.0e+30", "train.batch_size: Unable to parse input string as an integer, exceeded maximum"),
        (f"train.epochs={10**20}", "train.epochs: Input should be less than or equal to 1000000"),
        ("train.num_workers=1000000", "train.num_workers: Input should be less than or equal to 256"),
        ("train.n_critic=1.0e+9", "train.n_critic: Input should be less than or equal to 1000"),
        ("optim.generator.lr=.inf", "optim.generator.lr: Input should be a finite number"),
        ("train.checkpoint_minutes=.nan", "train.checkpoint_minutes: Input should be a finite number"),
    ],
)
def test_a_number_beyond_what_can_run_is_refused_saying_what_is_accepted(app, workdir, override, expected):
    stderr = refused(app, write(workdir, GOOD), override)
    assert expected in stderr


def test_a_dcgan_beyond_its_bounds_is_refused(app, workdir):
    stderr = refused(app, write(workdir, GOOD), "model.name=dcgan", "model.params={generator_width: 100000}")
    assert "model.params.generator_width: Input should be less than or equal to 65536" in stderr


def test_validate_finds_an_architecture_that_cannot_take_the_images(app, workdir):
    path = write(workdir, GOOD)
    stderr = refused(app, path, "model.name=dcgan", "model.params={}", "data.params.size=9")
    assert f"{path} is invalid: architecture 'dcgan' cannot handle the data shape 1x9x9" in stderr


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("''", "the current directory cannot be a run folder"),
        (".", "the current directory cannot be a run folder"),
        ("./", "the current directory cannot be a run folder"),
        ("runs/..", "the current directory cannot be a run folder"),
        ('"a\\0b"', "a path cannot hold a NUL character"),
    ],
)
def test_an_empty_or_dot_output_dir_is_refused_and_nothing_is_touched(app, workdir, folder, expected):
    (workdir / "precious.txt").write_text("keep me")
    path = write(workdir, GOOD)
    for options in ([], ["--overwrite"]):
        stderr = refused(app, path, f"output.dir={folder}", command="run", options=options)
        assert f"output.dir: Value error, {expected}" in stderr
    assert sorted(p.name for p in workdir.iterdir()) == ["config.yaml", "precious.txt"]
    assert (workdir / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("name", ["''", ".", "..", "a/b", "'a\\b'", "/etc", "-rf", "x" * 101])
def test_a_run_name_that_is_not_a_folder_name_is_refused(app, workdir, name):
    stderr = refused(app, write(workdir, GOOD), f"name={name}")
    assert "name: Value error, a run name is the name of its folder: 1 to 100 letters, digits" in stderr


def test_any_other_output_dir_is_accepted(app, workdir):
    result = validate(app, write(workdir, GOOD), "output.dir=elsewhere/../somewhere/run")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("device", ["tpu", "gpu", "CPU", "cuda:", "cuda:-1", "cuda:x", "meta", "cpu "])
def test_a_device_ganforge_never_trains_on_is_refused_by_validate(app, workdir, device):
    stderr = refused(app, write(workdir, GOOD), f"train.device='{device}'")
    assert (
        "train.device: Value error, not a device ganforge trains on; accepted: auto, cpu, cuda, cuda:N or mps" in stderr
    )


def test_validate_warns_of_a_device_this_machine_lacks_and_run_refuses_it(app, workdir):
    path = write(workdir, GOOD)
    result = validate(app, path, "train.device=cuda:999")
    assert result.exit_code == 0, result.output
    lacking = "train.device: 'cuda:999' asked for, but this machine has"
    assert f"warning: {lacking}" in result.stderr
    assert "`ganforge run` would refuse this config on this machine" in result.stderr
    assert lacking in refused(app, path, "train.device=cuda:999", command="run")


@pytest.mark.parametrize("device", ["tpu", "cuda:999", "x" * 10_000])
def test_device_errors_name_the_setting_they_came_from(device):
    with pytest.raises(UsageError) as caught:
        resolve_device(device, option="--device")
    message = str(caught.value)
    assert message.startswith("--device: ") and "train.device" not in message and len(message) < 200
    with pytest.raises(UsageError, match=r"^train\.device: "):
        resolve_device(device)


def test_a_batch_larger_than_the_dataset_is_refused_before_training(app, workdir):
    output = refused_before_training(app, workdir, "train.batch_size=1000")
    assert "train.batch_size: 1000 is larger than the dataset (256 images)" in output


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_this_machine_lacks_is_refused_before_training(app, workdir):
    output = refused_before_training(app, workdir, "train.device=cuda")
    assert "train.device: 'cuda' asked for, but this machine has no usable CUDA GPU" in output


@pytest.mark.parametrize("name", ["os:system", "subprocess.run", "ganforge.training.trainer:Trainer"])
def test_a_config_names_registered_components_only_never_import_paths(app, workdir, name):
    result = CliRunner().invoke(app, ["validate", str(SMOKE), "--set", f"model.name={name}"])
    assert result.exit_code == 2
    assert f"model.name: unknown architecture '{name}'\n    known architectures: dcgan, mlp" in result.output
