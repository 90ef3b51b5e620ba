"""The checkpoint file: one file written whole, with a checksum, loaded without running code.

A checkpoint is a dict of tensors and plain data saved by ``torch.save``, marked with its format
and version; ``load_checkpoint`` refuses anything else, and checks every field ganforge reads
(fields.py) so a damaged or hand-made file is named, not used. What the dict holds is state.py's.
"""

from __future__ import annotations

import pickle
import reprlib
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ganforge.checkpoints.fields import malformed_fields
from ganforge.errors import GanforgeError, first_line, quote
from ganforge.files import RunDiskFullError, describe_write_failure, is_disk_full, write_atomically

CHECKPOINT_FORMAT = "ganforge-checkpoint"
CHECKPOINT_VERSION = 1
ZIP_MAGIC = b"PK\x03\x04"  # the local file header a zip archive begins with
ACCEPTED_CHECKPOINTS = "give a checkpoint a run saved (runs/NAME/checkpoints/*.pt) or a folder ganforge export wrote"


class CheckpointError(GanforgeError):
    """A checkpoint that cannot be read or is not a ganforge checkpoint."""


class CheckpointDiskFullError(RunDiskFullError, CheckpointError):
    """A checkpoint of a run that the full disk had no room for; the previous one is kept."""


def save_checkpoint(state: dict[str, Any], path: Path, *, inside: Path | None = None) -> None:
    """Write a checkpoint whole or not at all; with ``inside`` (its run folder), never through a link in it."""
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
    # torch.load notices a cut-off file but not flipped bytes inside a tensor: a checksum does.
    payload["checksum"] = checksum(payload)
    try:
        write_atomically(path, lambda stream: torch.save(payload, stream), inside=inside)
    except OSError as error:  # a full disk, a folder gone: the previous checkpoint is still whole
        kept = f"; the previous {path.name} is kept" if path.exists() else ""
        message = f"cannot save checkpoint {path}: {describe_write_failure(path, error)}{kept}"
        if inside is not None and is_disk_full(error):
            raise CheckpointDiskFullError(message, inside) from None
        raise CheckpointError(message) from None


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load tensors and plain data only (weights_only): a checkpoint can never run code."""
    path = Path(path)
    check_zip_archive(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused = next((line for line in str(error).splitlines() if "GLOBAL" in line), "").strip()
        raise CheckpointError(
            f"refused to load {path}: it holds Python objects beyond tensors and plain data"
            f"{f' ({refused})' if refused else ''}, and loading them could run code; ganforge checkpoints never do"
        ) from None
    except Exception as error:  # cut off or damaged
        reason = first_line(str(error))
        raise CheckpointError(f"{path} is damaged or not a checkpoint ({type(error).__name__}: {reason})") from None
    check_saved_format(state, path, "checkpoint", CHECKPOINT_FORMAT, CHECKPOINT_VERSION, CheckpointError)
    saved_checksum = state.pop("checksum", None)
    if saved_checksum is not None and saved_checksum != checksum(state):
        raise CheckpointError(f"{path} is damaged: its contents do not match the checksum saved with them")
    problem = malformed_fields(state)
    if problem is not None:
        raise CheckpointError(f"{path} is not a usable ganforge checkpoint: {problem}")
    return state


def check_zip_archive(path: Path) -> None:
    """``path`` is a file in the zip format torch.save writes, or a CheckpointError says what it is instead.

    Anything else would reach torch's older pickle reader, whose refusals of a text file (a GLOBAL, an
    unknown opcode) read as a checkpoint that would run code.
    """
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if not path.is_file():
        what = "a folder, not a checkpoint file nor an export" if path.is_dir() else "not a regular file"
        raise CheckpointError(f"{path} is {what}; {ACCEPTED_CHECKPOINTS}")
    try:
        with path.open("rb") as file:
            head = file.read(len(ZIP_MAGIC))
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path}: {error.strerror or error}") from None
    if head != ZIP_MAGIC:
        raise CheckpointError(
            f"{path} is not a ganforge checkpoint: a checkpoint is the zip archive torch.save writes, and this file "
            f"begins {quote(head)}; {ACCEPTED_CHECKPOINTS}"
        )


def check_saved_format(
    document: Any, path: Path, what: str, format_name: str, version: int, error: type[GanforgeError]
) -> None:
    """A file ganforge wrote (a checkpoint, an export's manifest) names its format and a version this ganforge
    reads; else ``error`` says which."""
    if not isinstance(document, dict) or document.get("format") != format_name:
        raise error(f"{path} is not a ganforge {what}")
    if document.get("version") != version:
        raise error(f"{path} has {what} version {document.get('version')}; this ganforge reads {version}")


def checksum(value: Any) -> int:
    """CRC-32 of a checkpoint's contents: every tensor's bytes and every other value, in a fixed order."""
    crc = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key in sorted(item, key=str, reverse=True):
                stack += [item[key], key]
        elif isinstance(item, list | tuple):
            stack += reversed(item)
        elif isinstance(item, torch.Tensor):
            data = item.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
            crc = zlib.crc32(data, zlib.crc32(f"{item.dtype}{tuple(item.shape)}".encode(), crc))
        else:
            crc = zlib.crc32(repr(item).encode(), crc)
    return crc


def load_first_good_checkpoint(candidates: Sequence[Path]) -> tuple[dict[str, Any], Path, list[str]]:
    """The state of the first checkpoint in ``candidates`` that loads (a run folder lists last.pt first).

    Also returns the path loaded and the problems met on the way (empty when the first was fine).
    """
    problems: list[str] = []
    for path in candidates:
        try:
            return load_checkpoint(path), path, problems
        except CheckpointError as error:
            problems.append(str(error))
    raise CheckpointError("no checkpoint to resume from:\n  " + "\n  ".join(problems))


def checkpoint_metrics_records(state: dict[str, Any], path: Path | None) -> int | None:
    """How many lines metrics.jsonl held when the checkpoint was saved; None for one saved before that was kept."""
    records = state.get("metrics_records")
    if records is None:
        return None
    if not isinstance(records, int) or isinstance(records, bool) or records < 0:
        raise CheckpointError(f"{path}: metrics_records is {reprlib.repr(records)}, not a count of lines")
    return records
