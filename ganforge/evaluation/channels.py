"""A domain's feature network: its own domain classifier, or another dataset's read one channel at a time.

Stacked MNIST (three MNIST digits as R, G and B) is scored as its papers score it: each channel is a
digit, read by the MNIST classifier (the same cached network a ``mnist`` run uses). An image's
class probabilities are the product of its channels' (1,000 = 10 x 10 x 10 classes, channel 0 the
most significant digit, as the dataset's labels), so every metric that reads classes
(``modes``, ``mode_coverage``, ``classifier_score``) counts digit triples; its features are the
channels' features side by side, so FID, KID and precision/recall compare the three digits jointly.
A dataset asks for this with ``LoadedDataset.channel_classifier`` (see ganforge/contracts/).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ganforge.contracts import FeatureSet
from ganforge.errors import UsageError
from ganforge.evaluation.domain_classifier import FeatureNetwork, domain_classifier
from ganforge.evaluation.domain_split import Domain, ImageSet


def domain_features(
    domain: Domain, device: torch.device, cache_dir: Path, log: Callable[[str], None] | None = None
) -> FeatureNetwork | ChannelwiseFeatures:
    """The network that scores ``domain`` in its own terms: its classifier (trained once, cached), or the
    classifier of the domain it is read channel by channel with."""
    if domain.channel_domain is None:
        return domain_classifier(domain, device, cache_dir, log=log)
    check_channel_domain(domain)
    return ChannelwiseFeatures(domain_classifier(domain.channel_domain, device, cache_dir, log=log), domain)


def classified_domain(domain: Domain) -> Domain:
    """The domain whose classifier is trained for ``domain``: its own, or the one its channels are read with."""
    return domain.channel_domain or domain


def check_channel_domain(domain: Domain) -> None:
    """The channels are images of the classifier's dataset, and the classes are its classes' combinations."""
    inner = domain.channel_domain
    assert inner is not None
    channels = domain.spec.channels
    expected_classes = None if inner.spec.num_classes is None else inner.spec.num_classes**channels
    problems = []
    if inner.spec.channels != 1:
        problems.append(f"{inner.dataset}'s images have {inner.spec.channels} channels, not 1")
    if domain.spec.num_classes != expected_classes:
        problems.append(
            f"{domain.dataset} has {domain.spec.num_classes} classes, where {channels} channels of "
            f"{inner.dataset}'s {inner.spec.num_classes} classes make {expected_classes}"
        )
    if problems:
        raise UsageError(
            f"dataset {domain.dataset} asks to be scored channel by channel with {inner.dataset}'s classifier, "
            f"which cannot read it: {'; '.join(problems)}"
        )


class ChannelwiseFeatures:
    """A one-channel classifier applied to each channel of an image: features side by side, probabilities
    multiplied out over every combination of the channels' classes."""

    def __init__(self, network: FeatureNetwork, domain: Domain) -> None:
        assert domain.channel_domain is not None
        self.network = network
        self.channels = domain.spec.channels
        self.size = domain.channel_domain.spec.shape[1:]
        self.protocol: dict[str, Any] = {
            **network.protocol,
            "per_channel": {
                "scored_dataset": domain.dataset,
                "channels": self.channels,
                "input": f"each channel alone, centred at {self.size[0]}x{self.size[1]} (cropped or padded)",
                "features": f"the {self.channels} channels' features side by side",
                "probabilities": "the product of the channels' class probabilities, channel 0 the most significant",
            },
        }

    def fingerprint(self) -> dict[str, Any]:
        """The classifier's own, and how it is applied: a per-channel reading gives other features than it."""
        return {**self.network.fingerprint(), "per_channel": self.channels, "channel_size": list(self.size)}

    def extract(self, images: ImageSet) -> FeatureSet:
        features, joint = [], None
        for channel in range(self.channels):
            pixels = centred(images.images[:, channel : channel + 1], self.size)
            seen = self.network.extract(ImageSet(pixels, None, f"channel {channel} of {images.description}"))
            features.append(seen.features)
            assert seen.probabilities is not None  # the domain classifier classifies
            joint = seen.probabilities if joint is None else outer_rows(joint, seen.probabilities)
        assert joint is not None
        return FeatureSet(torch.cat(features, dim=1), joint)


def outer_rows(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Row by row, every product ``first[:, i] * second[:, j]`` at column ``i * K2 + j``: ``[N, K1 * K2]``."""
    return (first[:, :, None] * second[:, None, :]).reshape(len(first), -1)


def centred(images: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Images cropped or padded (black) about their centre to ``size``: a 32x32 Stacked MNIST channel is the
    28x28 digit the classifier learned, padded by 2."""
    height, width = images.shape[-2:]
    rows, columns = size[0] - height, size[1] - width
    if rows == columns == 0:
        return images
    # Negative padding crops: one call does either.
    return torch.nn.functional.pad(images, (columns // 2, columns - columns // 2, rows // 2, rows - rows // 2))
