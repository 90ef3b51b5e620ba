"""Wall time until a run's FID reaches a target, printed as a curve (time, epoch, FID).

    GANFORGE_DATA=../shared/data python benchmarks/time_to_quality.py examples/mnist_fast.yaml --target 250
    python benchmarks/time_to_quality.py --run-dir runs/mnist_mlp --target 250     # a finished run

Training a config: the run evaluates as its ``eval`` section says (set ``eval.every`` to 1 for a
fine curve), and each evaluation is stamped with the wall time since training began, less the
time spent evaluating, which is measurement, not training. The loop time alone (the sum of the
epochs' ``seconds``) is shown beside it. Reading a finished run (``--run-dir``) gives the loop
time only, from its metrics.jsonl.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from ganforge.config import load_config
from ganforge.plugins import load_plugins
from ganforge.training.progress import LineReporter
from ganforge.training.run_folder import RunFolder
from ganforge.training.runs import start_run

METRIC = "fid"


class StampingReporter(LineReporter):
    """Plain progress lines, and the training wall time (evaluation excluded) of each evaluation."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.started = 0.0
        self.evaluating = 0.0
        self.wall_seconds: dict[int, float] = {}

    def start(self, first_epoch: int, epochs: int, steps_per_epoch: int, done_steps: int = 0) -> None:
        super().start(first_epoch, epochs, steps_per_epoch, done_steps)
        self.started = time.perf_counter()

    def log(self, record: dict[str, Any]) -> None:
        super().log(record)
        if record["event"] == "eval":
            self.evaluating += record["seconds"]
            self.wall_seconds[record["epoch"]] = time.perf_counter() - self.started - self.evaluating


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", type=Path, help="a config to train (with eval.every > 0)")
    parser.add_argument("--run-dir", type=Path, help="read a finished run's metrics.jsonl instead of training")
    parser.add_argument("--target", type=float, help=f"the {METRIC} to reach")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override, as in run")
    args = parser.parse_args()
    if (args.config is None) == (args.run_dir is None):
        parser.error("give a config to train or --run-dir, not both")

    wall_seconds: dict[int, float] = {}
    if args.config is not None:
        with tempfile.TemporaryDirectory(prefix="ganforge-ttq-") as scratch:
            overrides = [f"output.dir={Path(scratch) / 'run'}", *args.overrides]
            run = load_config(args.config, load_plugins().registry, overrides, overrides_option="--set")
            if run.config.eval.every == 0:
                sys.exit(f"{args.config}: eval.every is 0, so the run never measures {METRIC}; try --set eval.every=1")
            reporter = StampingReporter(Console(stderr=True))
            start_run(run, reporter=reporter)
            wall_seconds = reporter.wall_seconds
            records = list(RunFolder(run.config.run_dir()).metrics.read())
    else:
        folder = RunFolder(args.run_dir)
        if not folder.metrics.path.is_file():
            sys.exit(f"{args.run_dir} is not a run folder: {folder.metrics.path} does not exist")
        records = list(folder.metrics.read())
    print_curve(records, wall_seconds, args.target)


def print_curve(records: list[dict[str, Any]], wall_seconds: dict[int, float], target: float | None) -> None:
    loop_seconds = 0.0
    reached = None
    print(f"{'epoch':>5} {'loop s':>9} {'wall s':>9} {METRIC:>10}   (wall: since training began, evaluation excluded)")
    for record in records:
        if record["event"] == "epoch":
            loop_seconds += record["seconds"]
        elif record["event"] == "eval" and METRIC in record:
            epoch, value = record["epoch"], record[METRIC]
            wall = wall_seconds.get(epoch)
            print(f"{epoch:>5} {loop_seconds:>9.1f} {'-' if wall is None else f'{wall:.1f}':>9} {value:>10.2f}")
            if reached is None and target is not None and value <= target:
                reached = (epoch, loop_seconds, wall, value)
    if target is None:
        return
    if reached is None:
        print(f"{METRIC} never reached the target {target}")
        return
    epoch, loop, wall, value = reached
    wall_text = "" if wall is None else f", {wall:.1f} s wall"
    print(f"{METRIC} {value:.2f} <= target {target} at epoch {epoch}: {loop:.1f} s in the training loop{wall_text}")


if __name__ == "__main__":
    main()
