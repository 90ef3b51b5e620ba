"""Faults a long run meets: signals, hard kills, damaged or hostile checkpoints, divergence, bad input."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.test_training import SMOKE, assert_same_weights, metrics, run, train, without_timing

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


@pytest.mark.slow
@pytest.mark.parametrize(("sent", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_epoch_saves_and_resume_reaches_the_uninterrupted_weights(app, workdir, sent, exit_code):
    train(app, "name=straight", *LONG_EPOCH)
    process = start(workdir, "stopped", *LONG_EPOCH)
    stopped = workdir / "runs" / "stopped"
    wait_for(lambda: logged_steps(stopped) >= 20, process)  # epoch 1 has 128 steps
    process.send_signal(sent)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == exit_code, stderr
    assert f"stopped by {sent.name} at epoch 1, step" in stderr
    assert f"Continue with: ganforge run --resume {Path('runs') / 'stopped'}" in stderr
    state = torch.load(stopped / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 0 and 20 <= state["epoch_step"] < 128  # saved mid-epoch

    run(app, "run", "--resume", str(stopped), "--quiet")
    straight = workdir / "runs" / "straight"
    assert_same_weights(straight / "checkpoints" / "last.pt", stopped / "checkpoints" / "last.pt")
    assert without_timing(metrics(stopped)) == without_timing(metrics(straight))


@pytest.mark.slow
def test_a_second_sigint_stops_at_once_and_keeps_the_last_whole_checkpoint(workdir):
    # Steps of a second or so: the second signal comes while the first one waits for the step to end.
    slow_steps = [*LONG_EPOCH, "model.params.hidden=[2048, 2048]", "train.batch_size=1024", "train.log_every=1"]
    process = start(workdir, "twice", *slow_steps)
    run_dir = workdir / "runs" / "twice"
    wait_for(lambda: logged_steps(run_dir) >= 1, process)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "aborted; nothing was saved. Continue with" in stderr and "Traceback" not in stderr
    assert not (run_dir / "checkpoints").exists() or not list((run_dir / "checkpoints").iterdir())


@pytest.mark.slow
def test_sigkill_while_a_checkpoint_is_written_leaves_a_loadable_last_pt(app, workdir):
    # Big networks make each write take a while; checkpoint_minutes makes one after nearly every step.
    overrides = [*LONG_EPOCH, "model.params.hidden=[2048, 2048]", "train.checkpoint_minutes=0.0001"]
    process = start(workdir, "killed", *overrides)
    checkpoints = workdir / "runs" / "killed" / "checkpoints"
    wait_for(lambda: (checkpoints / "last.pt").exists(), process)
    wait_for(lambda: any(checkpoints.glob(".last.pt.*.tmp")), process)  # a write under way
    process.kill()
    process.communicate(timeout=60)
    state = torch.load(checkpoints / "last.pt", weights_only=True)  # the previous one, whole
    assert state["epoch_step"] > 0
    run(app, "run", "--resume", str(workdir / "runs" / "killed"), "--quiet", "--set", "train.checkpoint_minutes=null")
    assert torch.load(checkpoints / "last.pt", weights_only=True)["epoch"] == 2
    assert not list(checkpoints.glob(".*.tmp"))  # the dead write's leftover is cleared on resume


EVIL = """
import os, torch
class Payload:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))
torch.save({{"format": "ganforge-checkpoint", "version": 1, "generator": Payload()}}, {path!r})
"""


def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_never_runs(app, workdir):
    marker = workdir / "code_ran"
    evil = workdir / "evil.pt"
    subprocess.run([sys.executable, "-c", EVIL.format(marker=marker, path=str(evil))], check=True)
    run_dir = workdir / "runs" / "victim"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(SMOKE.read_text())
    (run_dir / "checkpoints" / "last.pt").write_bytes(evil.read_bytes())
    for args in (["sample", str(evil), "--out", "x.png"], ["eval", str(evil)], ["run", "--resume", str(run_dir)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code != 0, result.output
        assert "holds Python objects beyond tensors and plain data (Trying to load unsupported GLOBAL" in result.output
        assert "Traceback" not in result.output
    assert not marker.exists()


def damage(path, how):
    data = bytearray(path.read_bytes())
    if how == "cut off":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:  # one byte flipped in the middle of the weights
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["cut off", "flipped byte"])
def test_a_damaged_checkpoint_is_reported_and_resume_falls_back_to_the_newest_good_one(app, workdir, how):
    train(app, "train.epochs=3", "train.checkpoint_every=1", "model.params.hidden=[256, 256]")
    run_dir = workdir / "runs" / "smoke"
    last = run_dir / "checkpoints" / "last.pt"
    damage(last, how)
    sampled = CliRunner().invoke(app, ["sample", str(last), "--out", "x.png"])
    assert sampled.exit_code != 0 and f"{last}" in sampled.output and "damaged" in sampled.output
    assert "Traceback" not in sampled.output

    result = run(app, "run", "--resume", str(run_dir), "--quiet", "--set", "train.epochs=4")
    assert f"warning: {last} is damaged" in result.output
    assert f"warning: resuming from {run_dir / 'checkpoints' / 'epoch_0003.pt'}" in result.output
    assert [r["step"] for r in metrics(run_dir) if r["event"] == "epoch"] == [8, 16, 24, 32]
    assert torch.load(last, weights_only=True)["epoch"] == 4
