"""Files read and written safely: reads bounded and only of regular files; writes whole or not at all, never
through a symbolic link, one writer per run folder."""

from __future__ import annotations

import errno
import fcntl
import io
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ganforge.errors import GanforgeError, UsageError

# What a plain open() creates, before the umask: the kernel applies the umask to what os.open is given.
NEW_FILE_MODE = 0o666
DISK_FULL_ERRORS = (errno.ENOSPC, errno.EDQUOT)
PID_WAIT_SECONDS = 1.0  # how long a refused process waits for the holder to have written its pid
# A lock_holder() check holds the lock for microseconds: a process that meets it tries again meanwhile.
LOCK_RETRY_SECONDS = 0.25


class LinkRefusedError(UsageError):
    """A symbolic link where ganforge would write or delete: it could lead out of the folder."""


class FolderBusyError(UsageError):
    """A folder another process holds the lock of."""


class WriteFailedError(GanforgeError):
    """A write that failed (a full disk, a folder gone); what was there before is kept."""


class RunDiskFullError(WriteFailedError):
    """A run's write that found the disk full; the run continues from ``run_folder`` once space is freed.

    ``problem`` says what could not be written and why; the message adds what to do.
    """

    def __init__(self, problem: str, run_folder: Path) -> None:
        super().__init__(f"{problem}; free some space, then resume the run in {run_folder}")
        self.problem = problem
        self.run_folder = run_folder


class FileRefusedError(OSError):
    """A file ganforge will not read: a link, not a regular file (a FIFO, a device), or larger than asked."""


def open_regular_file(path: Path, *, follow_links: bool = False) -> int:
    """A read-only descriptor of ``path``, which must be a regular file reached without a symbolic link at its
    last part (unless ``follow_links``: a file the user named); O_NONBLOCK so that a FIFO cannot hang the open."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    try:
        handle = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise FileRefusedError(errno.ELOOP, "is a symbolic link", str(path)) from None
        raise
    mode = os.fstat(handle).st_mode
    if not stat.S_ISREG(mode):
        os.close(handle)
        if stat.S_ISDIR(mode):
            raise FileRefusedError(errno.EISDIR, "is a folder", str(path))
        raise FileRefusedError(errno.EINVAL, "is not a regular file", str(path))
    return handle


def read_bounded(path: Path, limit: int, *, follow_links: bool = False) -> bytes:
    """The whole of a regular file of at most ``limit`` bytes (see :func:`open_regular_file`)."""
    with os.fdopen(open_regular_file(path, follow_links=follow_links), "rb") as file:
        if os.fstat(file.fileno()).st_size > limit:
            raise FileRefusedError(errno.EFBIG, f"is larger than {limit} bytes", str(path))
        data = file.read(limit + 1)
    if len(data) > limit:  # grown since the check
        raise FileRefusedError(errno.EFBIG, f"is larger than {limit} bytes", str(path))
    return data


def refuse_links(root: Path, path: Path) -> Path:
    """``path`` (inside ``root``) reached with no symbolic link on the way from ``root``, the last part included.

    ``root`` itself may be a link: the user named it. Nothing below it may be, so that a write or
    a delete can never land outside the folder.
    """
    try:
        relative = Path(os.path.normpath(path)).relative_to(os.path.normpath(root))
    except ValueError:
        relative = Path("..")
    if ".." in relative.parts:
        raise LinkRefusedError(f"{path} is outside {root}; ganforge writes only inside its run folder")
    current = Path(root)
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            raise LinkRefusedError(
                f"{current} is a symbolic link (to {os.readlink(current)}); ganforge never writes or deletes "
                f"through a link in a run folder, since it could lead out of {root}: remove the link, or start "
                "another run"
            )
    return path


class _RecordingStream:
    """A file's stream that remembers the OSError of a failed write.

    torch's checkpoint writer turns a failed write into a RuntimeError that names only its own
    source file (inline_container.cc), and PIL's image encoder into an OSError without an errno;
    the errno, ENOSPC for a full disk, is found here. It has no file descriptor to offer, so that
    every byte goes through ``write`` (PIL would otherwise write to the descriptor itself).
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._stream.write(data)
        except OSError as error:
            self.error = self.error or error
            raise

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def write_atomically(
    path: Path,
    write: Callable[[IO[bytes]], None],
    *,
    inside: Path | None = None,
    before_replace: Callable[[], None] | None = None,
) -> None:
    """Write to a temporary file beside ``path``, fsync it, rename it over ``path``.

    The file gets the mode a plain open() would give it (0666 less the umask). With ``inside``,
    no part of ``path`` below that folder may be a symbolic link. ``before_replace`` runs just
    before the rename and may refuse it by raising (what is at ``path`` may have changed while the
    file was written); the temporary file is then removed. A failed write raises the
    OSError behind it (ENOSPC for a full disk), whatever the writer turned it into; likewise a
    Ctrl-C during the write stays a KeyboardInterrupt (torch's checkpoint writer, closing its
    archive while the interrupt passes, raises a RuntimeError of its own over it).
    """
    if inside is not None:
        refuse_links(inside, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = _new_temporary_file(path)
    recording = None
    try:
        with os.fdopen(handle, "wb") as stream:
            recording = _RecordingStream(stream)
            write(recording)  # type: ignore[arg-type]
            stream.flush()
            os.fsync(stream.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        interrupt = _interrupt_behind(error)
        if interrupt is not None and interrupt is not error:
            raise interrupt from None
        failed_write = recording.error if recording is not None else None
        if failed_write is not None and failed_write is not error and isinstance(error, Exception):
            raise failed_write from None
        raise


def write_folder_atomically(
    path: Path, fill: Callable[[Path], None], *, before_replace: Callable[[], None] | None = None
) -> None:
    """Fill a hidden folder beside ``path``, then rename it to ``path``, which is missing or an empty folder.

    rename(2) replaces an empty folder in one step, and fails on one that is no longer empty: the
    folder appears whole or not at all. ``before_replace`` runs just before the rename, as for
    :func:`write_atomically`; on any failure the hidden folder is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Made with the user's umask, as the files inside are.
    staging = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    staging.mkdir()
    try:
        fill(staging)
        if before_replace is not None:
            before_replace()
        os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _interrupt_behind(error: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt that ``error`` was raised while handling, if any (or ``error`` itself)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return current
        seen.add(id(current))
        current = current.__context__
    return None


def _new_temporary_file(path: Path) -> tuple[int, Path]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        temporary = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return os.open(temporary, flags, NEW_FILE_MODE), temporary
        except FileExistsError:
            continue


def append_whole(path: Path, data: bytes, *, inside: Path | None = None) -> None:
    """Append ``data`` in one write, or, when that fails, leave the file as it was (never half a line)."""
    if inside is not None:
        refuse_links(inside, path)
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, NEW_FILE_MODE)
    try:
        size = os.fstat(handle).st_size
        try:
            written = 0
            while written < len(data):
                written += os.write(handle, data[written:])
        except OSError:
            os.ftruncate(handle, size)
            raise
    finally:
        os.close(handle)


def remove_inside(root: Path, path: Path) -> None:
    """Delete a file, or a folder and what it holds, inside ``root``; a link on the way is refused."""
    refuse_links(root, path)
    if path.is_dir():
        # On Linux rmtree works through file descriptors: it never follows a link met inside the tree.
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def is_disk_full(error: OSError) -> bool:
    return error.errno in DISK_FULL_ERRORS


def describe_write_failure(path: Path, error: OSError) -> str:
    """Why writing ``path`` failed; for a full disk, which filesystem (its mount point) and what is free there."""
    reason = error.strerror or str(error)
    if not is_disk_full(error):
        return reason
    existing = next((folder for folder in (path.parent, *path.parent.parents) if folder.exists()), Path("."))
    mount = mount_point(existing)
    free = shutil.disk_usage(existing).free
    return f"{reason}: the disk is full (the filesystem mounted at {mount} has {free / 2**20:.1f} MiB free)"


@contextmanager
def reporting_write_failures(path: Path, run_dir: Path) -> Iterator[None]:
    """A failed write (a full disk, above all) as a message saying what, why and where, without a traceback."""
    try:
        yield
    except OSError as error:
        message = f"cannot write {path}: {describe_write_failure(path, error)}"
        if is_disk_full(error):
            raise RunDiskFullError(message, Path(run_dir)) from None
        raise WriteFailedError(message) from None


def mount_point(path: Path) -> Path:
    current = Path(os.path.realpath(path))
    while not os.path.ismount(current):
        current = current.parent
    return current


def is_cwd_or_above(path: Path) -> bool:
    """Whether ``path`` is the current directory or a folder that holds it."""
    cwd = Path(os.path.realpath(Path.cwd()))
    target = Path(os.path.realpath(path))
    return cwd == target or target in cwd.parents


class FolderLock:
    """An OS lock (flock) on a file inside a folder, held while the process lives.

    The OS drops the lock when the process ends however it ends (SIGKILL included), so a lock
    is never left stuck. The file holds the holder's pid, for the message of a refused process.
    The file itself stays: deleting it would let a third process lock a new file while a
    second still waits on the old one.
    """

    def __init__(self, path: Path, handle: int) -> None:
        self.path = path
        self._handle: int | None = handle

    @classmethod
    def acquire(cls, path: Path, folder_description: str) -> FolderLock:
        """Lock ``path`` (created if need be), or raise FolderBusyError naming the holder's pid."""
        try:
            handle = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, NEW_FILE_MODE)
        except OSError as error:
            if error.errno == errno.ELOOP:
                refuse_links(path.parent, path)
            raise UsageError(f"cannot lock {folder_description}: {path}: {error.strerror or error}") from None
        try:
            locked = _try_lock(handle, fcntl.LOCK_EX, LOCK_RETRY_SECONDS)
        except BaseException:
            os.close(handle)
            raise
        if not locked:
            holder = _read_pid(handle, wait=PID_WAIT_SECONDS)
            os.close(handle)
            raise FolderBusyError(busy_message(folder_description, path, holder))
        try:
            os.ftruncate(handle, 0)
            os.pwrite(handle, f"{os.getpid()}\n".encode(), 0)
        except OSError:  # a full disk: the lock holds all the same; only the pid in the message is missing
            pass
        return cls(path, handle)

    @property
    def held(self) -> bool:
        return self._handle is not None

    def release(self) -> None:
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        try:
            fcntl.flock(handle, fcntl.LOCK_UN)
        finally:
            os.close(handle)


def lock_holder(path: Path) -> str | None:
    """Who holds the lock on ``path`` ("pid N"), without taking it or creating anything; None when nobody."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not _try_lock(handle, fcntl.LOCK_SH, 0.0):
            return _read_pid(handle, wait=PID_WAIT_SECONDS)
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None
    finally:
        os.close(handle)


def _try_lock(handle: int, kind: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(handle, kind | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)


def busy_message(folder_description: str, lock_path: Path, holder: str) -> str:
    return (
        f"{folder_description} is in use by another ganforge process ({holder}, which holds {lock_path}); "
        "wait for it to end or stop it, or choose another folder"
    )


def _read_pid(handle: int, wait: float) -> str:
    """The pid a lock's holder wrote; it writes it just after locking, so a moment may pass before it is there."""
    deadline = time.monotonic() + wait
    while True:
        text = os.pread(handle, 64, 0).decode(errors="replace").strip()
        if text.isdigit():
            return f"pid {text}"
        if time.monotonic() >= deadline:
            return "its pid not written"
        time.sleep(0.01)
