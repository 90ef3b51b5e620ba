"""Stopping a run on request: SIGINT (Ctrl-C) or SIGTERM (a scheduler, `kill`) saves, then exits.

The first signal only sets a flag; the trainer finishes its step, writes ``last.pt`` where it
stands (mid-epoch included) and raises :class:`RunInterrupted`. A second SIGINT or SIGTERM does
not wait: it raises KeyboardInterrupt at once, and ``last.pt`` keeps whatever was last saved
whole (checkpoints are written to a temporary file and renamed).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from ganforge.errors import GanforgeError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(GanforgeError):
    """A run that stopped on a signal after saving; its exit code is 128 + the signal number."""

    def __init__(self, signal_number: int, where: str, checkpoint: Path) -> None:
        self.signal_name = signal.Signals(signal_number).name
        self.exit_code = 128 + signal_number
        self.checkpoint = checkpoint
        super().__init__(f"stopped by {self.signal_name} {where}; the run is saved in {checkpoint}")


class StopRequest:
    """The first stop signal received while the handlers are installed, if any.

    ``repeat_grace`` seconds after the first signal, another one counts as the same request: in a
    torchrun launch, Ctrl-C reaches each process from the terminal and again from the launcher.
    """

    def __init__(self, repeat_grace: float = 0.0) -> None:
        self.signal_number: int | None = None
        self.repeat_grace = repeat_grace
        self.received_at = 0.0

    def _handle(self, signal_number: int, frame: FrameType | None) -> None:
        if self.signal_number is not None:
            if time.monotonic() - self.received_at < self.repeat_grace:
                return
            raise KeyboardInterrupt  # asked twice: stop now, without saving
        self.signal_number = signal_number
        self.received_at = time.monotonic()
        name = signal.Signals(signal_number).name
        print(
            f"\n{name}: saving after this step, then stopping (send it again to stop at once)",
            file=sys.__stderr__,
            flush=True,
        )


@contextmanager
def stop_signals(repeat_grace: float = 0.0) -> Iterator[StopRequest]:
    """Install the handlers for the duration of a run (from the main thread; elsewhere, none)."""
    request = StopRequest(repeat_grace)
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {number: signal.signal(number, request._handle) for number in STOP_SIGNALS}
    try:
        yield request
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
