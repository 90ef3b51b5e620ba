"""Fingerprints of what a run computes: its checkpoints' tensors and its metrics, without timings.

A restructure that must not change behaviour is checked by running this before and after it and
comparing the printed digests. Each case trains a short run through the command line (so the
whole path counts: config, plugins, data, step, checkpoint), then hashes

- every tensor and plain value in each checkpoint (weights, optimiser moments, EMA, RNG states,
  running statistics), leaving out the fields that hold times or the machine;
- metrics.jsonl, each line without the keys that hold times or speeds.

The ``resume`` case trains mnist_mlp's case without evaluation twice: once through, and once stopped
by SIGINT in the middle of its epoch and resumed; both must print the same digests.

    GANFORGE_DATA=/path/to/data python benchmarks/fingerprint.py [CASE ...]
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

# Keys whose values depend on the clock or the machine, not on what was computed.
TIMING_KEYS = {"time", "elapsed", "images_per_s", "images/s", "seconds", "wall_seconds", "eval_seconds"}

CASES: dict[str, tuple[str, list[str]]] = {
    "smoke": ("smoke.yaml", []),
    # 20,000 digits in batches of 100: 200 steps.
    "mnist_mlp": ("mnist_mlp.yaml", ["data.params.limit=20000", "train.epochs=1", "train.log_every=20"]),
    # 3,200 digits in batches of 32: 100 steps, the evaluation left out (it trains a classifier for minutes).
    "mnist_cgan": (
        "mnist_cgan.yaml",
        ["data.params.limit=3200", "train.epochs=1", "train.log_every=20", "eval.every=0", "train.sample_every=1"],
    ),
}


def canonical(value: object, digest: hashlib._Hash) -> None:
    """Feed a checkpoint's contents to ``digest`` in a fixed order."""
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            if key in TIMING_KEYS:
                continue
            digest.update(repr(key).encode())
            canonical(value[key], digest)
    elif isinstance(value, list | tuple):
        for item in value:
            canonical(item, digest)
    elif isinstance(value, torch.Tensor):
        digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
        digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        digest.update(repr(value).encode())


def checkpoint_digest(path: Path) -> str:
    state = torch.load(path, map_location="cpu", weights_only=True)
    state.pop("checksum", None)
    state.get("config", {}).get("output", {}).pop("dir", None)  # the scratch folder differs between runs
    digest = hashlib.sha256()
    canonical(state, digest)
    return digest.hexdigest()[:16]


def metrics_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for line in path.read_text().splitlines():
        record = json.loads(line)
        kept = {key: value for key, value in record.items() if key not in TIMING_KEYS and "seconds" not in key}
        digest.update(json.dumps(kept, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def run(config: str, overrides: list[str], folder: Path, extra: list[str] = ()) -> subprocess.Popen:
    command = [sys.executable, "-m", "ganforge", "run", str(EXAMPLES / config), "--quiet", *extra]
    command += [f"--set={item}" for item in overrides]
    command += [f"--set=output.dir={folder}"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process: subprocess.Popen) -> None:
    output, _ = process.communicate()
    if process.returncode != 0:
        sys.exit(f"run failed ({process.returncode}):\n{output}")


def digests(folder: Path) -> dict[str, str]:
    found = {f"checkpoints/{path.name}": checkpoint_digest(path) for path in sorted(folder.glob("checkpoints/*.pt"))}
    found["metrics.jsonl"] = metrics_digest(folder / "metrics.jsonl")
    return found


def interrupted_and_resumed(scratch: Path) -> dict[str, str]:
    """mnist_mlp's case without evaluation, run through, and stopped by SIGINT mid-epoch then resumed: the two
    must end with the same digests."""
    config, overrides = CASES["mnist_mlp"]
    overrides = [*overrides, "eval.every=0"]
    finish(run(config, overrides, scratch / "through"))
    folder = scratch / "resumed"
    # A mid-epoch save every 0.12 s of training: the stop lands after one, well inside the epoch.
    process = run(config, [*overrides, "train.checkpoint_minutes=0.002"], folder)
    last = folder / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    while not last.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    process.communicate()
    stopped = torch.load(last, map_location="cpu", weights_only=True)
    print(f"  (stopped at step {stopped['step']} of 200; resuming)", file=sys.stderr)
    resume = [sys.executable, "-m", "ganforge", "run", "--resume", str(folder), "--quiet"]
    finish(
        subprocess.Popen(
            [*resume, "--set=train.checkpoint_minutes=null"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    )
    found = {f"through {file}": digest for file, digest in digests(scratch / "through").items()}
    return found | {f"resumed {file}": digest for file, digest in digests(folder).items()}


def main(names: list[str]) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one thread: the same sums in the same order every time
    with tempfile.TemporaryDirectory(prefix="ganforge-fingerprint-") as scratch:
        for name in names or [*CASES, "resume"]:
            if name == "resume":
                found = interrupted_and_resumed(Path(scratch))
            else:
                config, overrides = CASES[name]
                folder = Path(scratch) / name
                finish(run(config, overrides, folder))
                found = digests(folder)
            for file, digest in found.items():
                print(f"{name:12s} {file:32s} {digest}")


if __name__ == "__main__":
    main(sys.argv[1:])
