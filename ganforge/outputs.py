"""Files a command writes where the user says (``sample --out``): checked before any work, written whole.

An output never replaces a file the command reads, nor any ganforge checkpoint or file of an export,
whatever the path's spelling (a link, ``..``, a hard link): the check compares the files themselves.
It is written to a temporary file beside it and renamed over it, so a failure leaves the old file
as it was.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ganforge.checkpoints.format import CHECKPOINT_FORMAT
from ganforge.errors import UsageError
from ganforge.exports import is_export
from ganforge.files import WriteFailedError, describe_write_failure

# The checkpoint's format marker is the first entry of its pickled dict: it lies near the start of data.pkl.
MARKER_WINDOW = 1 << 20


def check_output_file(path: Path, option: str, inputs: Sequence[Path] = ()) -> None:
    """Refuse, before any work, an output that would destroy an input or a checkpoint, or cannot be written."""
    shown = f"{option} {path}"
    # Where the write lands once missing folders are made: `new/../x` is `x` (Linux resolves `..` after `new`).
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise UsageError(f"{shown} is a folder; name a file, such as {path / ('output' + path.suffix)}")
    for source in inputs:
        if target == Path(os.path.realpath(source)) or (
            target.exists() and source.exists() and os.path.samefile(target, source)  # a hard link
        ):
            raise UsageError(f"{shown} is {source}, the file this command reads; write to another file")
    if target.exists() and is_checkpoint(target):
        raise UsageError(f"{shown} is a ganforge checkpoint; it is never overwritten: write to another file")
    check_place(target, shown)


def check_output_folder(path: Path, option: str) -> None:
    """Refuse, before any work, a folder to write that holds anything already, or cannot be made."""
    shown = f"{option} {path}"
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_dir():
        raise UsageError(f"{shown} is a file; name a new folder")
    if target.is_dir() and any(target.iterdir()):
        raise UsageError(f"{shown} is a folder that is not empty; name a new (or empty) folder")
    check_place(target, shown)


def check_place(target: Path, shown: str) -> None:
    """Where ``target`` (a resolved path) lands: outside a run's checkpoints and an export, and writable."""
    if target.parent.name == "checkpoints" and (target.parent.parent / "config.yaml").is_file():
        raise UsageError(f"{shown} is in the checkpoints folder of run {target.parent.parent}; write elsewhere")
    if is_export(target.parent):
        raise UsageError(f"{shown} is in {target.parent}, a ganforge export, which is kept as written; write elsewhere")
    existing = next(folder for folder in target.parents if folder.exists())
    if not existing.is_dir():
        raise UsageError(f"{shown}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{shown}: {existing} is not writable")


def is_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a ganforge checkpoint, read from its archive without unpickling anything."""
    try:
        with zipfile.ZipFile(path) as archive:
            pickled = next((name for name in archive.namelist() if name.endswith("data.pkl")), None)
            if pickled is None:
                return False
            with archive.open(pickled) as stream:
                return CHECKPOINT_FORMAT.encode() in stream.read(MARKER_WINDOW)
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError):
        return False


@contextmanager
def reported_write_failure(path: Path, option: str) -> Iterator[None]:
    """Around an atomic write of ``path``: a failure names the path and why, and says the old file is kept."""
    try:
        yield
    except OSError as error:
        kept = "; the existing file is unchanged" if path.exists() else ""
        raise WriteFailedError(f"cannot write {option} {path}: {describe_write_failure(path, error)}{kept}") from None
