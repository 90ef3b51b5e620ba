"""Images/s of one training process against several (DistributedDataParallel) on this machine.

    GANFORGE_DATA=../shared/data python benchmarks/processes.py --recipe seed001 --nproc 1 2

Each contender is a whole `ganforge run RECIPE --nproc N` on the first --steps global batches of
MNIST (data.params.limit), for --epochs epochs; the first epoch of each run (start-up, first
allocations, torch.compile where it is on) is not counted, and the images/s of a run is all
images of the counted epochs over their training seconds, as its metrics.jsonl logs them.
``train.batch_size`` is the global batch, so every contender does the same optimisation and only
the split differs. One process uses the machine's default torch threads; N processes get
cores/N threads each (OMP_NUM_THREADS, as torchrun sets it). On a machine with GPUs each process
takes one. The contenders take turns, a round each, starting with a different one each round.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import ganforge
from ganforge.config import load_config
from ganforge.plugins import load_plugins
from ganforge.training.run_folder import RunFolder

REPOSITORY = Path(__file__).resolve().parent.parent
RECIPES = {
    "seed001": REPOSITORY / "examples" / "mnist_mlp.yaml",
    "seed000": REPOSITORY / "examples" / "mnist_dcgan.yaml",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="seed001", help="an MNIST recipe of examples/")
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2], help="process counts to compare")
    parser.add_argument("--steps", type=int, default=100, help="global batches per epoch")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is not counted")
    parser.add_argument("--rounds", type=int, default=3, help="runs per contender")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override, as in run")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch of each run is not counted")

    args.batch_size = recipe_batch_size(args)
    print_setup(args)
    rates: dict[int, list[float]] = {nproc: [] for nproc in args.nproc}
    with tempfile.TemporaryDirectory(prefix="ganforge-processes-") as scratch:
        for round_index in range(args.rounds):
            turn = args.nproc[round_index % len(args.nproc) :] + args.nproc[: round_index % len(args.nproc)]
            for nproc in turn:
                rates[nproc].append(run_once(args, nproc, Path(scratch) / f"run_{nproc}"))
            figures = ", ".join(f"{nproc} process(es) {rates[nproc][-1]:,.0f}" for nproc in args.nproc)
            print(f"round {round_index + 1}: images/s {figures}", flush=True)
    print_results(rates)


def run_once(args: argparse.Namespace, nproc: int, run_dir: Path) -> float:
    """One whole run; the images/s of its counted epochs."""
    overrides = [
        f"output.dir={run_dir}",
        f"train.epochs={args.epochs}",
        "eval.every=0",
        "train.sample_every=0",
        "train.checkpoint_every=0",
        "train.log_every=100000",
        *args.overrides,
    ]
    command = [sys.executable, "-m", "ganforge", "run", str(RECIPES[args.recipe]), "--quiet", "--overwrite"]
    command += ["--nproc", str(nproc)]
    for override in [f"data.params.limit={args.steps * args.batch_size}", *overrides]:
        command += ["--set", override]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"ganforge run --nproc {nproc} failed:\n{result.stdout}{result.stderr}")
    epochs = [record for record in RunFolder(run_dir).metrics.read() if record["event"] == "epoch"][1:]
    images = sum(record["images/s"] * record["seconds"] for record in epochs)
    return images / sum(record["seconds"] for record in epochs)


def recipe_batch_size(args: argparse.Namespace) -> int:
    run = load_config(RECIPES[args.recipe], load_plugins().registry, args.overrides, overrides_option="--set")
    return run.config.train.batch_size


def print_setup(args: argparse.Namespace) -> None:
    if torch.cuda.is_available():
        machine = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    else:
        machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    print(f"machine: {platform.node()}: {machine}")
    print(f"versions: python {platform.python_version()}, torch {torch.__version__}, ganforge {ganforge.__version__}")
    print(
        f"recipe {args.recipe}, global batch {args.batch_size}, {args.steps} steps per epoch, "
        f"{args.epochs} epochs per run (first not counted), {args.rounds} rounds"
    )


def print_results(rates: dict[int, list[float]]) -> None:
    base = min(rates)
    print(f"{'processes':<10} {'median images/s':>16} {'min':>10} {'max':>10}")
    for nproc, values in rates.items():
        print(f"{nproc:<10} {statistics.median(values):>16,.0f} {min(values):>10,.0f} {max(values):>10,.0f}")
    for nproc, values in rates.items():
        if nproc == base:
            continue
        ratios = [many / one for many, one in zip(values, rates[base], strict=True)]
        print(
            f"{nproc} / {base} process(es): {statistics.median(ratios):.3f}x median of rounds "
            f"(range {min(ratios):.3f}-{max(ratios):.3f})"
        )


if __name__ == "__main__":
    main()
