"""How long a run takes to reach its first training step: the first time (preparing its images) and the second.

    python benchmarks/first_step.py examples/emoji.yaml

Starts ``ganforge run CONFIG`` twice with the same, fresh ganforge cache ($GANFORGE_CACHE in a
temporary folder), each into a new run folder, logging every step; a run has reached its first
step when the first line lands in its metrics.jsonl, and is stopped there. The first run prepares
an ``image_folder`` dataset into the cache (its manifest records how long that took); the second
opens the prepared copy. The seconds include starting Python and importing torch. Nothing else
should be running.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POLL_SECONDS = 0.05
LIMIT_SECONDS = 900.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--runs", type=int, default=2, help="Runs in a row with the same cache (default 2).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ganforge-first-step-") as scratch:
        scratch_dir = Path(scratch)
        environment = {**os.environ, "GANFORGE_CACHE": str(scratch_dir / "cache")}
        for run in range(1, args.runs + 1):
            seconds = seconds_to_first_step(args.config, scratch_dir / f"run{run}", environment)
            print(f"run {run}: first step after {seconds:.1f} s", flush=True)
        for manifest in sorted((scratch_dir / "cache" / "prepared").glob("*/manifest.json")):
            prepared = json.loads(manifest.read_text())
            print(
                f"the first run's preparation: {prepared['count']:,} images at {prepared['size']} px "
                f"in {prepared['seconds']:.1f} s"
            )


def seconds_to_first_step(config: Path, run_folder: Path, environment: dict[str, str]) -> float:
    command = [
        sys.executable, "-m", "ganforge", "run", str(config), "--quiet",
        "--set", f"output.dir={run_folder}", "--set", "train.log_every=1",
    ]  # fmt: skip
    metrics = run_folder / "metrics.jsonl"
    started = time.perf_counter()
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while not (metrics.exists() and metrics.stat().st_size > 0):
            if process.poll() is not None:
                sys.exit(f"the run ended before its first step:\n{process.stderr.read().decode()}")
            if time.perf_counter() - started > LIMIT_SECONDS:
                sys.exit(f"no step after {LIMIT_SECONDS:.0f} s")
            time.sleep(POLL_SECONDS)
        return time.perf_counter() - started
    finally:
        process.send_signal(signal.SIGINT)
        process.wait()


if __name__ == "__main__":
    main()
