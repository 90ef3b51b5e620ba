"""The real floor, cached with the reference features it was measured against: computed once per protocol.

The floor (every metric for ``n`` training images against ``n`` held-out reference images) is
most of an evaluation's time, and nothing in it changes between runs that share the protocol.
It is cached under the cache folder beside the domain classifiers, named like them: the dataset,
then a digest of everything its numbers depend on. That is the images themselves (which covers
the dataset, its params and its content, the count and both seeds, also named for the reader),
each feature network's weights and what ran it (their ``fingerprint``), and each metric with its
provider's version and its params. A reference set read from the file is the one
the floor was computed with, bit for bit, so cached and computed floors are the same numbers.

A file that cannot be read, or that records another key, is ignored and computed again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ganforge.contracts import FeatureSet
from ganforge.errors import first_line, shorten
from ganforge.evaluation.digests import tensor_digest
from ganforge.evaluation.domain_split import ImageSet
from ganforge.files import write_atomically
from ganforge.registry import Chosen

if TYPE_CHECKING:
    from ganforge.evaluation.protocol import ImageFeatures

# Change it when how a floor is computed changes in a way that its key does not show.
FLOOR_FORMAT = "ganforge-floor-v2"
FLOORS_FOLDER = "floors"
FEATURE_PARTS = ("features", "probabilities", "logits")  # what of a FeatureSet is cached (labels come with images)


@dataclass(frozen=True)
class FloorProtocol:
    """What a floor is measured with: the two image sets, the network that sees them, the metrics."""

    dataset: str
    dataset_params: dict[str, Any]
    reference: ImageSet
    reference_seed: int
    floor_images: ImageSet
    floor_seed: int
    samples: int
    networks: Mapping[str, ImageFeatures]
    metrics: Sequence[Chosen]

    def key(self) -> dict[str, Any]:
        """Everything the floor's numbers depend on, as plain data: equal keys, equal floors."""
        return {
            "format": FLOOR_FORMAT,
            "dataset": self.dataset,
            "dataset_params": self.dataset_params,
            "samples": self.samples,
            "reference_seed": self.reference_seed,
            "reference_images": self.reference.content_digest(),
            "floor_seed": self.floor_seed,
            "floor_images": self.floor_images.content_digest(),
            "feature_networks": {name: network.fingerprint() for name, network in self.networks.items()},
            "metrics": [
                [chosen.component.qualified_name, str(chosen.component.provider), chosen.params.model_dump(mode="json")]
                for chosen in self.metrics
            ],
        }


@dataclass(frozen=True)
class CachedFloor:
    reference_features: dict[str, FeatureSet]  # by feature network
    floor: dict[str, float]


class DamagedFloorFile(Exception):
    """A cached floor's file that cannot be used; the message says why."""


class FloorCache:
    """The file of one protocol's floor and reference features under ``cache_dir``."""

    def __init__(self, cache_dir: Path, protocol: FloorProtocol, log: Callable[[str], None] | None = None) -> None:
        self.key = json.loads(json.dumps(protocol.key(), sort_keys=True))  # as it reads back: lists, not tuples
        digest = hashlib.sha256(json.dumps(self.key, sort_keys=True).encode()).hexdigest()[:16]
        stem = protocol.dataset.replace(":", "-")
        self.path = cache_dir / FLOORS_FOLDER / f"{stem}-n{protocol.samples}-{digest}.pt"
        self.expected_count = len(protocol.reference)
        self.log = log or (lambda message: None)

    def read(self) -> CachedFloor | None:
        """The cached floor and reference features; None when there are none, or none that can be used."""
        if not self.path.is_file():
            return None
        try:
            return self._read()
        except DamagedFloorFile as error:
            self.log(f"warning: ignoring the cached real floor {self.path} ({error}); computing it again")
            return None

    def write(self, reference_features: Mapping[str, FeatureSet], floor: dict[str, float]) -> None:
        """Store them, whole or not at all; a failure costs only the next evaluation's time, so it is a warning.

        A floor with a value that is not a float (a plugin's metric may give another number) is not cached:
        read back, it would not be what computing it gives.
        """
        if not all(isinstance(value, float) for value in floor.values()):
            return
        values = {name: float(value) for name, value in floor.items()}
        reference = {
            network: {part: _on_cpu(getattr(features, part)) for part in FEATURE_PARTS}
            for network, features in reference_features.items()
        }
        payload = {"key": self.key, "floor": values, "reference": reference, "checksum": _checksum(values, reference)}
        try:
            write_atomically(self.path, lambda stream: torch.save(payload, stream))
        except OSError as error:
            self.log(f"warning: cannot cache the real floor as {self.path}: {error.strerror or error}")

    def _read(self) -> CachedFloor:
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as error:  # truncated, overwritten, from another version
            said = shorten(first_line(str(error)), 100)
            raise DamagedFloorFile(f"cannot be read: {type(error).__name__}{f': {said}' if said else ''}") from None
        if not isinstance(payload, dict) or not {"key", "floor", "reference", "checksum"} <= set(payload):
            raise DamagedFloorFile("not a cached floor")
        if payload["key"] != self.key:
            raise DamagedFloorFile("it records another protocol than its name says")
        floor, reference = payload["floor"], payload["reference"]
        if not isinstance(floor, dict) or not all(isinstance(value, float) for value in floor.values()):
            raise DamagedFloorFile("its floor is not a mapping of value names to numbers")
        networks = set(self.key["feature_networks"])
        if not isinstance(reference, dict) or set(reference) != networks:
            raise DamagedFloorFile(f"it holds no reference features of {', '.join(sorted(networks))}")
        for stored in reference.values():
            parts = stored if isinstance(stored, dict) else {}
            well_formed = set(parts) == set(FEATURE_PARTS) and self._rows(parts["features"])
            if not well_formed or not all(parts[part] is None or self._rows(parts[part]) for part in FEATURE_PARTS):
                raise DamagedFloorFile(f"its reference features are not {self.expected_count} rows")
        if payload["checksum"] != _checksum(floor, reference):
            raise DamagedFloorFile("its checksum does not match its contents")
        return CachedFloor({network: FeatureSet(**parts) for network, parts in reference.items()}, floor)

    def _rows(self, tensor: Any) -> bool:
        return isinstance(tensor, torch.Tensor) and tensor.ndim == 2 and len(tensor) == self.expected_count


def _on_cpu(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return tensor.cpu() if tensor is not None else None


def _checksum(floor: dict[str, float], reference: Mapping[str, Mapping[str, torch.Tensor | None]]) -> str:
    """A sha256 of the floor's values and the reference features' bits: a flipped bit anywhere changes it."""
    tensors = [reference[network][part] for network in sorted(reference) for part in FEATURE_PARTS]
    return tensor_digest(*tensors, prefix=json.dumps(floor, sort_keys=True))
