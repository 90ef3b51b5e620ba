"""Ctrl-C while the ganforge command starts: exit 130 with one line, never a traceback.

Python turns SIGINT into a KeyboardInterrupt wherever the main thread happens to be, so a Ctrl-C
in the first seconds of a command (importing torch, loading plugins, reading the config, building
the models, loading data) printed a traceback from deep inside an import, or was taken by click
for "Aborted!" and exit 1, or by code that catches every exception. The trainer installs handlers
of its own once training begins (see training/interruption.py); this module covers everything
before and around that.

``ganforge/__init__.py`` calls :func:`guard_command_line` before it imports anything else, and
the guard is installed only in the ``ganforge`` command and ``python -m ganforge``: importing
ganforge as a library leaves the process's SIGINT handling alone. Under the guard SIGINT raises
:class:`Interrupted`, a SystemExit with code 130: ``except Exception`` and ``except
KeyboardInterrupt`` let it through, the console script's wrapper exits with its code without a
traceback, and the one line is printed at exit unless a command printed a more precise one.

Not inside an import, though: torch's import runs Python code from C++, and an exception raised
there by a signal can abort the process ("terminate called after throwing ... error_already_set")
or leave an extension half loaded (numpy's "cannot load module more than once per process"). A
Ctrl-C that lands in an import before the command has begun (:func:`begin_command`: nothing is
open or written yet) ends the process on the spot with its line and code 130. Later, as in a
plugin's import, it waits for the import to finish (a thread looks again every ``POLL_SECONDS``)
and stops the command then; a second Ctrl-C stops at once, wherever it lands.

This module imports nothing outside the standard library, so the guard is in place within the
first tenth of a second. A SIGINT before that (while Python itself starts) is Python's own.
"""

from __future__ import annotations

import _thread
import atexit
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType
from typing import Any

EXIT_CODE = 128 + signal.SIGINT
COMMAND = "ganforge"
# A second SIGINT this soon after the first is the same request (a key pressed twice, or the terminal and
# torchrun's launcher both passing it on): the exit is already under way and is not broken into again. The
# trainer's stop handlers (training/interruption.py) take the same grace period in a distributed run.
REPEAT_GRACE_SECONDS = 1.0
POLL_SECONDS = 0.05  # how often a Ctrl-C waiting for an import to finish looks again


class Interrupted(SystemExit):
    """The user's Ctrl-C under the guard: unwinds like an exit with code 130."""

    def __init__(self) -> None:
        super().__init__(EXIT_CODE)


class _State:
    guarded = False
    command_began = False
    command_ended = False
    ended_first_press: float | None = None  # the first SIGINT after the command ended
    received = 0  # SIGINTs delivered while a ganforge handler was installed, the guard's or a counting one
    interrupts = 0  # those delivered to the guard: each one a request to stop the command
    first_at = 0.0
    forced = False  # pressed again: stop at once, even inside an import
    waiting = False  # a Ctrl-C waits for an import to finish
    nudged = False  # the next SIGINT handled is the waiting thread's, not a key press
    reported = False
    deferring = False
    advice: Callable[[], str] | None = None  # what the interruption's line tells the user, from what is on disk


_state = _State()


def guard_command_line() -> None:
    """Install the guard if this process is the ganforge command; a no-op when imported as a library."""
    if launched_as_command():
        install_guard()


def launched_as_command() -> bool:
    """True in the ``ganforge`` console script and in ``python -m ganforge`` (torchrun's workers too)."""
    script = sys.argv[0] if sys.argv else ""
    if script == "-m":  # `python -m MODULE` while runpy imports MODULE's packages
        return _module_after_dash_m(getattr(sys, "orig_argv", [])) == COMMAND
    name = Path(script).name.lower()
    return name in (COMMAND, f"{COMMAND}.exe", f"{COMMAND}-script.py")


def _module_after_dash_m(argv: list[str]) -> str | None:
    for index, argument in enumerate(argv[1:], start=1):
        if argument == "-m":
            return argv[index + 1] if index + 1 < len(argv) else None
        if argument.startswith("-m"):
            return argument[2:]
    return None


def begin_command() -> None:
    """The command's own work begins (plugins, config, files): from now on a Ctrl-C unwinds, never cuts short."""
    install_guard()
    _state.command_began = True


def end_command() -> None:
    """The command's work is over, its exit code set: a Ctrl-C while Python shuts down is no longer raised.

    Raised now, it would land in some library's finalizer ("Exception ignored in ...", a traceback)
    and change nothing. A second Ctrl-C still ends a shutdown that hangs, at once, with code 130.

    A Ctrl-C the command took but never acted on stops it here, with code 130: one that waited for
    an import the command finished less than ``POLL_SECONDS`` later, or one that code swallowed.
    """
    unanswered = interrupted()
    _state.command_ended = True
    _state.waiting = False
    if unanswered:
        raise Interrupted


def install_guard() -> None:
    """From now on SIGINT raises :class:`Interrupted`, and an unreported one prints its line at exit.

    Left alone where SIGINT is ignored (a background job, nohup) or handled by someone else, and
    outside the main thread, where handlers cannot be set.
    """
    if _state.guarded:
        return
    try:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return
        signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:  # not the main thread
        return
    _state.guarded = True
    atexit.register(_report_at_exit)


def _on_sigint(signal_number: int, frame: FrameType | None) -> None:
    if _state.command_ended:
        now = time.monotonic()
        if _state.ended_first_press is None:
            _state.ended_first_press = now
        elif now - _state.ended_first_press >= REPEAT_GRACE_SECONDS:
            os._exit(EXIT_CODE)
        return
    if _state.nudged:
        _state.nudged = False
        if not _state.waiting:  # a late nudge: the stop was raised already
            return
    else:
        now = time.monotonic()
        _state.received += 1
        _state.interrupts += 1
        if _state.interrupts == 1:
            _state.first_at = now
        elif now - _state.first_at < REPEAT_GRACE_SECONDS:
            return
        else:
            _state.forced = True
    if _state.deferring:
        return
    if _state.forced or not _importing(frame):
        _state.waiting = False
        raise Interrupted
    if not _state.command_began:
        _exit_before_the_command_began()
    if not _state.waiting:
        _state.waiting = True
        threading.Thread(target=_nudge_while_waiting, name="ganforge-ctrl-c", daemon=True).start()


def _exit_before_the_command_began() -> None:
    """Still importing, and nothing opened or written: end here rather than raise into torch's import."""
    report(f"{COMMAND}: interrupted (Ctrl-C); stopped")
    with suppress(OSError, ValueError):
        sys.stdout.flush()
    os._exit(EXIT_CODE)


def _importing(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False


def _nudge_while_waiting() -> None:
    """Have the main thread's handler look again, until it has raised: the import it waited for is over."""
    while _state.waiting:
        time.sleep(POLL_SECONDS)
        if _state.waiting:
            _state.nudged = True
            _thread.interrupt_main(signal.SIGINT)


def is_guarded() -> bool:
    return _state.guarded


def sigints_received() -> int:
    """How many SIGINTs a ganforge handler has seen: a KeyboardInterrupt with no new one was raised by code."""
    return _state.received


def interrupted() -> bool:
    """Whether the command was asked to stop (under the guard only: a library's caller handles its own)."""
    return _state.interrupts > 0


def stop() -> None:
    """Stop the way the user's Ctrl-C does here: :class:`Interrupted` under the guard, else KeyboardInterrupt."""
    _state.waiting = False
    if _state.guarded:
        raise Interrupted
    raise KeyboardInterrupt


def stop_if_interrupted() -> None:
    """Stop now if a Ctrl-C arrived that some code caught and dropped on the way."""
    if interrupted():
        stop()


def advise_after_interrupt(advice: Callable[[], str]) -> None:
    """From now on the interruption's line ends with ``advice()``, asked when it is printed, for the files then.

    For a command that writes (``run``): whenever its Ctrl-C lands, in its work or in its last
    moments, the line says what the folder holds and what to do, not just "stopped".
    """
    _state.advice = advice


def report_interruption() -> None:
    """Print the interruption's line once: the command's advice where it gave one, else "stopped"."""
    if _state.reported:
        return
    ending = "stopped"
    if _state.advice is not None:
        with suppress(Exception):  # the line must come, whatever the advice's look at the disk meets
            ending = _state.advice()
    report(f"{COMMAND}: interrupted (Ctrl-C); {ending}")


def report(message: str) -> None:
    """Print the interruption's line, in place of the general one the guard prints at exit."""
    _state.reported = True
    print(message, file=sys.stderr, flush=True)


def _report_at_exit() -> None:
    _state.deferring = True  # a Ctrl-C now would only interrupt the exit itself
    _state.waiting = False
    if interrupted():
        report_interruption()


@contextmanager
def counting_sigints() -> Iterator[None]:
    """Count SIGINTs inside the block, whoever handles them, so the user's Ctrl-C can be told from code.

    Under the guard every SIGINT is counted already. Elsewhere (ganforge used as a library) the
    handler in place, Python's KeyboardInterrupt as a rule, is wrapped for the block; outside the
    main thread no handler can be set, and no SIGINT is delivered there either.
    """
    previous = signal.getsignal(signal.SIGINT)
    wrapped = not _state.guarded and callable(previous) and threading.current_thread() is threading.main_thread()
    if wrapped:
        handler: Callable[[int, FrameType | None], Any] = previous

        def counting(signal_number: int, frame: FrameType | None) -> Any:
            _state.received += 1
            return handler(signal_number, frame)

        signal.signal(signal.SIGINT, counting)
    try:
        yield
    finally:
        if wrapped:
            signal.signal(signal.SIGINT, previous)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Under the guard, a Ctrl-C inside the block waits for its end: for steps that must not stop half-way."""
    if not _state.guarded or _state.deferring:
        yield
        return
    _state.deferring = True
    before = _state.interrupts
    try:
        yield
    finally:
        _state.deferring = False
    if _state.interrupts != before:
        stop()
