"""A source's images decoded once, on every core, into a prepared dataset; or only examined, for the doctor.

Worker processes decode chunks of files and write each image straight into its row of the
memory-mapped ``images.u8``, so pixels never travel between processes. Everything is written into
a hidden folder beside the output, marked as ganforge's; the folder takes the output's name only
once the manifest is in it. An interrupted preparation leaves that hidden folder behind (or not,
where it could clean up); the next preparation of the same output removes it and starts clean.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path, PurePosixPath

import numpy as np

from ganforge.errors import DataError, UsageError
from ganforge.files import remove_inside, write_atomically
from ganforge.guards.startup import interrupts_deferred
from ganforge.imagesets.decode import DecodeOptions, decode_image
from ganforge.imagesets.doctor import DoctorReport, DoctorTally
from ganforge.imagesets.prepared import (
    IMAGES_FILE,
    LABELS_FILE,
    MANIFEST_FILE,
    Manifest,
    SourceRecord,
    read_manifest,
)
from ganforge.imagesets.sources import ImageSource, SourceReader, open_source
from ganforge.version import __version__

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "bmp", "webp", "gif", "tif", "tiff")
CHUNK = 64  # files per task: small enough to balance the workers, large enough to amortise the hand-over
PARTIAL_MARK = ".ganforge-partial"  # in the hidden folder of a preparation under way: ganforge made it
Progress = Callable[[int, int], None]  # (files done, files in all)


@dataclass(frozen=True)
class Plan:
    """The files of a source that will be decoded, each with its row and label; the rest are not images."""

    source: ImageSource
    names: list[str]
    labels: list[int]
    class_names: tuple[str, ...] | None
    not_images: list[str]
    deeply_nested: list[str]


@dataclass(frozen=True)
class FileResult:
    row: int
    findings: tuple[str, ...]
    digest: str | None  # of the file's bytes, for the duplicates; None where it could not be read
    usable: bool


def plan_files(source: ImageSource, extensions: tuple[str, ...], labels_from_subfolders: bool) -> Plan:
    """Which files to decode (by extension) and their labels: the first folder names the class where every
    image sits in one."""
    wanted = {f".{extension.lower().lstrip('.')}" for extension in extensions}
    images = [file for file in source.files if PurePosixPath(file.name).suffix.lower() in wanted]
    chosen = {file.name for file in images}
    not_images = [file.name for file in source.files if file.name not in chosen]
    names = [file.name for file in images]
    classes_found = labels_from_subfolders and bool(images) and all(len(file.parts) >= 2 for file in images)
    if not classes_found:
        return Plan(source, names, [0] * len(names), None, not_images, [])
    class_names = tuple(sorted({file.parts[0] for file in images}))
    index_of = {name: index for index, name in enumerate(class_names)}
    labels = [index_of[file.parts[0]] for file in images]
    deeply_nested = [file.name for file in images if len(file.parts) > 2]
    return Plan(source, names, labels, class_names, not_images, deeply_nested)


def prepare_dataset(
    source_path: Path,
    out: Path,
    options: DecodeOptions,
    *,
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
    labels_from_subfolders: bool = True,
    workers: int | None = None,
    progress: Progress | None = None,
    replace_stale: bool = False,
) -> Manifest:
    """Prepare ``source_path`` into ``out``; a dataset already prepared there from the same files and options
    is kept as it is and its manifest returned. One prepared from other files or options is refused, or with
    ``replace_stale`` (for folders only ganforge writes to, such as its cache) replaced."""
    started = time.perf_counter()
    source = open_source(source_path)
    out = out.expanduser()
    _refuse_out_inside(source, out)
    record = SourceRecord(path=str(source.path.resolve()), kind=source.kind, fingerprint=source.fingerprint())
    out.parent.mkdir(parents=True, exist_ok=True)
    with _one_preparer(out):
        existing = _prepared_already(out, record, options, extensions, replace_stale)
        if existing is not None:
            return existing
        # Planned only now: a second run, which finds its dataset prepared, needs no plan.
        plan = plan_files(source, extensions, labels_from_subfolders)
        _remove_unfinished(out)
        partial = out.parent / f".{out.name}.partial-{secrets.token_hex(4)}"
        partial.mkdir()
        try:
            (partial / PARTIAL_MARK).touch(exist_ok=False)
            manifest = _prepare_into(partial, plan, record, options, extensions, workers, progress, started)
            _move_into_place(partial, out)
        except BaseException:
            remove_inside(out.parent, partial)
            raise
    return manifest


@contextmanager
def _one_preparer(out: Path) -> Iterator[None]:
    """One preparation at a time in ``out``'s folder (the processes of a distributed run all ask for the same
    dataset): the others wait, then find it prepared. The lock is the folder's own, so no lock file is left."""
    handle = os.open(out.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def examine_source(
    source_path: Path,
    options: DecodeOptions,
    *,
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
    labels_from_subfolders: bool = True,
    workers: int | None = None,
    progress: Progress | None = None,
) -> DoctorReport:
    """The doctor's report on a source, with every image decoded as preparing it would, and nothing written."""
    plan = plan_files(open_source(source_path), extensions, labels_from_subfolders)
    tally, _ = _decode_all(plan, options, None, workers, progress)
    return tally.report()


def _prepare_into(
    folder: Path,
    plan: Plan,
    record: SourceRecord,
    options: DecodeOptions,
    extensions: tuple[str, ...],
    workers: int | None,
    progress: Progress | None,
    started: float,
) -> Manifest:
    if not plan.names:
        wanted = ", ".join(f".{extension}" for extension in extensions)
        raise DataError(f"no images found in {plan.source.path.absolute()} (looked for files ending in {wanted})")
    images_path = folder / IMAGES_FILE
    row_bytes = options.channels * options.size * options.size
    with open(images_path, "xb") as file:
        file.truncate(max(1, len(plan.names)) * row_bytes)
    tally, usable_rows = _decode_all(plan, options, images_path, workers, progress)
    if not usable_rows:
        report = tally.report()
        raise DataError(f"no usable image in {plan.source.path.absolute()}: " + "; ".join(report.lines()))
    _keep_rows(images_path, usable_rows, row_bytes)
    labels = np.asarray([plan.labels[row] for row in usable_rows], dtype="<i8")
    write_atomically(folder / LABELS_FILE, lambda stream: stream.write(labels.tobytes()), inside=folder)
    report = tally.report()
    manifest = Manifest(
        count=len(usable_rows),
        channels=options.channels,
        size=options.size,
        resize=options.resize,
        background=options.background,
        extensions=extensions,
        class_names=plan.class_names,
        source=record,
        doctor=report,
        seconds=round(time.perf_counter() - started, 3),
        ganforge_version=__version__,
    )
    write_atomically(
        folder / MANIFEST_FILE, lambda stream: stream.write(manifest.model_dump_json(indent=1).encode()), inside=folder
    )
    return manifest


def _decode_all(
    plan: Plan, options: DecodeOptions, images_path: Path | None, workers: int | None, progress: Progress | None
) -> tuple[DoctorTally, list[int]]:
    """Every planned file decoded (into its row of ``images_path`` where given); the doctor's tally and the
    usable rows in order."""
    tally = DoctorTally()
    for name in plan.not_images:
        tally.file_seen(name, ["not_image"], None)
    for name in plan.deeply_nested:
        tally.add("deep_nesting", name)
    usable = np.zeros(len(plan.names), dtype=bool)
    done = 0
    for results in _decoded_chunks(plan, options, images_path, workers):
        for result in results:
            name = plan.names[result.row]
            tally.file_seen(name, result.findings, result.digest)
            usable[result.row] = result.usable
        done += len(results)
        if progress is not None:
            progress(done, len(plan.names))
    if plan.class_names is not None:
        per_class = np.bincount(np.asarray(plan.labels, dtype=np.int64)[usable], minlength=len(plan.class_names))
        tally.classes_counted(plan.class_names, per_class.tolist())
    return tally, np.flatnonzero(usable).tolist()


def _decoded_chunks(
    plan: Plan, options: DecodeOptions, images_path: Path | None, workers: int | None
) -> Iterator[list[FileResult]]:
    tasks = _tasks(plan)
    count = workers or _usable_cores()
    setup = (plan.source.reader(), options, images_path, len(plan.names))
    if count <= 1 or len(plan.names) <= CHUNK:
        _start_worker(*setup)
        for task in tasks:
            yield _decode_chunk(task)
        return
    # fork where the system has it: a worker starts in milliseconds, without importing ganforge again.
    context = get_context("fork" if "fork" in get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(count, mp_context=context, initializer=_start_pool_worker, initargs=setup) as pool:
        pending: set[Future[list[FileResult]]] = set()
        try:
            for task in tasks:
                if len(pending) >= 2 * count:  # a tar's bytes are read ahead only this far
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    yield from (future.result() for future in finished)
                with _workers_may_fork():
                    pending.add(pool.submit(_decode_chunk, task))
            for future in list(pending):
                yield future.result()
                pending.discard(future)
        finally:
            for future in pending:
                future.cancel()


Task = list[tuple[int, str, "bytes | OSError | None"]]


def _tasks(plan: Plan) -> Iterator[Task]:
    """Chunks of (row, name, bytes) in the order the source is best read: bytes only where it is read front to
    back."""
    row_of = {name: row for row, name in enumerate(plan.names)}
    in_order = plan.source.bytes_in_order(set(plan.names))
    items: Iterator[tuple[int, str, bytes | OSError | None]] = (
        ((row, name, None) for row, name in enumerate(plan.names))
        if in_order is None
        else ((row_of[name], name, data) for name, data in in_order)
    )
    chunk: Task = []
    for item in items:
        chunk.append(item)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


_worker: dict[str, object] = {}


def _start_worker(reader: SourceReader, options: DecodeOptions, images_path: Path | None, count: int) -> None:
    _worker["reader"] = reader
    _worker["options"] = options
    _worker["images"] = (
        np.memmap(images_path, dtype=np.uint8, mode="r+", shape=(count, options.channels, options.size, options.size))
        if images_path is not None
        else None
    )


@contextmanager
def _workers_may_fork() -> Iterator[None]:
    """A Ctrl-C held back while the pool may start a worker (it does so inside ``submit``): raised in the middle of
    a fork, it lands in the fork's own callbacks, in the new worker or here, which print a traceback and drop it.
    The worker starts with SIGINT blocked and ignores it before taking signals again; here, it stops the
    preparation right after."""
    with interrupts_deferred():
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _start_pool_worker(*setup: object) -> None:
    # Ctrl-C reaches every process of the terminal's group: the main process alone answers it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked by _workers_may_fork: now it is ignored
    _start_worker(*setup)  # type: ignore[arg-type]


def _decode_chunk(task: Task) -> list[FileResult]:
    reader: SourceReader = _worker["reader"]  # type: ignore[assignment]
    options: DecodeOptions = _worker["options"]  # type: ignore[assignment]
    images: np.memmap | None = _worker["images"]  # type: ignore[assignment]
    results = []
    for row, name, data in task:
        try:
            content = reader.read(name) if data is None else data
            if isinstance(content, OSError):
                raise content
        except OSError:
            results.append(FileResult(row, ("unreadable",), None, False))
            continue
        decoded = decode_image(content, options)
        if decoded.pixels is not None and images is not None:
            images[row] = decoded.pixels
        digest = hashlib.blake2b(content, digest_size=16).hexdigest()
        results.append(FileResult(row, tuple(decoded.findings), digest, decoded.pixels is not None))
    if images is not None:
        images.flush()
    return results


def _keep_rows(images_path: Path, rows: list[int], row_bytes: int) -> None:
    """Move the usable rows down over the unusable ones, in place, and cut the file to their length."""
    count = os.path.getsize(images_path) // row_bytes
    if len(rows) != count:
        mapped = np.memmap(images_path, dtype=np.uint8, mode="r+", shape=(count, row_bytes))
        for target, row in enumerate(rows):
            if target != row:
                mapped[target] = mapped[row]
        mapped.flush()
        del mapped
    os.truncate(images_path, len(rows) * row_bytes)


def _prepared_already(
    out: Path, record: SourceRecord, options: DecodeOptions, extensions: tuple[str, ...], replace_stale: bool
) -> Manifest | None:
    """The manifest of a dataset prepared in ``out`` from these files with these options; None where ``out``
    does not exist or is an empty folder (or was stale and is now removed). Anything else there is refused:
    ganforge writes only its own files."""
    if not out.exists() and not out.is_symlink():
        return None
    if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        return None
    if replace_stale and out.is_dir() and not out.is_symlink():
        manifest = _readable_manifest(out)
        if manifest is not None and _made_from(manifest, record, options, extensions):
            return manifest
        remove_inside(out.parent, out)
        return None
    if out.is_symlink() or not out.is_dir() or not (out / MANIFEST_FILE).exists():
        raise UsageError(f"{out.absolute()} already exists and is not a prepared dataset: choose another output folder")
    manifest = read_manifest(out)
    if not _made_from(manifest, record, options, extensions):
        raise UsageError(
            f"{out.absolute()} holds a dataset prepared from other files or with other options; remove it "
            "or choose another output folder"
        )
    return manifest


def _readable_manifest(folder: Path) -> Manifest | None:
    try:
        return read_manifest(folder)
    except DataError:
        return None


def _made_from(manifest: Manifest, record: SourceRecord, options: DecodeOptions, extensions: tuple[str, ...]) -> bool:
    made_with = (manifest.size, manifest.channels, manifest.resize, manifest.background, manifest.extensions)
    asked = (options.size, options.channels, options.resize, options.background, extensions)
    return manifest.source.fingerprint == record.fingerprint and made_with == asked


def _remove_unfinished(out: Path) -> None:
    """Hidden folders an interrupted preparation of ``out`` left, where they carry ganforge's mark."""
    if not out.parent.is_dir():
        return
    for folder in out.parent.glob(f".{out.name}.partial-*"):
        if folder.is_dir() and not folder.is_symlink() and (folder / PARTIAL_MARK).is_file():
            remove_inside(out.parent, folder)


def _move_into_place(partial: Path, out: Path) -> None:
    (partial / PARTIAL_MARK).unlink()
    try:
        os.rename(partial, out)  # onto nothing, or onto an empty folder: whole, in one step
    except OSError as error:
        raise UsageError(f"cannot put the prepared dataset at {out.absolute()}: {error.strerror}") from None


def _refuse_out_inside(source: ImageSource, out: Path) -> None:
    if source.kind == "folder" and out.resolve().is_relative_to(source.path.resolve()):
        raise UsageError(f"the output folder {out} is inside the source {source.path}: a source is never written to")


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
