"""A run interrupted: SIGINT or SIGTERM mid-epoch saves and resumes to the uninterrupted weights, a second
SIGINT stops at once, and a Ctrl-C or SIGKILL while a checkpoint is written keeps a whole one."""

import signal
import time
from pathlib import Path

import pytest
import torch

from tests.runs import (
    LONG_EPOCH,
    assert_same_weights,
    logged_steps,
    metrics,
    run,
    start,
    train,
    wait_for,
    without_timing,
)


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
    # Nothing was saved: the advice is to start over, not a --resume that would find no checkpoint.
    assert "holds no checkpoint yet; to start over, run the same command with --overwrite" in stderr
    assert "--resume" not in stderr and "Traceback" not in stderr
    assert not (run_dir / "checkpoints").exists() or not list((run_dir / "checkpoints").iterdir())


def test_a_ctrl_c_during_a_checkpoint_write_stays_an_interrupt_and_keeps_the_old_file(tmp_path):
    """A second Ctrl-C can land inside torch.save, whose archive writer then raises a RuntimeError of its own
    while closing: the run must still stop as interrupted (exit 130, no traceback), the old checkpoint whole."""
    from ganforge.files import write_atomically

    path = tmp_path / "last.pt"
    path.write_bytes(b"the last whole checkpoint")

    def interrupted_torch_save(stream):
        try:
            stream.write(b"half a record")
            raise KeyboardInterrupt  # what the signal handler raises, here inside the write
        finally:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 29789632 vs 29789584")

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, interrupted_torch_save)
    assert path.read_bytes() == b"the last whole checkpoint"
    assert [entry.name for entry in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


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
