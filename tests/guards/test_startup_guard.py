"""The start-up guard: a plugin's exit or a Ctrl-C while ganforge starts, while plugins load or data loads,
or in a command's last moments ends the command with exit 130 and one line, in a real process."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ganforge import __version__
from ganforge.guards import startup
from tests.plugin_fixtures import install_distribution
from tests.runs import SMOKE
from tests.small_configs import tiny_config

CONSOLE_SCRIPT = Path(sys.executable).with_name("ganforge")
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
