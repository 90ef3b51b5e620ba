"""Generating images from a checkpoint alone, with no dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganforge.contracts import DataSpec
from ganforge.errors import UsageError
from ganforge.registry import Kind, Registry
from ganforge.training.devices import resolve_device
from ganforge.training.run_folder import CheckpointError, load_checkpoint
from ganforge.training.trainer import generate


@dataclass
class CheckpointGenerator:
    """A checkpoint's generator (its EMA copy where the run kept one and it is asked for)."""

    path: Path
    state: dict[str, Any]
    generator: nn.Module
    latent_dim: int
    spec: DataSpec
    uses_ema: bool

    def sample(self, n: int, seed: int = 0, device: str = "auto") -> torch.Tensor:
        """``n`` images in [-1, 1] as a CPU tensor ``[n, C, H, W]``; the same seed gives the same images."""
        target = resolve_device(device)
        noise = torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed))
        return generate(self.generator.to(target), noise, target)

    def describe(self) -> str:
        which = "EMA generator" if self.uses_ema else "generator"
        return f"{self.path} (epoch {self.state.get('epoch')}, step {self.state.get('step')}, {which})"


def load_generator(path: Path, registry: Registry, *, use_ema: bool = True) -> CheckpointGenerator:
    path = Path(path)
    state = load_checkpoint(path)
    model = state["config"]["model"]
    spec = DataSpec(tuple(state["data_spec"]["shape"]), state["data_spec"]["num_classes"])
    try:
        component = registry.get(Kind.ARCHITECTURE, model["name"])
    except UsageError as error:
        raise CheckpointError(f"{path} was made with architecture {model['name']!r}: {error}") from None
    models = component.build(model["params"], spec)
    uses_ema = bool(use_ema and state.get("ema_generator"))
    models.generator.load_state_dict(state["ema_generator"] if uses_ema else state["generator"])
    return CheckpointGenerator(path, state, models.generator, models.latent_dim, spec, uses_ema)


def sample_from_checkpoint(
    path: Path, registry: Registry, *, n: int, seed: int = 0, device: str = "auto", use_ema: bool = True
) -> torch.Tensor:
    """``n`` images in [-1, 1] as a CPU tensor ``[n, C, H, W]``."""
    return load_generator(path, registry, use_ema=use_ema).sample(n, seed, device)
