"""What a checkpoint holds, and how a run goes on from one, mid-epoch included.

A checkpoint holds what the training step changes (step.py), where the run stands (epoch, step,
the steps taken of the epoch in progress, the best evaluation so far) and the data generator's
state from before the epoch's permutation. Every process's own part, its noise generators and
running statistics, is gathered onto rank 0: a resume with as many processes goes on exactly
where the run stopped; one with another number goes on with the same recipe and new noise.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from ganforge import __version__
from ganforge.config import RunConfig
from ganforge.contracts import DataSpec
from ganforge.training.batches import InMemoryBatches, LoaderBatches
from ganforge.training.distributed import Processes, rank_seed
from ganforge.training.progress import Reporter
from ganforge.training.run_loggers import RunLoggers
from ganforge.training.statistics import TrainingStatistics
from ganforge.training.step import GANStep, noise_rng_state, set_noise_rng_state


class Checkpointed(Protocol):
    """A trainer as a checkpoint sees it: what is saved, and what a resume sets."""

    config: RunConfig
    resolved_config: dict[str, Any]
    spec: DataSpec
    latent_dim: int
    processes: Processes
    reporter: Reporter
    gan_step: GANStep
    statistics: TrainingStatistics
    data_generator: torch.Generator
    epoch_data_state: torch.Tensor  # the data generator's state from before this epoch's permutation
    batches: InMemoryBatches | LoaderBatches
    epoch: int
    step: int
    epoch_step: int  # steps taken in the current epoch
    best: dict[str, Any] | None
    loggers: RunLoggers


def gather_checkpoint_state(trainer: Checkpointed) -> dict[str, Any] | None:
    """Everything a checkpoint holds, on rank 0; None in the other processes.

    Collective: every process calls it at the same point, for rank 0 gathers each process's own
    part from all of them. The other processes call it for that alone.
    """
    every_process = trainer.processes.gather_on_main(process_state(trainer))
    if every_process is None:
        return None
    # Mid-epoch, the data generator's state from before this epoch's permutation: a resume draws
    # the same permutation again and skips the steps already taken.
    data_state = trainer.epoch_data_state if trainer.epoch_step else trainer.data_generator.get_state()
    training = trainer.gan_step.state_dict()
    return {
        "ganforge_version": __version__,
        "config": trainer.resolved_config,
        "data_spec": {
            "shape": list(trainer.spec.shape),
            "num_classes": trainer.spec.num_classes,
            "class_names": list(trainer.spec.class_names) if trainer.spec.class_names is not None else None,
        },
        "latent_dim": trainer.latent_dim,
        "epoch": trainer.epoch,
        "step": trainer.step,
        "epoch_step": trainer.epoch_step,
        **training,
        "best": trainer.best,
        "metrics_records": trainer.loggers.records_written,  # a resume keeps exactly these lines of metrics.jsonl
        "rng": {**training["rng"], "data": data_state},
        "processes": every_process,
    }


def process_state(trainer: Checkpointed) -> dict[str, Any]:
    """What differs between the processes of a distributed run: noise generators, partial statistics."""
    return {
        "rng": noise_rng_state(trainer.processes.device),
        "running_statistics": trainer.statistics.state_dict(),
    }


def restore_checkpoint_state(trainer: Checkpointed, state: dict[str, Any]) -> None:
    """Continue from a checkpoint saved by any number of processes (or mid-epoch)."""
    trainer.gan_step.load_state_dict(state)
    trainer.data_generator.set_state(state["rng"]["data"])
    trainer.epoch, trainer.step = state["epoch"], state["step"]
    trainer.best = state.get("best")
    trainer.epoch_step = state.get("epoch_step", 0)
    trainer.batches.order.skip_steps = trainer.epoch_step
    trainer.epoch_data_state = state["rng"]["data"]
    restore_process_state(trainer, state.get("processes") or [])


def restore_process_state(trainer: Checkpointed, saved: list[dict[str, Any]]) -> None:
    """This process's own noise generators and statistics, where the checkpoint had as many processes."""
    processes = trainer.processes
    if len(saved) == processes.world_size:
        own = saved[processes.rank]
        set_noise_rng_state(own["rng"], processes.device)
        trainer.statistics.load_mean([own["running_statistics"]])
        return
    if saved:  # the same number of images per step, split another way: the mean of their sums
        trainer.statistics.load_mean([process["running_statistics"] for process in saved])
    if processes.distributed:  # the same recipe, with fresh noise streams
        torch.manual_seed(rank_seed(trainer.config.seed, processes.rank, trainer.step))
        trainer.reporter.note(
            f"note: the checkpoint was saved by {max(1, len(saved))} process(es), this run has "
            f"{processes.world_size}: training goes on with new noise streams"
        )


def checkpoint_bytes(gan_step: GANStep) -> int:
    """About what a checkpoint takes: both networks, Adam's two moments of each, and the EMA copy."""

    def size(module: nn.Module) -> int:
        return sum(tensor.numel() * tensor.element_size() for tensor in module.state_dict().values())

    generator, discriminator = size(gan_step.generator), size(gan_step.discriminator)
    return 3 * (generator + discriminator) + (generator if gan_step.ema_generator is not None else 0)
