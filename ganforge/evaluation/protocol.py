"""The evaluation protocol: one feature network, one real reference set, every metric on the same features.

Generated images are compared with ``n`` held-out real images (the test split where the dataset
has one). The floor is the same metrics between ``n`` training images and that reference: what
a perfect generator (one that reproduces the training data) would score, shown beside every
model score. Every image set is quantised to 8 bits first, as real images are, so a float
generator is not told apart by precision the data never had. The floor and the reference features
are computed once per protocol, then read from the cache (see floor_cache.py).

Before anything is scored (and before a classifier is trained) every count is checked against
what each metric says it needs (``GANMetric.sample_needs``), and images that are NaN or infinite
are refused: they would be quantised to arbitrary pixels and scored as if they were images.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from ganforge.config.resolve import first_metric_short_of_images
from ganforge.config.schema import DEFAULT_EVAL_SAMPLES
from ganforge.contracts import FEATURE_NETWORKS, DataSpec, FeatureSet, GANMetric, Goal
from ganforge.errors import GanforgeError, UsageError, first_line
from ganforge.evaluation.channels import classified_domain, domain_features
from ganforge.evaluation.domain_split import Domain, ImageSet, load_domain, to_uint8
from ganforge.evaluation.floor_cache import FloorCache, FloorProtocol
from ganforge.guards.memory import is_allocation_failure
from ganforge.registry import Chosen, Kind, Registry

REFERENCE_SEED = 0  # the held-out images generated ones are compared with
FLOOR_SEED = 1  # the training images of the floor
QUANTISE_CHUNK = 1000  # images converted to 8 bits at a time: one float copy of a chunk, never of the whole set
# Features and logits of the larger network (Inception: 2048 + 1008 float32), and a row of precision/recall's
# distance chunks.
SCORING_BYTES_PER_IMAGE = (2048 + 1008) * 4 + 4 * 1024
# Where each feature network's own protocol goes in an evaluation's protocol record.
PROTOCOL_KEYS = {"domain": "feature_network", "inception": "inception_network"}
INCEPTION_METRICS = ("inception_fid", "inception_kid", "inception_score", "inception_precision_recall")


class ImageFeatures(Protocol):
    """A feature network as an evaluation uses it (the domain classifier's, Inception's)."""

    protocol: dict[str, Any]

    def fingerprint(self) -> dict[str, Any]: ...

    def extract(self, images: ImageSet) -> FeatureSet: ...


def choose_metrics(registry: Registry, names: Sequence[str] | None) -> list[Chosen]:
    """Metrics by name, each with its default params; by default every installed metric that compares in the
    domain classifier's features (the Inception ones, which need weights downloaded once, are asked for by name)."""
    if names:
        components = [registry.get(Kind.METRIC, name) for name in names]
    else:
        components = [
            component
            for component in registry.components(Kind.METRIC)
            if component.build({}).feature_network == "domain"
        ]
    return [Chosen(component, component.parse_params({})) for component in components]


def sample_needs_problem(metrics: Sequence[Chosen], *, generated: int, real: int) -> str | None:
    """What the first metric short of images needs (``metric fid needs ...``); None when every one has enough."""
    short = first_metric_short_of_images(metrics, generated=generated, real=real)
    if short is None:
        return None
    _, chosen, shortfall = short
    return f"metric {chosen.component.name} needs {shortfall}"


def check_sample_needs(metrics: Sequence[Chosen], *, generated: int, real: int, counted: str) -> None:
    """Refuse counts below what a metric needs; ``counted`` says where the counts come from, for the message."""
    problem = sample_needs_problem(metrics, generated=generated, real=real)
    if problem is not None:
        raise UsageError(f"{counted}: {problem}")


def scoring_bytes(count: int, spec: DataSpec) -> int:
    """About what scoring ``count`` images takes on the host: 8-bit pixels, features, class probabilities."""
    return count * (math.prod(spec.shape) + SCORING_BYTES_PER_IMAGE + 8 * (spec.num_classes or 0))


class Evaluation:
    """Scores image sets against one dataset's held-out images with the feature networks its metrics name."""

    def __init__(
        self,
        domain: Domain,
        networks: Mapping[str, ImageFeatures],
        metrics: Sequence[Chosen],
        samples: int = DEFAULT_EVAL_SAMPLES,
        *,
        cache_dir: Path | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        """``networks`` by name (``GANMetric.feature_network``): each metric's must be there. With a ``cache_dir``,
        the reference features and the floor are read from its cache where they are there for this protocol, and
        cached once the floor is computed."""
        self.domain = domain
        self.networks = dict(networks)
        self.metrics: list[tuple[Chosen, GANMetric]] = [(chosen, chosen.build()) for chosen in metrics]
        self.samples = samples
        self._check_value_names()
        for chosen, metric in self.metrics:
            if metric.feature_network not in self.networks:
                name = chosen.component.name
                raise GanforgeError(f"metric {name} reads {metric.feature_network} features, and none were given")
        check_reference_sizes(domain, metrics, samples)
        self.reference = domain.held_out.subset(samples, seed=REFERENCE_SEED)
        self.floor_cache = FloorCache(cache_dir, self._floor_protocol(), log) if cache_dir is not None else None
        cached = self.floor_cache.read() if self.floor_cache is not None else None
        # The labels come with the images, not from the cache: the reference is drawn the same every time.
        self.reference_features = {
            name: dataclasses.replace(features, labels=self.reference.labels)
            for name, features in (cached.reference_features if cached else self._extract(self.reference)).items()
        }
        self._floor: dict[str, float] | None = cached.floor if cached else None

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
        return self._values(self._features(images), self.metrics)

    def score_by_class(self, images: ImageSet) -> tuple[dict[str, float], dict[int, dict[str, float]]]:
        """The values of ``score``, and the class-by-class metrics' values for each class's images alone."""
        by_class = [(chosen, metric) for chosen, metric in self.metrics if metric.needs_labels]
        if not by_class:
            raise UsageError(
                "scores per class need a class-by-class metric (class_accuracy, intra_fid) among the metrics"
            )
        if images.labels is None:
            raise UsageError(
                f"{images.description}: scores per class need images with classes (a conditional generator's)"
            )
        features = self._features(images)
        labels = images.labels
        per_class = {
            int(k): self._values({name: _rows(seen, labels == k) for name, seen in features.items()}, by_class)
            for k in labels.unique().tolist()
        }
        return self._values(features, self.metrics), per_class

    def _features(self, images: ImageSet) -> dict[str, FeatureSet]:
        if tuple(images.images.shape[1:]) != tuple(self.spec.shape):
            raise UsageError(
                f"images of shape {tuple(images.images.shape[1:])} cannot be compared with "
                f"{self.domain.dataset}, whose images are {tuple(self.spec.shape)}"
            )
        metrics = [chosen for chosen, _ in self.metrics]
        check_sample_needs(metrics, generated=len(images), real=len(self.reference), counted=images.description)
        return {name: dataclasses.replace(seen, labels=images.labels) for name, seen in self._extract(images).items()}

    def _extract(self, images: ImageSet) -> dict[str, FeatureSet]:
        return {name: network.extract(images) for name, network in self.networks.items()}

    def _values(
        self, features: Mapping[str, FeatureSet], metrics: Sequence[tuple[Chosen, GANMetric]]
    ) -> dict[str, float]:
        values: dict[str, float] = {}
        for chosen, metric in metrics:
            seen = features[metric.feature_network]
            if metric.needs_labels and seen.labels is None:
                continue  # an unconditional generator's images: no class to compare by
            try:
                values.update(metric.compute(seen, self.reference_features[metric.feature_network]))
            except GanforgeError:
                raise
            except Exception as error:  # a metric's own failure is named, never a traceback
                if is_allocation_failure(error):
                    raise  # no bug of the metric's: the caller names it with the setting to lower
                raise GanforgeError(
                    f"metric {chosen.component.qualified_name} ({chosen.component.provider}) failed on "
                    f"{len(seen)} generated and {len(self.reference)} real images: "
                    f"{type(error).__name__}: {first_line(str(error))}"
                ) from None
        return values

    def floor(self) -> dict[str, float]:
        """The same metrics for real training images: the best a generator can be expected to score."""
        if self._floor is None:
            self._floor = self.score(self._floor_images())
            if self.floor_cache is not None:
                self.floor_cache.write(self.reference_features, self._floor)
        return self._floor

    def _floor_images(self) -> ImageSet:
        return self.domain.train.subset(self.samples, seed=FLOOR_SEED)

    def _floor_protocol(self) -> FloorProtocol:
        return FloorProtocol(
            dataset=self.domain.dataset,
            dataset_params=self.domain.params,
            reference=self.reference,
            reference_seed=REFERENCE_SEED,
            floor_images=self._floor_images(),
            floor_seed=FLOOR_SEED,
            samples=self.samples,
            networks=self.networks,
            metrics=[chosen for chosen, _ in self.metrics],
        )

    def goals(self) -> dict[str, Goal]:
        return {key: goal for _, metric in self.metrics for key, goal in metric.goals.items()}

    def protocol(self, generated: str) -> dict[str, Any]:
        """What the scores were measured with; stored and printed beside every score."""
        described: dict[str, Any] = {
            "generated": generated,
            "reference": self.reference.description,
            "reference_count": len(self.reference),
            "floor": f"{min(self.samples, len(self.domain.train))} real training images against the reference",
        }
        for name, network in self.networks.items():
            described[PROTOCOL_KEYS[name]] = network.protocol
        described["metrics"] = {
            chosen.component.qualified_name: chosen.params.model_dump(mode="json") for chosen, _ in self.metrics
        }
        return described


def describe_feature_networks(protocol: Mapping[str, Any]) -> list[str]:
    """A line for each feature network an evaluation's protocol record names, for people to read."""
    lines = []
    domain = protocol.get(PROTOCOL_KEYS["domain"])
    if isinstance(domain, Mapping):
        accuracy = domain.get("test_accuracy")
        accuracy_text = f"{accuracy:.2%}" if isinstance(accuracy, float) else "unknown"
        per_channel = domain.get("per_channel")
        applied = (
            f", reading each of the {per_channel.get('channels')} channels" if isinstance(per_channel, Mapping) else ""
        )
        digest = f", weights SHA-256 {domain['weights_sha256']}" if domain.get("weights_sha256") else ""
        lines.append(
            f"feature network: {domain.get('architecture')} trained on {domain.get('trained_on')}, test accuracy "
            f"{accuracy_text} ({domain.get('file', 'not cached')}{digest}){applied}"
        )
    inception = protocol.get(PROTOCOL_KEYS["inception"])
    if isinstance(inception, Mapping):
        standard = (
            "the standard weights"
            if inception.get("standard_weights")
            else "NOT the standard weights: these scores compare with no published ones"
        )
        lines.append(
            f"Inception-v3 ({inception.get('implementation')}): {inception.get('weights')}, SHA-256 "
            f"{inception.get('weights_sha256')}, {standard}; input: {inception.get('input')}"
        )
    return lines


def _rows(features: FeatureSet, chosen: torch.Tensor) -> FeatureSet:
    """The rows of every part of ``features`` that ``chosen`` (a boolean mask) picks."""
    parts = {field.name: getattr(features, field.name) for field in dataclasses.fields(features)}
    return FeatureSet(**{name: None if part is None else part[chosen] for name, part in parts.items()})


def check_reference_sizes(domain: Domain, metrics: Sequence[Chosen], samples: int) -> None:
    """The held-out reference and the floor's training images are enough for every metric."""
    reference, train = min(samples, len(domain.held_out)), min(samples, len(domain.train))
    counted = f"{domain.dataset} gives {len(domain.held_out)} held-out and {len(domain.train)} training images"
    check_sample_needs(metrics, generated=train, real=reference, counted=counted)


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
    """The domain of a dataset (train and held-out images), its classifier (trained if not cached), the metrics.

    The counts are checked against every metric's needs first: before the data is read or a classifier trained.
    """
    check_sample_needs(metrics, generated=samples, real=samples, counted=f"eval.samples {samples}")
    domain = load_domain(data.component, data.params, data_root)
    return evaluate_domain(domain, metrics, samples=samples, device=device, cache_dir=cache_dir, log=log)


def evaluate_domain(
    domain: Domain,
    metrics: Sequence[Chosen],
    *,
    samples: int,
    device: torch.device,
    cache_dir: Path,
    log: Callable[[str], None] | None = None,
) -> Evaluation:
    """An evaluation over a domain already loaded, with the feature networks its metrics read: the Inception
    weights found (or downloaded) first, then the domain classifier (trained if not cached)."""
    needed = {chosen.component.name: chosen.build().feature_network for chosen in metrics}
    check_feature_networks(domain, needed)
    check_reference_sizes(domain, metrics, samples)
    networks: dict[str, ImageFeatures] = {}
    if "inception" in needed.values():
        from ganforge.evaluation.inception import inception_network

        networks["inception"] = inception_network(device, cache_dir, log)
    if "domain" in needed.values():
        networks["domain"] = domain_features(domain, device, cache_dir, log=log)
    return Evaluation(domain, networks, metrics, samples, cache_dir=cache_dir, log=log)


def check_feature_networks(domain: Domain, needed: Mapping[str, str]) -> None:
    """Each metric's feature network (by metric name) is one ganforge has, and can have for this domain: a
    domain classifier learns a dataset's classes, so an unlabelled one is scored with Inception metrics."""
    for name, network in needed.items():
        if network not in FEATURE_NETWORKS:
            raise UsageError(
                f"metric {name} asks for {network!r} features; the feature networks are {', '.join(FEATURE_NETWORKS)}"
            )
    domain_metrics = [name for name, network in needed.items() if network == "domain"]
    if domain_metrics and not classified_domain(domain).labelled:
        raise UsageError(
            f"dataset {domain.dataset} has no labels, so ganforge cannot train the domain classifier that metrics "
            f"{', '.join(domain_metrics)} compare with; score it with the Inception metrics instead, "
            f"--metrics {','.join(INCEPTION_METRICS)} (pip install 'ganforge[inception]'), or, for an image folder, "
            "put each class in a subfolder"
        )


def generated_images(images: torch.Tensor, description: str, labels: torch.Tensor | None = None) -> ImageSet:
    """Generator output in [-1, 1] as 8-bit images, as the real ones are, with the classes a conditional
    generator was asked for; NaN or infinity is refused."""
    bad_values, bad_images = non_finite(images)
    if bad_values:
        raise GanforgeError(
            f"{description}: {bad_values:,} values in {bad_images:,} of the {len(images):,} images are NaN or "
            "infinite, so they cannot be scored (did the generator diverge?)"
        )
    return ImageSet(quantised(images), labels, description)


def quantised(images: torch.Tensor, unit: bool = False) -> torch.Tensor:
    """Float images in [-1, 1] (in [0, 1] with ``unit``) to uint8 pixels, a chunk at a time."""
    pixels = torch.empty(images.shape, dtype=torch.uint8)
    for start in range(0, len(images), QUANTISE_CHUNK):
        chunk = images[start : start + QUANTISE_CHUNK]
        pixels[start : start + QUANTISE_CHUNK] = to_uint8(chunk.float() * 2 - 1 if unit else chunk)
    return pixels


def non_finite(images: torch.Tensor) -> tuple[int, int]:
    """How many values are NaN or infinite, and in how many images; (0, 0) for integer pixels."""
    if not images.dtype.is_floating_point:
        return 0, 0
    values = images_hit = 0
    for chunk in images.split(QUANTISE_CHUNK):
        bad = ~torch.isfinite(chunk.reshape(len(chunk), -1))
        values += int(bad.sum())
        images_hit += int(bad.any(dim=1).sum())
    return values, images_hit
