"""docs/plugins.md is followed literally: its code blocks become a plugin that installs and passes the checks."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).parent.parent / "docs" / "plugins.md"


def code_block(first_line: str) -> str:
    for body in re.findall(r"```\w+\n(.*?)```", DOC.read_text(), re.S):
        if body.splitlines()[0] == first_line:
            return body
    raise AssertionError(f"docs/plugins.md has no code block starting {first_line!r}")


def guide_module(first_line: str, name: str):
    """The guide's code block that starts with ``first_line``, run as a module of its own."""
    namespace = {"__name__": name}
    exec(compile(code_block(first_line), first_line.split("/")[-1], "exec"), namespace)
    module = type(sys)(name)
    module.__dict__.update(namespace)
    return module


@pytest.mark.slow
def test_the_plugin_guide_makes_a_working_plugin(tmp_path):
    site = tmp_path / "site"
    (site / "mygan").mkdir(parents=True)
    (site / "mygan" / "__init__.py").write_text("")
    (site / "mygan" / "plugin.py").write_text(code_block("# src/mygan/plugin.py"))
    pyproject = code_block("# pyproject.toml")
    name, target = re.search(r'\[project\.entry-points\.ganforge\]\n(\w+) = "([\w.]+)"', pyproject).groups()
    info = site / "mygan-0.1.0.dist-info"  # what `pip install` of that pyproject.toml would leave
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mygan\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[ganforge]\n{name} = {target}\n")
    tests = tmp_path / "tests"
    tests.mkdir()
    (tests / "test_mygan.py").write_text(code_block("# tests/test_mygan.py"))

    env = {**os.environ, "PYTHONPATH": str(site), "GANFORGE_STRICT_PLUGINS": "1"}
    check = subprocess.run(
        [sys.executable, "-m", "ganforge", "check", "mygan"], capture_output=True, text=True, env=env, timeout=300
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "0 failed" in check.stdout
    pytest_run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert pytest_run.returncode == 0, pytest_run.stdout
    assert "passed" in pytest_run.stdout

    # The guide's own command line trains with the plugin (its pre-flight check included).
    [run_line] = [line for line in DOC.read_text().splitlines() if line.startswith("ganforge run examples/smoke.yaml")]
    arguments = re.sub(r"\s+#.*$", "", run_line).split()[1:]
    arguments = [argument.strip('"') for argument in arguments]
    repo = Path(__file__).parent.parent
    trained = subprocess.run(
        [sys.executable, "-m", "ganforge", *arguments, "--set", f"output.dir={tmp_path / 'run'}", "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo,
        timeout=300,
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()


def test_the_guide_s_metric_passes_the_metric_checks():
    from ganforge.registry import Kind
    from ganforge.testing import check_component, isolated_registry

    module = guide_module("# src/mygan/metrics.py", "mygan_metrics")
    component = isolated_registry(module, distribution="mygan").get(Kind.METRIC, "mean_distance")
    results = check_component(component)
    assert [r.status for r in results] == ["passed"] * len(results), results


def test_the_guide_s_conditional_architecture_passes_every_check():
    from ganforge.registry import Kind
    from ganforge.testing import check_component, isolated_registry

    module = guide_module("# src/mygan/conditional.py", "mygan_conditional")
    component = isolated_registry(module, distribution="mygan").get(Kind.ARCHITECTURE, "cgan")
    results = {result.check: result.status for result in check_component(component)}
    assert results.pop("check_moves_to_another_device") in ("passed", "skipped")  # CUDA only
    assert set(results.values()) == {"passed"}, results
    assert {"check_labels_change_the_output", "check_labels_out_of_range_are_refused"} <= set(results)


def test_the_guide_s_logger_passes_the_logger_checks_and_follows_a_run(tmp_path):
    from ganforge.registry import Kind
    from ganforge.testing import check_component, isolated_registry

    module = guide_module("# src/mygan/loggers.py", "mygan_loggers")
    component = isolated_registry(module, distribution="mygan").get(Kind.LOGGER, "evaluations")
    results = check_component(component)
    assert [r.status for r in results] == ["passed"] * len(results), results
    logger = component.build({})
    logger.start({"name": "guide"}, tmp_path, False)
    logger.log({"event": "step", "epoch": 1, "step": 4, "d_loss": 1.0})
    logger.log({"event": "eval", "epoch": 1, "step": 8, "fid": 3.5})
    assert (tmp_path / "evaluations.jsonl").read_text() == '{"step": 8, "fid": 3.5}\n'


def test_the_guide_s_schedule_passes_the_schedule_checks_and_steps_down():
    from ganforge.registry import Kind
    from ganforge.testing import check_component, isolated_registry

    module = guide_module("# src/mygan/schedules.py", "mygan_schedules")
    component = isolated_registry(module, distribution="mygan").get(Kind.SCHEDULE, "step_decay")
    results = check_component(component)
    assert [r.status for r in results] == ["passed"] * len(results), results
    schedule = component.build({"start": 8.0, "every": 10, "drops": 2})
    assert [schedule(images) for images in (0, 9, 10, 25, 10**6)] == [8.0, 8.0, 4.0, 2.0, 2.0]
    assert schedule.extremes() == (2.0, 8.0)
