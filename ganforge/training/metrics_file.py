"""metrics.jsonl, the run's own record: one JSON line per record, with one owner, the run folder.

Resume, the plot, ``report`` and ``export`` read it, so the run writes it itself before any
logger sees a record: a line is appended whole or not at all, and a write that fails (a full
disk, a link put in its place) stops the run, leaving the file as it was. Reading leaves out a
last line cut short (the process was killed while appending it); a resume cuts the file back to
the lines its checkpoint counted. Loggers (training/run_loggers.py) only follow the run.
"""

from __future__ import annotations

import json
import os
import reprlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict

from ganforge.documents import decode_text, parse_json, read_document_lines, validated
from ganforge.errors import DataError
from ganforge.files import append_whole, reporting_write_failures, write_atomically

METRICS_NAME = "metrics.jsonl"
# Far above any real run (a line is a few hundred bytes, an evaluation's a few kilobytes): bounds for a hostile file.
MAX_LINE_BYTES = 1 << 20
MAX_METRICS_BYTES = 1 << 30
MAX_COUNT = 2**63 - 1  # an epoch or step beyond what any tensor or array holds
EVENTS = ("step", "epoch", "eval")

# A logged value: a number (int or float; NaN and infinity too), never a boolean or text; null where it was not finite.
Number = Annotated[float, Strict()]


class LoggedLine(BaseModel):
    """A step's or an epoch's line: its values are numbers or null, under names that plugins may add to."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, Number | None]
    event: str
    epoch: int
    step: int


class EvaluationLine(LoggedLine):
    """An evaluation's line: each metric's value, and the real floor (each metric's value for real images) and the
    protocol they were measured with."""

    floor: dict[str, Number | None] = Field(default_factory=dict)
    protocol: dict[str, Any] = Field(default_factory=dict)


def metrics_record_problem(record: Any) -> str | None:
    """What keeps a JSON value from being a metrics.jsonl record (its event, epoch and step); None for a record."""
    if not isinstance(record, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(record), "a number")
        return f"it is {kind}, not an object"
    for key, kind in (("event", str), ("epoch", int), ("step", int)):
        if key not in record:
            return f'it has no "{key}"'
        value = record[key]
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and value < 0):
            wanted = "a string" if kind is str else "a whole number >= 0"
            return f'its "{key}" is {reprlib.repr(value)}, not {wanted}'
        if kind is int and value > MAX_COUNT:
            return f'its "{key}" is {reprlib.repr(value)}, more than any run counts ({MAX_COUNT:,})'
    if record["event"] not in EVENTS:
        return f'its "event" is {reprlib.repr(record["event"])}, not one of {", ".join(EVENTS)}'
    return None


def checked_record(data: Any, where: str) -> dict[str, Any]:
    """A line's JSON value as a metrics record, checked field by field: a DataError naming ``where`` and the field."""
    problem = metrics_record_problem(data)
    if problem is not None:
        raise DataError(f"{where} is not a metrics record: {problem}")
    validated(data, EvaluationLine if data["event"] == "eval" else LoggedLine, where)
    return data


class MetricsFile:
    """RUN_DIR/metrics.jsonl: appended, read and cut back here alone; ``records`` counts the lines this run keeps.

    A checkpoint saves ``records`` (``state_dict``): a resume keeps exactly those lines.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / METRICS_NAME
        self.records = 0

    def append(self, record: Mapping[str, Any]) -> None:
        """One line, whole: a write that fails (a full disk) leaves the file as it was, and stops the run."""
        with reporting_write_failures(self.path, self.run_dir):
            append_whole(self.path, (json.dumps(record) + "\n").encode(), inside=self.run_dir)
        self.records += 1

    def read(self) -> Iterator[dict[str, Any]]:
        """The logged records; a last line cut short (the process was killed while appending it) is left out.

        The file is read through the bounded reader (a regular file, no link, bounded in size and
        line length). A line that is not a record (not UTF-8, not JSON, nested too deep, or JSON
        that is not an object with an event, epoch and step and numbers for values) is a
        DataError naming the file, the line and the field.
        """
        if not os.path.lexists(self.path):
            return
        lines = read_document_lines(self.path, what="metrics file", limit=MAX_METRICS_BYTES, line_limit=MAX_LINE_BYTES)
        for number, line in lines:
            if not line.strip():
                continue
            where = f"{self.path}, line {number},"
            try:
                data = parse_json(decode_text(line, where), where)
            except DataError:
                if line.endswith(b"\n"):  # a whole line that is not JSON: damage, not a cut-off write
                    raise
                return
            yield checked_record(data, where)

    def cut_back(self, step: int, records: int | None = None) -> None:
        """On resume: forget lines logged after the checkpoint was saved, since those steps run again.

        A checkpoint records how many lines there were (``records``): exactly those are kept. One
        saved before it did is cut at its step, which keeps an epoch's line logged after a
        checkpoint at the epoch's last step.
        """
        logged = list(self.read())
        kept = logged[:records] if records is not None else [record for record in logged if record["step"] <= step]
        text = "".join(json.dumps(record) + "\n" for record in kept).encode()
        with reporting_write_failures(self.path, self.run_dir):
            write_atomically(self.path, lambda stream: stream.write(text), inside=self.run_dir)
        self.records = len(kept)

    def state_dict(self) -> dict[str, Any]:
        return {"metrics_records": self.records}
