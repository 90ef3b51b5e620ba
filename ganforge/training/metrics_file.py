"""metrics.jsonl, the run's own record: one JSON line per record, with one owner, the run folder.

Resume, the plot, ``report`` and ``export`` read it, so the run writes it itself before any
logger sees a record: a line is appended whole or not at all, and a write that fails (a full
disk, a link put in its place) stops the run, leaving the file as it was. Reading leaves out a
last line cut short (the process was killed while appending it); a resume cuts the file back to
the lines its checkpoint counted. Loggers (training/run_loggers.py) only follow the run.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ganforge.errors import DataError
from ganforge.files import append_whole, reporting_write_failures, write_atomically

METRICS_NAME = "metrics.jsonl"


def metrics_record_problem(record: Any) -> str | None:
    """What keeps a JSON value from being a metrics.jsonl record; None for a record."""
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
    return None


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

        A line that is not a record (not JSON, or JSON that is not an object with an event, epoch
        and step) is a DataError naming the file and the line.
        """
        if not self.path.exists():
            return
        if not self.path.is_file():
            raise DataError(f"{self.path} is not a file")
        with self.path.open(encoding="utf-8", errors="replace") as stream:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    if line.endswith("\n"):  # a whole line that is not JSON: damage, not a cut-off write
                        raise DataError(f"{self.path}, line {number}, is not a JSON record") from None
                    continue
                problem = metrics_record_problem(record)
                if problem is not None:
                    raise DataError(f"{self.path}, line {number}, is not a metrics record: {problem}")
                yield record

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
