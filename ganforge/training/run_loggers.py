"""The loggers that follow a run: those ``output.loggers`` lists, each an optional observer.

metrics.jsonl is not a logger's: the run folder writes every record there first
(training/metrics_file.py), so a logger holds nothing the run needs. A logger that raises (a
tracking server gone, a bug in a plugin) is named in one warning and switched off; the run goes
on. What each logger is given is a copy: none can change what the others, or the run folder,
receive.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ganforge.config import ResolvedRun
from ganforge.contracts import LoggerOutcome, RunLogger
from ganforge.errors import first_line, shorten


class RunLoggers:
    """The run's loggers, built from the config before the run folder is made (a missing package fails first).

    A process that does not log (not the main one) is given no run: no loggers.
    """

    def __init__(self, run: ResolvedRun | None, warn: Callable[[str], None]) -> None:
        chosen = run.loggers if run is not None else ()
        self.active: list[tuple[str, RunLogger]] = [(entry.component.name, entry.build()) for entry in chosen]
        self.warn = warn

    def start(self, config: dict[str, Any], run_dir: Path, resumed: bool) -> None:
        self._each("start", lambda logger: logger.start(copy.deepcopy(config), run_dir, resumed))

    def log(self, record: dict[str, Any]) -> None:
        self._each("log", lambda logger: logger.log(copy.deepcopy(record)))

    def images(self, name: str, images: torch.Tensor, step: int) -> None:
        self._each("images", lambda logger: logger.images(name, images.clone(), step))

    def finish(self, outcome: LoggerOutcome) -> None:
        self._each("finish", lambda logger: logger.finish(outcome))
        self.active = []

    def _each(self, call: str, action: Callable[[RunLogger], None]) -> None:
        for entry in list(self.active):
            name, logger = entry
            try:
                action(logger)
            except Exception as error:  # a logger's failure is never the run's
                self.active.remove(entry)
                said = shorten(first_line(str(error)), 300)
                self.warn(
                    f"warning: logger {name} failed in {call}() and is off for the rest of the run "
                    f"({type(error).__name__}{f': {said}' if said else ''}); metrics.jsonl has every record"
                )
