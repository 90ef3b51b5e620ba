"""Where a dataset's images come from: a folder (with or without class subfolders), a .zip or a .tar.

A source lists its files once, sorted by name, and reads any of them back as bytes, never more than
``MAX_FILE_BYTES``. Hidden files and folders (a leading dot, macOS's ``__MACOSX``) are metadata,
not data, and are not listed. Nothing here writes: a source is never modified. A folder's and a
zip's files are read by name in the worker processes; a tar (compressed or not) can only be read
front to back, so its bytes are read in the main process, in the archive's order.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ganforge.errors import DataError, DatasetNotFoundError

MAX_FILE_BYTES = 512 * 2**20  # far above any image a GAN trains on; a bound on what one read takes
METADATA_FOLDERS = ("__MACOSX",)
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


@dataclass(frozen=True)
class SourceFile:
    name: str  # the path inside the source, with forward slashes
    size: int
    modified: int = 0  # nanoseconds since the epoch, for a folder's files (an archive's fingerprint is its own)

    @property
    def parts(self) -> tuple[str, ...]:
        return PurePosixPath(self.name).parts


class FileTooLargeError(OSError):
    pass


class ImageSource:
    """A folder or archive of image files, listed; :meth:`reader` reads one of them back by name."""

    kind = "folder"

    def __init__(self, path: Path) -> None:
        self.path = path
        # An archive may hold one name twice: the first is the one listed and read.
        unique = {file.name: file for file in reversed(list(self._list()))}
        self.files: list[SourceFile] = sorted(unique.values(), key=lambda file: file.name)

    def _list(self) -> Iterator[SourceFile]:
        for folder, subfolders, names in os.walk(self.path):
            subfolders[:] = sorted(name for name in subfolders if not _is_metadata(name))
            for name in names:
                if _is_metadata(name):
                    continue
                file = Path(folder) / name
                try:
                    info = file.stat()
                except OSError:
                    continue  # a dangling link: nothing to read
                if stat.S_ISREG(info.st_mode):
                    yield SourceFile(file.relative_to(self.path).as_posix(), info.st_size, info.st_mtime_ns)

    def fingerprint(self) -> str:
        """Changes when a file is added, removed, resized or rewritten (its modification time)."""
        digest = hashlib.sha256(f"{self.kind}\0{self.path.resolve()}\n".encode())
        for file in self.files:
            digest.update(f"{file.name}\0{file.size}\0{file.modified}\n".encode())
        return digest.hexdigest()

    def reader(self) -> SourceReader:
        return FolderReader(self.path)

    def bytes_in_order(self, names: set[str]) -> Iterator[tuple[str, bytes | OSError]] | None:
        """For a source read front to back: each wanted file's bytes in stored order; None where files
        are read by name."""
        return None


class ZipSource(ImageSource):
    kind = "zip"

    def _list(self) -> Iterator[SourceFile]:
        with zipfile.ZipFile(self.path) as archive:
            for info in archive.infolist():
                if not info.is_dir() and not any(_is_metadata(part) for part in PurePosixPath(info.filename).parts):
                    yield SourceFile(info.filename, info.file_size)

    def fingerprint(self) -> str:
        return _archive_fingerprint(self)

    def reader(self) -> SourceReader:
        return ZipReader(self.path)


class TarSource(ImageSource):
    kind = "tar"

    def _list(self) -> Iterator[SourceFile]:
        with tarfile.open(self.path) as archive:
            for member in archive:
                name = _tar_name(member)
                if member.isfile() and name is not None:
                    yield SourceFile(name, member.size)

    def fingerprint(self) -> str:
        return _archive_fingerprint(self)

    def reader(self) -> SourceReader:
        return SourceReader()

    def bytes_in_order(self, names: set[str]) -> Iterator[tuple[str, bytes | OSError]]:
        wanted = set(names)
        with tarfile.open(self.path) as archive:
            for member in archive:
                name = _tar_name(member)
                if name in wanted and member.isfile():
                    wanted.discard(name)
                    if member.size > MAX_FILE_BYTES:
                        yield name, FileTooLargeError(f"larger than {MAX_FILE_BYTES} bytes")
                        continue
                    stream = archive.extractfile(member)
                    yield name, stream.read() if stream is not None else OSError("not a regular file")


def open_source(path: Path) -> ImageSource:
    """The source at ``path``: a folder, a .zip or a .tar (optionally compressed)."""
    path = path.expanduser()
    if not path.exists():
        raise DatasetNotFoundError(f"{path.absolute()} does not exist: give a folder of images, a .zip or a .tar")
    try:
        if path.is_dir():
            return ImageSource(path)
        if zipfile.is_zipfile(path):
            return ZipSource(path)
        if path.is_file() and tarfile.is_tarfile(path):
            return TarSource(path)
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as error:
        raise DataError(f"cannot read {path.absolute()}: {error}") from None
    accepted = ", ".join(ARCHIVE_SUFFIXES)
    raise DataError(f"{path.absolute()} is neither a folder nor an archive ganforge reads ({accepted})")


class SourceReader:
    """Reads a source's file by name in any process (a reader pickles; an archive opens once per process)."""

    def read(self, name: str) -> bytes:
        raise OSError("this source is read front to back, not by name")


class FolderReader(SourceReader):
    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, name: str) -> bytes:
        # O_NONBLOCK: a FIFO put where a file was listed must not hang the worker.
        handle = os.open(self.root / name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(handle, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise OSError("not a regular file")
            if info.st_size > MAX_FILE_BYTES:
                raise FileTooLargeError(f"larger than {MAX_FILE_BYTES} bytes")
            return file.read(MAX_FILE_BYTES + 1)


class ZipReader(SourceReader):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._archive: zipfile.ZipFile | None = None

    def __getstate__(self) -> dict[str, object]:
        return {"path": self.path, "_archive": None}

    def read(self, name: str) -> bytes:
        if self._archive is None:
            self._archive = zipfile.ZipFile(self.path)
        try:
            info = self._archive.getinfo(name)
            if info.file_size > MAX_FILE_BYTES:
                raise FileTooLargeError(f"larger than {MAX_FILE_BYTES} bytes")
            # zipfile checks the CRC and stops at the declared size: a member cannot inflate beyond it.
            return self._archive.read(info)
        except (zipfile.BadZipFile, KeyError, RuntimeError, NotImplementedError) as error:
            raise OSError(str(error)) from None


def _is_metadata(name: str) -> bool:
    return name.startswith(".") or name in METADATA_FOLDERS


def _tar_name(member: tarfile.TarInfo) -> str | None:
    """A member's path inside the archive, or None for metadata and paths that climb out of it."""
    parts = [part for part in PurePosixPath(member.name).parts if part not in ("", ".", "/")]
    if not parts or ".." in parts or any(_is_metadata(part) for part in parts):
        return None
    return "/".join(parts)


def _archive_fingerprint(source: ImageSource) -> str:
    info = source.path.stat()
    digest = hashlib.sha256(f"{source.kind}\0{source.path.resolve()}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    for file in source.files:
        digest.update(f"{file.name}\0{file.size}\n".encode())
    return digest.hexdigest()
