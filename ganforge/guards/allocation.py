"""An allocation that fails while a run trains or evaluates: named like the memory estimate's refusal.

The estimate before a run (machine.py) leaves out activations, so a batch can pass it and still not
fit. The allocator's failure (memory.is_allocation_failure) is then said in one line: what failed,
the batch size and eval.samples, the last good checkpoint (kept: nothing is written on the way out)
and the setting to lower, instead of an allocator's traceback. What failed is read from the
traceback, as blame.py reads whose code raised: a frame of the evaluation, of a training step, or
of the sample grid; the trainer keeps no record of it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import CodeType
from typing import Any

from ganforge.guards.blame import innermost_first
from ganforge.guards.memory import OutOfMemory, allocation_asked, is_allocation_failure
from ganforge.training.step import GANStep
from ganforge.training.trainer import Trainer

BATCH = "train.batch_size"
SAMPLES = "eval.samples"


@contextmanager
def naming_run_allocation_failures(trainer: Trainer) -> Iterator[None]:
    """An allocation failing inside the block (the trainer's fit) is an OutOfMemory naming what failed."""
    try:
        yield
    except Exception as error:
        if not is_allocation_failure(error):
            raise
        raise out_of_memory(trainer, error) from None


def out_of_memory(trainer: Trainer, error: BaseException) -> OutOfMemory:
    what, setting = what_failed(trainer, error)
    train, evaluation = trainer.config.train, trainer.config.eval
    evaluated = f", {SAMPLES} {evaluation.samples:,}" if evaluation.every else ""
    if trainer.last_good is None:
        then = (
            f"no checkpoint was saved before it: start again with a smaller {setting} (--overwrite --set {setting}=N)"
        )
    else:
        then = (
            f"the last good checkpoint is {trainer.last_good}: resume with a smaller {setting}, "
            f"ganforge run --resume {trainer.folder.path} --set {setting}=N"
        )
    return OutOfMemory(
        f"not enough memory: {what} failed to allocate {allocation_asked(error)} on {trainer.device} with "
        f"{BATCH} {train.batch_size}{evaluated} (the estimate before the run leaves out activations); "
        f"{then}, or a smaller model (model.params)"
    )


def what_failed(trainer: Trainer, error: BaseException) -> tuple[str, str]:
    """What the run was doing when the allocation failed, in words, and the setting that sizes it."""
    codes = {frame.f_code for frame in innermost_first(error.__traceback__)}
    progress = trainer.progress
    if code_of(Trainer._evaluate) in codes:
        return f"evaluating {trainer.config.eval.samples:,} generated images after epoch {progress.epoch}", SAMPLES
    if code_of(GANStep.train_on) in codes:
        return f"a training step at epoch {progress.epoch_in_progress}, step {progress.step + 1}", BATCH
    if code_of(Trainer.sample) in codes:
        return f"drawing the sample grid after epoch {progress.epoch}", BATCH
    return f"the run after step {progress.step}", BATCH


def code_of(function: Callable[..., Any]) -> CodeType:
    """The code of ``function`` itself, under any decorator (torch.no_grad's wrapper is shared by all it wraps)."""
    return inspect.unwrap(function).__code__
