"""How the training step runs on its device: precision, torch.compile and memory format.

Each setting is ``auto`` (chosen per device) or asked for. Where the device or the installed
PyTorch cannot honour a request, the run goes on with what works and says so in a warning.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class SpeedPlan:
    """The resolved settings of one run's training step, and the warnings met resolving them."""

    device: torch.device
    precision: str  # fp32 | bf16 | fp16
    compile: bool
    channels_last: bool
    warnings: tuple[str, ...] = ()

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Mixed precision for the networks' forward passes; fp32 runs without autocast."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AUTOCAST_DTYPES[self.precision])

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range and needs none."""
        return torch.amp.GradScaler(self.device.type) if self.precision == "fp16" else None

    def prepare_batch(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last and images.dim() == 4:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def describe(self) -> str:
        parts = [self.precision, "torch.compile" if self.compile else "eager"]
        if self.channels_last:
            parts.append("channels_last")
        return f"training step on {self.device}: {', '.join(parts)}"


def plan_speed(
    precision: str, compile: bool | str, channels_last: bool | str, device: torch.device, models: list[nn.Module]
) -> SpeedPlan:
    """Resolve ``train.precision``, ``train.compile`` and ``train.channels_last`` for ``device``."""
    notes: list[str] = []
    cuda = device.type == "cuda"

    if precision == "auto":
        precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "fp32"
    elif precision != "fp32":
        problem = _autocast_problem(device, precision)
        if problem is not None:
            notes.append(f"train.precision: {precision} is not supported here ({problem}); training in fp32")
            precision = "fp32"

    if compile == "auto":
        # Compiling costs tens of seconds up front and pays back on a GPU's many small kernels;
        # on a CPU, the step's time goes to matrix maths that compile leaves as it is.
        compile = cuda

    convolutional = any(isinstance(module, nn.modules.conv._ConvNd) for model in models for module in model.modules())
    if channels_last == "auto":
        channels_last = cuda and convolutional
    elif channels_last and not convolutional:
        notes.append("train.channels_last: the models have no convolutions, so it changes nothing; left off")
        channels_last = False

    return SpeedPlan(device, precision, bool(compile), bool(channels_last), tuple(notes))


def _autocast_problem(device: torch.device, precision: str) -> str | None:
    """Why autocast to ``precision`` cannot run on ``device``, or None when it can."""
    if device.type == "cuda" and precision == "bf16" and not torch.cuda.is_bf16_supported():
        return f"{torch.cuda.get_device_name(device)} has no bfloat16 support; fp16 may work"
    if not torch.amp.is_autocast_available(device.type):
        return f"PyTorch has no autocast for {device.type}"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # PyTorch warns and disables autocast for a dtype the device type does not support.
        torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])
    if caught:
        return str(caught[0].message).split("\n")[0]
    return None
