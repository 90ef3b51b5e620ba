"""`ganforge check --shape` and ``check_component(shapes=...)``: architectures checked at the sizes users train."""

import json
import types

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from ganforge import DataSpec, GANModels, hookimpl
from ganforge.cli import create_app
from ganforge.errors import ParamsError
from ganforge.plugins import PluginSource, load_plugins
from ganforge.registry import Kind
from ganforge.testing import check_component, isolated_registry


class FlatGenerator(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = shape
        self.net = nn.Linear(4, int(torch.tensor(shape).prod()))

    def forward(self, z):
        return torch.tanh(self.net(z)).view(z.shape[0], *self.shape)


class FlatDiscriminator(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(shape).prod()), 1))

    def forward(self, x):
        return self.net(x).squeeze(1)


def small_images_only(params, data: DataSpec):
    """An architecture that, like many written for MNIST and CIFAR, refuses anything above 32 px."""
    if data.shape[1] > 32:
        raise ParamsError(f"architecture 'small' serves images up to 32x32, not {data.shape[1]}x{data.shape[2]}")
    return GANModels(FlatGenerator(data.shape), FlatDiscriminator(data.shape), latent_dim=4)


def small_plugin():
    module = types.ModuleType("small_plugin")
    module.register_architectures = hookimpl(lambda register: register("small", small_images_only))
    return module


def failures(results):
    return {result.check: result.message for result in results if result.status == "failed"}


def test_an_architecture_passes_at_the_default_shapes_and_fails_by_name_at_one_it_refuses():
    component = isolated_registry(small_plugin(), distribution="small-dist").get(Kind.ARCHITECTURE, "small")
    assert failures(check_component(component)) == {}
    failed = failures(check_component(component, shapes=[(3, 32, 32), (3, 64, 64)]))
    assert "check_generator_output" in failed
    assert "serves images up to 32x32, not 64x64" in failed["check_generator_output"]


def test_the_shape_option_checks_there_and_says_which_shapes_were_checked():
    app = create_app(load_plugins([PluginSource.from_object(small_plugin(), "s", "small-dist")], disabled=[]))
    passed = CliRunner().invoke(app, ["check", "small-dist", "--shape", "1x16x16", "--shape", "3X24x24"])
    assert passed.exit_code == 0, passed.output
    assert "architectures checked on data 1x16x16, 3x24x24" in " ".join(passed.stdout.split())

    failed = CliRunner().invoke(app, ["check", "small-dist", "--shape", "3x64x64", "--json"])
    assert failed.exit_code == 1
    messages = [r["message"] for r in json.loads(failed.stdout)["results"] if r["status"] == "failed"]
    assert messages and all("not 64x64" in message for message in messages)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ("64", "expected CHANNELSxHEIGHTxWIDTH"),
        ("3x64", "expected CHANNELSxHEIGHTxWIDTH"),
        ("0x64x64", "channels must be 1 to 16"),
        ("3x4096x64", "each side 1 to 1024"),
        ("3x-1x64", "expected"),
    ],
)
def test_a_shape_that_is_not_one_is_refused_by_name(app, shape, expected):
    result = CliRunner().invoke(app, ["check", "architecture:mlp", "--shape", shape])
    assert result.exit_code == 2
    assert f"--shape {shape!r}" in result.stderr and expected in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet"])
def test_the_residual_architectures_pass_at_32_64_and_128_px(app, name):
    result = CliRunner().invoke(
        app, ["check", f"architecture:{name}", "--shape", "3x32x32", "--shape", "3x64x64", "--shape", "3x128x128"]
    )
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.stdout
