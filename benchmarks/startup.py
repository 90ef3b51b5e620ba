"""Start-up time of ganforge's quick commands against importing torch alone, on this machine.

    python benchmarks/startup.py --rounds 5

Each contender is a fresh Python process, timed from start to exit (wall clock): ``python -c
"import torch"``, the floor every command pays, then ``ganforge --help``, ``list``, ``show
architecture mlp`` and ``validate examples/mnist_mlp.yaml`` (run as ``python -m ganforge``, which
imports what the console script imports). The contenders take turns, one process each per round,
starting with a different one each round, so that a noisy machine slows them all alike. Printed:
each contender's median, min and max, and each command's median difference from ``import torch``
(the median over rounds of command minus ``import torch`` of the same round).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
BASELINE = "import torch"
GANFORGE = [sys.executable, "-m", "ganforge"]
CONTENDERS: dict[str, list[str]] = {
    BASELINE: [sys.executable, "-c", "import torch"],
    "ganforge --help": [*GANFORGE, "--help"],
    "ganforge list": [*GANFORGE, "list"],
    "ganforge show architecture mlp": [*GANFORGE, "show", "architecture", "mlp"],
    "ganforge validate mnist_mlp.yaml": [*GANFORGE, "validate", str(REPOSITORY / "examples" / "mnist_mlp.yaml")],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="processes per contender")
    parser.add_argument("--only", nargs="+", choices=sorted(CONTENDERS), help="time these contenders only")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    names = [BASELINE, *[name for name in CONTENDERS if name != BASELINE and (not args.only or name in args.only)]]

    print_setup(args.rounds)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(args.rounds):
        turn = names[round_index % len(names) :] + names[: round_index % len(names)]
        for name in turn:
            seconds[name].append(time_once(name))
        figures = ", ".join(f"{name} {seconds[name][-1]:.2f}" for name in names)
        print(f"round {round_index + 1}: s {figures}", flush=True)
    print_results(seconds)


def time_once(name: str) -> float:
    """Seconds from starting the contender's process to its exit."""
    started = time.perf_counter()
    result = subprocess.run(CONTENDERS[name], capture_output=True, text=True, cwd=REPOSITORY)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{name} failed (exit {result.returncode}):\n{result.stdout}{result.stderr}")
    return elapsed


def print_setup(rounds: int) -> None:
    print(f"machine: {platform.node()}: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print(
        f"versions: python {platform.python_version()}, torch {version('torch')}, "
        f"torchvision {version('torchvision')}, ganforge {version('ganforge')}"
    )
    # Without cached bytecode every process compiles ganforge's modules again: a cost installed copies do not pay.
    bytecode = "not cached (PYTHONDONTWRITEBYTECODE is set)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "cached"
    print(f"{rounds} rounds, one process per contender each, wall clock from start to exit; bytecode {bytecode}")


def print_results(seconds: dict[str, list[float]]) -> None:
    width = max(map(len, seconds))
    print(f"{'contender':<{width}} {'median s':>9} {'min':>7} {'max':>7}")
    for name, values in seconds.items():
        print(f"{name:<{width}} {statistics.median(values):>9.2f} {min(values):>7.2f} {max(values):>7.2f}")
    for name, values in seconds.items():
        if name == BASELINE:
            continue
        differences = [command - floor for command, floor in zip(values, seconds[BASELINE], strict=True)]
        print(
            f"{name} - {BASELINE}: {statistics.median(differences):+.2f} s median of rounds "
            f"(range {min(differences):+.2f} to {max(differences):+.2f})"
        )


if __name__ == "__main__":
    main()
