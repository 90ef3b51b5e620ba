import json
import re
import signal
import sys
import time

import pytest
from typer.testing import CliRunner

from ganforge.cli import create_app
from ganforge.contracts import DataSpec
from ganforge.errors import AmbiguousComponentError, ComponentNotFoundError, PluginError
from ganforge.plugins import Phase, PluginSource, PluginState, load_plugins
from ganforge.registry import Kind
from tests.ctrl_c import can_signal_here, press_ctrl_c, press_ctrl_c_and_swallow_it
from tests.plugin_fixtures import (
    WidthParams,
    architecture_plugin,
    loader,
    make_architecture,
    plugin_module,
    quiet_load,
    raise_keyboard_interrupt,
    source,
    status_of,
)


def failing_import():
    raise ImportError("No module named 'missing_dependency'")


def test_components_record_their_provider_and_params_defaults():
    plugins, failures = quiet_load([source(architecture_plugin("good", "tiny"), "good", "good-dist", "2.3")])
    assert failures == []
    component = plugins.registry.get(Kind.ARCHITECTURE, "tiny")
    assert (component.provider.distribution, component.provider.version) == ("good-dist", "2.3")
    assert str(component.provider) == "good-dist==2.3"
    assert component.summary == "A stand-in architecture factory."
    models = component.build(None, DataSpec((1, 4, 4)))
    assert (models.latent_dim, models.generator.in_features) == (8, 8)  # the params model's default width
    assert status_of(plugins, "good").hooks == ("register_architectures",)


def test_a_plugin_that_fails_to_import_is_recorded_and_the_rest_load():
    sources = [
        PluginSource("broken", "broken-dist", "0.1", failing_import),
        source(architecture_plugin("good", "tiny"), "good"),
    ]
    plugins, failures = quiet_load(sources)
    broken = status_of(plugins, "broken")
    assert (broken.state, broken.phase) == (PluginState.FAILED, Phase.IMPORT)
    assert "missing_dependency" in broken.error
    assert [f.name for f in failures] == ["broken"]
    assert plugins.registry.get(Kind.ARCHITECTURE, "tiny")


def test_a_plugin_implementing_an_unknown_hook_fails_validation():
    plugin = plugin_module("typo", register_architecture=lambda register: None)
    plugins, _ = quiet_load([source(plugin, "typo")])
    status = status_of(plugins, "typo")
    assert (status.state, status.phase) == (PluginState.FAILED, Phase.VALIDATE)
    assert "register_architecture" in status.error and "register_architectures" in status.error
    assert plugins.manager.get_plugins() == set()


def test_a_hook_taking_unknown_arguments_fails_validation():
    plugin = plugin_module("greedy", register_losses=lambda register, device: None)
    plugins, _ = quiet_load([source(plugin, "greedy")])
    status = status_of(plugins, "greedy")
    assert (status.state, status.phase) == (PluginState.FAILED, Phase.VALIDATE)
    assert "device" in status.error


def test_a_hook_that_raises_registers_nothing_of_its_plugin():
    def register_architectures(register):
        register("half_done", make_architecture, params=WidthParams)

    def register_losses(register):
        raise RuntimeError("boom")

    plugin = plugin_module("raiser", register_architectures=register_architectures, register_losses=register_losses)
    plugins, failures = quiet_load([source(plugin, "raiser")])
    status = status_of(plugins, "raiser")
    assert (status.state, status.phase) == (PluginState.FAILED, Phase.REGISTER)
    assert "RuntimeError: boom" in status.error
    assert plugins.registry.components() == []
    assert len(failures) == 1


def test_one_plugin_registering_a_name_twice_is_that_plugins_error():
    plugins, _ = quiet_load([source(architecture_plugin("twice", "dup", "dup"), "twice")])
    status = status_of(plugins, "twice")
    assert status.state is PluginState.FAILED
    assert "'dup' registered twice" in status.error


def test_invalid_component_names_are_refused():
    plugins, _ = quiet_load([source(architecture_plugin("shouty", "Big Net"), "shouty")])
    assert "not valid" in status_of(plugins, "shouty").error


def test_the_same_name_from_two_distributions_is_a_conflict_never_an_overwrite():
    plugins, failures = quiet_load(
        [
            source(architecture_plugin("a", "shared"), "a", "alpha-gans", "1.0"),
            source(architecture_plugin("b", "shared"), "b", "beta-gans", "2.0"),
        ]
    )
    assert failures == []
    [conflict] = plugins.registry.conflicts()
    assert conflict.name == "shared"
    assert {c.provider.distribution for c in conflict.components} == {"alpha-gans", "beta-gans"}
    with pytest.raises(AmbiguousComponentError) as raised:
        plugins.registry.get(Kind.ARCHITECTURE, "shared")
    message = str(raised.value)
    assert "alpha-gans:shared" in message and "beta-gans:shared" in message and "distribution:name" in message
    chosen = plugins.registry.get(Kind.ARCHITECTURE, "beta-gans:shared")
    assert chosen.provider.version == "2.0"
    assert plugins.registry.get(Kind.ARCHITECTURE, "beta_gans:shared") is chosen  # normalised like pip


def test_unknown_names_suggest_close_matches():
    plugins, _ = quiet_load([source(architecture_plugin("a", "dcgan", "mlp"), "a")])
    with pytest.raises(ComponentNotFoundError, match=r"did you mean 'dcgan'\?"):
        plugins.registry.get(Kind.ARCHITECTURE, "dcgn")
    with pytest.raises(ComponentNotFoundError, match="known architectures: dcgan, mlp"):
        plugins.registry.get(Kind.ARCHITECTURE, "transformer")


def test_disabled_plugins_are_not_loaded():
    def never_loaded():
        raise AssertionError("a disabled plugin must not be imported")

    plugins, failures = quiet_load([PluginSource("off", "offdist", "1", never_loaded)], disabled=["offdist"])
    assert status_of(plugins, "off").state is PluginState.DISABLED
    assert failures == []


def test_strict_mode_turns_a_failure_into_an_error(monkeypatch):
    monkeypatch.delenv("GANFORGE_STRICT_PLUGINS", raising=False)
    with pytest.raises(PluginError, match=r"broken-dist==0\.1") as raised:
        quiet_load([PluginSource("broken", "broken-dist", "0.1", failing_import)], strict=True)
    # The caller asked for strict mode: the environment variable, not set, is not blamed.
    assert "load_plugins(strict=True)" in str(raised.value)
    assert "GANFORGE_STRICT_PLUGINS" not in str(raised.value)


def test_strict_mode_and_disabling_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("GANFORGE_STRICT_PLUGINS", "1")
    monkeypatch.setenv("GANFORGE_DISABLE_PLUGINS", "other, broken")
    plugins = load_plugins([PluginSource("broken", "broken-dist", "0.1", failing_import)])
    assert status_of(plugins, "broken").state is PluginState.DISABLED
    monkeypatch.setenv("GANFORGE_DISABLE_PLUGINS", "")
    with pytest.raises(PluginError, match="GANFORGE_STRICT_PLUGINS is set"):
        load_plugins([PluginSource("broken", "broken-dist", "0.1", failing_import)])


def test_a_failure_warns_once_on_stderr_by_default(capsys):
    load_plugins([PluginSource("broken", "broken-dist", "0.1", failing_import)], disabled=[], strict=False)
    err = capsys.readouterr().err
    assert err.count("broken-dist==0.1") == 1
    assert "warning" in err and "skipped" in err


def test_builtins_arrive_through_entry_points(registry):
    for kind, name in [(Kind.ARCHITECTURE, "mlp"), (Kind.LOSS, "hinge"), (Kind.DATASET, "mnist")]:
        component = registry.get(kind, name)
        assert component.provider.distribution == "ganforge"
        assert component.provider.plugin.startswith("ganforge:")


def exit_3():
    sys.exit(3)


def exit_plain():
    sys.exit()


def raise_generator_exit():
    raise GeneratorExit("a BaseException of another kind")


@pytest.mark.parametrize(
    ("action", "described"),
    [
        (exit_3, "SystemExit(3)"),
        (exit_plain, "SystemExit(None)"),
        (raise_keyboard_interrupt, "KeyboardInterrupt raised by the plugin's own code"),
        (raise_generator_exit, "GeneratorExit: a BaseException of another kind"),
    ],
    ids=["sys.exit(3)", "sys.exit()", "KeyboardInterrupt", "GeneratorExit"],
)
def test_a_plugin_exiting_or_interrupting_on_import_fails_alone_and_the_rest_load(action, described):
    sources = [
        PluginSource("quitter", "bad-gans", "0.1", loader(action)),
        source(architecture_plugin("good", "tiny"), "good", "good-gans"),
    ]
    plugins, failures = quiet_load(sources)
    status = status_of(plugins, "quitter")
    assert (status.state, status.phase) == (PluginState.FAILED, Phase.IMPORT)
    assert described in status.error
    assert [failure.name for failure in failures] == ["quitter"]
    assert plugins.registry.get(Kind.ARCHITECTURE, "tiny")


@pytest.mark.parametrize("raised", [SystemExit(0), KeyboardInterrupt()], ids=["SystemExit", "KeyboardInterrupt"])
def test_a_hook_that_exits_or_interrupts_registers_nothing_and_is_recorded(raised):
    def register_losses(register):
        raise raised

    plugin = plugin_module("raiser", register_losses=register_losses)
    plugins, failures = quiet_load([source(plugin, "raiser")])
    status = status_of(plugins, "raiser")
    assert (status.state, status.phase) == (PluginState.FAILED, Phase.REGISTER)
    assert type(raised).__name__ in status.error
    assert plugins.registry.components() == [] and len(failures) == 1


def test_a_command_hook_that_exits_is_recorded_and_the_cli_still_works(capsys):
    def register_commands(app):
        sys.exit(4)

    plugins = load_plugins([source(plugin_module("clumsy", register_commands=register_commands), "clumsy")])
    result = CliRunner().invoke(create_app(plugins), ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    [status] = json.loads(result.stdout)["plugins"]
    assert (status["state"], status["phase"]) == ("failed", "commands")
    assert "SystemExit(4)" in status["error"]
    assert capsys.readouterr().err.count("bad-gans==0.1") == 1


def test_strict_mode_turns_a_plugins_sys_exit_into_a_plugin_error():
    with pytest.raises(PluginError, match=r"bad-gans==0\.1 failed at import: SystemExit\(3\)"):
        quiet_load([PluginSource("quitter", "bad-gans", "0.1", loader(exit_3))], strict=True)


@can_signal_here
@pytest.mark.parametrize("action", [press_ctrl_c, press_ctrl_c_and_swallow_it], ids=["raised", "swallowed"])
def test_the_users_ctrl_c_while_a_plugin_imports_stops_loading(action, sigint_reaches_children):
    loaded = []
    sources = [
        PluginSource("slowpoke", "a-gans", "0.1", loader(action)),
        PluginSource("later", "b-gans", "0.1", lambda: loaded.append("later") or plugin_module("later")),
    ]
    with pytest.raises(KeyboardInterrupt):
        quiet_load(sources)
    assert loaded == []  # loading stopped at the Ctrl-C; the plugin was not blamed for it
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the counting handler is gone


def test_a_slow_plugin_import_is_named_with_its_time(monkeypatch, capsys):
    monkeypatch.setattr("ganforge.plugins.SLOW_IMPORT_SECONDS", 0.05)
    sources = [
        PluginSource("sluggish", "slow-gans", "2.0", loader(lambda: time.sleep(0.2))),
        source(architecture_plugin("quick", "tiny"), "quick", "quick-gans"),
    ]
    plugins = load_plugins(sources, disabled=[], strict=False)
    err = capsys.readouterr().err
    assert "warning: plugin 'sluggish' from slow-gans==2.0 took" in err
    assert re.search(r"took 0\.[2-9] s to import \(over 0\.05 s\)", err), err
    assert "GANFORGE_DISABLE_PLUGINS=slow-gans" in err
    assert "quick" not in err
    assert status_of(plugins, "sluggish").state is PluginState.LOADED
    assert status_of(plugins, "sluggish").import_seconds >= 0.2
