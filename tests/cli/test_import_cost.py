"""A quick command imports only what it uses: torchvision, matplotlib, TensorBoard and the evaluation code
cost seconds to import, and are paid for by the commands that draw, plot, log or score alone.

Each command runs in a fresh process, entered as the ``ganforge`` console script enters it, which
then writes the modules it ended with. What it imported is asserted, never how long it took
(benchmarks/startup.py measures that).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "mnist_mlp.yaml"

# The console script's own code (``from ganforge.cli import main; sys.exit(main())``), with argv[0]
# named as the script is, so that ganforge sees itself launched as the command; the modules are
# written whatever the exit code.
PROBE = """
import json, sys
modules_file, *arguments = sys.argv[1:]
sys.argv = ["ganforge", *arguments]
try:
    from ganforge.cli import main
    sys.exit(main())
finally:
    with open(modules_file, "w") as stream:
        json.dump(sorted(sys.modules), stream)
"""

HEAVY = ("torchvision", "matplotlib", "tensorboard", "ganforge.evaluation")

QUICK_COMMANDS = {
    "help": ["--help"],
    "list": ["list"],
    "show": ["show", "architecture", "mlp"],
    "validate": ["validate", str(EXAMPLE)],
}


def modules_after(tmp_path: Path, *arguments: str) -> set[str]:
    """The modules a ``ganforge ARGUMENTS`` process had imported when it ended; it must have succeeded."""
    modules_file = tmp_path / "modules.json"
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(modules_file), *arguments],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return set(json.loads(modules_file.read_text()))


def loaded(modules: set[str], package: str) -> list[str]:
    return sorted(module for module in modules if module == package or module.startswith(f"{package}."))


@pytest.mark.slow
@pytest.mark.parametrize("command", QUICK_COMMANDS, ids=str)
def test_a_quick_command_leaves_the_heavy_libraries_unimported(tmp_path, command):
    modules = modules_after(tmp_path, *QUICK_COMMANDS[command])
    # The probe saw the command run: the CLI, the plugins it lists, and torch, which every command needs.
    assert {"ganforge.cli", "ganforge.components.metrics", "torch"} <= modules
    imported = {package: loaded(modules, package)[:3] for package in HEAVY if loaded(modules, package)}
    assert not imported, f"ganforge {' '.join(QUICK_COMMANDS[command])} imported {imported}"
