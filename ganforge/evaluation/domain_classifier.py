"""The domain classifier: a small CNN that ganforge trains once per dataset and uses as feature network.

Inception features say little about 28x28 digits and need weights downloaded at run time; a
classifier of the data's own domain is the usual remedy for MNIST-like data. Its penultimate
layer gives the features (FID, KID, precision/recall), its softmax the class probabilities
(classifier score, mode coverage). It is trained seeded and cached under a key of dataset,
dataset params, architecture and recipe, so every score names exactly the network it used.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from ganforge.contracts import DataSpec, FeatureSet, to_signed_unit
from ganforge.errors import GanforgeError, UsageError, first_line, quote
from ganforge.evaluation.digests import add_tensor
from ganforge.evaluation.domain_split import Domain, ImageSet
from ganforge.files import write_atomically

ARCHITECTURE = "ganforge-cnn-v1"
FEATURE_DIM = 128
EXTRACT_BATCH = 1000


class ClassifierRecipe(BaseModel):
    """How the domain classifier is trained; part of its cache key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, description="Seed of the weights and of the batch order.")
    epochs: int = Field(6, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0, description="Adam learning rate, annealed to 0 on a cosine.")
    max_shift: int = Field(2, ge=0, description="Training images are shifted by up to this many pixels each way.")


class DomainClassifier(nn.Module):
    """Two conv blocks (conv, batch norm, ReLU, max pool), a 128-d feature layer, a linear classifier."""

    def __init__(self, spec: DataSpec) -> None:
        super().__init__()
        if spec.num_classes is None:
            raise ValueError("a domain classifier needs a labelled dataset")
        self.body = nn.Sequential(
            nn.Conv2d(spec.channels, 32, 3, padding=1, bias=False),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(7),  # any image size ends in the same 64x7x7 grid
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, FEATURE_DIM),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURE_DIM, spec.num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.body(images)))

    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(images)
        return features, self.head(features)


class FeatureNetwork:
    """Turns image sets into :class:`FeatureSet`; ``protocol`` says what it is and how it was made."""

    def __init__(self, module: nn.Module, protocol: dict[str, Any], device: torch.device) -> None:
        self.module = module.to(device).eval()
        self.protocol = protocol
        self.device = device
        self._fingerprint: dict[str, Any] | None = None

    def fingerprint(self) -> dict[str, Any]:
        """What the features it gives depend on: its weights (a sha256), and what runs it (device, torch, precision).

        Two networks with the same fingerprint give the same features for the same images.
        """
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for name, value in sorted(self.module.state_dict().items()):
                digest.update(f"{name};".encode())
                add_tensor(digest, value)
            self._fingerprint = {"weights": digest.hexdigest(), **numerics(self.device)}
        return self._fingerprint

    @torch.no_grad()
    def extract(self, images: ImageSet) -> FeatureSet:
        features, probabilities = [], []
        for chunk in images.images.split(EXTRACT_BATCH):
            batch_features, logits = self.module.features_and_logits(to_signed_unit(chunk.to(self.device)))
            features.append(batch_features.float().cpu())
            probabilities.append(torch.softmax(logits.double(), dim=1).cpu())
        return FeatureSet(torch.cat(features), torch.cat(probabilities))


def numerics(device: torch.device) -> dict[str, Any]:
    """What, besides the weights, decides a network's output bits: the device, torch's version, float32 matmuls."""
    numerics: dict[str, Any] = {
        "device": device.type,
        "torch": torch.__version__,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    if device.type == "cuda":
        numerics["gpu"] = torch.cuda.get_device_name(device)
        numerics["cudnn"] = torch.backends.cudnn.version()
        numerics["tf32"] = [torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32]
    return numerics


def cache_path(domain: Domain, recipe: ClassifierRecipe, cache_dir: Path) -> Path:
    key = {"dataset": domain.dataset, "params": domain.params, "architecture": ARCHITECTURE, **recipe.model_dump()}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    stem = domain.dataset.replace(":", "-")
    return cache_dir / "feature_networks" / f"{stem}-{ARCHITECTURE}-seed{recipe.seed}-{digest}.pt"


def domain_classifier(
    domain: Domain,
    device: torch.device,
    cache_dir: Path,
    recipe: ClassifierRecipe | None = None,
    log: Callable[[str], None] | None = None,
) -> FeatureNetwork:
    """The cached classifier for this domain, trained first if there is none."""
    recipe = recipe or ClassifierRecipe()
    log = log or (lambda message: None)
    check_labelled(domain)
    path = cache_path(domain, recipe, cache_dir)
    if path.is_file():
        module, record = _load(path, domain)
    else:
        log(f"training the domain classifier for {domain.dataset} (once; cached as {path})")
        module = train_classifier(domain, recipe, device, log)
        accuracy = test_accuracy(module, domain.held_out, device)
        log(f"domain classifier test accuracy: {accuracy:.4f} on {domain.held_out.description}")
        record = {
            "feature_network": "domain_classifier",
            "architecture": ARCHITECTURE,
            "dataset": domain.dataset,
            "dataset_params": domain.params,
            "recipe": recipe.model_dump(),
            "trained_on": domain.train.description,
            "tested_on": domain.held_out.description,
            "test_accuracy": accuracy,
        }
        try:
            _save(path, module, record, domain.spec)
        except OSError as error:  # the scores do not need the cache; the next evaluation trains it again
            log(f"warning: cannot cache the domain classifier as {path}: {error.strerror or error}")
    network = FeatureNetwork(module, {**record, "file": str(path)}, device)
    # Names the network wherever the file is (an export's card cites it, not this machine's cache folder).
    network.protocol["weights_sha256"] = network.fingerprint()["weights"]
    return network


def check_labelled(domain: Domain) -> None:
    """A domain classifier learns the dataset's classes: a dataset without labels cannot have one."""
    if not domain.labelled:
        raise UsageError(
            f"dataset {domain.dataset} has no labels, so ganforge cannot train a domain classifier for it; score it "
            "with the Inception metrics, or, for an image folder, put each class in a subfolder"
        )


def train_classifier(
    domain: Domain, recipe: ClassifierRecipe, device: torch.device, log: Callable[[str], None]
) -> DomainClassifier:
    train, labels = domain.train, domain.train.labels
    assert labels is not None
    with torch.random.fork_rng(devices=[]):  # training it must not move the caller's random stream
        torch.manual_seed(recipe.seed)
        module = DomainClassifier(domain.spec).to(device).train()
    order_generator = torch.Generator().manual_seed(recipe.seed)
    steps_per_epoch = math.ceil(len(train) / recipe.batch_size)
    optimizer = torch.optim.Adam(module.parameters(), lr=recipe.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=recipe.epochs * steps_per_epoch)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(recipe.seed)  # dropout
        for epoch in range(recipe.epochs):
            order = torch.randperm(len(train), generator=order_generator)
            total = 0.0
            for indices in order.split(recipe.batch_size):
                pixels = train.gather(indices).to(device)
                batch = random_shift(to_signed_unit(pixels), recipe.max_shift, order_generator)
                loss = nn.functional.cross_entropy(module(batch), labels[indices].to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total += loss.item()
            log(f"  epoch {epoch + 1}/{recipe.epochs}: cross-entropy {total / steps_per_epoch:.4f}")
    return module.eval()


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image moved by its own whole-pixel offset, edges repeated: the digits' position is not their class."""
    if max_shift == 0:
        return images
    count, channels, height, width = images.shape
    padded = nn.functional.pad(images, (max_shift,) * 4, mode="replicate")
    offsets = torch.randint(0, 2 * max_shift + 1, (2, count), generator=generator).to(images.device)
    rows = (offsets[0, :, None] + torch.arange(height, device=images.device))[:, None, :, None]
    columns = (offsets[1, :, None] + torch.arange(width, device=images.device))[:, None, None, :]
    samples = torch.arange(count, device=images.device)[:, None, None, None]
    return padded[samples, torch.arange(channels, device=images.device)[None, :, None, None], rows, columns]


@torch.no_grad()
def test_accuracy(module: nn.Module, images: ImageSet, device: torch.device) -> float:
    assert images.labels is not None
    module.eval()
    correct = 0
    for chunk, labels in zip(images.chunks(EXTRACT_BATCH), images.labels.split(EXTRACT_BATCH), strict=True):
        predictions = module(to_signed_unit(chunk.to(device))).argmax(dim=1).cpu()
        correct += int((predictions == labels).sum())
    return correct / len(images)


class FeatureNetworkError(GanforgeError):
    """A cached feature network that cannot be used."""


def _save(path: Path, module: nn.Module, record: dict[str, Any], spec: DataSpec) -> None:
    payload = {
        "record": record,
        "spec": {"shape": list(spec.shape), "num_classes": spec.num_classes},
        "state_dict": {key: value.cpu() for key, value in module.state_dict().items()},
    }
    write_atomically(path, lambda stream: torch.save(payload, stream))


class FeatureNetworkRecord(BaseModel):
    """What a cached classifier's file says about it: printed and stored beside every score it gives."""

    model_config = ConfigDict(extra="allow", strict=True)

    feature_network: Literal["domain_classifier"]
    architecture: str
    dataset: str
    dataset_params: dict[str, Any]
    recipe: dict[str, Any]
    trained_on: str
    tested_on: str
    test_accuracy: float = Field(ge=0, le=1)


def _load(path: Path, domain: Domain) -> tuple[DomainClassifier, dict[str, Any]]:
    start_over = "Delete the file and ganforge trains it again."
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict):
            raise TypeError(f"it holds a {type(payload).__name__}, not a classifier's weights and record")
        module = DomainClassifier(domain.spec)
        module.load_state_dict(payload["state_dict"])
    except Exception as error:  # truncated or from another version: say so, and how to start over
        raise FeatureNetworkError(
            f"cannot use the cached domain classifier {path}: {type(error).__name__}: {first_line(str(error))}. "
            f"{start_over}"
        ) from None
    if "record" not in payload:
        raise FeatureNetworkError(
            f"cannot use the cached domain classifier {path}: it has no record of how it was trained. {start_over}"
        )
    try:
        record = FeatureNetworkRecord.model_validate(payload["record"])
    except ValidationError as error:
        missing = [".".join(map(str, e["loc"])) for e in error.errors() if e["type"] == "missing"]
        wrong = [
            f"{'.'.join(map(str, e['loc'])) or 'record'}: {e['msg'].split(' or instance of ')[0]} "
            f"(given: {quote(e.get('input'))})"
            for e in error.errors()
            if e["type"] != "missing"
        ]
        problems = "; ".join(([f"no {', '.join(missing)}"] if missing else []) + wrong)
        raise FeatureNetworkError(
            f"cannot use the cached domain classifier {path}: its record is damaged: {problems}. {start_over}"
        ) from None
    # The file's name is a digest of both: a record that disagrees was not written with this file.
    for field, expected in (("architecture", ARCHITECTURE), ("dataset", domain.dataset)):
        if getattr(record, field) != expected:
            raise FeatureNetworkError(
                f"cannot use the cached domain classifier {path}: its record names {field} "
                f"{getattr(record, field)!r}, where {expected!r} is evaluated. {start_over}"
            )
    return module.eval(), record.model_dump()
