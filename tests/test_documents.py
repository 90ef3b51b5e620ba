"""The one bounded, typed reader of ganforge's structured files (ganforge/documents.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from ganforge.documents import MAX_DEPTH, nesting_depth, read_document_lines, read_json_document, read_yaml_document
from ganforge.errors import DataError, UsageError


class Record(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    epochs: int


def read(path: Path, limit: int = 1000) -> Record:
    return read_json_document(path, Record, what="record", limit=limit)


def test_a_valid_document_is_read_as_its_model(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text('{"name": "a", "epochs": 3, "other": [1, {"x": "]]]"}]}')
    assert read(path).epochs == 3
    yaml_path = tmp_path / "r.yaml"
    yaml_path.write_text("name: a\nepochs: 4\n")
    assert read_yaml_document(yaml_path, Record, what="record", limit=1000).epochs == 4


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[1, 2]", "is not a mapping of fields"),
        ('{"name": "a", "epochs": "ten"}', "epochs"),
        ('{"name": "a"}', "epochs"),
        ("{not json", "is not JSON"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), f"more than {MAX_DEPTH} deep"),
        ('{"name": "a", "epochs": 1' + "0" * 5000 + "}", "is not JSON"),
    ],
)
def test_a_bad_document_is_an_error_naming_the_file_and_what_is_wrong(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(DataError) as raised:
        read(path, limit=100_000)
    assert str(path) in str(raised.value) and expected in str(raised.value)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert nesting_depth('{"a": "[[[[[[\\"[[[", "b": [[1]]}') == 3


def test_what_is_not_a_regular_file_within_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text('{"name": "secret", "epochs": 1}')
    link = tmp_path / "link.json"
    link.symlink_to(secret)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    big = tmp_path / "big.json"
    big.write_text('{"name": "' + "x" * 2000 + '", "epochs": 1}')
    cases = {
        link: "symbolic link",
        fifo: "not a regular file",
        tmp_path: "is a folder",
        tmp_path / "missing.json": "does not exist",
        big: "larger than 1,000 bytes",
        Path("/dev/zero"): "not a regular file",
    }
    for path, expected in cases.items():
        with pytest.raises(DataError) as raised:
            read(path)
        assert str(path) in str(raised.value) and expected in str(raised.value), raised.value


def test_the_error_class_is_the_callers(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        read_json_document(tmp_path / "none.json", Record, what="record", limit=10, error=UsageError)


def test_a_yaml_alias_bomb_is_refused_by_the_config_readers_bounds(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as raised:
        read_yaml_document(path, Record, what="run config", limit=1 << 20)
    assert str(path) in str(raised.value)


def lines_of(path: Path, limit: int = 1000, line_limit: int = 100) -> list[tuple[int, bytes]]:
    return list(read_document_lines(path, what="records", limit=limit, line_limit=line_limit))


def test_a_file_of_lines_is_read_a_line_at_a_time_within_both_bounds(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"b": 2')  # a blank line, and a last line without its newline
    assert lines_of(path) == [(1, b'{"a": 1}\n'), (2, b"\n"), (3, b'{"b": 2')]
    path.write_bytes(b"short\n" + b"x" * 101 + b"\n")
    with pytest.raises(DataError, match=rf"{path}, line 2, is longer than 100 bytes"):
        lines_of(path)
    path.write_bytes(b"x\n" * 600)
    with pytest.raises(DataError, match="larger than 1,000 bytes"):
        lines_of(path)
    link = tmp_path / "link.jsonl"
    link.symlink_to(path)
    for refused, expected in ((link, "is a symbolic link"), (Path("/dev/zero"), "is not a regular file")):
        with pytest.raises(DataError) as raised:
            lines_of(refused)
        assert f"records {refused} {expected}" in str(raised.value)
