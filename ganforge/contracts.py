"""The interfaces every component obeys, whoever provides it.

- Architecture factory: ``(params, data: DataSpec) -> GANModels``. The generator maps
  ``z: [B, latent_dim]`` to images ``[B, C, H, W]`` in [-1, 1]; the discriminator maps images to
  raw scores ``[B]`` (logits, never probabilities: the loss owns sigmoid/softplus).
- Loss factory: ``(params) -> GANLoss``.
- Dataset factory: ``(params, root: Path) -> LoadedDataset``; images are float in [-1, 1].
  ``root`` is the data root ganforge resolved ($GANFORGE_DATA or the user cache); a dataset
  with a ``root`` param of its own lets that override it.
- Metric factory: ``(params) -> GANMetric``. A metric compares two image sets as a feature
  network sees them (:class:`FeatureSet`); ganforge extracts the features once for all metrics
  and records the protocol (feature network, sample counts, splits) beside the scores.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict
from torch import nn
from torch.utils.data import Dataset

# The largest seed every torch generator takes (a signed 64-bit integer): configs, datasets and commands.
MAX_SEED = 2**63 - 1


class Params(BaseModel):
    """Base for component params models: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    """The params model of a component that takes none."""


@dataclass(frozen=True)
class DataSpec:
    """What an architecture needs to know about the data: image shape and class count."""

    shape: tuple[int, int, int]
    num_classes: int | None = None

    @property
    def channels(self) -> int:
        return self.shape[0]

    @property
    def height(self) -> int:
        return self.shape[1]

    @property
    def width(self) -> int:
        return self.shape[2]


@dataclass
class GANModels:
    """A generator, a discriminator and the size of the latent space the generator reads."""

    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int


class ImageTensorDataset(Dataset):
    """Images kept as one uint8 tensor ``[N, C, H, W]`` with int64 labels ``[N]``.

    Items are ``(image in [-1, 1] as float32, label)``. The trainer may take ``images`` and
    ``labels`` whole, put them on the training device and index batches there.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"images must be a uint8 tensor [N, C, H, W], got {images.dtype} {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape [{images.shape[0]}], got {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.to(torch.int64)

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return to_signed_unit(self.images[index]), int(self.labels[index])


def to_signed_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in [0, 255] to float32 in [-1, 1]."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 pixels, got {images.dtype}")
    # The conversion makes a new tensor, so the arithmetic can work in place on it.
    return images.to(torch.float32).div_(127.5).sub_(1.0)


@dataclass
class LoadedDataset:
    """A dataset of ``(image, label)`` items and its spec."""

    dataset: Dataset
    spec: DataSpec


class GANLoss:
    """An adversarial objective on raw discriminator scores.

    Subclasses implement ``discriminator_loss`` and ``generator_loss``; ``penalty`` returns a
    regulariser for the discriminator step (gradient penalty, R1) or None when there is none.
    ``probability`` turns scores into D's probability that an image is real, where the
    objective has one (sigmoid of logits), else None. ``decision_threshold`` is the score above
    which D calls an image real (for its accuracy), or None where scores have no absolute meaning.
    """

    decision_threshold: float | None = 0.0

    def discriminator_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def generator_loss(self, fake_scores: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor | None:
        return None

    def probability(self, scores: torch.Tensor) -> torch.Tensor | None:
        return None


@dataclass(frozen=True)
class FeatureSet:
    """A set of images as a feature network sees them.

    ``features`` is ``[N, D]``; ``probabilities`` is ``[N, K]``, the network's class
    probabilities, or None when the feature network does not classify.
    """

    features: torch.Tensor
    probabilities: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.features.shape[0]


@dataclass(frozen=True)
class Goal:
    """Which way a metric value gets better, and the value two identical sets give, where fixed.

    ``better`` is None for a value that is not a quality in itself, such as a standard deviation.
    """

    better: Literal["lower", "higher"] | None
    ideal: float | None = None

    def improves(self, candidate: float, incumbent: float) -> bool:
        if self.better is None:
            raise ValueError("this value has no direction: it cannot rank results")
        return candidate < incumbent if self.better == "lower" else candidate > incumbent


@dataclass(frozen=True)
class SampleNeeds:
    """The fewest generated and real images a metric can score, and why: checked before anything is scored."""

    generated: int = 1
    real: int = 1
    reason: str = ""

    def shortfall(self, generated: int, real: int) -> str | None:
        """What is missing, in words ("at least 4 generated images, got 3 (...)"), or None when both counts do."""
        missing = [
            f"at least {need} {side} images, got {count}"
            for side, need, count in (("generated", self.generated, generated), ("real", self.real, real))
            if count < need
        ]
        if not missing:
            return None
        return " and ".join(missing) + (f" ({self.reason})" if self.reason else "")


class GANMetric:
    """Scores generated images against real ones, both as :class:`FeatureSet`.

    ``goals`` names every value ``compute`` returns and says which way it gets better (what
    ``train.eval.best`` and the contract checks rely on). ``needs_probabilities`` is True where
    the metric reads class probabilities, which not every feature network provides.
    ``sample_needs`` says how many images of each set ``compute`` needs at least (given its
    params); ganforge checks the counts against it at ``validate``, before a run starts and
    before ``eval`` scores anything, so ``compute`` is never called with fewer.
    """

    goals: ClassVar[Mapping[str, Goal]] = {}
    needs_probabilities: ClassVar[bool] = False

    def sample_needs(self) -> SampleNeeds:
        return SampleNeeds()

    def compute(self, generated: FeatureSet, real: FeatureSet) -> dict[str, float]:
        raise NotImplementedError
