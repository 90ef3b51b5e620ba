import pytest

from ganforge.contracts import DataSpec
from ganforge.errors import AmbiguousComponentError, ComponentNotFoundError, PluginError
from ganforge.plugins import Phase, PluginSource, PluginState, load_plugins
from ganforge.registry import Kind
from tests.plugin_fixtures import WidthParams, architecture_plugin, make_architecture, plugin_module


def source(plugin, name, distribution="thirdparty", version="1.0"):
    return PluginSource.from_object(plugin, name, distribution, version)


def failing_import():
    raise ImportError("No module named 'missing_dependency'")


def quiet_load(sources, **options):
    failures = []
    plugins = load_plugins(
        sources, disabled=options.pop("disabled", []), strict=options.pop("strict", False), on_failure=failures.append
    )
    return plugins, failures


def status_of(plugins, name):
    return next(status for status in plugins.statuses if status.name == name)


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
