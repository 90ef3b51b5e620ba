"""Files a command writes where the user says (``report``, ``sample`` and ``export --out``): the one safe writer.

An output is checked before any work and again just before it is renamed into place (what is
there may have changed meanwhile). It never goes through a symbolic link, nor onto a folder, a
device, a FIFO or a socket (found with lstat and a non-blocking open, so a FIFO cannot hang the
command); never over a file ganforge did not make (an existing file is replaced only when it
carries ganforge's mark for that kind of output, see marks.py), nor a file the command reads or
any checkpoint, whatever the path's spelling (a link, ``..``, a hard link); never inside a run
folder or an export. It is written to a temporary file (or folder) beside it and renamed over
it, so a failure leaves the old file as it was.
"""

from __future__ import annotations

import os
import stat
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ganforge.checkpoints.format import CHECKPOINT_FORMAT
from ganforge.errors import UsageError
from ganforge.exports import is_export
from ganforge.files import (
    WriteFailedError,
    describe_write_failure,
    open_regular_file,
    write_atomically,
    write_folder_atomically,
)
from ganforge.marks import MARK_WINDOW, OutputMark, is_run_folder

# The checkpoint's format marker is the first entry of its pickled dict: it lies near the start of data.pkl.
CHECKPOINT_MARKER_WINDOW = 1 << 20
NOT_FILES = {
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
}


def write_output_file(
    path: Path, option: str, mark: OutputMark, write: Callable[[IO[bytes]], None], inputs: Sequence[Path] = ()
) -> None:
    """Write ``path`` whole, checked as :func:`check_output_file` says both before and just before the rename."""
    with reported_write_failure(path, option):
        write_atomically(path, write, before_replace=lambda: check_output_file(path, option, mark, inputs))


def write_output_folder(path: Path, option: str, fill: Callable[[Path], None]) -> None:
    """Make the folder ``path`` whole from what ``fill`` writes into a hidden one, checked again before the rename."""
    with reported_write_failure(path, option):
        write_folder_atomically(path, fill, before_replace=lambda: check_output_folder(path, option))


def check_output_file(path: Path, option: str, mark: OutputMark, inputs: Sequence[Path] = ()) -> None:
    """Refuse an output that is not a regular file ganforge made of ``mark``'s kind, or is an input or a checkpoint."""
    shown = f"{option} {path}"
    target = landing_place(path)
    for source in inputs:
        if Path(os.path.realpath(path)) == Path(os.path.realpath(source)) or (
            os.path.exists(path) and source.exists() and os.path.samefile(path, source)  # a hard link
        ):
            raise UsageError(f"{shown} is {source}, the file this command reads; write to another file")
    kind = what_is_at(target, shown)
    if kind == "a folder":
        raise UsageError(f"{shown} is a folder; name a file, such as {path / ('output' + path.suffix)}")
    if kind is not None and kind != "a file":
        raise UsageError(f"{shown} is {kind}, not a regular file; ganforge never writes to one: name a file")
    if kind == "a file" and is_checkpoint(target):
        raise UsageError(f"{shown} is a ganforge checkpoint; it is never overwritten: write to another file")
    check_place(target, shown)
    if kind == "a file" and not carries_mark(target, mark):
        raise UsageError(
            f"{shown} is a file ganforge did not make (not a {mark.what} written by ganforge), and ganforge never "
            "replaces one: choose another path, or remove the file yourself"
        )


def check_output_folder(path: Path, option: str) -> None:
    """Refuse a folder to write that holds anything already, is not a plain folder, or cannot be made."""
    shown = f"{option} {path}"
    target = landing_place(path)
    kind = what_is_at(target, shown)
    check_place(target, shown)
    if kind is not None and kind != "a folder":
        raise UsageError(f"{shown} is {kind}; name a new folder")
    if kind == "a folder" and any(target.iterdir()):
        raise UsageError(f"{shown} is a folder that is not empty; name a new (or empty) folder")


def landing_place(path: Path) -> Path:
    """Where a write to ``path`` lands once missing folders are made: its folder resolved, its own name kept,
    so that a symbolic link as its last part is seen as a link (`new/../x` is `x`: Linux resolves `..` after
    `new`)."""
    if path.name in ("", ".", ".."):
        return Path(os.path.realpath(path))
    return Path(os.path.realpath(path.parent)) / path.name


def what_is_at(target: Path, shown: str) -> str | None:
    """What ``target`` is, from lstat (nothing is opened): None when nothing is there; a link is refused."""
    try:
        status = os.lstat(target)
    except (FileNotFoundError, NotADirectoryError):  # nothing there, or a file on the way (check_place names it)
        return None
    except OSError as error:
        raise UsageError(f"{shown}: {target} cannot be examined: {error.strerror or error}") from None
    if stat.S_ISLNK(status.st_mode):
        raise UsageError(
            f"{shown} is a symbolic link (to {os.readlink(target)}); ganforge never writes through a link: "
            "name the file itself, or another path"
        )
    if stat.S_ISDIR(status.st_mode):
        return "a folder"
    if stat.S_ISREG(status.st_mode):
        return "a file"
    return NOT_FILES.get(stat.S_IFMT(status.st_mode), "not a regular file")


def check_place(target: Path, shown: str) -> None:
    """Where ``target`` lands: outside every run folder and export, in a folder that can be written."""
    if target.parent.name == "checkpoints" and (target.parent.parent / "config.yaml").is_file():
        raise UsageError(f"{shown} is in the checkpoints folder of run {target.parent.parent}; write elsewhere")
    for folder in target.parents:
        if is_run_folder(folder):
            raise UsageError(
                f"{shown} is inside run folder {folder}, whose files only `ganforge run` writes (its plot, samples, "
                "checkpoints, lock and marker among them); write elsewhere"
            )
        if is_export(folder):
            raise UsageError(f"{shown} is in {folder}, a ganforge export, which is kept as written; write elsewhere")
    existing = next(folder for folder in target.parents if folder.exists())
    if not existing.is_dir():
        raise UsageError(f"{shown}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{shown}: {existing} is not writable")


def carries_mark(path: Path, mark: OutputMark) -> bool:
    """Whether the regular file ``path`` carries ``mark``, from its first and last bytes (a bounded read)."""
    try:
        handle = open_regular_file(path)
    except OSError:
        return False
    try:
        size = os.fstat(handle).st_size
        head = os.pread(handle, MARK_WINDOW, 0)
        tail = os.pread(handle, MARK_WINDOW, max(0, size - MARK_WINDOW))
    except OSError:
        return False
    finally:
        os.close(handle)
    return mark.found(head, tail)


def is_checkpoint(path: Path) -> bool:
    """Whether ``path`` is a ganforge checkpoint, read from its archive without unpickling anything.

    Opened as a regular file only, without following a link, and never blocking (a FIFO cannot hang it).
    """
    try:
        with os.fdopen(open_regular_file(path), "rb") as file, zipfile.ZipFile(file) as archive:
            pickled = next((name for name in archive.namelist() if name.endswith("data.pkl")), None)
            if pickled is None:
                return False
            with archive.open(pickled) as stream:
                return CHECKPOINT_FORMAT.encode() in stream.read(CHECKPOINT_MARKER_WINDOW)
    except (OSError, zipfile.BadZipFile, RuntimeError, ValueError):
        return False


@contextmanager
def reported_write_failure(path: Path, option: str) -> Iterator[None]:
    """Around an atomic write of ``path``: a failure names the path and why, and says the old file is kept."""
    try:
        yield
    except OSError as error:
        kept = "; the existing file is unchanged" if os.path.lexists(path) else ""
        raise WriteFailedError(f"cannot write {option} {path}: {describe_write_failure(path, error)}{kept}") from None
