"""Images from a generator: in training (samples, evaluation) and from a checkpoint alone, with no dataset.

Both go through ``generate``, so a seed gives the same images from a run's checkpoint as it did
in training.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganforge.checkpoints.fields import SavedGenerator
from ganforge.checkpoints.format import CheckpointError, load_checkpoint
from ganforge.contracts import DataSpec, GANModels, synthesize
from ganforge.devices import resolve_device
from ganforge.errors import GanforgeError, UsageError, first_line, quote
from ganforge.exports import MANIFEST, WEIGHTS, ExportError, is_export, non_finite_tensor, read_export
from ganforge.guards.memory import check_request_fits
from ganforge.parsing import parse_count
from ganforge.registry import Component, Kind, Registry

# Images made by one call of the generator: the device holds one chunk at a time.
SAMPLE_CHUNK = 500
FLOAT_BYTES = 4


class GeneratorShapeError(GanforgeError):
    """A generator made images of another shape than its data spec says."""


def generate(
    generator: nn.Module,
    noise: torch.Tensor,
    device: torch.device,
    image_shape: Sequence[int],
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Images for the given noise (and, for a conditional generator, labels), in eval mode, as one float32
    CPU tensor ``[len(noise), *image_shape]``.

    The images are made a chunk at a time into that tensor, so the device holds one chunk and the
    host never holds two copies.
    """
    n = len(noise)
    images = torch.empty(n, *image_shape)
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            for start in range(0, n, SAMPLE_CHUNK):
                chunk_labels = None if labels is None else labels[start : start + SAMPLE_CHUNK].to(device)
                chunk = synthesize(generator, noise[start : start + SAMPLE_CHUNK].to(device), chunk_labels)
                expected = (min(SAMPLE_CHUNK, n - start), *image_shape)
                if tuple(chunk.shape) != expected:
                    raise GeneratorShapeError(
                        f"its generator made images of shape {list(chunk.shape)} where its data spec says "
                        f"{list(expected)}"
                    )
                images[start : start + len(chunk)] = chunk.float().cpu()
    finally:
        generator.train(was_training)
    return images


@dataclass
class CheckpointGenerator:
    """A checkpoint's generator (its EMA copy where the run kept one and it is asked for)."""

    path: Path
    saved: SavedGenerator  # its config, data spec, epoch and step, typed
    generator: nn.Module
    latent_dim: int
    spec: DataSpec
    uses_ema: bool
    num_classes: int | None = None  # a conditional generator's classes

    def sample(
        self,
        n: int,
        seed: int = 0,
        device: str | torch.device = "auto",
        *,
        truncation: float = 1.0,
        walk_steps: int | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``n`` images in [-1, 1] as a CPU tensor ``[n, C, H, W]``; the same seed gives the same images.

        A conditional generator draws image ``i`` as class ``labels[i]``; without labels, as many of
        each class as can be, in turn (0, 1, ..., K-1, 0, ...).

        ``truncation`` psi pulls each noise vector towards the prior's mean, 0: ``psi * z`` (the
        truncation trick, as StyleGAN applies it to its latents; 1 leaves z as drawn). With
        ``walk_steps``, the images are ``n / walk_steps`` walks along great circles (slerp) between
        pairs of noise vectors, ``walk_steps`` images each, one after the other. The noise is drawn
        whole: drawn in parts, it would differ.
        """
        target = device if isinstance(device, torch.device) else resolve_device(device)
        random = torch.Generator().manual_seed(seed)
        if walk_steps is None:
            noise = torch.randn(n, self.latent_dim, generator=random)
        else:
            ends = torch.randn(2, n // walk_steps, self.latent_dim, generator=random)
            noise = great_circle_walks(ends[0], ends[1], walk_steps)
        noise = truncation * noise
        if self.num_classes is None:
            labels = None
        elif labels is None:
            labels = self.balanced_labels(n)
        try:
            return generate(self.generator, noise, target, self.spec.shape, labels)
        except GeneratorShapeError as error:
            raise GanforgeError(f"{self.path}: {error}") from None

    def balanced_labels(self, n: int) -> torch.Tensor | None:
        """What ``sample`` draws without labels: each class in turn; None for an unconditional generator."""
        return None if self.num_classes is None else balanced_labels(n, self.num_classes)

    def class_labels(self, asked: Sequence[str], n: int) -> torch.Tensor:
        """Labels for ``n`` images of the classes asked (names or indices; ``all`` for every class), in equal
        runs, one class after another; a UsageError says what the checkpoint accepts."""
        if self.num_classes is None:
            raise UsageError(
                f"--class: {self.path}'s generator is unconditional (its architecture reads no labels), so it "
                "cannot be asked for a class; leave --class out"
            )
        indices = [index for text in asked for index in self._class_indices(text)]
        if not indices:
            raise UsageError("--class: name at least one class, by name or index (or all)")
        if n % len(indices):
            raise UsageError(
                f"--n {n} with {len(indices)} classes: --n must be a multiple of the number of classes, the same "
                f"number of images of each (e.g. --n {len(indices) * 10})"
            )
        return torch.tensor(indices, dtype=torch.int64).repeat_interleave(n // len(indices))

    def _class_indices(self, text: str) -> list[int]:
        assert self.num_classes is not None
        names = self.spec.class_names or ()
        wanted = text.strip()
        if wanted.lower() == "all":
            return list(range(self.num_classes))
        by_name = [index for index, name in enumerate(names) if name.lower() == wanted.lower()]
        if by_name:
            return by_name
        index = parse_count(wanted)
        if index is not None and index < self.num_classes:
            return [index]
        accepted = f"an index from 0 to {self.num_classes - 1} (digits 0-9)"
        if names:
            accepted += ", a name (" + ", ".join(names) + ")"
        raise UsageError(f"--class {text!r}: {self.path} has {self.num_classes} classes; give {accepted} or all")

    def host_bytes(self, n: int) -> int:
        """Memory that ``sample(n)`` takes on the host: the noise and the images, in float32."""
        return FLOAT_BYTES * n * (self.latent_dim + math.prod(self.spec.shape))

    def device_bytes(self) -> int:
        """At least what the device holds while sampling: the weights, one chunk of noise and of images."""
        weights = sum(tensor.numel() * tensor.element_size() for tensor in self.generator.state_dict().values())
        return weights + FLOAT_BYTES * SAMPLE_CHUNK * (self.latent_dim + math.prod(self.spec.shape))

    def describe(self) -> str:
        which = "EMA generator" if self.uses_ema else "generator"
        return f"{self.path} (epoch {self.saved.epoch}, step {self.saved.step}, {which})"


def classes_described(num_classes: int | None) -> str:
    """What a description of generated images adds for a conditional generator's balanced labels."""
    return "" if num_classes is None else f", as many of each of the {num_classes} classes as can be"


def balanced_labels(count: int, num_classes: int) -> torch.Tensor:
    """``count`` labels cycling through the classes, 0, 1, ..., K-1, 0, 1, ...: as many of each as can be."""
    return torch.arange(count, dtype=torch.int64) % num_classes


def slerp(start: torch.Tensor, end: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rows of ``start`` and ``end`` at fractions ``t`` ``[..., 1]``.

    The path keeps a Gaussian vector's typical norm, where a straight line would pass near the origin, which
    the generator rarely saw. Nearly parallel vectors fall back to the straight line.
    """
    cosine = torch.nn.functional.cosine_similarity(start, end, dim=-1).clamp(-1.0, 1.0).unsqueeze(-1)
    angle = torch.arccos(cosine)
    sine = torch.sin(angle)
    straight = (1 - t) * start + t * end
    curved = (torch.sin((1 - t) * angle) * start + torch.sin(t * angle) * end) / sine.clamp_min(1e-12)
    return torch.where(sine > 1e-6, curved, straight)


def great_circle_walks(starts: torch.Tensor, ends: torch.Tensor, steps: int) -> torch.Tensor:
    """``[walks * steps, D]``: each walk from its start to its end in ``steps`` equal angles, walk after walk."""
    t = torch.linspace(0.0, 1.0, steps).view(1, steps, 1)
    return slerp(starts.unsqueeze(1), ends.unsqueeze(1), t).reshape(-1, starts.shape[-1])


def load_generator(path: Path, registry: Registry, *, use_ema: bool = True) -> CheckpointGenerator:
    """The generator a checkpoint, or a folder ``ganforge export`` wrote, holds, built from its own config;
    any mismatch names the file."""
    path = Path(path)
    if is_export(path):
        contents = read_export(path)  # which checks every field, and that the weights are finite
        saved, uses_ema = contents.manifest.saved_generator(), contents.manifest.generator == "ema"
        if uses_ema and not use_ema:
            raise UsageError(
                f"--no-ema: {path} holds one generator, the EMA copy; export the checkpoint with --no-ema for the "
                "generator as trained"
            )
        weights: dict[str, Any] = contents.weights
        which, declared_latent_dim = str(path / WEIGHTS), contents.manifest.latent_dim
    else:
        state = load_checkpoint(path)  # which checks the fields read here
        saved = SavedGenerator.model_validate(state)
        uses_ema = bool(use_ema and state.get("ema_generator"))
        which = "ema_generator" if uses_ema else "generator"
        weights, declared_latent_dim = state[which], state.get("latent_dim")
        bad = non_finite_tensor(weights)
        if bad is not None:
            raise CheckpointError(f"{path}: its {which} tensor {bad!r} holds NaN or infinite values")
    component, spec = saved_architecture(path, saved, registry)
    weighed = _build(path, component, saved, spec, on_meta=True)
    if weighed is not None:  # the weights' shapes, then the memory, checked before anything is allocated
        _load_weights(path, which, component, weighed.generator, weights)
        check_request_fits(
            f"{path}: building its {component.name} architecture",
            sum(_tensor_bytes(network) for network in (weighed.generator, weighed.discriminator)),
            advice="its config's model.params ask for networks this machine cannot hold",
        )
    models = _build(path, component, saved, spec)
    assert models is not None
    _load_weights(path, which, component, models.generator, weights)
    if declared_latent_dim not in (None, models.latent_dim):
        where, error = (path / MANIFEST, ExportError) if is_export(path) else (path, CheckpointError)
        raise error(
            f"{where}: latent_dim {quote(declared_latent_dim)} contradicts its own config, whose {component.name} "
            f"architecture draws noise of dimension {models.latent_dim}"
        )
    return CheckpointGenerator(path, saved, models.generator, models.latent_dim, spec, uses_ema, models.num_classes)


def saved_architecture(path: Path, saved: SavedGenerator, registry: Registry) -> tuple[Component, DataSpec]:
    """The architecture a saved config names, and the saved data spec it is built for."""
    model, names = saved.config.model, saved.data_spec.class_names
    spec = DataSpec(tuple(saved.data_spec.shape), saved.data_spec.num_classes, tuple(names) if names else None)
    try:
        return registry.get(Kind.ARCHITECTURE, model.name), spec
    except UsageError as error:
        raise CheckpointError(f"{path} was made with architecture {model.name!r}: {error}") from None


def _build(
    path: Path, component: Component, saved: SavedGenerator, spec: DataSpec, *, on_meta: bool = False
) -> GANModels | None:
    """The saved config's networks, untrained; ``on_meta``, on the meta device, which allocates nothing (None
    where the factory does what the meta device cannot)."""
    try:
        if not on_meta:
            return component.build(saved.config.model.params, spec)
        with torch.device("meta"):
            return component.build(saved.config.model.params, spec)
    except GanforgeError as error:
        raise CheckpointError(f"{path}: its config's model does not build: {error}") from None
    except Exception:
        if on_meta:
            return None
        raise


def _load_weights(path: Path, which: str, component: Component, generator: nn.Module, weights: Any) -> None:
    try:
        with warnings.catch_warnings():  # into the meta device, a copy is a no-op, as meant: only shapes are checked
            warnings.filterwarnings("ignore", message=".*to a meta parameter.*")
            generator.load_state_dict(weights)
    except (RuntimeError, ValueError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"{path}: its {which} weights do not fit the {component.name} architecture that its own config "
            f"describes: {weights_mismatch(error)}"
        ) from None


def _tensor_bytes(network: nn.Module) -> int:
    return sum(tensor.numel() * tensor.element_size() for tensor in (*network.parameters(), *network.buffers()))


def weights_mismatch(error: Exception, limit: int = 400) -> str:
    """load_state_dict's message in one line: its first line only says that there are errors."""
    lines = [line.strip().rstrip(".") for line in str(error).splitlines() if line.strip()]
    details = "; ".join(lines[1:] if len(lines) > 1 else lines) or first_line(str(error)) or type(error).__name__
    return details if len(details) <= limit else details[: limit - 3] + "..."
