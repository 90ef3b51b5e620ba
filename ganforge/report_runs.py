"""What ``ganforge report`` reads of a run folder, and only through the bounded reader (ganforge/documents.py).

A run folder may have been edited by hand, damaged, or made by someone hostile. Its config.yaml
is read within the config reader's bounds and typed where the page uses it (a wrong type is an
error naming the file and the field); metrics.jsonl through its own reader (metrics_file.py); a
sample grid that is a link, a folder, a device, too large or not a PNG is left out with a
warning naming it, so that nothing outside the run folder reaches the page.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ganforge.documents import decode_text, parse_yaml, read_document_bytes, validated
from ganforge.errors import DataError, UsageError
from ganforge.training.run_folder import RunFolder
from ganforge.yaml_reader import MAX_CONFIG_BYTES

MAX_GRIDS = 60  # per run: epochs between are left out (evenly), the last always kept
MAX_GRID_BYTES = 16 << 20  # a 10x10 grid of 256-pixel colour images is a few MB of PNG
EPOCH_GRID = re.compile(r"epoch_(\d+)\.png")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Seen(BaseModel):
    """A part of a run's config as the report reads it: typed strictly where used, any other key kept."""

    model_config = ConfigDict(extra="allow", strict=True)


class TrainSeen(_Seen):
    epochs: int | None = Field(None, ge=0)


class EvalSeen(_Seen):
    every: int | None = Field(None, ge=0)
    best: str | None = None
    metrics: list[str | dict[str, Any]] = Field(default_factory=list)


class ScheduleSeen(_Seen):
    name: str


class RunConfigSeen(_Seen):
    """What the report uses of a run's config.yaml: its name, epochs, evaluation and schedules."""

    name: str | None = None
    train: TrainSeen = Field(default_factory=TrainSeen)
    eval: EvalSeen = Field(default_factory=EvalSeen)
    schedules: dict[str, ScheduleSeen] = Field(default_factory=dict)


@dataclass
class RunView:
    """What the report shows of one run folder."""

    path: Path
    name: str
    config: dict[str, Any]  # as the file has it, for the config section and the differences
    settings: RunConfigSeen  # the same, typed where the page reads it
    records: list[dict[str, Any]]
    grids: list[tuple[int, bytes]]  # (epoch, PNG), oldest first, at most MAX_GRIDS
    real_grid: bytes | None
    best_checkpoint: Path | None
    notes: list[str] = field(default_factory=list)  # what was left out, and why

    @property
    def steps(self) -> list[dict[str, Any]]:
        return [record for record in self.records if record["event"] == "step"]

    @property
    def evaluations(self) -> list[dict[str, Any]]:
        return [record for record in self.records if record["event"] == "eval"]

    @property
    def status(self) -> str:
        planned = self.settings.train.epochs
        done = max((record["epoch"] for record in self.records if record["event"] == "epoch"), default=0)
        if planned is None:
            return f"{done} epochs"
        return (
            f"finished: {done} of {planned} epochs" if done >= planned else f"in progress: {done} of {planned} epochs"
        )


def read_run(path: Path) -> RunView:
    """A run folder as the report shows it; an error naming the folder, file and field when it is not one."""
    folder = RunFolder(path)
    if not os.path.lexists(folder.config_path):
        raise UsageError(f"{path}: not a ganforge run folder (it has no config.yaml)")
    where = f"run config {folder.config_path}"
    text = decode_text(read_document_bytes(folder.config_path, MAX_CONFIG_BYTES, "run config"), where)
    config = parse_yaml(text, where)  # kept as the file has it (its order of keys), for the page to show
    settings = validated(config, RunConfigSeen, where)
    records = list(folder.metrics.read())
    notes: list[str] = []
    grids, real = _grids(folder, notes)
    best = folder.best_checkpoint_path
    return RunView(
        path=path,
        name=settings.name if settings.name is not None else path.name,
        config=config,
        settings=settings,
        records=records,
        grids=grids,
        real_grid=real,
        best_checkpoint=best if best.is_file() else None,
        notes=notes,
    )


def _grids(folder: RunFolder, notes: list[str]) -> tuple[list[tuple[int, bytes]], bytes | None]:
    """The run's epoch grids (oldest first: all, or MAX_GRIDS evenly spaced, the last kept) and its real grid."""
    if folder.samples.is_symlink():
        notes.append(f"{folder.samples} is a symbolic link; its sample grids are left out (ganforge reads no link)")
        return [], None
    found = sorted(
        (int(match.group(1)), grid)
        for grid in folder.samples.glob("epoch_*.png")
        if (match := EPOCH_GRID.fullmatch(grid.name))
    )
    if len(found) > MAX_GRIDS:
        stride = (len(found) - 1) / (MAX_GRIDS - 1)
        found = [found[round(index * stride)] for index in range(MAX_GRIDS)]
    grids = [(epoch, png) for epoch, grid in found if (png := _read_grid(grid, notes)) is not None]
    real = folder.samples / "real.png"
    return grids, _read_grid(real, notes) if os.path.lexists(real) else None


def _read_grid(path: Path, notes: list[str]) -> bytes | None:
    """A sample grid's PNG; None, with a note, when it is not a regular PNG file of the run's own."""
    try:
        data = read_document_bytes(path, MAX_GRID_BYTES, "sample grid")
    except DataError as refused:
        notes.append(f"{refused}; it is left out of the report")
        return None
    if not data.startswith(PNG_SIGNATURE):
        notes.append(f"sample grid {path} is not a PNG image; it is left out of the report")
        return None
    return data
