"""How ganforge knows what it made: a run folder by its marker, and each file it writes where the user says
by a mark inside it, written and recognised here.

A command replaces an existing ``--out`` file only when it carries ganforge's mark for that kind of
output: a user's PNG, HTML page or tensor file is never replaced. The marks are found in a bounded
read of the file's first and last bytes (:data:`MARK_WINDOW` each), so a huge file costs nothing.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ganforge.version import __version__

# A run folder: the marker a run writes when it makes the folder, and the file it holds the lock on.
RUN_MARKER_NAME = ".ganforge-run"
RUN_LOCK_NAME = ".ganforge-lock"
MARK_WINDOW = 1 << 16  # bytes read from each end of a file to find its mark

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_SOFTWARE_KEY = "Software"
PNG_SOFTWARE = f"ganforge {__version__}"
# The report's page names ganforge as its generator in its <head>, within its first bytes.
HTML_GENERATOR_START = "<meta name='generator' content='ganforge"
HTML_GENERATOR = f"{HTML_GENERATOR_START} {__version__}'>"
# A tensor file of `ganforge sample` is torch's zip archive with this comment (torch.load ignores it).
TENSOR_FILE_COMMENT = b"written by ganforge sample"
ZIP_END_SIGNATURE = b"PK\x05\x06"
ZIP_END_BYTES = 22  # the end-of-central-directory record without its comment


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a run: its marker or lock, or (an older run folder) a config beside its records."""
    if any(os.path.lexists(folder / name) for name in (RUN_MARKER_NAME, RUN_LOCK_NAME)):
        return True
    return os.path.lexists(folder / "config.yaml") and os.path.lexists(folder / "metrics.jsonl")


@dataclass(frozen=True)
class OutputMark:
    """ganforge's mark on one kind of output file; ``found`` reads it from the file's first and last bytes."""

    what: str  # the kind of file, for messages: "PNG grid"
    found: Callable[[bytes, bytes], bool]  # (head, tail) -> whether ganforge wrote the file


def _png_mark_found(head: bytes, tail: bytes) -> bool:
    # PIL writes text chunks before the image data: the mark is among the first bytes.
    text_chunk = b"tEXt" + PNG_SOFTWARE_KEY.encode() + b"\x00ganforge"
    return head.startswith(PNG_SIGNATURE) and text_chunk in head


def _html_mark_found(head: bytes, tail: bytes) -> bool:
    return HTML_GENERATOR_START.encode() in head


def _tensor_file_mark_found(head: bytes, tail: bytes) -> bool:
    end = tail[-(ZIP_END_BYTES + len(TENSOR_FILE_COMMENT)) :]
    if len(end) < ZIP_END_BYTES or not end.startswith(ZIP_END_SIGNATURE):
        return False
    (comment_length,) = struct.unpack("<H", end[ZIP_END_BYTES - 2 : ZIP_END_BYTES])
    return comment_length == len(TENSOR_FILE_COMMENT) and end.endswith(TENSOR_FILE_COMMENT)


GRID = OutputMark("PNG grid", _png_mark_found)
REPORT = OutputMark("HTML report", _html_mark_found)
TENSOR_FILE = OutputMark("tensor file", _tensor_file_mark_found)


def png_mark():
    """The PNG text chunk that marks a grid ganforge wrote, for PIL's ``save(pnginfo=...)``."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text(PNG_SOFTWARE_KEY, PNG_SOFTWARE)
    return info


def mark_tensor_file(archive: io.BytesIO) -> None:
    """Mark torch's zip archive (as ``torch.save`` wrote it into ``archive``) with ganforge's comment."""
    with zipfile.ZipFile(archive, "a") as written:
        written.comment = TENSOR_FILE_COMMENT
