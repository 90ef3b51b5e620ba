"""The evaluation protocol: one feature network, one real reference set, every metric on the same features.

Generated images are compared with ``n`` held-out real images (the test split where the dataset
has one). The floor is the same metrics between ``n`` training images and that reference: what
a perfect generator (one that reproduces the training data) would score, shown beside every
model score. Every image set is quantised to 8 bits first, as real images are, so a float
generator is not told apart by precision the data never had.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.config import Chosen
from ganforge.contracts import DataSpec, GANMetric, Goal
from ganforge.errors import UsageError
from ganforge.evaluation.classifier import FeatureNetwork, domain_classifier
from ganforge.evaluation.domain import Domain, ImageSet, load_domain, to_uint8
from ganforge.registry import Kind, Registry

DEFAULT_SAMPLES = 10_000
FLOOR_SEED = 1  # the training images of the floor; the reference draws with seed 0


def choose_metrics(registry: Registry, names: Sequence[str] | None) -> list[Chosen]:
    """Metrics by name (default: every installed metric), each with its default params."""
    components = [registry.get(Kind.METRIC, name) for name in names] if names else registry.components(Kind.METRIC)
    return [Chosen(component, component.parse_params({})) for component in components]


class Evaluation:
    """Scores image sets against one dataset's held-out images with one feature network."""

    def __init__(
        self,
        domain: Domain,
        network: FeatureNetwork,
        metrics: Sequence[Chosen],
        samples: int = DEFAULT_SAMPLES,
    ) -> None:
        self.domain = domain
        self.network = network
        self.metrics: list[tuple[Chosen, GANMetric]] = [(chosen, chosen.build()) for chosen in metrics]
        self.samples = samples
        self._check_value_names()
        self.reference = domain.held_out.subset(samples, seed=0)
        self.reference_features = network.extract(self.reference)
        self._floor: dict[str, float] | None = None

    def _check_value_names(self) -> None:
        owners: dict[str, str] = {}
        for chosen, metric in self.metrics:
            for key in metric.goals:
                if key in owners:
                    raise UsageError(
                        f"metrics {owners[key]} and {chosen.component.qualified_name} both report {key!r}; "
                        "evaluate them separately"
                    )
                owners[key] = chosen.component.qualified_name

    @property
    def spec(self) -> DataSpec:
        return self.domain.spec

    def score(self, images: ImageSet) -> dict[str, float]:
        """Every metric's values for these images against the reference set."""
        if tuple(images.images.shape[1:]) != tuple(self.spec.shape):
            raise UsageError(
                f"images of shape {tuple(images.images.shape[1:])} cannot be compared with "
                f"{self.domain.dataset}, whose images are {tuple(self.spec.shape)}"
            )
        features = self.network.extract(images)
        values: dict[str, float] = {}
        for _, metric in self.metrics:
            values.update(metric.compute(features, self.reference_features))
        return values

    def floor(self) -> dict[str, float]:
        """The same metrics for real training images: the best a generator can be expected to score."""
        if self._floor is None:
            self._floor = self.score(self.domain.train.subset(self.samples, seed=FLOOR_SEED))
        return self._floor

    def goals(self) -> dict[str, Goal]:
        return {key: goal for _, metric in self.metrics for key, goal in metric.goals.items()}

    def protocol(self, generated: str) -> dict[str, Any]:
        """What the scores were measured with; stored and printed beside every score."""
        return {
            "generated": generated,
            "reference": self.reference.description,
            "reference_count": len(self.reference),
            "floor": f"{min(self.samples, len(self.domain.train))} real training images against the reference",
            "feature_network": self.network.protocol,
            "metrics": {
                chosen.component.qualified_name: chosen.params.model_dump(mode="json") for chosen, _ in self.metrics
            },
        }


def prepare_evaluation(
    data: Chosen,
    metrics: Sequence[Chosen],
    *,
    samples: int,
    device: torch.device,
    data_root: Path,
    cache_dir: Path,
    log: Callable[[str], None] | None = None,
) -> Evaluation:
    """The domain of a dataset (train and held-out images), its classifier (trained if not cached), the metrics."""
    domain = load_domain(data.component, data.params, data_root)
    network = domain_classifier(domain, device, cache_dir, log=log)
    return Evaluation(domain, network, metrics, samples)


def generated_images(images: torch.Tensor, description: str) -> ImageSet:
    """Generator output in [-1, 1] as 8-bit images, as the real ones are."""
    return ImageSet(to_uint8(images), None, description)


def read_samples(path: Path, spec: DataSpec) -> tuple[ImageSet, str]:
    """Images made by any program: a .pt or .npy array [N, C, H, W] (or [N, H, W], or channels last).

    uint8 is taken as pixels; floats with negative values as [-1, 1], other floats as [0, 1].
    """
    suffix = path.suffix.lower()
    if suffix not in (".pt", ".npy"):
        raise UsageError(f"--samples {path}: use a .pt (torch.save of a tensor) or .npy (numpy.save) file")
    if not path.is_file():
        raise UsageError(f"--samples {path}: no such file")
    try:
        if suffix == ".pt":
            array = torch.load(path, map_location="cpu", weights_only=True)
        else:
            array = torch.from_numpy(np.load(path, allow_pickle=False))
    except Exception as error:
        raise UsageError(f"--samples {path}: cannot read it: {type(error).__name__}: {error}") from None
    if not isinstance(array, torch.Tensor):
        raise UsageError(f"--samples {path}: holds a {type(array).__name__}, expected one tensor of images")
    images = _to_channels_first(array, spec, path)
    if images.dtype == torch.uint8:
        return ImageSet(images, None, f"{len(images)} images from {path}"), "uint8"
    if not images.dtype.is_floating_point:
        raise UsageError(f"--samples {path}: dtype {images.dtype}; expected uint8 or float images")
    images = images.float()
    low, high = float(images.min()), float(images.max())
    if low < 0:
        if low < -1.001 or high > 1.001:
            raise UsageError(f"--samples {path}: values in [{low:.3f}, {high:.3f}]; expected [-1, 1] or [0, 1]")
        value_range = "[-1, 1]"
    else:
        if high > 1.001:
            raise UsageError(
                f"--samples {path}: float values up to {high:.3f}; expected [0, 1] or [-1, 1] floats, or uint8"
            )
        images, value_range = images * 2 - 1, "[0, 1]"
    return ImageSet(to_uint8(images), None, f"{len(images)} images from {path}"), value_range


def _to_channels_first(array: torch.Tensor, spec: DataSpec, path: Path) -> torch.Tensor:
    shape = tuple(array.shape)
    if shape[1:] == tuple(spec.shape):
        return array
    if spec.channels == 1 and shape[1:] == spec.shape[1:]:
        return array.unsqueeze(1)
    if array.dim() == 4 and shape[1:] == (spec.height, spec.width, spec.channels):
        return array.permute(0, 3, 1, 2).contiguous()
    raise UsageError(
        f"--samples {path}: images of shape {shape}; the dataset's images are {tuple(spec.shape)}, so expected "
        f"[N, {', '.join(str(d) for d in spec.shape)}] (or channels last)"
    )
