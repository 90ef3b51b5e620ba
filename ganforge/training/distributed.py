"""Data-parallel training across processes with torch.distributed, as launched by torchrun.

A process started by torchrun (or by ``ganforge run --nproc N``, which calls torchrun's own
launcher) finds its rank and the world size in its environment. Every process holds the whole
model; DistributedDataParallel averages the gradients. ``train.batch_size`` is the global batch:
each step's batch is cut into equal shares, one per process, so a config means the same
optimisation on one process or many.
"""

from __future__ import annotations

import hashlib
import os
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import torch
import torch.distributed as dist

from ganforge.devices import distributed_device, resolve_device
from ganforge.environment import EnvironmentVariableError, count_setting, text_setting
from ganforge.errors import GanforgeError, UsageError

if TYPE_CHECKING:
    from ganforge.config import TrainConfig

# Rank 0 evaluates and writes checkpoints while the others wait in the next collective: long
# enough for training a domain classifier on a CPU, short enough that a lost peer is noticed.
COLLECTIVE_TIMEOUT = timedelta(minutes=30)
LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
MAX_PORT = 65535


@dataclass(frozen=True)
class Processes:
    """This process's place in the run: rank ``rank`` of ``world_size``, on ``device``."""

    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def backend(self) -> str | None:
        if not self.distributed:
            return None
        return "nccl" if self.device.type == "cuda" else "gloo"

    def describe(self) -> str:
        return f"{self.world_size} processes ({self.backend} on {self.device.type})"

    # -- collectives: each is called by every process at the same point ---------------------

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Elementwise sum over the processes (in place); the tensor itself in one process."""
        if self.distributed:
            dist.all_reduce(values, op=dist.ReduceOp.SUM)
        return values

    def largest(self, *values: float) -> list[float]:
        """Each value's maximum over the processes: how they agree on a decision any one of them makes."""
        if not self.distributed:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor.tolist()

    def gather_on_main(self, value: Any) -> list[Any] | None:
        """Every process's ``value`` in rank order, on rank 0; None on the others."""
        if not self.distributed:
            return [value]
        gathered: list[Any] | None = [None] * self.world_size if self.is_main else None
        dist.gather_object(value, gathered, dst=0)
        return gathered

    def from_main(self, value: Any) -> Any:
        """Rank 0's ``value`` on every process."""
        if not self.distributed:
            return value
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def launched_rank() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when torchrun started this process, else None (and None for variables
    ``launch_from_environment`` refuses: this one only labels messages and chooses how a process ends)."""
    try:
        return launch_from_environment()
    except EnvironmentVariableError:
        return None


def launch_from_environment() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when every launch variable is set, else None; a rank that is no rank of
    the world size is named with its variable."""
    if not all(text_setting(name) for name in LAUNCH_VARIABLES):
        return None
    rank, world_size, local_rank = (count_setting(name) or 0 for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))
    if world_size < 1:
        raise EnvironmentVariableError("WORLD_SIZE", text_setting("WORLD_SIZE"), "expected 1 or more processes")
    for name, value in (("RANK", rank), ("LOCAL_RANK", local_rank)):
        if value >= world_size:
            accepted = f"expected a rank from 0 to {world_size - 1} of $WORLD_SIZE {world_size}"
            raise EnvironmentVariableError(name, text_setting(name), accepted)
    if not 1 <= (count_setting("MASTER_PORT") or 0) <= MAX_PORT:
        raise EnvironmentVariableError("MASTER_PORT", text_setting("MASTER_PORT"), f"expected a port, 1 to {MAX_PORT}")
    return rank, world_size, local_rank


def leave_launch() -> NoReturn:
    """End a process of a torchrun launch that succeeded, with exit code 0, without finalizing the interpreter.

    DistributedDataParallel keeps its process group alive past ``destroy_process_group`` (pytorch
    issues 72366, 109478), and gloo's threads still running while the interpreter and C++ statics
    are torn down abort the process now and then: SIGABRT, "terminate called without an active
    exception", a finished run reported as failed. Every file is closed by now; the output is flushed.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def rank_label() -> str:
    """``rank N: `` inside a distributed launch, so each process's messages say whose they are."""
    launch = launched_rank()
    return f"rank {launch[0]}: " if launch is not None and launch[1] > 1 else ""


@contextmanager
def join_processes(device_setting: str) -> Iterator[Processes]:
    """This process's part in the launch: joins the process group when there is more than one process."""
    launch = launch_from_environment()
    if launch is None or launch[1] == 1:
        yield Processes(resolve_device(device_setting))
        return
    rank, world_size, local_rank = launch
    processes = Processes(distributed_device(device_setting, local_rank), rank, world_size)
    cuda = processes.device if processes.device.type == "cuda" else None
    if cuda is not None:
        torch.cuda.set_device(cuda)
    dist.init_process_group(processes.backend, timeout=COLLECTIVE_TIMEOUT, device_id=cuda)
    try:
        yield processes
    finally:
        dist.destroy_process_group()


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """A seed for one process's noise and dropout, from the run's seed, the rank and the step it starts at."""
    digest = hashlib.sha256(f"ganforge:{seed}:{rank}:{step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def batch_share(batch_size: int, world_size: int) -> int:
    """The images each process takes per step: an equal share of ``train.batch_size``."""
    if batch_size % world_size:
        raise UsageError(
            f"train.batch_size: {batch_size} is the global batch and does not split evenly over "
            f"{world_size} processes; use a multiple of {world_size}"
        )
    return batch_size // world_size


def generator_batch_share(generator_batch: int | None, world_size: int) -> int | None:
    """The noise vectors each process draws for G's step where ``train.generator_batch`` is fresh; else None."""
    if generator_batch is None:
        return None
    if generator_batch % world_size:
        raise UsageError(
            f"train.generator_batch: {generator_batch} is the global batch of G's step and does not split evenly "
            f"over {world_size} processes; use a multiple of {world_size}"
        )
    return generator_batch // world_size


# -- the launcher behind `ganforge run --nproc N` ----------------------------------------------


class LaunchFailed(GanforgeError):
    """A process of a launch failed; its own message was printed above."""


class LaunchStopped(GanforgeError):
    """The launcher got a signal (Ctrl-C) and stopped every process."""

    def __init__(self, signal_name: str, exit_code: int) -> None:
        super().__init__(f"stopped by {signal_name}")
        self.exit_code = exit_code


def check_launch(nproc: int, train: TrainConfig) -> None:
    """What ``nproc`` processes on this machine cannot train with is an error before any starts."""
    batch_share(train.batch_size, nproc)
    generator_batch_share(train.fresh_generator_batch(), nproc)
    for local_rank in range(nproc):
        distributed_device(train.device, local_rank)


def run_command_for_processes(
    config: Path | None, resume: Path | None, overrides: Sequence[str], *, overwrite: bool, quiet: bool
) -> list[str]:
    """The ``ganforge run`` arguments every launched process gets: the same run as asked for, less ``--nproc``.

    ``config`` starts a run and ``resume`` continues one; exactly one of them is given.
    """
    command = ["run", str(config)] if config is not None else ["run", "--resume", str(resume)]
    for override in overrides:
        command += ["--set", override]
    return command + ["--overwrite"] * overwrite + ["--quiet"] * quiet


def launch_on_this_machine(nproc: int, command: Sequence[str]) -> None:
    """Start ``python -m ganforge <command>`` in ``nproc`` processes with torchrun's launcher (standalone)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # As torchrun does: without it, every process would start a thread per core and they would fight.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.1,
    )
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "ganforge", *command)
    except ChildFailedError as error:
        rank, failure = error.get_first_failure()
        code = failure.exitcode
        how = f"was stopped by signal {-code}" if code < 0 else f"exited with code {code}"
        failed = LaunchFailed(f"the run stopped: rank {rank} of {nproc} {how} (its message is above)")
        failed.exit_code = code if code > 0 else 1
        raise failed from None
    except SignalException as stop:
        raise LaunchStopped(stop.sigval.name, 128 + int(stop.sigval)) from None
