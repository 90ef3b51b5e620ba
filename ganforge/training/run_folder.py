"""Everything a run writes: resolved config, metrics.jsonl, sample grids, checkpoints, the plot.

Files that must never be half-written (checkpoints, the config, a rewritten metrics file) go to a
temporary file in the same folder, are fsynced, then renamed over the old one: a crash leaves
either the old file or the new one, never a broken one.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml
from torchvision.utils import save_image

from ganforge.errors import DataError, GanforgeError, UsageError, first_line
from ganforge.files import write_atomically

CHECKPOINT_FORMAT = "ganforge-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(GanforgeError):
    """A checkpoint that cannot be read or is not a ganforge checkpoint."""


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    payload = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
    # torch.load notices a cut-off file but not flipped bytes inside a tensor: a checksum does.
    payload["checksum"] = checksum(payload)
    try:
        write_atomically(path, lambda stream: torch.save(payload, stream))
    except OSError as error:  # a full disk, a folder gone: the previous checkpoint is still whole
        kept = f"; the previous {path.name} is kept" if path.exists() else ""
        raise CheckpointError(f"cannot save checkpoint {path}: {error.strerror or error}{kept}") from None


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    """Load tensors and plain data only (weights_only): a checkpoint can never run code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
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
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a ganforge checkpoint")
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {state.get('version')}; this ganforge reads {CHECKPOINT_VERSION}"
        )
    saved_checksum = state.pop("checksum", None)
    if saved_checksum is not None and saved_checksum != checksum(state):
        raise CheckpointError(f"{path} is damaged: its contents do not match the checksum saved with them")
    return state


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


def load_newest_good_checkpoint(folder: RunFolder) -> tuple[dict[str, Any], Path, list[str]]:
    """The state of last.pt or, where it is damaged, of the newest kept epoch checkpoint that is not.

    Also returns the path loaded and the problems met on the way (empty when last.pt was fine).
    """
    candidates = [folder.checkpoint_path(), *sorted(folder.checkpoints.glob("epoch_*.pt"), reverse=True)]
    problems: list[str] = []
    for path in candidates:
        try:
            return load_checkpoint(path), path, problems
        except CheckpointError as error:
            problems.append(str(error))
    raise CheckpointError("no checkpoint to resume from:\n  " + "\n  ".join(problems))


def save_grid(images: torch.Tensor, path: Path, columns: int | None = None) -> None:
    """Images in [-1, 1] as one PNG grid (10 columns for 100 images)."""
    columns = columns or math.ceil(math.sqrt(images.shape[0]))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(images.detach().float().cpu().add(1).div(2).clamp(0, 1), path, nrow=columns, padding=2)


class RunFolder:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

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
    def best_checkpoint_path(self) -> Path:
        return self.checkpoints / "best.pt"

    def checkpoint_path(self, epoch: int | None = None) -> Path:
        return self.checkpoints / ("last.pt" if epoch is None else f"epoch_{epoch:04d}.pt")

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

    def create(self, overwrite: bool) -> None:
        """Make a fresh folder; an existing non-empty one is an error unless ``overwrite``."""
        if self.path.exists() and any(self.path.iterdir()):
            if not overwrite:
                raise UsageError(
                    f"run folder {self.path} already exists; pass --overwrite to replace it, "
                    f"--resume {self.path} to continue it, or --set name=... for a new one"
                )
            shutil.rmtree(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"cannot create run folder {self.path}: {error.strerror or error}") from None

    def write_config(self, config: dict[str, Any]) -> None:
        text = yaml.safe_dump(config, sort_keys=False).encode()
        write_atomically(self.config_path, lambda stream: stream.write(text))

    def append_metrics(self, record: dict[str, Any]) -> None:
        with self.metrics_path.open("a") as stream:
            stream.write(json.dumps(record) + "\n")

    def read_metrics(self) -> Iterator[dict[str, Any]]:
        """The logged records; a last line cut short (the process was killed while appending it) is left out."""
        if not self.metrics_path.exists():
            return
        with self.metrics_path.open() as stream:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    if line.endswith("\n"):  # a whole line that is not JSON: damage, not a cut-off write
                        raise DataError(f"{self.metrics_path}, line {number}, is not a JSON record") from None

    def clear_unfinished_writes(self) -> None:
        """Remove the temporary files of writes that a killed process left unfinished."""
        for folder in (self.path, self.checkpoints):
            for leftover in folder.glob(".*.tmp"):
                leftover.unlink(missing_ok=True)

    def drop_metrics_after(self, step: int) -> None:
        """On resume: forget lines logged after the checkpoint, since those steps run again."""
        kept = [record for record in self.read_metrics() if record["step"] <= step]
        text = "".join(json.dumps(record) + "\n" for record in kept).encode()
        write_atomically(self.metrics_path, lambda stream: stream.write(text))

    def plot(self) -> None:
        """Loss curves and D's outputs over the run's steps, as one PNG."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        records = [r for r in self.read_metrics() if r.get("event") == "step"]
        if not records:
            return
        steps = [r["step"] for r in records]
        figure, (losses, outputs) = plt.subplots(1, 2, figsize=(11, 4))
        for key in ("d_loss", "g_loss"):
            losses.plot(steps, [r[key] for r in records], label=key)
        losses.set(title="losses", xlabel="step")
        for key in ("D(x)", "D(G(z))"):
            outputs.plot(steps, [r[key] for r in records], label=key)
        outputs.set(title="discriminator outputs", xlabel="step")
        for axes in (losses, outputs):
            axes.legend()
            axes.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(self.plot_path, dpi=100)
        plt.close(figure)
