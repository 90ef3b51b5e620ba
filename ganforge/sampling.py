"""Generating images from a checkpoint alone, with no dataset."""

from __future__ import annotations

from pathlib import Path

import torch

from ganforge.contracts import DataSpec
from ganforge.errors import UsageError
from ganforge.registry import Kind, Registry
from ganforge.training.run_folder import CheckpointError, load_checkpoint
from ganforge.training.trainer import generate, resolve_device


def sample_from_checkpoint(
    path: Path, registry: Registry, *, n: int, seed: int = 0, device: str = "auto", use_ema: bool = True
) -> torch.Tensor:
    """``n`` images in [-1, 1] as a CPU tensor ``[n, C, H, W]``."""
    state = load_checkpoint(path)
    model = state["config"]["model"]
    spec = DataSpec(tuple(state["data_spec"]["shape"]), state["data_spec"]["num_classes"])
    try:
        component = registry.get(Kind.ARCHITECTURE, model["name"])
    except UsageError as error:
        raise CheckpointError(f"{path} was made with architecture {model['name']!r}: {error}") from None
    models = component.build(model["params"], spec)
    weights = state["ema_generator"] if use_ema and state.get("ema_generator") else state["generator"]
    models.generator.load_state_dict(weights)
    target = resolve_device(device)
    noise = torch.randn(n, models.latent_dim, generator=torch.Generator().manual_seed(seed))
    return generate(models.generator.to(target), noise, target)
