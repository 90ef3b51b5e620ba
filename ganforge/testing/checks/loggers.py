"""Contract checks of loggers: a short run, as the trainer gives it: records of each event, the sample grids,
the end; then the same run resumed. Each in a temporary run folder, with a copy of every record to compare.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from ganforge.contracts import (
    RunLogger,
    require,
)
from ganforge.errors import UsageError, first_line
from ganforge.registry import Component
from ganforge.testing.checks.common import CheckSkipped

LOGGER_CONFIG = {"name": "contract-check", "seed": 0, "train": {"epochs": 1, "batch_size": 4}}


def _logger_records() -> list[dict[str, Any]]:
    values = {"d_loss": 1.3, "g_loss": 0.7, "D(x)": 0.6, "D(G(z))": 0.4, "images/s": 100.0}
    return [
        {"event": "step", "epoch": 1, "step": 2, "seconds": 0.1, **values},
        {"event": "epoch", "epoch": 1, "step": 4, "seconds": 0.2, **values},
        {
            "event": "eval", "epoch": 1, "step": 4, "fid": 12.5, "precision": 0.5,
            "floor": {"fid": 1.0, "precision": 0.9}, "seconds": 1.0, "protocol": {"reference": "real images"},
        },
    ]  # fmt: skip


def _logger(component: Component) -> RunLogger:
    try:
        return component.build({})
    except UsageError as error:  # its package is not installed here
        raise CheckSkipped(first_line(str(error))) from None


def _follow_a_run(logger: RunLogger, run_dir: Path, resumed: bool, step: int) -> None:
    config = copy.deepcopy(LOGGER_CONFIG)
    records = [record | {"step": record["step"] + step} for record in _logger_records()]
    given = copy.deepcopy(records)
    process_hooks = (sys.exit, sys.excepthook)
    logger.start(config, run_dir, resumed)
    images = torch.linspace(-1, 1, 4 * 28 * 28).reshape(4, 1, 28, 28)
    if not resumed:
        logger.images("real", images.clone(), 0)
    for record in records:
        logger.log(record)
    logger.images("generated", images.clone(), 4 + step)
    logger.finish("finished")
    require(config == LOGGER_CONFIG, "the logger changed the config it was given")
    require(records == given, "the logger changed a record it was given")
    require(
        (sys.exit, sys.excepthook) == process_hooks,
        "the logger replaced sys.exit or sys.excepthook: it must leave the process as it found it",
    )


def check_logger_follows_a_run(component: Component) -> None:
    """start, log (a step, an epoch and an evaluation record), images (real and generated), finish: no error, and
    nothing it was given changed."""
    with tempfile.TemporaryDirectory() as folder:
        _follow_a_run(_logger(component), Path(folder), resumed=False, step=0)


def check_logger_follows_a_resumed_run(component: Component) -> None:
    """A run stopped and resumed in the same folder: a second logger follows it on, steps going on from the first."""
    with tempfile.TemporaryDirectory() as folder:
        _follow_a_run(_logger(component), Path(folder), resumed=False, step=0)
        _follow_a_run(_logger(component), Path(folder), resumed=True, step=4)
