"""Which device a run trains on: one process's choice, or each process's in a distributed run."""

from __future__ import annotations

import torch

from ganforge.config.schema import DEVICES_ACCEPTED
from ganforge.errors import UsageError, quote


def resolve_device(name: str, *, option: str = "train.device") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must exist here.

    ``option`` names the setting the device came from in messages: ``train.device`` for a run,
    ``--device`` for a command's option.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    given = quote(name)
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise UsageError(f"{option}: {given} is not a device; use {DEVICES_ACCEPTED}") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"{option}: {given} is not supported; use {DEVICES_ACCEPTED}")
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"{option}: {given} asked for, but this machine has no usable CUDA GPU")
        if device.index is not None and device.index >= count:
            raise UsageError(f"{option}: {given} asked for, but this machine has {count} CUDA GPU(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"{option}: {given} asked for, but MPS is not available here")
    return device


def distributed_device(setting: str, local_rank: int) -> torch.device:
    """Each process of a launch takes the GPU of its local rank, or the CPU."""
    cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if setting == "auto":
        setting = "cuda" if cuda_count else "cpu"
    if setting == "cpu":
        return torch.device("cpu")
    if setting == "cuda":
        if cuda_count == 0:
            raise UsageError("train.device: cuda asked for, but this machine has no usable CUDA GPU; use cpu or auto")
        if local_rank >= cuda_count:
            raise UsageError(
                f"train.device: cuda for local rank {local_rank}, but this machine has {cuda_count} CUDA GPU(s); "
                f"start at most {cuda_count} processes per machine, or use train.device=cpu"
            )
        return torch.device("cuda", local_rank)
    raise UsageError(
        f"train.device: {setting!r} cannot be shared by the processes of a distributed run; use auto, cuda (each "
        "process takes the GPU of its local rank) or cpu"
    )
