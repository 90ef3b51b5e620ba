"""A logger plugin that fails is the plugin's failure, never the run's.

Each fault of a third-party logger (installed as a distribution, rogue-loggers): a tiny run with it
ends with the exit code, checkpoints and weights of the same run without it, and exactly one line
of the run's output names the logger and its distribution. A logger that hangs does not stop a
SIGTERM from saving last.pt and exiting 143.
"""

import importlib
import os
import signal
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from ganforge.cli import create_app
from ganforge.components.loggers import MLFLOW_HTTP_BOUNDS
from ganforge.plugins import load_plugins
from ganforge.registry import Kind
from ganforge.training.logger_thread import QUEUE_CALLS
from tests.plugin_fixtures import install_distribution
from tests.runs import LONG_EPOCH, SMOKE, assert_same_weights, logged_steps, wait_for
from tests.small_configs import tiny_config

ROGUE_LOGGERS = """
    import sys
    import threading
    from typing import Literal

    import ganforge
    from ganforge import Params, RunLogger


    class FaultParams(Params):
        where: Literal["init", "start", "log", "images", "finish"] = "log"
        fault: Literal["raise", "exit", "keyboard_interrupt", "generator_exit", "hang"] = "raise"
        code: int = 8


    class RogueLogger(RunLogger):
        '''Does ``fault`` in its ``where`` call.'''

        def __init__(self, params: FaultParams):
            self.params = params
            self.fail_in("init")

        def fail_in(self, call):
            if call != self.params.where:
                return
            fault = self.params.fault
            if fault == "exit":
                sys.exit(self.params.code)
            if fault == "keyboard_interrupt":
                raise KeyboardInterrupt
            if fault == "generator_exit":
                raise GeneratorExit
            if fault == "hang":
                threading.Event().wait()
            raise ValueError("the rogue logger's own bug")

        def start(self, config, run_dir, resumed):
            self.fail_in("start")

        def log(self, record):
            self.fail_in("log")

        def images(self, name, images, step):
            self.fail_in("images")

        def finish(self, outcome):
            self.fail_in("finish")


    @ganforge.hookimpl
    def register_loggers(register):
        register("rogue", RogueLogger, params=FaultParams, summary="Fails where and how it is told.")
"""
ROGUE = ("logger 'rogue' of plugin", "(rogue-loggers==0.3.0)")  # the logger and its distribution


@pytest.fixture(scope="module")
def rogue_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    install_distribution(site, "rogue-loggers", "0.3.0", {"rogue": "rogue_loggers"}, ROGUE_LOGGERS)
    return site


@pytest.fixture(scope="module")
def rogue_app(rogue_site):
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(rogue_site))
        importlib.invalidate_caches()
        yield create_app(load_plugins(strict=True))
    sys.modules.pop("rogue_loggers", None)


def tiny_run(app, directory, name, loggers):
    config = tiny_config(directory, name=name, output={"loggers": loggers})
    result = CliRunner().invoke(app, ["run", str(config), "--quiet"])
    return result, directory / "runs" / name


@pytest.fixture(scope="module")
def without_logger(rogue_app, tmp_path_factory):
    directory = tmp_path_factory.mktemp("baseline")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(directory)
        result, run_dir = tiny_run(rogue_app, directory, "baseline", [])
    assert result.exit_code == 0, result.output
    return result.exit_code, run_dir


def assert_as_without_it(result, run_dir, without_logger, logger, *said):
    """The baseline's exit code, checkpoint files and weights; one line naming ``logger`` (the logger and its
    distribution) and saying ``said``."""
    exit_code, baseline = without_logger
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output and "interrupted (Ctrl-C)" not in result.output
    assert sorted(path.name for path in (run_dir / "checkpoints").iterdir()) == sorted(
        path.name for path in (baseline / "checkpoints").iterdir()
    )
    assert_same_weights(run_dir / "checkpoints" / "last.pt", baseline / "checkpoints" / "last.pt")
    named, distribution = logger
    [line] = [line for line in result.output.splitlines() if named in line]
    assert distribution in line and all(part in line for part in said), line


@pytest.mark.parametrize(
    ("where", "fault", "code", "said"),
    [
        ("init", "raise", 8, "its factory raised ValueError: the rogue logger's own bug"),
        ("init", "exit", 8, "its factory called sys.exit(8) while building"),
        ("init", "keyboard_interrupt", 8, "its factory raised KeyboardInterrupt while building"),
        ("init", "generator_exit", 8, "its factory raised GeneratorExit"),
        ("start", "exit", 8, "failed in start() (it called sys.exit(8))"),
        ("log", "exit", 8, "failed in log() (it called sys.exit(8))"),
        ("images", "raise", 8, "failed in images() (ValueError: the rogue logger's own bug)"),
        ("finish", "exit", 6, "failed in finish() (it called sys.exit(6))"),
        ("log", "keyboard_interrupt", 8, "failed in log() (it raised KeyboardInterrupt itself; no Ctrl-C was pressed)"),
        ("log", "generator_exit", 8, "failed in log() (GeneratorExit)"),
    ],
)
def test_a_logger_that_raises_exits_or_interrupts_is_named_once_and_the_run_is_as_without_it(
    rogue_app, workdir, without_logger, where, fault, code, said
):
    rogue = {"name": "rogue", "params": {"where": where, "fault": fault, "code": code}}
    result, run_dir = tiny_run(rogue_app, workdir, "rogue", [rogue])
    assert_as_without_it(result, run_dir, without_logger, ROGUE, said, "it is off for")


def test_a_logger_that_hangs_is_switched_off_when_it_falls_too_far_behind(rogue_app, workdir):
    """A run is never held back by a logger: one that has not returned for QUEUE_CALLS calls is left behind."""
    rogue = {"name": "rogue", "params": {"where": "log", "fault": "hang"}}
    config = tiny_config(workdir, name="behind", output={"loggers": [rogue]})
    many_lines = ["--set", f"train.epochs={QUEUE_CALLS // 4}", "--set", "train.log_every=1"]  # 5 lines an epoch
    result = CliRunner().invoke(rogue_app, ["run", str(config), "--quiet", *many_lines])
    assert result.exit_code == 0, result.output
    assert (workdir / "runs" / "behind" / "checkpoints" / "last.pt").is_file()
    named, distribution = ROGUE
    [line] = [line for line in result.output.splitlines() if named in line]
    assert distribution in line and f"is {QUEUE_CALLS} calls behind the run (in log() for" in line, line


def test_validate_names_a_logger_whose_factory_fails_and_says_the_run_goes_on_without_it(rogue_app, workdir):
    rogue = {"name": "rogue", "params": {"where": "init", "fault": "exit"}}
    config = tiny_config(workdir, name="validated", output={"loggers": [rogue]})
    result = CliRunner().invoke(rogue_app, ["validate", str(config)])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    output = " ".join(result.output.split())
    assert "its factory called sys.exit(8) while building; `ganforge run` would go on without it" in output
    assert ROGUE[1] in output


def test_an_unreachable_mlflow_server_is_named_and_the_run_is_as_without_it(
    rogue_app, workdir, without_logger, monkeypatch
):
    """MLflow's own retries would take about 250 s before the failure; its bounds make it seconds."""
    pytest.importorskip("mlflow")
    for name in MLFLOW_HTTP_BOUNDS:
        monkeypatch.delenv(name, raising=False)  # and restored after: the logger sets them in this process
    server = {"name": "mlflow", "params": {"tracking_uri": "http://127.0.0.1:9"}}  # nothing listens: refused
    result, run_dir = tiny_run(rogue_app, workdir, "unreachable", [server])
    mlflow = ("logger 'mlflow' of plugin", "(ganforge==")
    assert_as_without_it(result, run_dir, without_logger, mlflow, "127.0.0.1:9", "it is off for")


def test_the_mlflow_http_bounds_leave_what_the_user_set(registry, monkeypatch):
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    registry.get(Kind.LOGGER, "mlflow").build({})
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == MLFLOW_HTTP_BOUNDS["MLFLOW_HTTP_REQUEST_TIMEOUT"]


@pytest.mark.slow
def test_sigterm_saves_and_exits_143_while_a_logger_hangs_in_log(rogue_site, tmp_path):
    hung = yaml.safe_dump([{"name": "rogue", "params": {"where": "log", "fault": "hang"}}], default_flow_style=True)
    command = [sys.executable, "-m", "ganforge", "run", str(SMOKE), "--quiet", "--set", "name=hung"]
    for override in [*LONG_EPOCH, f"output.loggers={hung.strip()}"]:
        command += ["--set", override]
    environment = {**os.environ, "PYTHONPATH": str(rogue_site), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run_dir = tmp_path / "runs" / "hung"
    try:
        wait_for(lambda: logged_steps(run_dir) >= 8, process)  # training went on past the log() that hung
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=300)  # a hang guard only
    finally:
        process.kill()  # gone already, unless the test failed
    output = stdout.decode() + stderr.decode()
    assert process.returncode == 143, output
    assert "stopped by SIGTERM" in output and "Traceback" not in output
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    named, distribution = ROGUE
    [line] = [line for line in output.splitlines() if named in line]
    assert distribution in line and "in log() for" in line, line
