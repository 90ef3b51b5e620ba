"""Where a checkpoint says its run stands (epoch, step, epoch_step) against the config it is resumed with:
a position that would train nothing, or other images than those it counted, is refused and named.

The checkpoints are crafted with a valid checksum and fields that agree with each other, so that only the
check against the config being resumed can catch them. The smoke run: 256 images, batch 32, 8 steps an epoch.
"""

import shutil

import pytest

from ganforge.checkpoints.format import load_checkpoint
from tests.cli_results import invoke, refused
from tests.runs import SMOKE, craft


def positioned(epoch, step, epoch_step, epochs):
    def change(state):
        state.update(epoch=epoch, step=step, epoch_step=epoch_step)
        state["config"]["train"]["epochs"] = epochs

    return change


CONTRADICTIONS = {
    "an epoch_step beyond an epoch's steps": (
        positioned(1, 28, 20, 3),
        ["--set", "train.epochs=3"],
        "epoch_step: 20 steps of the epoch in progress, but an epoch of 256 images at train.batch_size 32 has 8 steps",
    ),
    "an epoch beyond train.epochs": (
        positioned(3, 24, 0, 3),
        ["--set", "train.epochs=2"],
        "epoch: 3 epochs finished, beyond train.epochs 2 of the config being resumed: nothing would be trained; "
        "to train on, resume with --set train.epochs=N, N above 3",
    ),
    "an epoch under way beyond train.epochs": (
        positioned(2, 20, 4, 3),
        ["--set", "train.epochs=2"],
        "epoch: 2 epochs finished and 4 steps of the next, beyond train.epochs 2",
    ),
    "mid-epoch with another batch size": (
        positioned(1, 12, 4, 3),
        ["--set", "train.epochs=3", "--set", "train.batch_size=64"],
        "epoch_step: saved 4 steps into epoch 2 at train.batch_size 32; going on at train.batch_size 64 would skip "
        "other images than those trained; resume this checkpoint with --set train.batch_size=32",
    ),
}


@pytest.fixture
def resumable(smoke_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    for path in (run / "checkpoints").glob("epoch_*.pt"):
        path.unlink()  # last.pt alone: a refused one is not passed over for an older one
    return run


@pytest.mark.parametrize("case", CONTRADICTIONS)
def test_resume_refuses_a_position_that_contradicts_the_config(app, resumable, case):
    change, options, problem = CONTRADICTIONS[case]
    last = resumable / "checkpoints" / "last.pt"
    craft(last, last, change)
    before = last.read_bytes()
    output = refused(invoke(app, "run", "--resume", resumable, "--quiet", *options, exit_code=2), code=2)
    assert f"error: cannot resume from {last}: {problem}" in output
    assert last.read_bytes() == before


def test_resuming_a_finished_run_says_there_is_nothing_to_train(app, resumable):
    last = resumable / "checkpoints" / "last.pt"
    result = invoke(app, "run", "--resume", resumable, "--quiet")
    output = " ".join(result.output.split())
    assert "note: the run has finished its train.epochs 1 epochs: nothing to train; to train on, resume with" in output
    assert load_checkpoint(last)["step"] == 8


def test_a_best_kept_by_another_metric_is_not_compared_with_the_new_one(app, tmp_path):
    run = tmp_path / "run"
    evaluated = ["--set", "eval.every=1", "--set", "eval.samples=64", "--set", "eval.metrics=[fid, precision_recall]"]
    invoke(app, "run", SMOKE, "--quiet", "--set", "train.epochs=1", "--set", f"output.dir={run}", *evaluated)
    last = run / "checkpoints" / "last.pt"
    # A FID of 2.0 kept as the best: read as a precision (higher is better, at most 1), no epoch would ever beat it.
    craft(last, last, lambda state: state["best"].update(value=2.0))
    resumed = invoke(
        app, "run", "--resume", run, "--quiet", "--set", "train.epochs=2", *evaluated, "--set", "eval.best=precision"
    )
    output = " ".join(resumed.output.split())
    assert "note: best.pt was chosen by fid (at epoch 1); eval.best is now precision: the next evaluation starts" in (
        output
    )
    best = load_checkpoint(run / "checkpoints" / "best.pt")["best"]
    assert (best["metric"], best["epoch"]) == ("precision", 2)
