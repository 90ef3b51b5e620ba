"""The one reader of the structured files ganforge did not just write itself: bounded, typed, and never a traceback.

A run folder's config.yaml and metrics.jsonl, an export's manifest, a prepared dataset's manifest:
each may have been edited by hand, damaged, or made by someone hostile. Each is read here, in
three steps that each fail with a message naming the file (and the field):

1. the bytes (:func:`read_document_bytes`, or :func:`read_document_lines` for a file of one record
   a line): a regular file reached without a symbolic link, at most ``limit`` bytes (and a line at
   most ``line_limit``), so that a link to a secret, a FIFO or ``/dev/zero`` is refused before
   anything is read;
2. the text as plain data (:func:`parse_json`, or the config reader's bounded YAML), nested at
   most ``MAX_DEPTH`` deep, so that no parser recursion can overflow;
3. the data against a pydantic model (:func:`validated`): what the reader uses is typed, and a
   wrong type is named with its field.

YAML is read by yaml_reader.py, within the bounds a run config is read with.
"""

from __future__ import annotations

import errno
import json
import os
import re
from collections.abc import Iterator
from itertools import accumulate
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ganforge.errors import ConfigError, DataError, GanforgeError, describe_validation_error, quote
from ganforge.files import FileRefusedError, open_regular_file, read_bounded
from ganforge.yaml_reader import load_yaml_text

MAX_DEPTH = 64  # arrays and objects inside each other: far above any record ganforge writes

Model = TypeVar("Model", bound=BaseModel)

# A JSON string, escapes included: dropped before brackets are counted, since brackets inside strings do not nest.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_REFUSALS = {
    errno.ELOOP: "is a symbolic link; ganforge does not read through links",
    errno.EINVAL: "is not a regular file (a FIFO, a device or a socket)",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOENT: "does not exist",
}


def read_document_bytes(
    path: Path, limit: int, what: str, error: type[GanforgeError] = DataError, *, follow_links: bool = False
) -> bytes:
    """The bytes of ``what`` at ``path``: a regular file of at most ``limit`` bytes, not reached through a link
    unless ``follow_links`` (a file the user named on the command line, not one found inside a folder)."""
    try:
        return read_bounded(path, limit, follow_links=follow_links)
    except OSError as failed:  # FileRefusedError among them
        raise _refusal(failed, path, limit, what, error) from None


def read_document_lines(
    path: Path, *, what: str, limit: int, line_limit: int, error: type[GanforgeError] = DataError
) -> Iterator[tuple[int, bytes]]:
    """Each line of ``what`` at ``path`` with its number (from 1) and its newline (none on a last line cut short):
    a regular file, not reached through a link, of at most ``limit`` bytes, no line longer than ``line_limit``."""
    try:
        stream = os.fdopen(open_regular_file(path), "rb")
    except OSError as failed:
        raise _refusal(failed, path, limit, what, error) from None
    with stream:
        if os.fstat(stream.fileno()).st_size > limit:
            raise _refusal(FileRefusedError(errno.EFBIG, "too large"), path, limit, what, error)
        total, number = 0, 0
        while line := stream.readline(line_limit + 1):
            number, total = number + 1, total + len(line)
            if len(line) > line_limit:
                raise error(f"{path}, line {number}, is longer than {line_limit:,} bytes; ganforge writes none so long")
            if total > limit:  # grown since the check
                raise _refusal(FileRefusedError(errno.EFBIG, "too large"), path, limit, what, error)
            yield number, line


def _refusal(failed: OSError, path: Path, limit: int, what: str, error: type[GanforgeError]) -> GanforgeError:
    if failed.errno == errno.EFBIG:
        return error(f"{what} {path} is larger than {size_text(limit)}")
    reason = _REFUSALS.get(failed.errno or 0, f"cannot be read: {failed.strerror or failed}")
    return error(f"{what} {path} {reason}")


def size_text(limit: int) -> str:
    return f"{limit // 2**20} MiB" if limit % 2**20 == 0 else f"{limit:,} bytes"


def decode_text(data: bytes, where: str, error: type[GanforgeError] = DataError) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as failed:
        raise error(f"{where} is not UTF-8 text (byte {failed.start}: {failed.reason})") from None


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in JSON ``text`` (brackets inside strings not counted), without parsing."""
    brackets = _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text))
    steps = (1 if bracket in "[{" else -1 for bracket in brackets)
    return max(accumulate(steps, initial=0))


def parse_json(text: str, where: str, error: type[GanforgeError] = DataError) -> Any:
    """JSON text as plain data; nesting deeper than ``MAX_DEPTH`` is refused before the parser sees it."""
    if nesting_depth(text) > MAX_DEPTH:
        raise error(f"{where} nests arrays or objects more than {MAX_DEPTH} deep; ganforge writes none that deep")
    try:
        return json.loads(text)
    except ValueError as failed:  # JSONDecodeError, and an integer of more digits than Python converts
        raise error(f"{where} is not JSON: {str(failed).splitlines()[0]}") from None


def parse_yaml(text: str, where: str, error: type[GanforgeError] = DataError) -> Any:
    """YAML text as plain data, within the config reader's bounds (size, values, nesting, aliases)."""
    try:
        return load_yaml_text(text, where)
    except ConfigError as failed:
        raise error(str(failed)) from None


def validated(data: Any, model: type[Model], where: str, error: type[GanforgeError] = DataError) -> Model:
    """``data`` as ``model``, or an error naming ``where`` and each field that is wrong."""
    if not isinstance(data, dict):
        raise error(f"{where} is not a mapping of fields: it is {quote(data)}")
    try:
        return model.model_validate(data)
    except ValidationError as failed:
        raise error(f"{where} is not valid:\n{describe_validation_error(failed, model=model)}") from None


def read_json_document(
    path: Path, model: type[Model], *, what: str, limit: int, error: type[GanforgeError] = DataError
) -> Model:
    """A JSON file read through every step above."""
    where = f"{what} {path}"
    text = decode_text(read_document_bytes(path, limit, what, error), where, error)
    return validated(parse_json(text, where, error), model, where, error)


def read_yaml_mapping(
    path: Path, *, what: str, limit: int, error: type[GanforgeError] = DataError, follow_links: bool = False
) -> dict[str, Any]:
    """A YAML file's top-level mapping (an empty file is an empty one), its bytes and text bounded as above."""
    where = f"{what} {path}"
    text = decode_text(read_document_bytes(path, limit, what, error, follow_links=follow_links), where, error)
    data = parse_yaml(text, where, error)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"{where}: expected a mapping of sections at the top, got {type(data).__name__}")
    return data


def read_yaml_document(
    path: Path, model: type[Model], *, what: str, limit: int, error: type[GanforgeError] = DataError
) -> Model:
    """A YAML file read through every step above."""
    where = f"{what} {path}"
    return validated(read_yaml_mapping(path, what=what, limit=limit, error=error), model, where, error)
