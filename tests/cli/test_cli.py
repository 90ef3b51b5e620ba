import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ganforge import __version__
from ganforge.cli import create_app
from ganforge.plugins import PluginSource, load_plugins
from tests.plugin_fixtures import architecture_plugin, install_distribution, plugin_module

BUILTINS = {
    "architecture": {"mlp", "dcgan", "resnet", "r3gan"},
    "loss": {"minimax", "non_saturating", "hinge", "wasserstein", "least_squares"},
    "dataset": {"mnist", "fashion_mnist", "stacked_mnist", "cifar10", "image_folder", "synthetic"},
}


def invoke(app, *args, env=None):
    return CliRunner().invoke(app, list(args), env=env)


def test_version(app):
    result = invoke(app, "--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"ganforge {__version__}"


def test_list_json_has_every_builtin_from_ganforge(app):
    result = invoke(app, "list", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    found = {}
    for component in payload["components"]:
        found.setdefault(component["kind"], set()).add(component["name"])
        if component["name"] in BUILTINS.get(component["kind"], ()):
            assert component["provider"]["distribution"] == "ganforge"
            assert component["provider"]["version"] == __version__
    for kind, names in BUILTINS.items():
        assert names <= found[kind]
    assert payload["conflicts"] == [] and payload["failed_plugins"] == []
    losses = {c["name"]: c for c in payload["components"] if c["kind"] == "loss"}
    assert losses["non_saturating"]["aliases"] == ["bce"]


def test_list_one_kind_as_a_table(app):
    result = invoke(app, "list", "losses")
    assert result.exit_code == 0
    assert "non_saturating" in result.stdout and "bce" in result.stdout
    assert "ganforge==" in result.stdout
    assert "dcgan" not in result.stdout


def test_show_prints_params_with_types_defaults_and_descriptions(app):
    result = invoke(app, "show", "architecture", "dcgan")
    assert result.exit_code == 0, result.output
    for expected in ("latent_dim", "100", "generator_channels", "int"):
        assert expected in result.stdout


def test_show_json_has_the_params_schema(app):
    result = invoke(app, "show", "loss", "bce", "--json")
    payload = json.loads(result.stdout)
    assert payload["name"] == "non_saturating"
    assert "label_smoothing" in payload["params_schema"]["properties"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "architecture", "dcgn"), "did you mean 'dcgan'"),
        (("list", "optimizers"), "unknown component kind 'optimizers'"),
        (("data", "synthetic", "-p", "num_samples=-3"), "params.num_samples"),
        (("data", "synthetic", "-p", "nonsense"), "--param expects dotted.key=value"),
    ],
)
def test_user_mistakes_exit_2_with_a_message_and_no_traceback(app, args, message):
    result = invoke(app, *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_data_describes_a_dataset(app):
    result = invoke(app, "data", "synthetic", "-p", "num_samples=40", "-p", "num_classes=4")
    assert result.exit_code == 0, result.output
    assert "40" in result.stdout and "1 x 28 x 28" in result.stdout


def test_data_without_files_names_what_to_put_where(app, tmp_path):
    result = invoke(app, "data", "mnist", "-p", "download=false", env={"GANFORGE_DATA": str(tmp_path)})
    assert result.exit_code != 0
    assert "train-images-idx3-ubyte" in result.stderr
    assert str(tmp_path) in result.stderr
    assert "Traceback" not in result.output


def test_plugins_lists_hooks_and_status(app):
    payload = json.loads(invoke(app, "plugins", "--json").stdout)
    builtin = {p["name"]: p for p in payload["plugins"] if p["distribution"] == "ganforge"}
    assert builtin["losses"]["state"] == "loaded"
    assert builtin["losses"]["hooks"] == ["register_losses"]


def test_a_plugin_can_add_a_command():
    def register_commands(app):
        @app.command("hello")
        def hello() -> None:
            print("hello from a plugin")

    plugin = plugin_module("greeter", register_commands=register_commands)
    app = create_app(load_plugins([PluginSource.from_object(plugin, "greeter")], disabled=[], strict=False))
    result = invoke(app, "hello")
    assert result.exit_code == 0
    assert "hello from a plugin" in result.stdout


def test_a_plugin_whose_command_hook_raises_is_reported_and_skipped(capsys):
    def register_commands(app):
        raise ValueError("bad command")

    plugin = plugin_module("clumsy", register_commands=register_commands)
    plugins = load_plugins(
        [PluginSource.from_object(plugin, "clumsy"), PluginSource.from_object(architecture_plugin("ok", "x"), "ok")],
        disabled=[],
        strict=False,
    )
    result = invoke(create_app(plugins), "list", "--json")
    assert result.exit_code == 0
    [failed] = json.loads(result.stdout)["failed_plugins"]
    assert (failed["name"], failed["phase"]) == ("clumsy", "commands")
    assert "bad command" in capsys.readouterr().err


# Real installed distributions, found through importlib.metadata like any `pip install`ed plugin.

BROKEN_PLUGIN = """
import not_installed_anywhere
"""

COLLIDING_PLUGIN = """
from pydantic import Field
from ganforge import Params, hookimpl

class Params_(Params):
    depth: int = Field(2, description="Layers.")

def build(params, data):
    '''An MLP from another distribution.'''
    raise NotImplementedError

@hookimpl
def register_architectures(register):
    register("mlp", build, params=Params_)
"""


@pytest.fixture(scope="module")
def third_party_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    install_distribution(site, "ganforge-broken", "0.3.0", {"broken": "ganforge_broken"}, BROKEN_PLUGIN)
    install_distribution(site, "other-gans", "1.2.0", {"other": "other_gans"}, COLLIDING_PLUGIN)
    return site


def run_cli(site, *args, **env):
    environment = {**os.environ, "PYTHONPATH": str(site), **env}
    environment.pop("GANFORGE_STRICT_PLUGINS", None) if "GANFORGE_STRICT_PLUGINS" not in env else None
    return subprocess.run(
        [sys.executable, "-m", "ganforge", *args], capture_output=True, text=True, env=environment, timeout=120
    )


@pytest.mark.slow
def test_installed_broken_and_colliding_plugins(third_party_site):
    result = run_cli(third_party_site, "list", "--json")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("ganforge-broken==0.3.0") == 1
    assert "not_installed_anywhere" in result.stderr
    payload = json.loads(result.stdout)
    assert {"kind": "architecture", "name": "mlp", "providers": ["ganforge:mlp", "other-gans:mlp"]} in payload[
        "conflicts"
    ]
    assert [p["distribution"] for p in payload["failed_plugins"]] == ["ganforge-broken"]

    table = run_cli(third_party_site, "list", "architectures")
    assert table.returncode == 0
    assert "conflict" in table.stdout and "other-gans==1.2.0" in table.stdout

    ambiguous = run_cli(third_party_site, "show", "architecture", "mlp")
    assert ambiguous.returncode == 2
    assert "ganforge:mlp" in ambiguous.stderr and "other-gans:mlp" in ambiguous.stderr
    assert "Traceback" not in ambiguous.stderr

    chosen = run_cli(third_party_site, "show", "architecture", "other-gans:mlp")
    assert chosen.returncode == 0 and "depth" in chosen.stdout


@pytest.mark.slow
def test_strict_mode_exits_non_zero_naming_the_plugin(third_party_site):
    result = run_cli(third_party_site, "list", GANFORGE_STRICT_PLUGINS="1")
    assert result.returncode == 1
    assert "ganforge-broken==0.3.0" in result.stderr and "GANFORGE_STRICT_PLUGINS" in result.stderr
    assert "Traceback" not in result.stderr

    disabled = run_cli(
        third_party_site, "list", GANFORGE_STRICT_PLUGINS="1", GANFORGE_DISABLE_PLUGINS="ganforge-broken"
    )
    assert disabled.returncode == 0, disabled.stderr
