"""Memory weighed before it is taken: what this machine has free, and a request too large for it refused.

Allocating first and failing later gives a MemoryError traceback, or the kernel's OOM killer, after
minutes of work; an estimate from the counts and shapes involved costs nothing and names the fix.
:func:`check_request_fits` weighs one request (images to read, to generate); a run's own estimate,
from its config, is :func:`ganforge.guards.machine.check_memory`, built on what is free here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from ganforge.errors import GanforgeError, UsageError

MEMINFO = Path("/proc/meminfo")
# What torch's allocators say when they fail, where they raise a plain RuntimeError: the CPU's and Apple's GPU's.
ALLOCATOR_FAILURES = ("DefaultCPUAllocator: can't allocate memory", "MPS backend out of memory")
ASKED_FOR = re.compile(r"tried to allocate ([0-9]+) bytes|Tried to allocate ([0-9.]+ [KMGTP]?i?B)", re.ASCII)


class OutOfMemory(GanforgeError):
    """An allocation that failed while the run trained or evaluated: the batch did not fit after all."""


def is_allocation_failure(error: BaseException) -> bool:
    """Whether ``error`` is an allocator's refusal (CUDA's, the CPU's, Apple's GPU's, Python's), not a bug."""
    if isinstance(error, MemoryError | torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(text in str(error) for text in ALLOCATOR_FAILURES)


@contextmanager
def naming_allocation_failures(what: str, advice: str) -> Iterator[None]:
    """An allocation failing inside the block is an :class:`OutOfMemory` saying ``what`` failed and ``advice``."""
    try:
        yield
    except Exception as error:
        if not is_allocation_failure(error):
            raise
        raise OutOfMemory(
            f"not enough memory: {what} failed to allocate {allocation_asked(error)} (the estimate before it leaves "
            f"out activations); {advice}"
        ) from None


def allocation_asked(error: BaseException) -> str:
    """How much the failed allocation asked for, as the allocator said it ("2.0 GiB"); "memory" where it did not."""
    match = ASKED_FOR.search(str(error))
    if match is None:
        return "memory"
    return readable_bytes(int(match.group(1))) if match.group(1) else match.group(2)


def available_bytes() -> int | None:
    """What this machine can still give without swapping (MemAvailable); None where the system does not say."""
    try:
        lines = MEMINFO.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def device_free_bytes(device: torch.device) -> int | None:
    """Free memory of a CUDA device; None for other devices, which share the machine's memory or do not say."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return free


def readable_bytes(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def check_request_fits(
    what: str, host_bytes: int, *, advice: str, device: torch.device | None = None, device_bytes: int = 0
) -> None:
    """Refuse ``what`` when its estimate exceeds the memory free here (and on a CUDA ``device``)."""
    limits = [("this machine", host_bytes, available_bytes())]
    if device is not None and device_bytes:
        limits.append((str(device), device_bytes, device_free_bytes(device)))
    for where, needed, free in limits:
        if free is not None and needed > free:
            raise UsageError(
                f"{what} needs about {readable_bytes(needed)} of memory and {where} has {readable_bytes(free)} "
                f"free; {advice}"
            )
