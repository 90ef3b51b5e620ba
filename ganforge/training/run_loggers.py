"""The loggers that follow a run: those ``output.loggers`` lists, each an optional observer.

metrics.jsonl is not a logger's: the run folder writes every record there first
(training/metrics_file.py), so a logger holds nothing the run needs. A logger is third-party code
like any other, and its failure is never the run's: one that raises (a tracking server gone, a bug
in a plugin), calls ``sys.exit()``, raises KeyboardInterrupt, or hangs is named with its plugin
and distribution in one warning and switched off; the run goes on, and ends with the exit code and
checkpoints it would have had without it. Each logger runs on a thread of its own
(training/logger_thread.py): the run waits for its loggers only at its end, for at most
``FINISH_SECONDS`` (``INTERRUPTED_FINISH_SECONDS`` after a stop signal, whose sender is waiting).
What each logger is given is a copy: none can change what the others, or the run folder, receive.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganforge.config import ResolvedRun
from ganforge.contracts import LoggerOutcome, RunLogger
from ganforge.errors import FactoryError, GanforgeError, first_line, shorten
from ganforge.registry import Chosen, Component
from ganforge.training.logger_thread import QUEUE_CALLS, LoggerThread

FINISH_SECONDS = 30.0  # all the loggers together, at the end of a run that finished or failed
INTERRUPTED_FINISH_SECONDS = 10.0  # after a signal: a scheduler's grace period (often 30 s) must cover saving too
KEPT = "metrics.jsonl has every record"


@dataclass
class Follower:
    """A logger of the run, the component it was built from, and the thread its calls run on."""

    component: Component
    thread: LoggerThread


class RunLoggers:
    """The run's loggers, built from the config before the run folder is made (a missing package fails first).

    A process that does not log (not the main one) is given no run: no loggers.
    """

    def __init__(self, run: ResolvedRun | None, warn: Callable[[str], None]) -> None:
        self.warn = warn
        self.active: list[Follower] = []
        for chosen in run.loggers if run is not None else ():
            logger = self._built(chosen)
            if logger is not None:
                self.active.append(Follower(chosen.component, LoggerThread(chosen.component.name, logger)))

    def start(self, config: dict[str, Any], run_dir: Path, resumed: bool) -> None:
        self._each("start", lambda logger, given: logger.start(given, run_dir, resumed), config)

    def log(self, record: dict[str, Any]) -> None:
        self._each("log", lambda logger, given: logger.log(given), record)

    def images(self, name: str, images: torch.Tensor, step: int) -> None:
        self._each("images", lambda logger, given: logger.images(name, given, step), images)

    def finish(self, outcome: LoggerOutcome) -> None:
        """Tell each logger how the run ended and wait for them, all together at most the bound for ``outcome``."""
        self._each("finish", lambda logger: logger.finish(outcome))
        seconds = INTERRUPTED_FINISH_SECONDS if outcome == "interrupted" else FINISH_SECONDS
        deadline = time.monotonic() + seconds
        for follower in list(self.active):
            if follower.thread.end(deadline):
                self._report_failure(follower)
            else:
                running = follower.thread.running()
                self._switch_off(follower, f"did not finish within {seconds:.0f} s ({running}); it is left behind")
        self.active = []

    def _built(self, chosen: Chosen) -> RunLogger | None:
        logger, failure = build_logger(chosen)
        if logger is None:
            self.warn(f"warning: {failure}; it is off for this run; {KEPT}")
        return logger

    def _each(self, call: str, act: Callable[..., None], *given: Any) -> None:
        """Queue ``act(logger, *given)`` for each logger still on, each with copies of its own of ``given``."""
        for follower in list(self.active):
            if self._report_failure(follower):
                continue
            copies = [value.clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value) for value in given]
            if not follower.thread.submit(call, lambda logger, copies=copies: act(logger, *copies)):
                running = follower.thread.running()
                self._switch_off(follower, f"is {QUEUE_CALLS} calls behind the run ({running}): hung or too slow")

    def _report_failure(self, follower: Follower) -> bool:
        """Switch the logger off with a warning when one of its calls failed; True when one did."""
        failure = follower.thread.failure
        if failure is None:
            return False
        self._switch_off(follower, f"failed in {failure.call}() ({described(failure.error)})")
        return True

    def _switch_off(self, follower: Follower, what: str) -> None:
        """One line naming the logger, its plugin and distribution, and what it did; it is given nothing more."""
        self.active.remove(follower)
        self.warn(f"warning: {follower.component.describe()} {what}; it is off for the rest of the run; {KEPT}")


def build_logger(chosen: Chosen) -> tuple[RunLogger | None, str]:
    """The logger, or None and what its factory did, in words naming it; a missing package (a UsageError that
    says what to install) is raised: the run stops on it before its folder is made."""
    try:
        return chosen.build(), ""
    except FactoryError as error:  # it exited, or made no RunLogger: named with its plugin already
        return None, first_line(str(error))
    except GanforgeError:
        raise
    except (KeyboardInterrupt, SystemExit):  # the user's Ctrl-C: the factory's own exits are FactoryErrors
        raise
    except BaseException as error:  # a plugin's failure (GeneratorExit too), never the run's
        return None, f"{chosen.component.describe()}: its factory raised {described(error)}"


def described(error: BaseException) -> str:
    """What a logger's code raised, in words: an exit or an interrupt of its own is said to be its own."""
    if isinstance(error, SystemExit):
        return f"it called sys.exit({error.code!r})"
    if isinstance(error, KeyboardInterrupt):
        return "it raised KeyboardInterrupt itself; no Ctrl-C was pressed"
    said = shorten(first_line(str(error)), 300)
    return f"{type(error).__name__}{f': {said}' if said else ''}"
