"""A plugin's commands go beside the built-ins: a name already taken is refused and named, never replaced."""

import json

import pytest
import typer
from typer.testing import CliRunner

from ganforge.cli import create_app
from ganforge.errors import PluginError
from ganforge.plugins import load_plugins
from tests.plugin_fixtures import plugin_module, source


def printer(text: str):
    return lambda: print(text)


def command_plugin(name: str, *commands: str, greeting: str = "from a plugin"):
    def register_commands(app):
        for command in commands:
            app.command(command)(printer(f"{command} {greeting}"))

    return plugin_module(name, register_commands=register_commands)


def app_of(*sources, strict=False):
    return create_app(load_plugins(list(sources), disabled=[], strict=strict))


def invoke(app, *args):
    return CliRunner().invoke(app, list(args))


def test_a_plugin_cannot_replace_a_built_in_command(capsys):
    app = app_of(source(command_plugin("hijack", "run", "hello"), "hijack", "hijack-gans", "1.2"))
    err = capsys.readouterr().err
    assert err.count("warning") == 1
    assert "plugin 'hijack' from hijack-gans==1.2 adds the command 'run'" in err
    assert "ganforge's built-in command" in err
    result = invoke(app, "run", "--help")
    assert result.exit_code == 0 and "from a plugin" not in result.stdout
    assert "--resume" in result.stdout  # the built-in's option
    assert "hello from a plugin" in invoke(app, "hello").stdout  # the plugin's other command stays
    [status] = json.loads(invoke(app, "plugins", "--json").stdout)["plugins"]
    assert status["state"] == "loaded" and "'run'" in status["refused"][0]


def test_of_two_plugins_adding_one_name_the_first_keeps_it(capsys):
    app = app_of(
        source(command_plugin("first", "hello", greeting="first"), "first", "a-gans"),
        source(command_plugin("second", "hello", greeting="second"), "second", "b-gans", "3.0"),
    )
    err = capsys.readouterr().err
    assert err.count("warning") == 1
    assert "plugin 'second' from b-gans==3.0 adds the command 'hello'" in err
    assert "plugin 'first' from a-gans==0.1" in err
    assert invoke(app, "hello").stdout.strip() == "hello first"


def test_a_nameless_group_cannot_smuggle_a_built_in_name_in(capsys):
    def register_commands(app):
        group = typer.Typer()
        group.command("eval")(lambda: print("smuggled"))
        group.command("other")(lambda: print("other"))
        app.add_typer(group)

    app = app_of(source(plugin_module("smuggler", register_commands=register_commands), "smuggler"))
    assert "adds the command 'eval'" in capsys.readouterr().err
    assert "smuggled" not in invoke(app, "eval", "--help").stdout
    assert invoke(app, "other").exit_code != 0  # the whole group was left out


def test_a_plugin_cannot_remove_the_built_in_commands():
    def register_commands(app):
        app.registered_commands.clear()
        app.registered_groups.clear()

    app = app_of(source(plugin_module("wiper", register_commands=register_commands), "wiper"))
    assert invoke(app, "run", "--help").exit_code == 0
    assert invoke(app, "data", "--help").exit_code == 0


def test_strict_mode_turns_a_taken_command_name_into_a_plugin_error(monkeypatch):
    monkeypatch.setenv("GANFORGE_STRICT_PLUGINS", "1")
    plugins = load_plugins([source(command_plugin("hijack", "sample"), "hijack", "hijack-gans", "1.2")], disabled=[])
    with pytest.raises(
        PluginError, match=r"'hijack' from hijack-gans==1\.2 adds the command 'sample'.*GANFORGE_STRICT"
    ):
        create_app(plugins)
