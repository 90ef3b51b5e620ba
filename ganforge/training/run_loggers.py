"""The loggers a run follows itself with (``output.loggers``), each kept from harming the run.

A logger that raises (a full disk under its folder, a tracking server gone, a bug in a plugin) is
named in one warning and switched off; the run goes on, and metrics.jsonl, which ganforge writes
itself, has every record. What each logger is given is a copy: none can change what the others,
or the run folder, receive.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ganforge.contracts import LoggerOutcome, RunLogger
from ganforge.errors import first_line, shorten
from ganforge.registry import Chosen


class RunLoggers:
    """The run's loggers, built from the config before the run folder is made (a missing package fails first)."""

    def __init__(self, chosen: Sequence[Chosen], warn: Callable[[str], None]) -> None:
        self.active: list[tuple[str, RunLogger]] = [(entry.component.name, entry.build()) for entry in chosen]
        self.warn = warn

    def start(self, config: Mapping[str, Any], run_dir: Path, resumed: bool) -> None:
        self._each("start", lambda logger: logger.start(copy.deepcopy(config), run_dir, resumed))

    def log(self, record: Mapping[str, Any]) -> None:
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
