"""A run from start to end: a fresh run in a new run folder, or one resumed from its last checkpoint."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ganforge.checkpoints.format import checkpoint_metrics_records
from ganforge.checkpoints.state import EpochPlan, position_contradiction
from ganforge.config import ResolvedRun
from ganforge.contracts import GANModels
from ganforge.errors import GanforgeError, UsageError, first_line
from ganforge.files import remove_inside
from ganforge.guards import startup
from ganforge.guards.allocation import naming_run_allocation_failures
from ganforge.guards.blame import Blame
from ganforge.guards.preflight import check_components, own_copies
from ganforge.training.distributed import Processes
from ganforge.training.progress import Reporter
from ganforge.training.run_folder import LOCK_NAME, LOGGER_FOLDERS, RunFolder
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
    """Everything that can fail on bad input (data, device, shapes, contracts) fails before the folder exists.

    Rank 0 alone makes and writes the folder, and holds its lock until the run ends. A run that
    crashes (an exception that is no GanforgeError) before its first checkpoint leaves no folder
    behind: what it wrote goes, and the folder too where this run made it. An exception raised
    inside a component gets a note naming it (guards/blame.py).
    """
    folder = RunFolder(run.config.run_dir())
    blame = Blame(run)
    with blame.naming_the_component():
        trainer = Trainer(run, folder, reporter, processes)
        check_before_writing(run, trainer, blame)
        made = first_missing(folder.path)
        try:
            if trainer.is_main:
                folder.check_room(trainer.gan_step.checkpoint_bytes())
                with startup.interrupts_deferred():  # a Ctrl-C waits: a folder half replaced could not be overwritten
                    folder.create(overwrite)
                    folder.write_config(trainer.resolved_config)
            with naming_run_allocation_failures(trainer):
                trainer.fit()
        except Exception as error:
            if folder.lock is not None and not isinstance(error, GanforgeError):
                discard_unfinished_run(folder, made)
            raise
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
    blame = Blame(run)
    with blame.naming_the_component():
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
            check_position(state, path, trainer)
            try:
                trainer.load_state(state)
            except (KeyError, RuntimeError, ValueError) as error:  # shapes or optimiser groups that do not fit
                raise CheckpointDoesNotFitError(path, first_line(str(error))) from None
            check_before_writing(run, trainer, blame)  # the weights it goes on with
            if trainer.is_main:
                folder.clear_unfinished_writes()
                folder.check_room(trainer.gan_step.checkpoint_bytes())
                with startup.interrupts_deferred():  # a Ctrl-C waits until metrics and config agree with the checkpoint
                    folder.metrics.cut_back(trainer.progress.step, records=metrics_records)
                    folder.write_config(trainer.resolved_config)
            with naming_run_allocation_failures(trainer):
                trainer.fit()
        finally:
            folder.release()
    return trainer


def check_position(state: dict[str, Any], path: Path | None, trainer: Trainer) -> None:
    """Where the checkpoint says the run stands fits the config it is resumed with, or the resume is refused;
    a finished run is told it has nothing left to train."""
    train = trainer.config.train
    plan = EpochPlan(trainer.order.count, train.batch_size, trainer.order.steps, train.epochs)
    problem = position_contradiction(state, plan)
    if problem is not None:
        raise UsageError(f"cannot resume from {path or 'the checkpoint'}: {problem}")
    best, chosen_by = state.get("best"), trainer.config.eval.best
    if best is not None and trainer.config.eval.every and chosen_by is not None and best["metric"] != chosen_by:
        trainer.reporter.note(
            f"note: best.pt was chosen by {best['metric']} (at epoch {best['epoch']}); eval.best is now {chosen_by}: "
            f"the next evaluation starts a new best.pt"
        )
    if state["epoch"] == train.epochs:
        trainer.reporter.note(
            f"note: the run has finished its train.epochs {train.epochs} epochs: nothing to train; to train on, "
            f"resume with --set train.epochs=N, N above {train.epochs}"
        )


def check_before_writing(run: ResolvedRun, trainer: Trainer, blame: Blame) -> None:
    """One small batch through the run's networks and loss (guards/preflight.py), before the folder is written.

    From here on an exception is blamed on the network or loss it was raised in, and once the check
    has passed, at the step the run stands at.
    """
    step = trainer.gan_step
    ema = [step.ema_generator] if step.ema_generator is not None else []
    blame.watch([step.generator, *ema], [step.discriminator], [step.loss])
    blame.stage = "in the pre-flight check, before the run folder was written"
    networks = GANModels(step.generator, step.discriminator, step.latent_dim, step.num_classes, step.class_logits)
    models, loss = own_copies(networks, step.loss)
    with blame.watching([models.generator], [models.discriminator], [loss]):
        warnings = check_components(
            run, models, loss, trainer.real_grid, trainer.device, trainer.spec.shape, trainer.real_grid_labels
        )
    for warning in warnings:
        trainer.reporter.note(f"warning: {warning}")
    blame.training = trainer.progress  # where the run stands, for a note on an exception raised in training


def first_missing(path: Path) -> Path | None:
    """The outermost of ``path`` and its parents that does not exist yet: what making ``path`` will create."""
    missing = None
    for folder in (path, *path.parents):
        if folder.exists() or folder.is_symlink():
            break
        missing = folder
    return missing


def discard_unfinished_run(folder: RunFolder, made: Path | None) -> None:
    """After a crash before any checkpoint: remove what this run wrote, and the folders it made where now empty.

    A folder holding a checkpoint stays (it can be resumed), and so does one holding anything a run
    does not write. Only this run's files can be here: a folder it did not make was empty or replaced
    (``--overwrite``) before the run began, under the lock this process still holds.
    """
    if any(folder.checkpoints.glob("*.pt")) or folder.foreign_entries():
        return
    for name in sorted(os.listdir(folder.path)):
        if name != LOCK_NAME and name not in LOGGER_FOLDERS:  # a tracker's history stays, as with --overwrite
            remove_inside(folder.path, folder.path / name)
    if made is None:
        return
    # The lock file goes last, still held; the folder lock's own rule (keep the file) serves runs that go on.
    (folder.path / LOCK_NAME).unlink(missing_ok=True)
    folder.release()
    for created in (folder.path, *folder.path.parents):
        try:
            created.rmdir()
        except OSError:  # not empty: something else is there now
            return
        if created == made:
            return
