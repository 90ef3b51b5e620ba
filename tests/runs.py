"""Training runs driven through the command line on the smoke example, and what they leave read back:
the helpers of every test that trains, interrupts or resumes a run."""

import copy
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from typer.testing import CliRunner

from ganforge.checkpoints.format import load_checkpoint, save_checkpoint

EXAMPLES = Path(__file__).parents[1] / "examples"
SMOKE = EXAMPLES / "smoke.yaml"
TIMING_KEYS = {"images/s", "seconds"}
METRIC_KEYS = {"d_loss", "g_loss", "D(x)", "D(G(z))", "d_acc_real", "d_acc_fake", "images/s"}


def run(app, *args):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def train(app, *overrides, config=SMOKE):
    args = ["run", str(config), "--quiet"]
    for override in overrides:
        args += ["--set", override]
    return run(app, *args)


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def without_timing(records):
    return [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in records]


def weights(checkpoint):
    state = torch.load(checkpoint, weights_only=True)
    return {f"{net}.{k}": v for net in ("generator", "discriminator") for k, v in state[net].items()}


def assert_same_weights(a, b):
    first, second = weights(a), weights(b)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


# One long epoch of small steps: a signal sent after a few logged lines lands mid-epoch.
LONG_EPOCH = ["data.params.num_samples=4096", "model.params.hidden=[256, 256]", "train.epochs=2", "train.log_every=4"]


def start(workdir, name, *overrides):
    command = [sys.executable, "-m", "ganforge", "run", str(SMOKE), "--quiet", "--set", f"name={name}"]
    for override in overrides:
        command += ["--set", override]
    return subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, process, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def logged_steps(run_dir):
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    return max((line["step"] for line in lines), default=0)


def craft(source, path, change):
    state = copy.deepcopy(load_checkpoint(source))
    change(state)
    save_checkpoint(state, path)  # a valid checksum: only the field check can tell
    return path
