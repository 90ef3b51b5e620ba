"""Scoring outside a run: a checkpoint's samples, a file of images made elsewhere, or a dataset's own images.

Each scores against the held-out images of a dataset (the one the checkpoint was trained on, or
the one named) with that dataset's feature network, and reports the real floor beside the scores.
What is scored is made or read before the feature network is loaded or trained: a checkpoint or a
file that cannot give its images fails first, without minutes of training for nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganforge.checkpoints.format import CheckpointError
from ganforge.contracts import Goal
from ganforge.errors import UsageError
from ganforge.evaluation.domain_split import Domain, ImageSet, load_domain
from ganforge.evaluation.protocol import (
    Evaluation,
    evaluate_domain,
    generated_images,
    sample_needs_problem,
    scoring_bytes,
)
from ganforge.evaluation.sample_files import SamplesFileError, read_samples
from ganforge.generation import classes_described, load_generator
from ganforge.guards.memory import check_request_fits
from ganforge.registry import Chosen, Kind, Registry


class ImageCountError(UsageError):
    """A number of images that this machine cannot generate and score; ``count`` is that number."""

    def __init__(self, count: int, problem: str) -> None:
        super().__init__(problem)
        self.count = count


@dataclass(frozen=True)
class Scoring:
    """What every offline evaluation needs: the metrics, how many images, and where to compute and cache."""

    metrics: Sequence[Chosen]
    count: int
    device: torch.device
    data_root: Path
    cache_dir: Path
    log: Callable[[str], None] | None = None


@dataclass(frozen=True)
class OfflineScores:
    """The scores of what was evaluated, the real floor beside them, and the protocol they were measured with."""

    evaluation: Evaluation
    scores: dict[str, float]
    floor: dict[str, float]
    protocol: dict[str, Any]
    # With ``per_class``: the class-by-class metrics for each class's images alone, by class index.
    by_class: dict[int, dict[str, float]] | None = None

    def goals(self) -> dict[str, Goal]:
        return self.evaluation.goals()


def score_checkpoint(
    path: Path,
    registry: Registry,
    scoring: Scoring,
    *,
    seed: int = 0,
    use_ema: bool = True,
    data_params: Mapping[str, Any] | None = None,
    memory_advice: str = "score fewer images",
    per_class: bool = False,
) -> OfflineScores:
    """Images a checkpoint generates (noise of ``seed``), on the dataset it was trained on.

    ``data_params`` override the params it was trained with (a different ``root``, say). With
    ``per_class``, a conditional generator's class-by-class metrics are also given for each class.
    """
    checkpoint = load_generator(path, registry, use_ema=use_ema)
    count = scoring.count
    try:
        check_request_fits(
            f"generating and scoring {count:,} images",
            checkpoint.host_bytes(count) + scoring_bytes(count, checkpoint.spec),
            advice=memory_advice,
            device=scoring.device,
            device_bytes=checkpoint.device_bytes(),
        )
    except UsageError as error:
        raise ImageCountError(count, str(error)) from None
    trained_on = checkpoint.saved.config.data
    try:
        data = registry.get(Kind.DATASET, trained_on.name)
    except UsageError as error:
        raise CheckpointError(f"{checkpoint.path} was trained on dataset {trained_on.name!r}: {error}") from None
    params = {**trained_on.params, **(data_params or {})}
    domain = load_domain(data, data.parse_params(params), scoring.data_root, registry)
    described = f"{count} samples (noise seed {seed}) from {checkpoint.describe()}"
    described += classes_described(checkpoint.num_classes)
    labels = checkpoint.balanced_labels(count)
    if per_class and labels is None:
        raise UsageError(
            f"--per-class: {checkpoint.path}'s generator is unconditional (its architecture reads no labels), so its "
            "images have no classes to score by"
        )
    images = generated_images(checkpoint.sample(count, seed, scoring.device, labels=labels), described, labels)
    return _score(domain, scoring, images, described, per_class=per_class)


def score_samples_file(
    path: Path,
    dataset: str,
    registry: Registry,
    scoring: Scoring,
    *,
    data_params: Mapping[str, Any] | None = None,
    memory_advice: str = "read fewer images",
) -> OfflineScores:
    """The first ``scoring.count`` images of a .pt or .npy file (see ``read_samples``), against ``dataset``."""
    domain = _named_domain(dataset, registry, data_params, scoring.data_root)
    images, value_range = read_samples(path, domain.spec, limit=scoring.count, memory_advice=memory_advice)
    reference = min(scoring.count, len(domain.held_out))
    problem = sample_needs_problem(scoring.metrics, generated=len(images), real=reference)
    if problem is not None:
        raise SamplesFileError(path, problem)
    return _score(domain, scoring, images, f"{images.description}, read as {value_range}")


def score_real_data(
    dataset: str, registry: Registry, scoring: Scoring, *, data_params: Mapping[str, Any] | None = None
) -> OfflineScores:
    """The floor alone: the dataset's training images against its held-out ones."""
    domain = _named_domain(dataset, registry, data_params, scoring.data_root)
    return _score(domain, scoring, None, f"{min(scoring.count, len(domain.train))} training images of {domain.dataset}")


def _named_domain(dataset: str, registry: Registry, params: Mapping[str, Any] | None, data_root: Path) -> Domain:
    data = registry.get(Kind.DATASET, dataset)
    return load_domain(data, data.parse_params(dict(params or {})), data_root, registry)


def _score(
    domain: Domain, scoring: Scoring, images: ImageSet | None, described: str, per_class: bool = False
) -> OfflineScores:
    """Every metric for ``images`` (the floor's own values without them) and the floor; with ``per_class``, the
    class-by-class metrics for each class too."""
    evaluation = evaluate_domain(
        domain,
        scoring.metrics,
        samples=scoring.count,
        device=scoring.device,
        cache_dir=scoring.cache_dir,
        log=scoring.log,
    )
    floor = evaluation.floor()
    if images is not None and per_class:
        scores, by_class = evaluation.score_by_class(images)
        return OfflineScores(evaluation, scores, floor, evaluation.protocol(described), by_class)
    scores = evaluation.score(images) if images is not None else floor
    return OfflineScores(evaluation, scores, floor, evaluation.protocol(described))
