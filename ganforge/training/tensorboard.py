"""TensorBoard events beside metrics.jsonl, when the optional ``tensorboard`` package is installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch

from ganforge.errors import UsageError

SCALAR_KEYS = ("d_loss", "g_loss", "D(x)", "D(G(z))", "d_acc_real", "d_acc_fake", "images/s")


def tensorboard_installed() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def wants_tensorboard(setting: bool | str) -> bool:
    """``auto``: when installed; ``true``: required (an error before training if missing); ``false``: never."""
    if setting is True and not tensorboard_installed():
        raise UsageError("output.tensorboard: true needs the tensorboard package: pip install 'ganforge[tensorboard]'")
    return setting is True or (setting == "auto" and tensorboard_installed())


class TensorBoardLog:
    def __init__(self, directory: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(directory))

    def scalars(self, record: dict[str, Any]) -> None:
        if record["event"] == "eval":
            for key, value in record.items():
                if isinstance(value, float):
                    self.writer.add_scalar(f"eval/{key}", value, record["step"])
            return
        prefix = "epoch" if record["event"] == "epoch" else "train"
        for key in SCALAR_KEYS:
            if record.get(key) is not None:
                self.writer.add_scalar(f"{prefix}/{key}", record[key], record["step"])

    def grid(self, tag: str, images: torch.Tensor, step: int) -> None:
        from torchvision.utils import make_grid  # seconds to import: paid by runs that log to TensorBoard alone

        grid = make_grid(images.detach().float().cpu().add(1).div(2).clamp(0, 1), nrow=10, padding=2)
        self.writer.add_image(tag, grid, step)

    def close(self) -> None:
        self.writer.close()
