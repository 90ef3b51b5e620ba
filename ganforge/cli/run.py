"""Commands that train: ``run`` (here, or in N processes through torchrun's launcher) and ``validate``."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ganforge.cli.render import console, err_console, print_note
from ganforge.config.resolve import ResolvedRun, check_with_built_components, load_config
from ganforge.errors import ConfigError, GanforgeError, UsageError
from ganforge.guards import startup
from ganforge.guards.machine import machine_warnings
from ganforge.guards.startup import Interrupted
from ganforge.plugins import Plugins
from ganforge.training.distributed import (
    LaunchStopped,
    check_launch,
    join_processes,
    launch_on_this_machine,
    launched_rank,
    run_command_for_processes,
)
from ganforge.training.interruption import RunInterrupted
from ganforge.training.progress import LineReporter, RichReporter
from ganforge.training.run_folder import RunFolder


def run(
    ctx: typer.Context,
    config: Annotated[Path | None, typer.Argument(help="The run's YAML config.")] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override a config value: train.epochs=5; repeatable.")
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue the run in this folder from its last.pt.")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing run folder.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live display: one line per epoch.")] = False,
    nproc: Annotated[
        int,
        typer.Option(
            "--nproc",
            min=1,
            help="Train in N processes on this machine (one per GPU, or CPU processes), started with torchrun's "
            "launcher; for several machines run torchrun yourself (see docs/distributed.md).",
        ),
    ] = 1,
) -> None:
    """Train a GAN from a config; the run folder gets samples, metrics, checkpoints and a plot."""
    if (config is None) == (resume is None):
        raise UsageError("give a CONFIG to start a run, or --resume RUN_DIR to continue one (not both)")
    plugins: Plugins = ctx.obj
    config_path = RunFolder(resume).config_path if resume is not None else config
    resolved = load_config(config_path, plugins.registry, overrides or [], overrides_option="--set")
    folder = resume if resume is not None else resolved.config.run_dir()
    if nproc > 1:
        command = run_command_for_processes(config, resume, overrides or [], overwrite=overwrite, quiet=quiet)
        launch_processes(nproc, command, resolved, folder)
    else:
        train_here(resolved, folder, resume=resume is not None, overwrite=overwrite, quiet=quiet)


def launch_processes(nproc: int, command: list[str], resolved: ResolvedRun, folder: Path) -> None:
    """``ganforge run`` in ``nproc`` processes on this machine, through torchrun's launcher; returns when all end."""
    if launched_rank() is not None:
        raise UsageError("--nproc starts the processes itself; leave it out inside a torchrun launch")
    check_launch(nproc, resolved.config.train)
    console.print(
        f"starting {nproc} processes with torchrun: ganforge {' '.join(command)}", highlight=False, soft_wrap=True
    )
    try:
        launch_on_this_machine(nproc, command)
    except LaunchStopped as stop:
        print_note(
            f"{stop}; {RunFolder(folder).checkpoint_path()} holds the last state saved. "
            f"Continue with: ganforge run --resume {folder} --nproc {nproc}"
        )
        raise typer.Exit(stop.exit_code) from None


def train_here(resolved: ResolvedRun, folder: Path, *, resume: bool, overwrite: bool, quiet: bool) -> None:
    """This process's part of the run: all of it, or one rank's share inside a torchrun launch."""
    from ganforge.training.runs import resume_run, start_run  # the trainer and evaluation: for run alone

    run_config = resolved.config
    reporter = LineReporter(console) if quiet else RichReporter(console)
    before = FolderBeforeRun.look(folder)
    with join_processes(run_config.train.device) as processes:
        if processes.is_main:
            startup.advise_after_interrupt(partial(before.advice_after_interrupt, resuming=resume, overwrite=overwrite))
            console.print(
                f"[bold]{run_config.name}[/]: {run_config.model.name} on {run_config.data.name}, "
                f"loss {run_config.loss.name}, {run_config.train.epochs} epochs -> {folder}",
                highlight=False,
            )
        try:
            if resume:
                trainer = resume_run(folder, resolved, reporter=reporter, processes=processes)
            else:
                trainer = start_run(resolved, overwrite=overwrite, reporter=reporter, processes=processes)
        except RunInterrupted as stop:
            if processes.is_main:
                print_note(f"{stop}. Continue with: ganforge run --resume {folder}")
            raise typer.Exit(stop.exit_code) from None
        except (KeyboardInterrupt, Interrupted):  # a second signal in training, or Ctrl-C before it began
            if processes.is_main:
                startup.report_interruption()
            raise typer.Exit(130) from None
        except Exception as error:  # a crash: its traceback, whose last line names the component it came from
            if isinstance(error, GanforgeError):
                raise
            traceback.print_exception(error)
            raise typer.Exit(1) from None
    if processes.is_main:
        console.print(
            f"done: {trainer.progress.epoch} epochs, {trainer.progress.step} steps on {trainer.device}"
            f"{f' x {processes.world_size} processes' if processes.distributed else ''}; see {folder}",
            highlight=False,
        )


@dataclass(frozen=True)
class FolderBeforeRun:
    """What the run folder held before training began, for advice after a Ctrl-C that holds for what is on disk."""

    folder: Path
    existed: bool
    checkpoint: tuple[int, int] | None  # last.pt's file_stamp

    @classmethod
    def look(cls, folder: Path) -> FolderBeforeRun:
        return cls(folder, folder.exists(), file_stamp(RunFolder(folder).checkpoint_path()))

    def advice_after_interrupt(self, *, resuming: bool, overwrite: bool) -> str:
        """What to do now: resume from a checkpoint saved since, start over, or nothing (nothing was written)."""
        last = RunFolder(self.folder).checkpoint_path()
        now = file_stamp(last)
        if now not in (None, self.checkpoint) or (resuming and now is not None):
            return f"{last} holds the last state saved whole. Continue with: ganforge run --resume {self.folder}"
        if self.folder.exists() and now is None and (overwrite or not self.existed):
            return f"{self.folder} holds no checkpoint yet; to start over, run the same command with --overwrite"
        if self.existed:
            return f"{self.folder} was left as it was; nothing was written"
        return "the run folder was not made; nothing was written"


def file_stamp(path: Path) -> tuple[int, int] | None:
    """What tells a file replaced since: its inode and modification time; None when there is none."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_ino, status.st_mtime_ns


def validate(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="The YAML config to check.")],
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override a config value.")] = None,
) -> None:
    """Check a config without training: structure, component names and their params.

    What this machine lacks for it (the device, the memory) is a warning, not an error: a config
    is often written on one machine and run on another.
    """
    plugins: Plugins = ctx.obj
    resolved = load_config(config, plugins.registry, overrides or [], overrides_option="--set")
    try:
        check_with_built_components(resolved)
        warnings = machine_warnings(resolved)
    except GanforgeError as error:  # the architecture cannot take the dataset's images, and the like
        raise ConfigError(f"{config} is invalid: {error}") from None
    chosen = [*resolved.chosen().values(), *resolved.augmentations, *resolved.metrics, *resolved.schedules.values()]
    # dict.fromkeys: one mention of a component named twice (the same schedule for several settings)
    names = ", ".join(
        dict.fromkeys(f"{c.component.kind.value} {c.component.name} ({c.component.provider})" for c in chosen)
    )
    console.print(f"{config}: valid; {names}", highlight=False)
    for warning in warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
