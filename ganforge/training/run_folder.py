"""Everything a run writes: resolved config, metrics.jsonl (its own class, metrics_file.py), sample grids,
checkpoints, the plot.

Every file but metrics.jsonl goes to a temporary file in the same folder, is fsynced, then renamed
over the old one: a crash leaves either the old file or the new one, never a broken one; a line of
metrics.jsonl is appended whole or not at all. One process at a time writes a run folder (it holds
an OS lock on a file in it), nothing is written or deleted through a symbolic link in it, and
--overwrite removes only what a run writes, from a folder a run made (the trackers' folders stay).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
import yaml

from ganforge.checkpoints.format import load_first_good_checkpoint, save_checkpoint
from ganforge.documents import decode_text, parse_json, parse_yaml, read_document_bytes
from ganforge.errors import GanforgeError, UsageError
from ganforge.files import (
    FolderBusyError,
    FolderLock,
    busy_message,
    is_cwd_or_above,
    lock_holder,
    refuse_links,
    remove_inside,
    reporting_write_failures,
    write_atomically,
)
from ganforge.grids import save_grid
from ganforge.marks import RUN_LOCK_NAME as LOCK_NAME
from ganforge.marks import RUN_MARKER_NAME as MARKER_NAME
from ganforge.training.metrics_file import METRICS_NAME, MetricsFile


def evaluation_values(record: dict[str, Any]) -> dict[str, float]:
    """An ``"eval"`` record's metric values: those its real floor has too (the floor scores every metric)."""
    return {key: record[key] for key in record["floor"] if key in record}


# What ganforge writes in a run folder, and nothing else: --overwrite removes these and refuses the rest.
MARKER = {"format": "ganforge-run-folder", "version": 1}
TOP_FILES = frozenset({"config.yaml", METRICS_NAME, "plot.png", MARKER_NAME, LOCK_NAME})
TOP_TEMPORARY = re.compile(r"\.(?:config\.yaml|metrics\.jsonl|plot\.png|\.ganforge-run)\..+\.tmp")
SUBFOLDER_FILES = {
    "samples": re.compile(r"\.?(?:real|epoch_\d+)\.png(?:\..+\.tmp)?"),
    "checkpoints": re.compile(r"\.?(?:last|best|epoch_\d+)\.pt(?:\..+\.tmp)?"),
    "tensorboard": re.compile(r"events\.out\.tfevents\..+"),
}
# Folders the built-in loggers fill with their trackers' own layouts (mlflow's file store, W&B's offline runs).
# They keep a history of runs by design, and a user may keep files of their own there: --overwrite never
# deletes them, and the new run adds to them.
LOGGER_FOLDERS = frozenset({"mlruns", "wandb"})
EPOCH_CHECKPOINT = re.compile(r"epoch_(\d+)\.pt")
LISTED_FOREIGN = 8  # foreign entries named in a refusal; the rest are counted
MAX_CONFIG_BYTES = 1 << 20


class RunFolderExistsError(UsageError):
    """A new run whose folder holds a run already; ``path`` is the folder."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"run folder {path} already exists; allow overwriting to replace it, resume it to continue it, "
            "or set name or output.dir for a new one"
        )
        self.path = path


class OverwriteRefusedError(UsageError):
    """A folder that overwriting would not replace: ganforge did not make it, or it holds others' files."""


class RunFolderMissingError(UsageError):
    """A run to resume whose folder does not exist; ``path`` is the folder."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path}: no such run folder")
        self.path = path


class RunFolder:
    """A run's folder: what it holds, and the lock that keeps one process at a time writing it.

    Every write and delete goes through here, and none goes through a symbolic link inside the
    folder (the folder itself may be one).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.lock: FolderLock | None = None
        self.metrics = MetricsFile(self.path)  # metrics.jsonl's one writer and reader

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def plot_path(self) -> Path:
        return self.path / "plot.png"

    @property
    def marker_path(self) -> Path:
        return self.path / MARKER_NAME

    @property
    def lock_path(self) -> Path:
        return self.path / LOCK_NAME

    @property
    def best_checkpoint_path(self) -> Path:
        return self.checkpoints / "best.pt"

    def checkpoint_path(self, epoch: int | None = None) -> Path:
        return self.checkpoints / ("last.pt" if epoch is None else f"epoch_{epoch:04d}.pt")

    def epoch_checkpoints_newest_first(self) -> list[Path]:
        """The kept epoch_NNNN.pt, by epoch number (epoch_10000.pt is newer than epoch_9999.pt)."""
        numbered = []
        for path in self.checkpoints.glob("epoch_*.pt"):
            match = EPOCH_CHECKPOINT.fullmatch(path.name)
            if match:
                numbered.append((int(match.group(1)), path))
        return [path for _, path in sorted(numbered, reverse=True)]

    def load_newest_good_checkpoint(self) -> tuple[dict[str, Any], Path, list[str]]:
        """The state of last.pt or, where it is damaged, of the newest kept epoch checkpoint that is not.

        Also returns the path loaded and the problems met on the way (empty when last.pt was fine).
        """
        return load_first_good_checkpoint([self.checkpoint_path(), *self.epoch_checkpoints_newest_first()])

    def check_room(self, checkpoint_bytes: int) -> None:
        """Before training: the folder can be made here, and its disk has room to save a checkpoint."""
        existing = next(folder for folder in (self.path, *self.path.parents) if folder.exists())
        if not existing.is_dir():
            raise UsageError(f"cannot create run folder {self.path}: {existing} is a file")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise UsageError(f"cannot create run folder {self.path}: {existing} is not writable")
        free = shutil.disk_usage(existing).free
        # A new checkpoint is written beside the one it replaces, and renamed over it once whole.
        if free < 2 * checkpoint_bytes:
            raise UsageError(
                f"not enough disk space for run folder {self.path}: {free / 2**20:.1f} MiB free, and saving a "
                f"checkpoint of about {checkpoint_bytes / 2**20:.1f} MiB needs twice that"
            )

    # -- owning the folder ------------------------------------------------------------------

    def create(self, overwrite: bool) -> None:
        """Make a fresh folder and lock it for this process.

        An existing one that holds anything is refused, unless ``overwrite``; then only a folder
        that ganforge made, and only its files are removed: anything else is refused with nothing
        touched. The lock is taken before anything is removed or written, and the folder checked
        again under it: of two runs starting into one folder at once, the second is refused.
        """
        if is_cwd_or_above(self.path):
            raise UsageError(
                f"run folder {self.path} is the current directory or a folder above it; a run needs a folder of its "
                "own: set output.dir or name"
            )
        if self.path.is_symlink() and not self.path.exists():
            raise UsageError(f"cannot create run folder {self.path}: it is a link to {os.readlink(self.path)}, gone")
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"cannot create run folder {self.path}: it is a file")
        if self._entries():
            self._check_may_replace(overwrite)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"cannot create run folder {self.path}: {error.strerror or error}") from None
        self._lock()
        try:
            leftover = self._entries()
            if leftover:  # another run may have written here between the check and the lock
                self._check_may_replace(overwrite)
                for name in leftover:
                    if name not in LOGGER_FOLDERS:
                        remove_inside(self.path, self.path / name)
            with reporting_write_failures(self.marker_path, self.path):
                text = json.dumps(MARKER).encode()
                write_atomically(self.marker_path, lambda stream: stream.write(text), inside=self.path)
        except BaseException:
            self.release()
            raise

    def open_for_resume(self) -> None:
        """Lock the folder for this process, before anything in it is read or cleared, and check it for links."""
        if not self.path.is_dir():
            raise RunFolderMissingError(self.path)
        self._lock()
        try:
            self.check_no_links()
            if not self.marker_path.exists():  # a folder from before the marker: it is a run folder all the same
                text = json.dumps(MARKER).encode()
                with reporting_write_failures(self.marker_path, self.path):
                    write_atomically(self.marker_path, lambda stream: stream.write(text), inside=self.path)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _lock(self) -> None:
        self.lock = FolderLock.acquire(self.lock_path, f"run folder {self.path}")

    def check_no_links(self) -> None:
        """Any symbolic link among the files ganforge reads, writes or deletes is refused, naming it."""
        for name in sorted(TOP_FILES | set(SUBFOLDER_FILES)):
            path = self.path / name
            refuse_links(self.path, path)
            if name in SUBFOLDER_FILES and path.is_dir():
                for inside in sorted(path.iterdir()):
                    refuse_links(self.path, inside)
        for leftover in self.path.glob(".*.tmp"):
            refuse_links(self.path, leftover)

    def _entries(self) -> list[str]:
        """What the folder holds, but the lock file (which stays for good: see FolderLock)."""
        if not self.path.is_dir():
            return []
        return sorted(name for name in os.listdir(self.path) if name != LOCK_NAME)

    def _check_may_replace(self, overwrite: bool) -> None:
        holder = None if self.lock is not None else lock_holder(self.lock_path)
        if holder is not None:
            raise FolderBusyError(busy_message(f"run folder {self.path}", self.lock_path, holder))
        if not overwrite:
            raise RunFolderExistsError(self.path)
        if not self._made_by_ganforge():
            raise OverwriteRefusedError(
                f"{self.path} is not a ganforge run folder (it has no {MARKER_NAME} and not the layout of one); "
                "ganforge replaces only run folders it made. Nothing was touched: set output.dir or name to a new "
                "folder"
            )
        foreign = self.foreign_entries()
        if foreign:
            listed = ", ".join(foreign[:LISTED_FOREIGN])
            more = f" and {len(foreign) - LISTED_FOREIGN} more" if len(foreign) > LISTED_FOREIGN else ""
            raise OverwriteRefusedError(
                f"run folder {self.path} holds files that ganforge did not write: {listed}{more}. "
                "ganforge replaces only its own files; nothing was touched: move those away, or set output.dir "
                "or name to a new folder"
            )

    def foreign_entries(self) -> list[str]:
        """What the folder holds that a run does not write (links included, whatever they are named)."""
        foreign = []
        for entry in sorted(os.scandir(self.path), key=lambda entry: entry.name):
            if entry.is_symlink():
                foreign.append(f"{entry.name} (a symbolic link)")
            elif entry.name in SUBFOLDER_FILES and entry.is_dir(follow_symlinks=False):
                pattern = SUBFOLDER_FILES[entry.name]
                for inner in sorted(os.scandir(entry.path), key=lambda inner: inner.name):
                    ours = inner.is_file(follow_symlinks=False) and pattern.fullmatch(inner.name)
                    if not ours:
                        link = " (a symbolic link)" if inner.is_symlink() else ""
                        foreign.append(f"{entry.name}/{inner.name}{link}")
            elif entry.name in LOGGER_FOLDERS and entry.is_dir(follow_symlinks=False):
                continue
            elif not (
                entry.is_file(follow_symlinks=False)
                and (entry.name in TOP_FILES or TOP_TEMPORARY.fullmatch(entry.name))
            ):
                foreign.append(entry.name + ("/" if entry.is_dir(follow_symlinks=False) else ""))
        return foreign

    def _made_by_ganforge(self) -> bool:
        """The marker a run writes, or (a folder from before the marker) a resolved run config."""
        if self._file_holds(self.marker_path, _is_marker):
            return True
        return self._file_holds(self.config_path, _is_resolved_run_config)

    @staticmethod
    def _file_holds(path: Path, test: Any) -> bool:
        """Whether ``path`` is a regular file (no link, no FIFO) whose text, read bounded, passes ``test``."""
        try:
            text = decode_text(read_document_bytes(path, MAX_CONFIG_BYTES, "run file"), str(path))
            return bool(test(text, str(path)))
        except GanforgeError:
            return False

    # -- writing ----------------------------------------------------------------------------

    def write_config(self, config: dict[str, Any]) -> None:
        text = yaml.safe_dump(config, sort_keys=False).encode()
        with reporting_write_failures(self.config_path, self.path):
            write_atomically(self.config_path, lambda stream: stream.write(text), inside=self.path)

    def save_checkpoint(self, state: dict[str, Any], path: Path) -> None:
        save_checkpoint(state, path, inside=self.path)

    def save_samples(self, images: torch.Tensor, name: str) -> None:
        path = self.samples / name
        with reporting_write_failures(path, self.path):
            save_grid(images, path, columns=10, inside=self.path)

    def clear_unfinished_writes(self) -> None:
        """Remove the temporary files of writes that a killed process left unfinished; never through a link."""
        for folder in (self.path, self.checkpoints, self.samples):
            refuse_links(self.path, folder)
            if not folder.is_dir():
                continue
            for leftover in folder.glob(".*.tmp"):
                remove_inside(self.path, leftover)

    def plot(self) -> None:
        """Loss curves and D's outputs over the run's steps, as one PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        records = [r for r in self.metrics.read() if r.get("event") == "step"]
        if not records:
            return
        steps = [r["step"] for r in records]
        figure, (losses, outputs) = plt.subplots(1, 2, figsize=(11, 4))
        for key in ("d_loss", "g_loss"):
            losses.plot(steps, [_plotted(r.get(key)) for r in records], label=key)
        losses.set(title="losses", xlabel="step")
        for key in ("D(x)", "D(G(z))"):
            outputs.plot(steps, [_plotted(r.get(key)) for r in records], label=key)
        outputs.set(title="discriminator outputs", xlabel="step")
        for axes in (losses, outputs):
            axes.legend()
            axes.grid(alpha=0.3)
        figure.tight_layout()
        try:
            with reporting_write_failures(self.plot_path, self.path):
                write_atomically(
                    self.plot_path, lambda stream: figure.savefig(stream, format="png", dpi=100), inside=self.path
                )
        finally:
            plt.close(figure)


def _plotted(value: Any) -> float:
    """A logged value as a point; a missing or non-finite one (logged as null) leaves a gap."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan


def _is_marker(text: str, where: str) -> bool:
    marker = parse_json(text, where)
    return isinstance(marker, dict) and marker.get("format") == MARKER["format"]


def _is_resolved_run_config(text: str, where: str) -> bool:
    config = parse_yaml(text, where)
    return isinstance(config, dict) and {"name", "data", "model", "train"} <= config.keys()
