"""One logger on a thread of its own, fed by a bounded queue: the run never waits on a logger but at its end.

A logger is third-party code (a plugin's, or a tracker's client talking to a server), so whatever
its calls raise is its own failure, caught on its thread: ``sys.exit()``, a KeyboardInterrupt and
GeneratorExit included. None of them can be the user's: a signal (Ctrl-C, SIGTERM) is only ever
handled on the main thread, where the trainer saves and stops. Whatever a call blocks on (a
tracking server that does not answer, a bug that never returns) blocks that logger's thread
alone: the run goes on, and a SIGTERM still saves and exits. The thread is a daemon, so one that
never returns is left behind when the process ends.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ganforge.contracts import RunLogger

# Calls that may wait for a logger. A logger this far behind has hung, or cannot keep up with the run: it is
# switched off rather than let the records it has not taken pile up in memory.
QUEUE_CALLS = 256

Call = Callable[[RunLogger], None]


@dataclass(frozen=True)
class Failure:
    """What a logger's call raised, with the call's name (``log``)."""

    call: str
    error: BaseException


class LoggerThread:
    """A logger's calls, made in order on a thread of its own."""

    def __init__(self, name: str, logger: RunLogger) -> None:
        self.logger = logger
        self.failure: Failure | None = None
        self._calls: queue.Queue[tuple[str, Call] | None] = queue.Queue(QUEUE_CALLS)
        self._running: tuple[str, float] | None = None  # the call under way and when it began
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"ganforge logger {name}", daemon=True)
        self._thread.start()

    def submit(self, call: str, action: Call) -> bool:
        """Queue a call, without waiting; False when the queue is full (the logger is that far behind)."""
        try:
            self._calls.put_nowait((call, action))
        except queue.Full:
            return False
        return True

    def end(self, deadline: float) -> bool:
        """No more calls: True when the thread has made those queued and ended by ``deadline`` (time.monotonic())."""
        try:
            self._calls.put(None, timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Full:
            return False
        return self._ended.wait(max(deadline - time.monotonic(), 0.0))

    def running(self) -> str:
        """The call under way and for how long, for a message: ``in log() for 12 s``."""
        running = self._running
        if running is None:
            return "between calls"
        call, since = running
        return f"in {call}() for {time.monotonic() - since:.0f} s"

    def _serve(self) -> None:
        try:
            while (item := self._calls.get()) is not None:
                call, action = item
                self._running = (call, time.monotonic())
                try:
                    action(self.logger)
                except BaseException as error:  # the logger's own failure, whatever it raised
                    self.failure = Failure(call, error)
                    return  # the calls after it are dropped: the logger is off
                finally:
                    self._running = None
        finally:
            self._ended.set()
