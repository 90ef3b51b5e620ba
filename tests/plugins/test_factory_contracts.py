"""A component factory that breaks its contract, exits or is interrupted is named as that plugin's
fault by every command that builds it, before any run folder exists; the user's own Ctrl-C is not."""

import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import Field
from torch import nn
from typer.testing import CliRunner

from ganforge import DataSpec, GANLoss, GANMetric, GANModels, Goal, LoadedDataset, Params
from ganforge.cli import create_app
from ganforge.errors import FactoryError
from ganforge.guards import startup
from ganforge.plugins import PluginSource, load_plugins
from ganforge.registry import Kind
from tests.cli_results import refused
from tests.ctrl_c import can_signal_here, press_ctrl_c
from tests.plugin_fixtures import plugin_module, quiet_load, raise_keyboard_interrupt, source
from tests.small_configs import tiny_config

BEHAVIOUR = {"architecture": "good"}


class AnyParams(Params):
    hidden: int = Field(8, gt=0)


def small_models(params, data):
    generator = nn.Sequential(nn.Linear(params.hidden, data.channels * data.height * data.width), nn.Tanh())
    generator = nn.Sequential(generator, nn.Unflatten(1, data.shape))
    discriminator = nn.Sequential(nn.Flatten(), nn.Linear(data.channels * data.height * data.width, 1), nn.Flatten(0))
    return GANModels(generator, discriminator, latent_dim=params.hidden)


def switchable_architecture(params, data):
    """Good GANModels, until a test switches it to return a tuple."""
    if BEHAVIOUR["architecture"] == "good":
        return small_models(params, data)
    return (nn.Linear(1, 1), nn.Linear(1, 1))


def returns_a_dict(params, *args):
    return {"generator": None}


def dataset_exits_0(params, root):
    sys.exit(0)


def dataset_raises_keyboard_interrupt(params, root):
    raise KeyboardInterrupt


def bad_plugin():
    def register_architectures(register):
        register("switchable", switchable_architecture, params=AnyParams)
        register("bool_latent", lambda p, d: GANModels(nn.Linear(1, 1), nn.Linear(1, 1), latent_dim=True))
        register("not_a_module", lambda p, d: GANModels(lambda z: z, nn.Linear(1, 1), latent_dim=4))

    def register_losses(register):
        register("dict_loss", returns_a_dict)

    def register_datasets(register):
        register("dict_data", returns_a_dict)
        register("exits_0", dataset_exits_0)
        register("interrupts", dataset_raises_keyboard_interrupt)
        register("bad_spec", lambda p, root: LoadedDataset([1, 2, 3], DataSpec((1, 0, 8))))
        register("ctrl_c", lambda p, root: press_ctrl_c())

    def register_metrics(register):
        register("dict_metric", returns_a_dict)

    return plugin_module(
        "bad_gans",
        register_architectures=register_architectures,
        register_losses=register_losses,
        register_datasets=register_datasets,
        register_metrics=register_metrics,
    )


@pytest.fixture(scope="module")
def bad_app():
    """ganforge's built-ins and the plugin above, from distribution bad-gans."""
    builtins = [
        PluginSource.from_entry_point(ep) for ep in entry_points(group="ganforge") if ep.dist.name == "ganforge"
    ]
    plugins = load_plugins([*builtins, source(bad_plugin(), "bad")], disabled=[], strict=True)
    return create_app(plugins)


@pytest.mark.parametrize(
    ("section", "name", "returned"),
    [
        ("model", "switchable", "tuple (Linear("),
        ("model", "bool_latent", "latent_dim is bool True, not a positive int"),
        ("model", "not_a_module", "generator is function"),
        ("loss", "dict_loss", "dict {'generator': None}, but a loss factory returns a GANLoss"),
        ("data", "dict_data", "dict {'generator': None}, but a dataset factory returns LoadedDataset"),
        ("data", "bad_spec", "shape is tuple (1, 0, 8), not three positive ints"),
        ("data", "exits_0", "its factory called sys.exit(0) while building"),
        ("data", "interrupts", "its factory raised KeyboardInterrupt while building"),
    ],
)
def test_run_names_the_plugin_whose_factory_breaks_its_contract_before_any_folder(
    bad_app, workdir, monkeypatch, section, name, returned
):
    monkeypatch.setitem(BEHAVIOUR, "architecture", "broken")
    config = tiny_config(workdir, **{section: {"name": name, "params": {}}})
    output = refused(CliRunner().invoke(bad_app, ["run", str(config)]))
    assert f"'{name}' of plugin 'bad-gans:bad' (bad-gans==0.1)" in output
    assert returned in output
    assert not (workdir / "runs").exists()


def test_validate_and_run_name_a_metric_factory_that_returns_no_gan_metric(bad_app, workdir):
    config = tiny_config(workdir, eval={"every": 1, "metrics": ["dict_metric"], "samples": 64})
    for command in ("validate", "run"):
        output = refused(CliRunner().invoke(bad_app, [command, str(config)]), code=None)
        assert "metric 'dict_metric' of plugin 'bad-gans:bad'" in output
        assert "but a metric factory returns a GANMetric" in output
    assert not (workdir / "runs").exists()


def test_sample_eval_and_check_name_an_architecture_that_stopped_returning_gan_models(bad_app, workdir, monkeypatch):
    config = tiny_config(workdir, model={"name": "switchable", "params": {}})
    trained = CliRunner().invoke(bad_app, ["run", str(config), "--quiet"])
    assert trained.exit_code == 0, trained.output
    checkpoint = workdir / "runs" / "safety" / "checkpoints" / "last.pt"
    monkeypatch.setitem(BEHAVIOUR, "architecture", "broken")
    for command in (
        ["sample", str(checkpoint), "--out", str(workdir / "grid.png"), "--n", "4"],
        ["eval", str(checkpoint), "--metrics", "fid"],
    ):
        output = refused(CliRunner().invoke(bad_app, command))
        assert (
            "architecture 'switchable' of plugin 'bad-gans:bad' (bad-gans==0.1): its factory returned tuple" in output
        )
    assert not (workdir / "grid.png").exists()
    checked = CliRunner().invoke(bad_app, ["check", "architecture:switchable"])
    assert checked.exit_code == 1
    assert "its factory returned tuple" in " ".join(checked.output.split())


@can_signal_here
def test_ctrl_c_before_an_overwrite_leaves_the_old_run_and_says_so(bad_app, workdir, sigint_reaches_children):
    first = CliRunner().invoke(bad_app, ["run", str(tiny_config(workdir)), "--quiet"])
    assert first.exit_code == 0, first.output
    run_dir = workdir / "runs" / "safety"
    before = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    config = tiny_config(workdir, data={"name": "ctrl_c", "params": {}})
    output = refused(CliRunner().invoke(bad_app, ["run", str(config), "--overwrite"]), code=130)
    assert f"interrupted (Ctrl-C); {run_dir.relative_to(workdir)} was left as it was; nothing was written" in output
    assert {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()} == before


def test_every_builtin_factory_passes_the_contract_check(registry):
    spec = DataSpec((1, 28, 28), num_classes=10)
    for component in registry.components(Kind.ARCHITECTURE):
        assert isinstance(component.build({}, spec), GANModels)
    for component in registry.components(Kind.LOSS):
        assert isinstance(component.build({}), GANLoss)
    for component in registry.components(Kind.METRIC):
        assert isinstance(component.build({}), GANMetric) and component.build({}).goals
    synthetic = registry.get(Kind.DATASET, "synthetic").build({"num_samples": 8, "size": 8}, Path("."))
    assert isinstance(synthetic, LoadedDataset)


def test_a_plugin_returning_a_subclass_of_the_contract_type_is_accepted():
    class Scaled(GANLoss):
        pass

    class Named(GANMetric):
        goals: ClassVar = {"x": Goal("lower", 0.0)}

    module = plugin_module(
        "fine",
        register_losses=lambda register: register("scaled", lambda params: Scaled()),
        register_metrics=lambda register: register("named", lambda params: Named()),
    )
    plugins, failures = quiet_load([source(module, "fine")])
    assert failures == []
    assert isinstance(plugins.registry.build(Kind.LOSS, "scaled"), Scaled)
    assert isinstance(plugins.registry.build(Kind.METRIC, "named"), Named)


@can_signal_here
def test_the_users_ctrl_c_inside_a_factory_is_not_blamed_on_the_plugin(sigint_reaches_children):
    module = plugin_module("touchy", register_losses=lambda register: register("touchy", lambda p: press_ctrl_c()))
    plugins, _ = quiet_load([source(module, "touchy")])
    with pytest.raises(KeyboardInterrupt):  # not a FactoryError
        plugins.registry.build(Kind.LOSS, "touchy")


def test_a_factory_raising_keyboard_interrupt_itself_is_a_factory_error():
    module = plugin_module(
        "odd", register_losses=lambda register: register("odd", lambda p: raise_keyboard_interrupt())
    )
    plugins, _ = quiet_load([source(module, "odd")])
    with pytest.raises(FactoryError, match=r"loss 'odd' of plugin 'bad-gans:odd' .* raised KeyboardInterrupt"):
        plugins.registry.build(Kind.LOSS, "odd")


def fails_with_a_value_error(params):
    raise ValueError("a bug of the plugin's own")


@pytest.mark.parametrize("guarded", [False, True], ids=["library", "command"])
def test_any_other_error_of_a_factory_passes_through_unchanged(monkeypatch, guarded):
    monkeypatch.setattr(startup._state, "guarded", guarded)  # as under the ganforge command's Ctrl-C guard
    module = plugin_module("buggy", register_losses=lambda register: register("buggy", fails_with_a_value_error))
    plugins, _ = quiet_load([source(module, "buggy")])
    with pytest.raises(ValueError, match="a bug of the plugin's own"):
        plugins.registry.build(Kind.LOSS, "buggy")
