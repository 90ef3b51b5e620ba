"""Memory weighed before it is taken: what this machine has free, and a request too large for it refused.

Allocating first and failing later gives a MemoryError traceback, or the kernel's OOM killer, after
minutes of work; an estimate from the counts and shapes involved costs nothing and names the fix.
:func:`check_request_fits` weighs one request (images to read, to generate); a run's own estimate,
from its config, is :func:`ganforge.guards.machine.check_memory`, built on what is free here.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ganforge.errors import UsageError

MEMINFO = Path("/proc/meminfo")


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
