"""Sources prepared on first use into ganforge's cache: one slot per source folder and options.

A slot is named by the source's path and the preparation options, not by its files: a changed
folder is prepared again into the same slot, replacing what it held, so the cache keeps one
prepared copy per source and options however often the source changes.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

from ganforge.data_root import default_cache_dir
from ganforge.imagesets.decode import DecodeOptions
from ganforge.imagesets.prepare import prepare_dataset
from ganforge.imagesets.prepared import Manifest

CACHE_FOLDER = "prepared"
PROGRESS_EVERY_SECONDS = 2.0


def prepared_in_cache(
    source: Path, options: DecodeOptions, extensions: tuple[str, ...], labels_from_subfolders: bool
) -> tuple[Path, Manifest]:
    """The prepared copy of ``source`` in the cache, made now where it is missing or its source changed."""
    slot = cache_slot(source, options, extensions, labels_from_subfolders)
    manifest = prepare_dataset(
        source,
        slot,
        options,
        extensions=extensions,
        labels_from_subfolders=labels_from_subfolders,
        progress=ProgressLines(source),
        replace_stale=True,
    )
    return slot, manifest


def cache_slot(source: Path, options: DecodeOptions, extensions: tuple[str, ...], labels_from_subfolders: bool) -> Path:
    described = json.dumps(
        [
            str(source.expanduser().resolve()),
            options.size,
            options.channels,
            options.resize,
            options.background,
            list(extensions),
            labels_from_subfolders,
        ]
    )
    return default_cache_dir() / CACHE_FOLDER / hashlib.sha256(described.encode()).hexdigest()[:24]


class ProgressLines:
    """A preparation's progress as a line on stderr every few seconds: a dataset has no console of its own."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.started = time.perf_counter()
        self.last_line = self.started

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if now - self.last_line < PROGRESS_EVERY_SECONDS and done < total:
            return
        self.last_line = now
        rate = done / max(now - self.started, 1e-9)
        left = (total - done) / rate if rate else 0.0
        print(
            f"preparing {self.source} (first use): {done:,}/{total:,} images, {rate:,.0f}/s, {left:,.0f} s left",
            file=sys.stderr,
            flush=True,
        )
