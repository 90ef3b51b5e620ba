"""An iterator run a few items ahead in a background thread: the next batches are read while the step trains.

The thread only ever waits a short while at a time, checking whether it should stop, so closing
the iterator (the consumer left early: an interruption, a divergence, any exception) ends it
within one item. An exception raised in the thread is raised again in the consumer, at the item
where it happened.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

Item = TypeVar("Item")

POLL_SECONDS = 0.1  # how long either side waits on the queue before it looks again whether the other is gone
JOIN_SECONDS = 60.0  # a thread still inside one read this long after close is left to the process's exit (daemon)

_ITEM, _END, _FAILED = "item", "end", "failed"


class Prefetched(Generic[Item]):
    """``source``'s items, ``depth`` of them read ahead in a daemon thread; use as a context manager or close it."""

    def __init__(self, source: Iterator[Item], depth: int, name: str = "ganforge-prefetch") -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self._queue: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(source,), name=name, daemon=True)
        self._thread.start()

    def __enter__(self) -> Prefetched[Item]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Item]:
        while True:
            kind, value = self._take()
            if kind == _END:
                return
            if kind == _FAILED:
                assert isinstance(value, BaseException)
                raise value
            yield value  # type: ignore[misc]

    def close(self) -> None:
        """Stop the thread and wait for it (it notices within one item); drop what it had read ahead."""
        self._stop.set()
        self._thread.join(JOIN_SECONDS)
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _fill(self, source: Iterator[Item]) -> None:
        try:
            for item in source:
                if not self._offer((_ITEM, item)):
                    return
        except Exception as error:
            self._offer((_FAILED, error))
        else:
            self._offer((_END, None))

    def _offer(self, entry: tuple[str, object]) -> bool:
        """Put ``entry`` on the queue once there is room; False when asked to stop first."""
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _take(self) -> tuple[str, object]:
        while True:
            try:
                return self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                # Dead with nothing left to take: it can put nothing more (every put comes before it ends).
                if not self._thread.is_alive() and self._queue.empty():
                    name = self._thread.name
                    raise RuntimeError(f"the background thread {name} ended without its last item") from None
