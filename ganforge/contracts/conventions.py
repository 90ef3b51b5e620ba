"""The conventions themselves: the named params and constants, the types each kind of component gives or
takes, and the helpers that call a component as the conventions say (see the package's docstring)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict
from torch import nn
from torch.utils.data import Dataset

# The largest seed every torch generator takes (a signed 64-bit integer): configs, datasets and commands.
MAX_SEED = 2**63 - 1

# Dataset params ganforge reads by name, where a dataset's params model has them (see the module docstring).
SPLIT_PARAM = "split"
TRAIN_SPLIT = "train"
TEST_SPLIT = "test"
LIMIT_PARAM = "limit"
ALL_IMAGES = None  # the value of LIMIT_PARAM that means every image of the dataset (or of its split)
DOWNLOAD_PARAM = "download"

# The feature networks a metric can compare images with (GANMetric.feature_network).
FeatureNetworkName = Literal["domain", "inception"]
FEATURE_NETWORKS: tuple[FeatureNetworkName, ...] = ("domain", "inception")


def declares_param(params_model: type[BaseModel], name: str) -> bool:
    """Whether a component's params model has the field ``name``: how ganforge tells that a component
    follows one of the optional conventions above (a dataset's ``split``, ``limit``)."""
    return name in params_model.model_fields


class Params(BaseModel):
    """Base for component params models: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    """The params model of a component that takes none."""


@dataclass(frozen=True)
class DataSpec:
    """What an architecture needs to know about the data: image shape and class count.

    ``class_names``, where the dataset has them, name the classes in label order (Fashion-MNIST's
    "Sneaker" is class 7): what ``ganforge sample --class`` accepts beside the index.
    """

    shape: tuple[int, int, int]
    num_classes: int | None = None
    class_names: tuple[str, ...] | None = None

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
    """A generator, a discriminator and the size of the latent space the generator reads.

    ``num_classes``: the classes both networks are conditioned on (``G(z, y)``, ``D(x, y)``), or None
    for unconditional networks. ``class_logits``: the conditional discriminator also returns class
    logits, ``(scores, class_logits)``, for an auxiliary classifier loss.
    """

    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int
    num_classes: int | None = None
    class_logits: bool = False

    @property
    def conditional(self) -> bool:
        return self.num_classes is not None


def estimate_of(params: BaseModel, method: str, kind: type) -> Any | None:
    """The answer of a params model's optional estimate method (``data_spec``, ``loading_bytes``: see the
    package's docstring), or None where it has none, it fails, or it answers something not of ``kind``."""
    ask = getattr(params, method, None)
    if not callable(ask):
        return None
    try:
        answer = ask()
    except Exception:  # a third party's estimate that fails is no estimate
        return None
    return answer if isinstance(answer, kind) else None


def synthesize(generator: nn.Module, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """``G(z)``, or ``G(z, y)`` for a conditional generator (labels given)."""
    return generator(z) if labels is None else generator(z, labels)


def discriminator_output(discriminator: nn.Module, images: torch.Tensor, labels: torch.Tensor | None) -> Any:
    """``D(x)``, or ``D(x, y)`` for a conditional discriminator (labels given), as it returns it: the scores, or
    ``(scores, class_logits)``. For the contract checks, which check it; everyone else: :func:`discriminate`."""
    return discriminator(images) if labels is None else discriminator(images, labels)


def discriminate(
    discriminator: nn.Module, images: torch.Tensor, labels: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """D's scores ``[B]`` and its class logits ``[B, K]`` (None where it returns none), with or without labels."""
    output = discriminator_output(discriminator, images, labels)
    if isinstance(output, tuple):
        scores, class_logits = output
        return scores, class_logits
    return output, None


class LabelledDiscriminator(nn.Module):
    """A conditional discriminator with its labels bound: ``D(x)`` means ``D(x, y)``, scores only.

    What penalties receive (they differentiate D with respect to the images alone), so that a loss's
    ``penalty(discriminator, real, fake)`` works for conditional and unconditional models alike.
    Images that are the step's generated batch (the same tensor, or a view of it such as
    ``fake.detach()``) are judged with the labels they were generated with; any other images (the
    real batch, WGAN-GP's mixtures of real and generated ones) with the real batch's labels.
    """

    def __init__(
        self,
        discriminator: nn.Module,
        labels: torch.Tensor,
        generated: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.labels = labels
        self.generated = generated

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return discriminate(self.discriminator, images, self.labels_for(images))[0]

    def labels_for(self, images: torch.Tensor) -> torch.Tensor:
        if self.generated is not None:
            generated_images, generated_labels = self.generated
            same_memory = images.data_ptr() == generated_images.data_ptr()
            if same_memory and images.shape == generated_images.shape:
                return generated_labels
        return self.labels


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


class MappedImageDataset(ImageTensorDataset):
    """An :class:`ImageTensorDataset` whose images stay in a file, memory-mapped, rather than in memory.

    ``images`` is a uint8 tensor over the map, so indexing it reads only the rows it takes. The
    trainer gathers each batch from the map in the background instead of copying the whole set to
    the device; the operating system's page cache, not the process, holds what was read. With
    ``copy_to_gpu``, a run on a GPU copies the images whole to it where they fit there, and draws its
    batches on the GPU as from an :class:`ImageTensorDataset`.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, path: Path, copy_to_gpu: bool = False) -> None:
        super().__init__(images, labels)
        self.path = path
        self.copy_to_gpu = copy_to_gpu

    def __reduce__(self) -> tuple[Any, ...]:
        # A worker process maps the file again rather than receiving a copy of every image.
        return (map_images, (self.path, tuple(self.images.shape), self.labels, self.copy_to_gpu))


def map_images(
    path: Path, shape: tuple[int, ...], labels: torch.Tensor, copy_to_gpu: bool = False
) -> MappedImageDataset:
    """The uint8 images ``[N, C, H, W]`` of a raw file, memory-mapped copy-on-write (never written back)."""
    mapped = np.memmap(path, dtype=np.uint8, mode="c", shape=shape)
    return MappedImageDataset(torch.from_numpy(mapped), labels, path, copy_to_gpu)


def to_signed_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in [0, 255] to float32 in [-1, 1]."""
    if images.dtype != torch.uint8:
        raise TypeError(f"expected uint8 pixels, got {images.dtype}")
    # The conversion makes a new tensor, so the arithmetic can work in place on it.
    return images.to(torch.float32).div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] to uint8 pixels (exact for images that came from 8-bit data)."""
    return images.float().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8)


@dataclass(frozen=True)
class ChannelClassifier:
    """Score a dataset's images one channel at a time with another dataset's domain classifier.

    ``dataset`` is that dataset's registered name and ``params`` its params (Stacked MNIST: ``mnist``,
    whose digits are its channels). The classifier is the very one that dataset is scored with, from
    the same cache. The dataset declaring it has ``K ** C`` classes for a classifier of ``K`` classes
    and ``C`` channels, channel 0 the most significant digit of the label.
    """

    dataset: str
    params: Mapping[str, Any]


@dataclass
class LoadedDataset:
    """A dataset of ``(image, label)`` items and its spec; ``channel_classifier`` where its images are scored
    channel by channel with another dataset's classifier (else its own classifier is trained)."""

    dataset: Dataset
    spec: DataSpec
    channel_classifier: ChannelClassifier | None = None


class GANLoss:
    """An adversarial objective on raw discriminator scores.

    Subclasses implement ``discriminator_loss`` and ``generator_loss``; ``penalty`` returns a
    regulariser for the discriminator step (gradient penalty, R1) or None when there is none.
    ``probability`` turns scores into D's probability that an image is real, where the
    objective has one (sigmoid of logits), else None. ``decision_threshold`` is the score above
    which D calls an image real (for its accuracy), or None where scores have no absolute meaning.
    ``generator_reads_real_scores``: G's loss compares generated images with real ones, and takes
    the real scores as its second argument.
    """

    decision_threshold: float | None = 0.0
    generator_reads_real_scores: bool = False

    def discriminator_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def generator_loss(self, fake_scores: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor | None:
        return None

    def probability(self, scores: torch.Tensor) -> torch.Tensor | None:
        return None


def generator_loss_of(loss: GANLoss, fake_scores: torch.Tensor, real_scores: torch.Tensor | None) -> torch.Tensor:
    """G's loss as the contract calls it: with the real scores where the loss reads them."""
    if loss.generator_reads_real_scores:
        if real_scores is None:
            raise ValueError("this loss judges G against real scores, and none were given")
        return loss.generator_loss(fake_scores, real_scores)
    return loss.generator_loss(fake_scores)


class Augmentation:
    """A differentiable transformation of the images the discriminator sees, real and generated alike.

    ``augmentation(images, strength, generator)`` takes images ``[B, C, H, W]`` in [-1, 1] and
    returns the same shape, each image transformed with probability ``strength`` (0: the images
    unchanged; 1: every image), its randomness drawn from ``generator`` (or torch's global one where
    None). Gradients must flow from the result to ``images``: the generator learns through them.
    The trainer applies the same augmentations, at the same strength, to real and generated batches.
    """

    def __call__(
        self, images: torch.Tensor, strength: float = 1.0, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        raise NotImplementedError


class Schedule:
    """A setting's value over training (``schedules:`` in a config), a pure function of the images shown.

    ``schedule(images)`` returns the value for the step taken after ``images`` real images (all
    processes together) have been shown to D. It depends on ``images`` alone (no state, no random
    draw), so a resumed run and every process of a distributed one compute the same values.
    ``extremes()`` returns the least and greatest value it takes for any ``images >= 0``: ganforge
    checks both against the bounds of the setting it drives before the run starts.
    """

    def __call__(self, images: int) -> float:
        raise NotImplementedError

    def extremes(self) -> tuple[float, float]:
        raise NotImplementedError


LoggerOutcome = Literal["finished", "interrupted", "failed"]


class RunLogger:
    """Follows a run for an experiment tracker (TensorBoard, MLflow, Weights & Biases, a plugin's).

    ganforge calls it on the main process alone, in this order: ``start`` once before the first
    step, with the resolved config as plain data (every default filled in), the run folder, and
    whether the run resumes an earlier one; ``log`` with each record ganforge appends to
    metrics.jsonl (``event`` "step", "epoch" or "eval", ``epoch``, ``step``, and the values:
    ``d_loss``, ``g_loss``, ``D(x)``, ``D(G(z))``, ... or an evaluation's scores with its
    ``floor`` and ``protocol``); ``images`` with each sample grid it saves (float images in
    [-1, 1], ``[N, C, H, W]``; ``name`` is "real" or "generated"; ``step`` the training step);
    and ``finish`` once at the end, with how the run ended. A logger must not change what it is
    given. One that raises is switched off with a warning and the run goes on without it: it
    must hold nothing the run needs: the run writes each record to metrics.jsonl itself, before any
    logger is given it.
    """

    def start(self, config: Mapping[str, Any], run_dir: Path, resumed: bool) -> None:
        pass

    def log(self, record: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def images(self, name: str, images: torch.Tensor, step: int) -> None:
        pass

    def finish(self, outcome: LoggerOutcome) -> None:
        pass


@dataclass(frozen=True)
class FeatureSet:
    """A set of images as a feature network sees them.

    ``features`` is ``[N, D]``; ``probabilities`` is ``[N, K]``, the network's class
    probabilities, or None when the feature network does not classify. ``labels`` ``[N]`` is each
    image's class where it has one: the class a conditional generator was asked for, a real
    image's own label; None for an unconditional generator's images. ``logits`` ``[N, K]`` are a
    classifying network's raw class logits where it gives them (the Inception network does, for
    the Inception Score's own formula), else None.
    """

    features: torch.Tensor
    probabilities: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    logits: torch.Tensor | None = None

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
    the metric reads class probabilities, which not every feature network provides;
    ``needs_labels`` where it reads both sets' labels (class-conditional generators).
    ``sample_needs`` says how many images of each set ``compute`` needs at least (given its
    params); ganforge checks the counts against it at ``validate``, before a run starts and
    before ``eval`` scores anything, so ``compute`` is never called with fewer.

    ``feature_network`` says whose features both sets are: ``"domain"`` (the classifier ganforge
    trains for a labelled dataset: features, probabilities) or ``"inception"`` (Inception-v3 through
    torch-fidelity, the network papers report FID with: 2048-d pool features and logits; any
    dataset, labelled or not; ``pip install 'ganforge[inception]'``). Each network an evaluation's
    metrics name sees every image set once.
    """

    goals: ClassVar[Mapping[str, Goal]] = {}
    feature_network: ClassVar[FeatureNetworkName] = "domain"
    needs_probabilities: ClassVar[bool] = False
    # Compares the sets class by class: computed only where the generated images have labels (a
    # conditional generator's), and left out of an unconditional generator's evaluation.
    needs_labels: ClassVar[bool] = False

    def sample_needs(self) -> SampleNeeds:
        return SampleNeeds()

    def compute(self, generated: FeatureSet, real: FeatureSet) -> dict[str, float]:
        raise NotImplementedError
