"""A run from start to end: a fresh run in a new run folder, or one resumed from its last checkpoint."""

from __future__ import annotations

from pathlib import Path

from ganforge import startup
from ganforge.checkpoint import checkpoint_metrics_records
from ganforge.config import ResolvedRun
from ganforge.errors import UsageError, first_line
from ganforge.training.distributed import Processes
from ganforge.training.progress import Reporter
from ganforge.training.run_folder import RunFolder
from ganforge.training.state import checkpoint_bytes
from ganforge.training.trainer import Trainer


class CheckpointDoesNotFitError(UsageError):
    """A checkpoint whose weights or optimiser state do not fit the networks the config builds."""

    def __init__(self, path: Path | None, reason: str) -> None:
        super().__init__(
            f"{path or 'the checkpoint'} does not fit the config being resumed "
            f"(its model, data or optim differ from the config's): {reason}"
        )
        self.path = path
        self.reason = reason


def start_run(
    run: ResolvedRun,
    *,
    overwrite: bool = False,
    reporter: Reporter | None = None,
    processes: Processes | None = None,
) -> Trainer:
    """Everything that can fail on bad input (data, device, shapes) fails before the folder exists.

    Rank 0 alone makes and writes the folder, and holds its lock until the run ends.
    """
    folder = RunFolder(run.config.run_dir())
    trainer = Trainer(run, folder, reporter, processes)
    try:
        if trainer.is_main:
            folder.check_room(checkpoint_bytes(trainer.gan_step))
            with startup.interrupts_deferred():  # a Ctrl-C waits: a folder half replaced could not be overwritten
                folder.create(overwrite)
                folder.write_config(trainer.resolved_config)
        trainer.fit()
    finally:
        folder.release()
    return trainer


def resume_run(
    run_dir: Path, run: ResolvedRun, *, reporter: Reporter | None = None, processes: Processes | None = None
) -> Trainer:
    """Continue from ``run_dir/checkpoints/last.pt`` with the run's config (plus any overrides).

    Rank 0 locks the folder before it reads or clears anything in it, reads the checkpoint and
    hands it to the other processes, which need no run folder.
    """
    folder = RunFolder(run_dir)
    main = processes is None or processes.is_main
    try:
        if main:
            folder.open_for_resume()
        state, path, problems = folder.load_newest_good_checkpoint() if main else (None, None, [])
        metrics_records = checkpoint_metrics_records(state, path) if state is not None else None
        trainer = Trainer(run, folder, reporter, processes)
        for problem in problems:
            trainer.reporter.note(f"warning: {problem}")
        if problems:
            trainer.reporter.note(f"warning: resuming from {path}, the newest checkpoint that loads")
        state = trainer.processes.from_main(state)
        try:
            trainer.load_state(state)
        except (KeyError, RuntimeError, ValueError) as error:  # shapes or optimiser groups that do not fit
            raise CheckpointDoesNotFitError(path, first_line(str(error))) from None
        if trainer.is_main:
            folder.clear_unfinished_writes()
            folder.check_room(checkpoint_bytes(trainer.gan_step))
            with startup.interrupts_deferred():  # a Ctrl-C waits until metrics and config agree with the checkpoint
                folder.drop_metrics_after(trainer.step, records=metrics_records)
                folder.write_config(trainer.resolved_config)
        trainer.fit()
    finally:
        folder.release()
    return trainer
