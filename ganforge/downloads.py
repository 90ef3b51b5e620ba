"""Fetching a dataset's published files: from the first mirror that serves them whole, checked, written atomically.

A file is streamed into a temporary file of a unique name beside its destination, its checksum is
compared with the published one, and only then is it renamed into place (``files.write_atomically``).
A checksum mismatch, a network error, a timeout, Ctrl-C or a full disk therefore leave nothing under
the file's own name, and the temporary file is removed on every way out. Several processes
downloading the same file at once (the ranks of a ``torchrun`` launch on an empty data root) each
write a temporary file of their own; every rename puts a whole, verified copy in place, so the last
one wins and a reader never sees a partial file.

A dataset's checksums are MD5, as the datasets publish them: an integrity check against truncated
or damaged transfers and wrong files behind a mirror, not a defence against someone who can forge
a file (MD5 collisions can be made), which would take a signature. A file known by its SHA-256
(the Inception weights) is checked against that instead.

Which files are missing, and what a file already on disk means, is the caller's business: this
module only ever adds files that were not there.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import sys
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ganforge.environment import url_setting
from ganforge.files import describe_write_failure, write_atomically
from ganforge.parsing import parse_count

if TYPE_CHECKING:
    from rich.progress import Progress

MIRROR_ENV = "GANFORGE_DOWNLOAD_MIRROR"
# Seconds to connect, and between two reads: a stalled server is given up, a slow one is not.
TIMEOUT_SECONDS = 30.0
CHUNK_BYTES = 2**16
# A transfer this many times the published size is not the published file: stop before it fills the disk.
OVERSIZE_FACTOR = 2
USER_AGENT = "ganforge (dataset download)"


@dataclass(frozen=True)
class RemoteFile:
    """A file a dataset publishes: its name on every mirror (and on disk) and how to recognise it."""

    name: str
    md5: str | None  # of the file as published; None for a file known by its sha256 instead
    published_bytes: int  # also bounds the transfer (OVERSIZE_FACTOR times it)
    # For a .gz: the MD5 and size of its content. A mirror or a distribution that gzipped the same
    # data again (another gzip header, another compression level) serves another file of the same data.
    unpacked_md5: str | None = None
    unpacked_bytes: int | None = None
    sha256: str | None = None  # where given, the check (instead of the MD5)


@dataclass(frozen=True)
class Attempt:
    """One URL tried, and why it did not give the file."""

    url: str
    problem: str


class DownloadError(Exception):
    """A file no mirror gave whole (``attempts`` says why for each URL), or that could not be written here."""

    def __init__(self, summary: str, attempts: Sequence[Attempt] = ()) -> None:
        self.summary = summary
        self.attempts = tuple(attempts)
        tried = "".join(f"\n  {attempt.url}: {attempt.problem}" for attempt in self.attempts)
        super().__init__(f"{summary}{':' if tried else ''}{tried}")


class _MirrorFailed(Exception):
    """This URL did not give the file; the next mirror may."""


def mirrors(official: Sequence[str]) -> tuple[str, ...]:
    """The base URLs to try in turn: ``$GANFORGE_DOWNLOAD_MIRROR`` alone when it is set, else ``official``."""
    configured = url_setting(MIRROR_ENV)
    return (configured,) if configured else tuple(official)


def file_url(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}"


def download(file: RemoteFile, base_urls: Sequence[str], folder: Path) -> Path:
    """``folder/file.name`` downloaded from the first of ``base_urls`` that serves it with its checksum."""
    return _download(file, base_urls, folder, shown_as=folder)


def _download(file: RemoteFile, base_urls: Sequence[str], folder: Path, shown_as: Path) -> Path:
    target = folder / file.name
    attempts: list[Attempt] = []
    for base in base_urls:
        url = file_url(base, file.name)
        try:
            write_atomically(target, functools.partial(_fetch, url, file, shown_as))
            return target
        except _MirrorFailed as failure:
            attempts.append(Attempt(url, str(failure)))
        except OSError as error:  # writing here failed (a full disk, a read-only folder): no mirror helps
            raise DownloadError(f"cannot write {target}: {describe_write_failure(target, error)}") from None
    raise DownloadError(f"no mirror gave {file.name}", attempts)


def download_and_unpack(archive: RemoteFile, base_urls: Sequence[str], folder: Path, top: str) -> Path:
    """``folder/top``, the folder a downloaded tar archive holds, unpacked whole or not at all.

    The archive and what it unpacks to stay in a staging folder of this process until the folder
    is renamed into place, so concurrent processes never read or replace each other's files; the
    archive itself is not kept.
    """
    import tarfile

    if not hasattr(tarfile, "data_filter"):  # Python before 3.11.4
        raise DownloadError(
            f"unpacking {archive.name} safely needs Python 3.11.4 or later (tarfile's data filter); "
            f"download it by hand and unpack it into {folder}"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{top}.", suffix=".download", dir=folder))
    except OSError as error:
        raise DownloadError(f"cannot write into {folder}: {describe_write_failure(folder, error)}") from None
    try:
        downloaded = _download(archive, base_urls, staging, shown_as=folder)
        return _unpack_tar(downloaded, staging / "unpacked", folder / top)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _fetch(url: str, file: RemoteFile, shown_as: Path, out: IO[bytes]) -> None:
    """Stream ``url`` into ``out`` and check it; :class:`_MirrorFailed` when this URL did not give the file."""
    print(f"downloading {file.name} from {url} into {shown_as}", file=sys.stderr, flush=True)
    with _opened(url) as response:
        length = response.headers.get("Content-Length")
        digests = _Digests(file)
        _copy(response, out, digests, parse_count(length.strip()) if length else None)
    verified = digests.verify()
    print(f"  {file.name}: {digests.size:,} bytes, {verified}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _opened(url: str) -> Iterator[Any]:
    import http.client
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
    except urllib.error.HTTPError as error:
        error.close()
        raise _MirrorFailed(f"HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise _MirrorFailed(_reason(error.reason)) from None
    except (OSError, http.client.HTTPException, ValueError) as error:  # a timeout, a reset, a malformed URL
        raise _MirrorFailed(_reason(error)) from None
    with response:
        yield response


def _copy(response: Any, out: IO[bytes], digests: _Digests, announced: int | None) -> None:
    """Stream ``response`` into ``out`` and ``digests``, with a progress bar on a terminal; ``announced``: its length.

    A failed write raises its OSError (a full disk), which no other mirror can help with.
    """
    import http.client

    limit = OVERSIZE_FACTOR * digests.file.published_bytes
    with _progress() as progress:
        task = progress.add_task(digests.file.name, total=announced or digests.file.published_bytes)
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as error:  # a timeout, a reset, a transfer cut short
                raise _MirrorFailed(f"the transfer broke off after {digests.size:,} bytes: {_reason(error)}") from None
            if not chunk:
                if announced is not None and digests.size < announced:
                    raise _MirrorFailed(f"the transfer broke off after {digests.size:,} of {announced:,} bytes")
                return
            if digests.size + len(chunk) > limit:
                raise _MirrorFailed(f"it sent more than {limit:,} bytes, {OVERSIZE_FACTOR}x the published size")
            out.write(chunk)
            digests.update(chunk)
            progress.update(task, advance=len(chunk))


def _progress() -> Progress:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,  # the plain lines around it stay, in a terminal and in a log alike
        disable=not console.is_terminal,
    )


class _Digests:
    """The checksum of a file as it arrives (its SHA-256 where it is known by one, else its MD5) and, for a
    gzipped file, the MD5 of its content, unpacked as it arrives."""

    def __init__(self, file: RemoteFile) -> None:
        self.file = file
        self.size = 0
        self.digest = hashlib.sha256() if file.sha256 is not None else hashlib.md5(usedforsecurity=False)
        self.content = _ContentDigest(file.unpacked_bytes) if file.unpacked_bytes is not None else None

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.digest.update(chunk)
        if self.content is not None:
            self.content.update(chunk)

    def verify(self) -> str:
        """What was verified; :class:`_MirrorFailed` naming expected and got when it is not the published file."""
        file = self.file
        if file.sha256 is not None:
            got_sha256 = self.digest.hexdigest()
            if got_sha256 == file.sha256:
                return "SHA-256 verified"
            raise _MirrorFailed(
                f"checksum mismatch: expected SHA-256 {file.sha256}, got {got_sha256} ({self.size:,} bytes); "
                "the download was discarded"
            )
        got_md5 = self.digest.hexdigest()
        if got_md5 == file.md5:
            return "MD5 verified"
        expected, got = f"expected MD5 {file.md5}", f"got {got_md5} ({self.size:,} bytes)"
        if self.content is not None and file.unpacked_md5 is not None:
            content = self.content.result()
            if content == file.unpacked_md5:
                return "MD5 of the unpacked content verified (the mirror gzipped the same data again)"
            expected += f" (or {file.unpacked_md5} of its unpacked content)"
            got += f" (unpacked: {content})"
        raise _MirrorFailed(f"checksum mismatch: {expected}, {got}; the download was discarded")


class _ContentDigest:
    """The MD5 of a gzip stream's content, fed as it arrives; it stops unpacking once past ``expected_bytes``."""

    def __init__(self, expected_bytes: int) -> None:
        self.expected_bytes = expected_bytes
        self.size = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header and trailer
        self.problem: str | None = None

    def update(self, chunk: bytes) -> None:
        pending = chunk
        while self.problem is None:
            try:
                unpacked = self.inflate.decompress(pending, CHUNK_BYTES)
            except zlib.error as error:
                self.problem = f"not a readable gzip file: {error}"
                return
            self.size += len(unpacked)
            if self.size > self.expected_bytes:
                self.problem = f"more than {self.expected_bytes:,} bytes"
                return
            self.md5.update(unpacked)
            pending = self.inflate.unconsumed_tail
            if not unpacked and not pending:
                return

    def result(self) -> str:
        """The content's MD5, or why there is none."""
        if self.problem is not None:
            return self.problem
        if not self.inflate.eof:
            return "a truncated gzip file"
        if self.size != self.expected_bytes:
            return f"{self.size:,} bytes, expected {self.expected_bytes:,}"
        return self.md5.hexdigest()


def _unpack_tar(archive: Path, staging: Path, target: Path) -> Path:
    """The folder ``target.name`` of ``archive`` unpacked into ``staging``, then renamed to ``target``."""
    import tarfile

    try:
        with tarfile.open(archive) as tar:
            # The data filter refuses absolute paths, "..", links leading out, devices; it drops odd modes.
            tar.extractall(staging, filter="data")
        if not (staging / target.name).is_dir():
            raise DownloadError(f"{archive.name} holds no folder {target.name}")
        try:
            os.rename(staging / target.name, target)
        except OSError:
            if not target.is_dir():
                raise
            # Another process of the same launch unpacked it first: its copy is the same verified data.
        return target
    except (tarfile.TarError, OSError) as error:
        raise DownloadError(f"cannot unpack {archive.name} into {target.parent}: {_reason(error)}") from None


def _reason(error: BaseException | str) -> str:
    if isinstance(error, str):
        return error
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
