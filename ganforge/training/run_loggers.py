"""The loggers a run follows itself with: the metrics file, always, and those ``output.loggers`` lists.

The metrics file (the ``metrics_file`` logger, metrics.jsonl) is the run's own record: resume,
plot, report and export read it, so it is given every call first and its failure (a full disk) is
the run's. Any other logger that raises (a tracking server gone, a bug in a plugin) is named in
one warning and switched off; the run goes on. What each logger is given is a copy: none can
change what the others, or the run folder, receive.
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

    ``records_written`` counts the lines of metrics.jsonl: a checkpoint records it, and a resume
    sets it to the lines kept. A process that does not log (not the main one) is given no run: no loggers.
    """

    def __init__(self, run: ResolvedRun | None, warn: Callable[[str], None]) -> None:
        self.metrics_file: RunLogger | None = run.metrics_file.build() if run is not None else None
        chosen = run.loggers if run is not None else ()
        self.active: list[tuple[str, RunLogger]] = [(entry.component.name, entry.build()) for entry in chosen]
        self.warn = warn
        self.records_written = 0

    def state_dict(self) -> dict[str, Any]:
        return {"metrics_records": self.records_written}  # a resume keeps exactly these lines of metrics.jsonl

    def start(self, config: dict[str, Any], run_dir: Path, resumed: bool) -> None:
        self._each("start", lambda logger: logger.start(copy.deepcopy(config), run_dir, resumed))

    def log(self, record: dict[str, Any]) -> None:
        self._each("log", lambda logger: logger.log(copy.deepcopy(record)))
        self.records_written += 1

    def images(self, name: str, images: torch.Tensor, step: int) -> None:
        self._each("images", lambda logger: logger.images(name, images.clone(), step))

    def finish(self, outcome: LoggerOutcome) -> None:
        self._each("finish", lambda logger: logger.finish(outcome))
        self.active = []

    def _each(self, call: str, action: Callable[[RunLogger], None]) -> None:
        if self.metrics_file is not None:
            action(self.metrics_file)  # its failure is the run's: never caught here
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
