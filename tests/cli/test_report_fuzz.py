"""metrics.jsonl lines made wrong in every way a seeded generator knows (issue 35, must show 4), fed to the report.

Each case is a valid step or evaluation line mutated once: a field given a wrong type, a field
left out, a value nested deep, a huge number, NaN or infinity, a byte that is not UTF-8, the line
cut short. It goes into a run folder among valid lines, and the folder is read as `ganforge
report` reads it (in-process through ``read_run``; a handful through the CLI). A case is either
refused with a DataError naming the file, the line and the field, or accepted when the line is
valid; then the accepted lines are rendered into a page, and read by `ganforge export`'s
``evaluation_at``. Never another exception.
"""

from __future__ import annotations

import copy
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ganforge.cli.export import evaluation_at
from ganforge.errors import DataError
from ganforge.report import render
from ganforge.report_runs import read_run
from tests.cli.test_report_hostile import make_run

SEED = 35
CASES = 600
DIRECTIONS = {"fid": "lower", "precision": "higher"}
STEP = {
    "event": "step",
    "epoch": 1,
    "step": 5,
    "d_loss": 0.5,
    "g_loss": 0.7,
    "D(x)": 0.6,
    "D(G(z))": 0.4,
    "images/s": 1200.0,
    "seconds": 0.1,
    "schedule/optim.generator.lr": 1e-4,
}
EVAL = {
    "event": "eval",
    "epoch": 1,
    "step": 10,
    "fid": 12.5,
    "precision": 0.5,
    "floor": {"fid": 1.5, "precision": 0.8},
    "protocol": {"generated": "100 samples", "metrics": {"fid": {"samples": 100}}},
    "seconds": 3.2,
}
ENVELOPE = ("event", "epoch", "step")
NOT_NUMBERS = ["12.5", "", "NaN", True, False, [1.5], {"value": 1.5}, [], {}]
NUMBERS = [None, 0, -3, 1.5, 1e308, -1e308, 2**70, math.nan, math.inf, -math.inf, 5e-324]
NOT_COUNTS = [1.5, -1, "3", True, None, [3], {"n": 3}, 2**63, 10**400]
COUNTS = [0, 1, 7, 2**63 - 1]
NOT_MAPPINGS = [5, 1.5, [1.5], "fid", True, None, [{"fid": 1.5}]]


@dataclass
class Case:
    """A line of metrics.jsonl; ``named`` the text its refusal must hold, None when the line is valid."""

    line: bytes
    named: str | None
    kept: bool = True  # a valid line the reader keeps (a last line cut short is left out)


def encoded(record: dict) -> bytes:
    return json.dumps(record).encode()


def wrong_type(rng: random.Random) -> Case:
    """One field of a step or evaluation line given a value of a type it never has."""
    record = copy.deepcopy(rng.choice([STEP, EVAL]))
    key = rng.choice([*record, "floor.fid"] if record["event"] == "eval" else list(record))
    if key in ("epoch", "step"):
        record[key] = rng.choice(NOT_COUNTS)
        return Case(encoded(record), f'its "{key}" is')
    if key == "event":
        record[key] = rng.choice([*NOT_NUMBERS, 3, "best", "STEP"])
        return Case(encoded(record), 'its "event" is')
    if key in ("floor", "protocol"):
        record[key] = rng.choice(NOT_MAPPINGS)
        return Case(encoded(record), f"  {key}: Input should be a valid dictionary")
    if key == "floor.fid":
        record["floor"]["fid"] = rng.choice(NOT_NUMBERS)
        return Case(encoded(record), "  floor.fid: Input should be a valid number")
    record[key] = rng.choice(NOT_NUMBERS)
    return Case(encoded(record), f"  {key}: Input should be a valid number")


def right_type(rng: random.Random) -> Case:
    """A value of the right type, at the edges: null, NaN, infinity, huge; an extra metric a plugin adds."""
    record = copy.deepcopy(rng.choice([STEP, EVAL]))
    key = rng.choice([key for key in record if key not in ("event", "floor", "protocol")] + ["plugin/score"])
    record[key] = rng.choice(COUNTS if key in ("epoch", "step") else NUMBERS)
    return Case(encoded(record), None)


def missing(rng: random.Random) -> Case:
    record = copy.deepcopy(rng.choice([STEP, EVAL]))
    key = rng.choice(list(record))
    del record[key]
    return Case(encoded(record), f'it has no "{key}"' if key in ENVELOPE else None)


def nested(rng: random.Random) -> Case:
    """A value nested deeper than any line ganforge writes (refused before parsing), or a little (a wrong type)."""
    record = copy.deepcopy(rng.choice([STEP, EVAL]))
    if rng.random() < 0.5:
        depth = rng.choice([65, 500, 100_000])
        record["seconds"] = "DEEP"
        return Case(encoded(record).replace(b'"DEEP"', b"[" * depth + b"]" * depth), "more than 64 deep")
    key = rng.choice(["d_loss", "protocol", "seconds"])
    value: object = 1.5
    for _ in range(rng.randint(1, 5)):
        value = [value]
    record[key] = value
    wanted = "dictionary" if key == "protocol" and record["event"] == "eval" else "number"
    return Case(encoded(record), f"  {key}: Input should be a valid {wanted}")


def huge_number(rng: random.Random) -> Case:
    """Numbers past what JSON turns into a Python number, or past a float, or past any step count."""
    record = copy.deepcopy(rng.choice([STEP, EVAL]))
    choice = rng.randrange(3)
    key, digits, named = [
        ("seconds", 5000, "is not JSON"),  # more digits than Python converts
        ("seconds", 400, "  seconds: Input should be a valid number"),  # an integer no float holds
        ("step", rng.randint(20, 400), 'its "step" is'),  # more steps than any run counts
    ][choice]
    record[key] = "HUGE"
    return Case(encoded(record).replace(b'"HUGE"', b"9" * digits), named)


def not_utf8(rng: random.Random) -> Case:
    text = encoded(rng.choice([STEP, EVAL]))
    place = rng.randrange(1, len(text))
    return Case(text[:place] + bytes([rng.randrange(0x80, 0x100)]) + text[place:], "is not UTF-8 text")


def cut(rng: random.Random) -> Case:
    """A line cut short: damage in the middle of the file, a killed write at its end (then left out)."""
    text = encoded(rng.choice([STEP, EVAL]))
    return Case(text[: rng.randrange(1, len(text) - 1)], "is not JSON")


MUTATIONS = (wrong_type, right_type, missing, nested, huge_number, not_utf8, cut)


def cases() -> list[Case]:
    rng = random.Random(SEED)
    return [rng.choice(MUTATIONS)(rng) for _ in range(CASES)]


def write_lines(run: Path, case: Case, place: int, last: bool) -> int:
    """The run's metrics.jsonl: valid lines with ``case`` at line ``place`` (1-based), or last without its newline."""
    valid = [encoded(STEP), encoded(EVAL), encoded(dict(STEP, step=6)), encoded(dict(EVAL, epoch=2, step=20))]
    if last:
        text = b"\n".join(valid) + b"\n" + case.line
    else:
        text = b"\n".join([*valid[: place - 1], case.line, *valid[place - 1 :]]) + b"\n"
    (run / "metrics.jsonl").write_bytes(text)
    return len(valid) + (0 if last else 1)


def test_every_mutated_metrics_line_is_refused_naming_file_line_and_field_or_accepted(tmp_path):
    run = make_run(tmp_path / "run")
    rng = random.Random(SEED + 1)
    accepted: list[bytes] = []
    refused = 0
    for number, case in enumerate(cases()):
        last = case.named == "is not JSON" and rng.random() < 0.3  # the cut as the file's last line: a killed write
        place = rng.randint(1, 5)
        records = write_lines(run, case, place, last)
        try:
            view = read_run(run)
        except DataError as error:
            message = str(error)
            assert case.named is not None and not last, f"case {number} refused: {message}"
            assert f"{run / 'metrics.jsonl'}, line {place}," in message, (number, message)
            assert case.named in message, (number, case.named, message)
            refused += 1
            continue
        assert case.named is None or last, f"case {number} accepted, expected {case.named!r}: {case.line[:200]!r}"
        assert len(view.records) == records
        if not last:
            accepted.append(case.line)
    assert refused >= CASES // 2 and len(accepted) >= CASES // 10  # both kinds well covered
    for chunk in range(0, len(accepted), 60):  # the accepted lines rendered into a page, as the report would
        (run / "metrics.jsonl").write_bytes(b"\n".join(accepted[chunk : chunk + 60]) + b"\n")
        page = render([read_run(run)], "fuzz", DIRECTIONS)
        assert "</html>" in page
        evaluation_at(run / "checkpoints" / "last.pt", 10)  # what `ganforge export` reads


@pytest.mark.parametrize("index", range(6))
def test_a_handful_of_mutated_lines_through_the_cli(app, tmp_path, index):
    case = [case for case in cases() if case.named is not None][index * 7]
    run = make_run(tmp_path / "run")
    write_lines(run, case, 2, last=False)
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert f"{run / 'metrics.jsonl'}, line 2," in result.stderr and case.named.strip() in result.stderr
    assert not (tmp_path / "r.html").exists()
