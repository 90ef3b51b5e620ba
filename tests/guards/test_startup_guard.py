"""Broken plugins, factories that break their contract, Ctrl-C while ganforge starts, gzip bombs, the torch floor."""

import contextlib
import gzip
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import tomllib
import tracemalloc
from importlib.metadata import entry_points
from pathlib import Path
from typing import ClassVar

import pytest
import torch
import yaml
from pydantic import Field
from torch import nn
from typer.testing import CliRunner

from ganforge import DataSpec, GANLoss, GANMetric, GANModels, Goal, LoadedDataset, Params, __version__
from ganforge.cli import create_app
from ganforge.components.datasets import idx
from ganforge.errors import DataError, FactoryError, PluginError
from ganforge.guards import startup
from ganforge.plugins import Phase, PluginSource, PluginState, load_plugins
from ganforge.registry import Kind
from tests.plugin_fixtures import architecture_plugin, install_distribution, plugin_module

ROOT = Path(__file__).parents[2]
SMOKE = ROOT / "examples" / "smoke.yaml"
CONSOLE_SCRIPT = Path(sys.executable).with_name("ganforge")
can_signal_here = pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signal handlers need the main thread"
)


def source(plugin, name, distribution="bad-gans", version="0.1"):
    return PluginSource.from_object(plugin, name, distribution, version)


def quiet_load(sources, **options):
    failures = []
    plugins = load_plugins(sources, disabled=[], strict=options.pop("strict", False), on_failure=failures.append)
    return plugins, failures


def status_of(plugins, name):
    return next(status for status in plugins.statuses if status.name == name)


def loader(action):
    """A plugin source whose import runs ``action`` (as a module's top level would)."""

    def load():
        action()
        return plugin_module("never_returned")

    return load


def exit_3():
    sys.exit(3)


def exit_plain():
    sys.exit()


def raise_keyboard_interrupt():
    raise KeyboardInterrupt


def raise_generator_exit():
    raise GeneratorExit("a BaseException of another kind")


def press_ctrl_c():
    """A real SIGINT, as the terminal sends for Ctrl-C, delivered while the plugin's code runs."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)  # the signal lands here
    raise AssertionError("the SIGINT was not delivered")


def press_ctrl_c_and_swallow_it():
    with contextlib.suppress(BaseException):  # a plugin that catches everything, the user's Ctrl-C included
        press_ctrl_c()


@pytest.fixture
def sigint_reaches_children():
    """A shell that starts pytest in the background ignores SIGINT for it, and children inherit that: undo it."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


# -- 1. SystemExit and KeyboardInterrupt from a plugin's code are that plugin's failure -------------


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


# -- 3. a slow import is named --------------------------------------------------------------------


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


# -- 2. a factory must return its kind's contract type ---------------------------------------------

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


def refused(result, code=1):
    """The command's output on one line, after checking it failed with ``code`` (None: any but 0) and no traceback."""
    output = " ".join(result.output.split())
    assert result.exit_code != 0 if code is None else result.exit_code == code, result.output
    assert "Traceback" not in output
    return output


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


# -- 1 and 4 in real processes: installed plugins, the console script, real SIGINTs ------------------

EXITS_ON_IMPORT = "import sys\nsys.exit(3)\n"
INTERRUPTS_ITSELF_ON_IMPORT = "raise KeyboardInterrupt\n"
EXITS_IN_ITS_HOOK = """
import sys
from ganforge import hookimpl

@hookimpl
def register_losses(register):
    sys.exit("no losses today")
"""
CTRL_C_ON_IMPORT = """
import os, signal, time
os.kill(os.getpid(), signal.SIGINT)
time.sleep(0.5)  # a Ctrl-C inside an import waits for it to finish
"""
CTRL_C_SWALLOWED_ON_IMPORT = """
import os, signal, time
try:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.5)
except BaseException:
    pass
"""
CTRL_C_TWICE_ON_A_HUNG_IMPORT = """
import os, signal, time
os.kill(os.getpid(), signal.SIGINT)
time.sleep(1.5)  # past the grace in which a second SIGINT counts as the same request
os.kill(os.getpid(), signal.SIGINT)
time.sleep(600)
"""
CTRL_C_WHILE_DATA_LOADS = """
import os, signal, time
from ganforge import hookimpl

def load(params, root):
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(30)

@hookimpl
def register_datasets(register):
    register("touchy", load)
"""


def site_with(tmp_path_factory, **plugins):
    """A folder of installed distributions, one per plugin: name -> code."""
    site = tmp_path_factory.mktemp("site")
    for name, code in plugins.items():
        distribution = f"ganforge-{name.replace('_', '-')}"
        install_distribution(site, distribution, "0.1.0", {name: distribution.replace("-", "_")}, code)
    return site


def ganforge_command(*args, site=None, cwd=None, script=False, env_extra=None, **popen):
    environment = {**os.environ, "PYTHONPATH": str(site) if site else ""}
    environment.pop("GANFORGE_STRICT_PLUGINS", None)
    environment.update(env_extra or {})
    command = [str(CONSOLE_SCRIPT)] if script else [sys.executable, "-m", "ganforge"]
    return subprocess.Popen(
        [*command, *args],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def finish(process, timeout=300):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def interruption_lines(err):
    return [line for line in err.splitlines() if "interrupted (Ctrl-C)" in line or "stopped by SIGINT" in line]


@pytest.mark.slow
def test_plugins_that_exit_or_interrupt_leave_every_command_working(tmp_path_factory):
    site = site_with(
        tmp_path_factory, exiter=EXITS_ON_IMPORT, interrupter=INTERRUPTS_ITSELF_ON_IMPORT, hook_exiter=EXITS_IN_ITS_HOOK
    )
    code, out, err = finish(ganforge_command("--version", site=site))
    assert (code, out.strip()) == (0, f"ganforge {__version__}")
    for distribution in ("ganforge-exiter==0.1.0", "ganforge-interrupter==0.1.0", "ganforge-hook-exiter==0.1.0"):
        assert err.count(distribution) == 1, err
    assert "SystemExit(3)" in err and "SystemExit('no losses today')" in err and "KeyboardInterrupt" in err
    assert "Traceback" not in err

    code, out, _ = finish(ganforge_command("plugins", "--json", site=site))
    failed = {p["name"]: p["phase"] for p in json.loads(out)["plugins"] if p["state"] == "failed"}
    assert (code, failed) == (0, {"exiter": "import", "interrupter": "import", "hook_exiter": "register"})

    strict = ganforge_command("--version", site=site, env_extra={"GANFORGE_STRICT_PLUGINS": "1"})
    code, out, err = finish(strict)
    assert (code, out) == (1, "")
    assert "error: plugin 'exiter' from ganforge-exiter==0.1.0 failed at import: SystemExit(3)" in " ".join(err.split())
    assert "Traceback" not in err


@pytest.mark.slow
@pytest.mark.parametrize(
    "plugin",
    [CTRL_C_ON_IMPORT, CTRL_C_SWALLOWED_ON_IMPORT, CTRL_C_TWICE_ON_A_HUNG_IMPORT],
    ids=["once", "swallowed", "twice on a hung import"],
)
def test_a_real_ctrl_c_while_plugins_load_still_stops_the_command(tmp_path_factory, plugin, sigint_reaches_children):
    site = site_with(tmp_path_factory, slowpoke=plugin)
    code, out, err = finish(ganforge_command("--version", site=site), timeout=300)
    assert code == 130, err
    assert out == "" and "Traceback" not in err
    assert interruption_lines(err) == ["ganforge: interrupted (Ctrl-C); stopped"]
    assert "warning: plugin" not in err  # the user's Ctrl-C is no failure of the plugin


# The command's last moments, as main() runs them: its work, then end_command() in a finally.
A_COMMAND_ENDING_JUST_AFTER = """
import sys
sys.path.insert(0, {folder!r})
from ganforge.guards import startup
startup.begin_command()
try:
    {work}
finally:
    startup.end_command()
print("the command went on")
"""
SENDS_CTRL_C_WHILE_IMPORTED = """
import os, signal, time
os.kill(os.getpid(), signal.SIGINT)
time.sleep(0.001)  # the Ctrl-C waits for the import, which ends well before the guard looks again
"""


WAITS_FOR_AN_IMPORT = "import sends_ctrl_c"
SWALLOWS_IT = """import os, signal, time
    try:
        os.kill(os.getpid(), signal.SIGINT)  # outside an import the guard raises at once
        time.sleep(5)
    except BaseException:
        pass"""


@pytest.mark.parametrize("work", [WAITS_FOR_AN_IMPORT, SWALLOWS_IT], ids=["waiting for an import", "swallowed"])
def test_a_ctrl_c_taken_in_the_last_moments_of_a_command_still_exits_130(tmp_path, work, sigint_reaches_children):
    (tmp_path / "sends_ctrl_c.py").write_text(SENDS_CTRL_C_WHILE_IMPORTED)
    script = A_COMMAND_ENDING_JUST_AFTER.format(folder=str(tmp_path), work=work)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout) == (130, ""), result
    assert interruption_lines(result.stderr) == ["ganforge: interrupted (Ctrl-C); stopped"], result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_real_ctrl_c_while_data_loads_stops_before_the_run_folder_exists(
    tmp_path_factory, tmp_path, sigint_reaches_children
):
    site = site_with(tmp_path_factory, touchy=CTRL_C_WHILE_DATA_LOADS)
    config = tiny_config(tmp_path, data={"name": "touchy", "params": {}})
    code, _, err = finish(ganforge_command("run", str(config), "--quiet", site=site, cwd=tmp_path))
    assert code == 130, err
    assert "Traceback" not in err
    assert interruption_lines(err) == [
        "ganforge: interrupted (Ctrl-C); the run folder was not made; nothing was written"
    ]
    assert not (tmp_path / "runs").exists()


# With PYTHONPROFILEIMPORTTIME Python reports each import on stderr as it completes: the line for
# ganforge.guards.startup marks the moment ganforge's own code runs. A SIGINT before it lands in Python's own
# start (site, .pth files).
GANFORGE_STARTED = re.compile(r"^import time:.*\|\s*ganforge\.guards\.startup$")


class Watched:
    """A ganforge command whose stderr is read as it comes, so the test knows when ganforge's code started."""

    def __init__(self, *args, cwd, script=False):
        environment = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
        environment.pop("GANFORGE_STRICT_PLUGINS", None)
        command = [str(CONSOLE_SCRIPT)] if script else [sys.executable, "-m", "ganforge"]
        self.process = subprocess.Popen(
            [*command, *args], cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.started = threading.Event()
        self.lines = []
        self.out = []
        self.readers = [threading.Thread(target=self._read, daemon=True), threading.Thread(target=self._read_out)]
        for reader in self.readers:
            reader.start()

    def _read(self):
        for line in self.process.stderr:
            self.lines.append(line)
            if GANFORGE_STARTED.match(line.rstrip()):
                self.started.set()

    def _read_out(self):
        self.out.extend(self.process.stdout)

    def wait_until_ganforge_runs(self):
        assert self.started.wait(timeout=300), "".join(self.lines)

    def finish(self, timeout=300):
        code = self.process.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=60)
        return code, "".join(line for line in self.lines if not line.startswith("import time:"))

    def finished_its_work(self):
        return any(line.startswith("done:") for line in self.out)


def assert_the_advice_holds(err, run_dir):
    """Whatever the interruption line tells the user to do must work with what is on disk."""
    [line] = interruption_lines(err)
    last = run_dir / "checkpoints" / "last.pt"
    if "--resume" in line:
        assert last.is_file(), line
    elif "--overwrite" in line:
        assert run_dir.is_dir() and not last.exists(), line
    else:
        assert line.endswith(("; stopped", "the run folder was not made; nothing was written")), line
        assert not run_dir.exists(), line


STARTUP_DELAYS = (0.05, 0.2, 0.5, 1.0, 1.5, 2.0, 3.0)  # seconds after ganforge's code starts
SHARES_OF_A_WHOLE_RUN = (0.2, 0.4, 0.6, 0.8)  # and moments spread over a whole smoke run on this machine
TRIES = 2


@pytest.mark.slow
@pytest.mark.parametrize("script", [False, True], ids=["python -m ganforge", "console script"])
def test_ctrl_c_at_any_moment_of_start_up_exits_130_with_one_line(tmp_path, script, sigint_reaches_children):
    if script and not CONSOLE_SCRIPT.exists():
        pytest.skip(f"the console script is not installed at {CONSOLE_SCRIPT}")
    whole = Watched("run", str(SMOKE), "--quiet", cwd=tmp_path, script=script)
    whole.wait_until_ganforge_runs()
    began = time.monotonic()
    code, err = whole.finish()
    assert code == 0, err
    whole_run = time.monotonic() - began
    delays = [*STARTUP_DELAYS, *(share * whole_run for share in SHARES_OF_A_WHOLE_RUN)]
    interrupted = 0
    for attempt in range(TRIES):
        for moment, delay in enumerate(delays):
            # Named by position too: a share of the whole run can round to one of the fixed delays (1.50).
            workdir = tmp_path / f"{attempt}-{moment}-{delay:.2f}"
            workdir.mkdir()
            command = Watched("run", str(SMOKE), "--quiet", cwd=workdir, script=script)
            command.wait_until_ganforge_runs()
            time.sleep(delay)
            if command.process.poll() is not None:  # this one finished first: no moment left to interrupt
                continue
            command.process.send_signal(signal.SIGINT)
            code, err = command.finish()
            if code in (0, -signal.SIGINT) and command.finished_its_work() and not err:
                # Too late to interrupt: the run was done and Python was shutting down. A signal then is either
                # never acted on (exit 0) or meets the default handler again (killed); either way, no output.
                continue
            assert code == 130, (delay, code, err)
            assert "Traceback" not in err, (delay, err)
            assert_the_advice_holds(err, workdir / "runs" / "smoke")
            interrupted += 1
    assert interrupted >= TRIES * len(STARTUP_DELAYS)


@pytest.mark.slow
def test_ctrl_c_just_after_the_run_folder_is_made_gives_advice_that_holds(tmp_path, sigint_reaches_children):
    for attempt in range(3):
        workdir = tmp_path / str(attempt)
        workdir.mkdir()
        run_dir = workdir / "runs" / "smoke"
        process = ganforge_command("run", str(SMOKE), "--quiet", cwd=workdir)
        deadline = time.monotonic() + 300
        while not run_dir.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.02 * attempt)
        process.send_signal(signal.SIGINT)
        code, _, err = finish(process)
        assert code == 130 and "Traceback" not in err, err
        assert_the_advice_holds(err, run_dir)


def test_the_guard_is_for_the_command_only(monkeypatch):
    for argv, orig_argv, expected in [
        (["-m"], ["python", "-m", "ganforge", "run"], True),
        (["-m"], ["python", "-X", "importtime", "-mganforge"], True),
        (["-m"], ["python", "-m", "pytest"], False),
        (["/venv/bin/ganforge", "run"], ["python", "/venv/bin/ganforge", "run"], True),
        (["/venv/bin/pytest"], ["python", "/venv/bin/pytest"], False),
        (["train.py"], ["python", "train.py"], False),
    ]:
        monkeypatch.setattr(sys, "argv", argv)
        monkeypatch.setattr(sys, "orig_argv", orig_argv)
        assert startup.launched_as_command() is expected, argv
    # Imported as a library (as here, under pytest), ganforge leaves Ctrl-C to Python.
    assert not startup.is_guarded()
    assert getattr(signal.getsignal(signal.SIGINT), "__module__", None) != "ganforge.guards.startup"


# -- 6. gzip bombs and huge IDX headers -----------------------------------------------------------


def idx_header(magic, *dims):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", dim) for dim in dims)


def write_gzip_bomb(path, header, unpacked_bytes):
    """A gzip file that unpacks to ``header`` and ``unpacked_bytes`` zeros: about 1,000 times smaller than that."""
    zeros = bytes(2**20)
    with gzip.open(path, "wb", compresslevel=9) as stream:
        stream.write(header)
        for _ in range(unpacked_bytes // len(zeros)):
            stream.write(zeros)


def read_measured(path, magic):
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DataError) as caught:
            idx.read_idx(path, magic)
        return str(caught.value), time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_gzip_bomb_is_refused_without_unpacking_it(tmp_path):
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    write_gzip_bomb(bomb, idx_header(idx.IDX_IMAGES_MAGIC, 10, 28, 28), unpacked_bytes=400 * 2**20)
    assert bomb.stat().st_size < 2**20  # under 1 MB of gzip, 400 MB unpacked
    message, seconds, peak = read_measured(bomb, idx.IDX_IMAGES_MAGIC)
    assert str(bomb) in message and "longer than its header says" in message
    assert seconds < 2
    assert peak < 16 * 2**20, f"{peak / 2**20:.1f} MiB"


@pytest.mark.parametrize(
    ("dims", "expected"),
    [
        ((2**32 - 1, 2**32 - 1, 2**32 - 1), "more than the 2,147,483,648 bytes"),
        ((1_500_000, 28, 28), "file is truncated"),  # 1.2 GB promised, a few bytes there
    ],
    ids=["beyond the limit", "within the limit, absent"],
)
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gz"])
def test_a_huge_idx_header_is_refused_without_taking_the_memory_it_asks_for(tmp_path, dims, expected, gzipped):
    content = idx_header(idx.IDX_IMAGES_MAGIC, *dims) + bytes(100)
    path = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gzipped else ""))
    path.write_bytes(gzip.compress(content) if gzipped else content)
    message, seconds, peak = read_measured(path, idx.IDX_IMAGES_MAGIC)
    assert str(path) in message and expected in message
    assert seconds < 2 and peak < 16 * 2**20


def test_a_gzip_bomb_in_a_dataset_is_a_clear_cli_error(app, tmp_path):
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    write_gzip_bomb(mnist / "t10k-images-idx3-ubyte.gz", idx_header(idx.IDX_IMAGES_MAGIC, 2, 28, 28), 64 * 2**20)
    (mnist / "t10k-labels-idx1-ubyte").write_bytes(idx_header(idx.IDX_LABELS_MAGIC, 2) + bytes(2))
    result = CliRunner().invoke(app, ["data", "mnist", "--param", f"root={tmp_path}", "--param", "split=test"])
    output = refused(result)
    assert "t10k-images-idx3-ubyte.gz: file is longer than its header says" in output


def test_real_idx_files_still_read_whole(tmp_path):
    images = torch.randint(0, 256, (300, 28, 28), dtype=torch.uint8).numpy()
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(idx_header(idx.IDX_IMAGES_MAGIC, 300, 28, 28) + images.tobytes()))
    read = idx.read_idx(path, idx.IDX_IMAGES_MAGIC)
    assert read.shape == (300, 28, 28) and (read == images).all() and read.flags.writeable


# -- 7. the dependency floor ----------------------------------------------------------------------


def test_the_torch_floor_is_the_release_that_fixed_weights_only_loading():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch>=2.6" in dependencies  # CVE-2025-32434: torch.load(weights_only=True) could run code before 2.6
    assert "torchvision>=0.21" in dependencies  # the torchvision released with torch 2.6
    assert tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 6)
