"""Contract checks for components: the same checks for ganforge's built-ins and any plugin's.

Each check is a small function ``check_x(component) -> None`` that raises :class:`ContractError`
with a message saying what was expected and what happened. Everything runs on the CPU, seeded,
in a second or so per component; checks that need a GPU run only where one is present.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import math
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganforge.contracts import (
    DOWNLOAD_PARAM,
    FEATURE_NETWORKS,
    Augmentation,
    DataSpec,
    FeatureSet,
    GANLoss,
    GANMetric,
    GANModels,
    LoadedDataset,
    RunLogger,
    declares_param,
    discriminate,
    generator_loss_of,
    synthesize,
)
from ganforge.data_root import default_data_root
from ganforge.errors import DatasetNotFoundError, UsageError, first_line
from ganforge.generation import balanced_labels
from ganforge.registry import Component, Kind, describe_value

DATA_SHAPES: tuple[tuple[int, int, int], ...] = ((1, 28, 28), (3, 32, 32))
BATCH_SIZES = (1, 4)
SEED = 0


class ContractError(AssertionError):
    """A component broke its kind's contract."""


class CheckSkipped(Exception):
    """A check that cannot run here (no GPU, no data files); not a failure."""


Check = Callable[[Component], None]


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise ContractError(message)


# -- every component ----------------------------------------------------------------------------


def check_default_params(component: Component) -> None:
    """The component can be named with no params: its params model has a default for everything."""
    try:
        component.parse_params({})
    except Exception as error:
        raise ContractError(
            f"params model {component.params_model.__name__} needs values without defaults: {error}"
        ) from None


def check_params_json_round_trip(component: Component) -> None:
    """Params survive JSON (the run folder's config.yaml and checkpoints store them that way)."""
    params = component.parse_params({})
    again = component.parse_params(params.model_validate_json(params.model_dump_json()).model_dump(mode="json"))
    expect(again == params, f"params {params!r} came back from JSON as {again!r}")


# -- architectures ------------------------------------------------------------------------------
#
# Each check builds the architecture with its default params and with every ``check_params``
# variant it registered, on data with NUM_CLASSES classes. Conditional models are called with
# labels (G(z, y), D(x, y)), as training calls them; the label checks skip unconditional ones.

NUM_CLASSES = 10


def _variants(component: Component) -> list[dict[str, Any]]:
    return [{}, *(dict(variant) for variant in component.check_params)]


def _where(params: dict[str, Any]) -> str:
    """How a failure names the variant: nothing for the defaults."""
    return f"with params {params}: " if params else ""


def _build_models(component: Component, shape: tuple[int, int, int], params: dict[str, Any] | None = None) -> GANModels:
    torch.manual_seed(SEED)
    models = component.build(params or {}, DataSpec(shape, num_classes=NUM_CLASSES))
    where = _where(params or {})
    expect(isinstance(models, GANModels), f"{where}the factory returned {type(models).__name__}, not GANModels")
    for role in ("generator", "discriminator"):
        expect(isinstance(getattr(models, role), nn.Module), f"{where}the {role} is not a torch.nn.Module")
    return models


def _each_model(component: Component, shapes: Iterable[tuple[int, int, int]] = DATA_SHAPES):
    """``(models, shape, where)`` for each params variant and data shape, freshly built and seeded."""
    for params in _variants(component):
        for shape in shapes:
            yield _build_models(component, shape, params), shape, _where(params)


def _labels(models: GANModels, batch: int) -> torch.Tensor | None:
    """Labels for a batch, each class in turn (as ganforge samples); None for unconditional models."""
    if models.num_classes is None:
        return None
    return balanced_labels(batch, models.num_classes)


def _generate(models: GANModels, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    return synthesize(models.generator, z, labels if labels is not None else _labels(models, len(z)))


def _judge(models: GANModels, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    labels = labels if labels is not None else _labels(models, len(images))
    output = models.discriminator(images) if labels is None else models.discriminator(images, labels)
    if models.class_logits:
        expect(
            isinstance(output, tuple) and len(output) == 2,
            f"its GANModels has class_logits, so D(x, y) must return (scores, class_logits); got "
            f"{describe_value(output)}",
        )
        return output[0]
    return output


def check_generator_output(component: Component) -> None:
    """G(z) has the data's shape for every batch size, with values in [-1, 1]."""
    for models, shape, where in _each_model(component):
        models.generator.eval()
        for batch in BATCH_SIZES:
            with torch.no_grad():
                images = _generate(models, torch.randn(batch, models.latent_dim))
            expect(
                tuple(images.shape) == (batch, *shape),
                f"{where}for data {shape} and batch {batch}, G(z) has shape {tuple(images.shape)}, expected "
                f"{(batch, *shape)}",
            )
            low, high = images.min().item(), images.max().item()
            expect(
                low >= -1 and high <= 1, f"{where}G(z) must lie in [-1, 1] (end in tanh); got [{low:.3f}, {high:.3f}]"
            )


def check_discriminator_output(component: Component) -> None:
    """D(x) returns one raw score per image: shape [B] (and class logits [B, K] where it has them)."""
    for models, shape, where in _each_model(component):
        models.discriminator.eval()
        for batch in BATCH_SIZES:
            images = torch.rand(batch, *shape) * 2 - 1
            with torch.no_grad():
                scores = _judge(models, images)
                if models.class_logits:
                    _, class_logits = discriminate(models.discriminator, images, _labels(models, batch))
                    assert class_logits is not None
                    expect(
                        tuple(class_logits.shape) == (batch, models.num_classes),
                        f"{where}D's class logits have shape {tuple(class_logits.shape)}, expected "
                        f"({batch}, {models.num_classes})",
                    )
            expect(tuple(scores.shape) == (batch,), f"{where}D(x) has shape {tuple(scores.shape)}, expected ({batch},)")
            expect(bool(torch.isfinite(scores).all()), f"{where}D(x) has non-finite values")


def check_discriminator_returns_logits(component: Component) -> None:
    """D's scores are logits, not probabilities: trained to separate two sets, they leave [0, 1]."""
    for models, shape, where in _each_model(component, DATA_SHAPES[:1]):
        discriminator = models.discriminator.train()
        optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-2)
        real, fake = torch.full((8, *shape), 0.5), torch.full((8, *shape), -0.5)
        for _ in range(60):
            scores_real, scores_fake = _judge(models, real), _judge(models, fake)
            loss = nn.functional.softplus(-scores_real).mean() + nn.functional.softplus(scores_fake).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        discriminator.eval()
        with torch.no_grad():
            top, bottom = _judge(models, real).max().item(), _judge(models, fake).min().item()
        expect(
            top > 1 or bottom < 0,
            f"{where}after training to separate two image sets, D's scores stay within [{bottom:.3f}, {top:.3f}] "
            "inside [0, 1]: it looks like D returns probabilities; return raw logits and leave the sigmoid to the loss",
        )


def check_gradients_reach_every_parameter(component: Component) -> None:
    """A step on D(G(z)) reaches every generator parameter; a step on D(x) every discriminator one."""
    for models, shape, where in _each_model(component):
        models.generator.train()
        models.discriminator.train()
        # Every label of the class count at least once, so that each class's own parameters get a gradient.
        batch = max(4, models.num_classes or 0)
        labels = _labels(models, batch)
        fake_output = _discriminator_output(models, _generate(models, torch.randn(batch, models.latent_dim), labels))
        fake_output.backward()
        _expect_gradients(models.generator, "generator", "D(G(z))", where)
        models.discriminator.zero_grad(set_to_none=True)
        _discriminator_output(models, torch.rand(batch, *shape) * 2 - 1, labels).backward()
        _expect_gradients(models.discriminator, "discriminator", "D(x)", where)


def _discriminator_output(models: GANModels, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The sum of D's scores and, where it has them, of its class logits: a scalar every D parameter feeds."""
    labels = labels if labels is not None else _labels(models, len(images))
    scores, class_logits = discriminate(models.discriminator, images, labels)
    return scores.sum() + (class_logits.sum() if class_logits is not None else 0)


def _expect_gradients(network: nn.Module, role: str, through: str, where: str = "") -> None:
    missing = [
        name for name, p in network.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())
    ]
    expect(not missing, f"{where}{through} gives no gradient to {role} parameter(s) {', '.join(missing)}")


def check_train_and_eval_modes(component: Component) -> None:
    """Both networks run in train and in eval mode."""
    for models, _shape, _where_text in _each_model(component, DATA_SHAPES[:1]):
        for mode in (True, False):
            models.generator.train(mode)
            models.discriminator.train(mode)
            with torch.no_grad():
                _judge(models, _generate(models, torch.randn(2, models.latent_dim)))


def check_state_dict_round_trip(component: Component) -> None:
    """Weights saved and loaded into a fresh build give the same outputs (checkpoints depend on it)."""
    for params in _variants(component):
        models = _build_models(component, DATA_SHAPES[0], params)
        buffer = io.BytesIO()
        torch.save({"g": models.generator.state_dict(), "d": models.discriminator.state_dict()}, buffer)
        buffer.seek(0)
        saved = torch.load(buffer, weights_only=True)
        torch.manual_seed(SEED + 1)
        fresh = component.build(params, DataSpec(DATA_SHAPES[0], num_classes=NUM_CLASSES))
        fresh.generator.load_state_dict(saved["g"])
        fresh.discriminator.load_state_dict(saved["d"])
        z = torch.randn(3, models.latent_dim)
        for network in (models.generator, models.discriminator, fresh.generator, fresh.discriminator):
            network.eval()
        where = _where(params)
        with torch.no_grad():
            images = _generate(models, z)
            expect(torch.equal(images, _generate(fresh, z)), f"{where}G differs after a state_dict round trip")
            expect(
                torch.equal(_judge(models, images), _judge(fresh, images)),
                f"{where}D differs after a state_dict round trip",
            )


def check_same_seed_same_output(component: Component) -> None:
    """The same seed builds the same networks: runs are reproducible."""
    for params in _variants(component):
        first = _build_models(component, DATA_SHAPES[0], params)
        second = _build_models(component, DATA_SHAPES[0], params)
        z = torch.randn(2, first.latent_dim)
        first.generator.eval()
        second.generator.eval()
        with torch.no_grad():
            expect(
                torch.equal(_generate(first, z), _generate(second, z)),
                f"{_where(params)}two builds with the same seed differ",
            )


def check_moves_to_another_device(component: Component) -> None:
    """The networks move to CUDA and run there (only where a GPU is present)."""
    if not torch.cuda.is_available():
        raise CheckSkipped("no CUDA device here")
    for params in _variants(component):
        models = _build_models(component, DATA_SHAPES[0], params)
        models.generator.cuda()
        models.discriminator.cuda()
        labels = _labels(models, 2)
        labels = labels.cuda() if labels is not None else None
        scores = _judge(models, _generate(models, torch.randn(2, models.latent_dim, device="cuda"), labels), labels)
        expect(scores.device.type == "cuda", f"{_where(params)}scores came back on {scores.device}")


def _conditional_models(component: Component):
    """``(models, where)`` for each conditional variant; CheckSkipped where there is none."""
    found = False
    for params in _variants(component):
        models = _build_models(component, DATA_SHAPES[0], params)
        if models.num_classes is not None:
            found = True
            yield models, _where(params)
    if not found:
        raise CheckSkipped("unconditional: no params variant of it reads labels")


def check_labels_change_the_output(component: Component) -> None:
    """A conditional G draws another image for another label from the same z; a conditional D reads the label
    (or, with class logits, scores each class)."""
    for models, where in _conditional_models(component):
        assert models.num_classes is not None
        models.generator.eval()
        models.discriminator.eval()
        z = torch.randn(1, models.latent_dim).repeat(models.num_classes, 1)
        every_label = torch.arange(models.num_classes)
        with torch.no_grad():
            images = _generate(models, z, every_label)
            expect(
                not torch.equal(images[0], images[1]),
                f"{where}G(z, 0) and G(z, 1) are the same image: the generator ignores its labels",
            )
            if models.class_logits:
                continue  # D predicts the class rather than reading it: its class logits are checked for shape
            image = images[:1].repeat(models.num_classes, 1, 1, 1)
            scores = _judge(models, image, every_label)
            expect(
                not torch.equal(scores[0], scores[1]),
                f"{where}D(x, 0) and D(x, 1) are the same score: the discriminator ignores its labels",
            )


def check_every_label_works(component: Component) -> None:
    """Every label in [0, num_classes) gives images in [-1, 1] and finite scores."""
    for models, where in _conditional_models(component):
        assert models.num_classes is not None
        every_label = torch.arange(models.num_classes)
        models.generator.eval()
        models.discriminator.eval()
        with torch.no_grad():
            images = _generate(models, torch.randn(len(every_label), models.latent_dim), every_label)
            scores = _judge(models, images, every_label)
        low, high = images.min().item(), images.max().item()
        expect(low >= -1 and high <= 1, f"{where}G(z, y) left [-1, 1] for some label: [{low:.3f}, {high:.3f}]")
        expect(bool(torch.isfinite(scores).all()), f"{where}D(x, y) is not finite for some label")


def check_labels_out_of_range_are_refused(component: Component) -> None:
    """A label outside [0, num_classes) raises an error that names the class count, in G and in D."""
    for models, where in _conditional_models(component):
        count = models.num_classes
        assert count is not None
        models.generator.eval()
        models.discriminator.eval()
        z, images = torch.randn(2, models.latent_dim), torch.rand(2, *DATA_SHAPES[0]) * 2 - 1
        calls = [("G(z, y)", models.generator, z)]
        if not models.class_logits:  # a classifier D reads no labels: nothing to refuse
            calls.append(("D(x, y)", models.discriminator, images))
        for role, network, first_input in calls:
            for bad in (count, -1):
                try:
                    with torch.no_grad():
                        network(first_input, torch.tensor([0, bad]))
                except Exception as error:
                    expect(
                        str(count) in str(error),
                        f"{where}{role} with label {bad} for {count} classes raised {type(error).__name__}: "
                        f"{first_line(str(error))!r}, which does not say how many classes there are; refuse it "
                        "with a message naming the range (ganforge.check_labels does)",
                    )
                else:
                    raise ContractError(f"{where}{role} accepted label {bad} for {count} classes; it must refuse it")


# -- losses -------------------------------------------------------------------------------------


def _loss(component: Component) -> GANLoss:
    loss = component.build({})
    for method in ("discriminator_loss", "generator_loss", "penalty"):
        expect(callable(getattr(loss, method, None)), f"the loss has no {method}() method (subclass GANLoss)")
    return loss


def _scores(value: float, requires_grad: bool = True) -> torch.Tensor:
    return torch.full((6,), value, requires_grad=requires_grad)


def check_loss_is_a_finite_differentiable_scalar(component: Component) -> None:
    """Both losses are finite scalars with gradients w.r.t. the scores, also at extreme scores."""
    loss = _loss(component)
    for value in (0.3, 30.0, -30.0):
        real, fake = _scores(value), _scores(-value)
        d_loss = loss.discriminator_loss(real, fake)
        g_loss = generator_loss_of(loss, _scores(value), _scores(-value, requires_grad=False))
        for name, result in (("discriminator_loss", d_loss), ("generator_loss", g_loss)):
            expect(result.dim() == 0, f"{name} returned shape {tuple(result.shape)}, expected a scalar")
            expect(bool(torch.isfinite(result)), f"{name} is {result.item()} at scores {value}")
            expect(result.requires_grad, f"{name} is not differentiable w.r.t. the scores")


def check_loss_direction(component: Component) -> None:
    """Raising real scores and lowering fake ones lowers D's loss; raising fake scores lowers G's."""
    loss = _loss(component)
    real, fake = _scores(0.3), _scores(0.3)
    loss.discriminator_loss(real, fake).backward()
    expect(bool((real.grad <= 0).all()) and bool(real.grad.sum() < 0), "raising real scores raises D's loss")
    expect(bool((fake.grad >= 0).all()) and bool(fake.grad.sum() > 0), "lowering fake scores raises D's loss")
    generated = _scores(0.3)
    generator_loss_of(loss, generated, _scores(0.3, requires_grad=False)).backward()
    expect(bool(generated.grad.sum() < 0), "raising the scores of generated images raises G's loss: wrong sign")


def check_penalty_is_per_sample(component: Component) -> None:
    """A penalty is a mean over samples: the same samples twice over give the same value, not double."""
    loss = _loss(component)
    weight = torch.full((1, 4, 4), 0.5)  # a linear critic with gradient norm 2 at every image

    def critic(images: torch.Tensor) -> torch.Tensor:
        return (images * weight).flatten(1).sum(dim=1)

    torch.manual_seed(SEED)
    real, fake = torch.randn(4, 1, 4, 4), torch.randn(4, 1, 4, 4)
    penalty = loss.penalty(critic, real, fake)
    if penalty is None:
        raise CheckSkipped("the loss has no penalty with its default params")
    expect(penalty.dim() == 0 and bool(torch.isfinite(penalty)), "the penalty must be a finite scalar")
    doubled = loss.penalty(critic, torch.cat([real, real]), torch.cat([fake, fake]))
    expect(
        abs(doubled.item() - penalty.item()) <= 1e-5 * max(1.0, abs(penalty.item())),
        f"the penalty grows with the batch ({penalty.item():.4g} for 4 samples, {doubled.item():.4g} for the same "
        "4 twice): take the mean over samples, not the sum",
    )


# -- datasets -----------------------------------------------------------------------------------


def _dataset(component: Component) -> LoadedDataset:
    # Checking a component must never start a download: its files are there or the checks skip.
    params = {DOWNLOAD_PARAM: False} if declares_param(component.params_model, DOWNLOAD_PARAM) else {}
    try:
        return component.build(params, default_data_root())
    except DatasetNotFoundError as error:
        raise CheckSkipped(f"its files are not here ({first_line(str(error))})") from None


def _sample_indices(length: int) -> list[int]:
    return sorted({0, length // 2, length - 1, *range(0, length, max(1, length // 32))})


def check_items_match_the_spec(component: Component) -> None:
    """Items are (float image of the declared shape in [-1, 1], int label within num_classes)."""
    loaded = _dataset(component)
    expect(isinstance(loaded, LoadedDataset), f"the factory returned {type(loaded).__name__}, not LoadedDataset")
    length = len(loaded.dataset)
    expect(length > 0, "the dataset is empty")
    for index in _sample_indices(length):
        image, label = loaded.dataset[index]
        expect(
            tuple(image.shape) == tuple(loaded.spec.shape),
            f"item {index} has shape {tuple(image.shape)}, the spec says {loaded.spec.shape}",
        )
        expect(image.dtype == torch.float32, f"item {index} has dtype {image.dtype}, expected torch.float32")
        low, high = image.min().item(), image.max().item()
        expect(low >= -1 and high <= 1, f"item {index} has values in [{low:.3f}, {high:.3f}], expected [-1, 1]")
        if loaded.spec.num_classes is not None:
            expect(
                0 <= int(label) < loaded.spec.num_classes,
                f"item {index} has label {label}, outside 0..{loaded.spec.num_classes - 1}",
            )


def check_length_is_stable(component: Component) -> None:
    """Two builds with the same params have the same length and the same first item."""
    first, second = _dataset(component), _dataset(component)
    expect(len(first.dataset) == len(second.dataset), "two builds have different lengths")
    expect(torch.equal(first.dataset[0][0], second.dataset[0][0]), "two builds differ at item 0")


def check_picklable(component: Component) -> None:
    """The dataset pickles, as DataLoader worker processes need."""
    loaded = _dataset(component)
    try:
        again = pickle.loads(pickle.dumps(loaded.dataset))
    except Exception as error:
        raise ContractError(f"the dataset cannot be pickled for DataLoader workers: {error}") from None
    expect(len(again) == len(loaded.dataset), "the unpickled dataset has another length")


# -- metrics ------------------------------------------------------------------------------------

METRIC_CLASSES, METRIC_PER_CLASS, METRIC_FEATURE_DIM = 10, 40, 16


def _metric(component: Component) -> GANMetric:
    metric = component.build({})
    expect(callable(getattr(metric, "compute", None)), "the metric has no compute() method (subclass GANMetric)")
    goals = getattr(metric, "goals", None)
    expect(bool(goals), "the metric declares no goals: name each value compute() returns and which way is better")
    network = getattr(metric, "feature_network", None)
    expect(
        network in FEATURE_NETWORKS,
        f"the metric's feature_network is {network!r}; accepted: {', '.join(map(repr, FEATURE_NETWORKS))}",
    )
    return metric


def _feature_sets() -> tuple[FeatureSet, FeatureSet]:
    """A real set of ten confident, well-separated classes, and a worse one: half the classes, shifted, unsure,
    each image labelled as the next class (what a conditional generator that ignores its labels would give)."""
    generator = torch.Generator().manual_seed(SEED)
    labels = torch.arange(METRIC_CLASSES).repeat_interleave(METRIC_PER_CLASS)
    centres = 3.0 * torch.eye(METRIC_CLASSES, METRIC_FEATURE_DIM)
    features = centres[labels] + torch.randn(len(labels), METRIC_FEATURE_DIM, generator=generator)
    logits = 6.0 * nn.functional.one_hot(labels, METRIC_CLASSES).double()
    logits += 0.5 * torch.randn(logits.shape, generator=generator, dtype=torch.float64)
    real = FeatureSet(features, torch.softmax(logits, dim=1), labels, logits)
    kept = labels < METRIC_CLASSES // 2
    unsure = logits[kept] / 4
    worse = FeatureSet(features[kept] + 2.0, torch.softmax(unsure, dim=1), labels[kept] + 1, unsure)
    return real, worse


def _metric_values(metric: GANMetric, generated: FeatureSet, real: FeatureSet) -> dict[str, float]:
    values = metric.compute(generated, real)
    expect(isinstance(values, dict), f"compute() returned {type(values).__name__}, expected a dict of floats")
    expect(
        set(values) == set(metric.goals),
        f"compute() returned the values {sorted(values)} but the goals name {sorted(metric.goals)}",
    )
    for key, value in values.items():
        expect(isinstance(value, float), f"{key} is a {type(value).__name__}, expected a float")
        expect(math.isfinite(value), f"{key} is {value}, expected a finite number")
    return values


def _copied(features: FeatureSet) -> FeatureSet:
    parts = (getattr(features, field.name) for field in dataclasses.fields(features))
    return FeatureSet(*(None if part is None else part.clone() for part in parts))


def check_identical_sets_score_no_difference(component: Component) -> None:
    """Two identical sets get each value's ideal (0 for a distance, 1 for precision), far closer than a worse set."""
    metric = _metric(component)
    real, worse = _feature_sets()
    same = _metric_values(metric, _copied(real), real)
    again = _metric_values(metric, _copied(real), real)
    expect(same == again, f"the same sets scored twice give {same} and then {again}: seed any randomness")
    shifted = _metric_values(metric, worse, real)
    for key, goal in metric.goals.items():
        if goal.ideal is None:
            continue
        gap, worse_gap = abs(same[key] - goal.ideal), abs(shifted[key] - goal.ideal)
        expect(
            gap <= 0.05 * worse_gap,
            f"{key} of two identical sets is {same[key]:.6g}, not near its ideal {goal.ideal:g} "
            f"(a worse set scores {shifted[key]:.6g})",
        )


def check_shifted_set_scores_worse(component: Component) -> None:
    """A set with half the classes, shifted and less confident, scores worse on every value with a direction."""
    metric = _metric(component)
    real, worse = _feature_sets()
    same, shifted = _metric_values(metric, real, real), _metric_values(metric, worse, real)
    for key, goal in metric.goals.items():
        if goal.better is None:
            continue
        expect(
            goal.improves(same[key], shifted[key]),
            f"{key} should be {goal.better} for identical sets than for a shifted set, "
            f"but identical sets score {same[key]:.6g} and the shifted set {shifted[key]:.6g}",
        )


def _augmentation(component: Component) -> Augmentation:
    augmentation = component.build({})
    expect(callable(augmentation), "the augmentation is not callable (subclass Augmentation, define __call__)")
    return augmentation


def _images_to_augment(requires_grad: bool = False) -> torch.Tensor:
    images = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(SEED)) * 2 - 1
    return images.requires_grad_(requires_grad)


def _augmented(augmentation: Augmentation, images: torch.Tensor, strength: float, seed: int = SEED) -> torch.Tensor:
    out = augmentation(images, strength, torch.Generator().manual_seed(seed))
    expect(isinstance(out, torch.Tensor), f"at strength {strength} it returned {describe_value(out)}, not images")
    return out


def check_augmentation_keeps_shape_and_dtype(component: Component) -> None:
    """Images [B, C, H, W] in, the same shape and dtype out, finite, at strengths 0.5 and 1."""
    augmentation = _augmentation(component)
    images = _images_to_augment()
    for strength in (0.5, 1.0):
        out = _augmented(augmentation, images, strength)
        expect(
            out.shape == images.shape and out.dtype == images.dtype,
            f"at strength {strength}: {tuple(images.shape)} {images.dtype} in, {tuple(out.shape)} {out.dtype} out",
        )
        expect(bool(torch.isfinite(out).all()), f"at strength {strength} it returned non-finite values")


def check_augmentation_is_identity_at_strength_zero(component: Component) -> None:
    """Strength 0 leaves every image as it was (ADA starts there)."""
    images = _images_to_augment()
    out = _augmented(_augmentation(component), images, 0.0)
    expect(torch.equal(out, images), "strength 0 changed the images; it must return them unchanged")


def check_augmentation_is_differentiable(component: Component) -> None:
    """Gradients flow from the augmented images to the images (G learns through D's view of them)."""
    images = _images_to_augment(requires_grad=True)
    out = _augmented(_augmentation(component), images, 1.0)
    expect(out.requires_grad, "the result does not depend differentiably on the images (detached?)")
    out.square().sum().backward()
    expect(images.grad is not None and bool(images.grad.abs().sum() > 0), "no gradient reached the images")


def check_augmentation_draws_from_the_generator_given(component: Component) -> None:
    """The same generator state gives the same result, another state another: runs repeat exactly."""
    augmentation, images = _augmentation(component), _images_to_augment()
    first, again = _augmented(augmentation, images, 1.0), _augmented(augmentation, images, 1.0)
    expect(torch.equal(first, again), "two calls with generators seeded alike gave different images")
    other = _augmented(augmentation, images, 1.0, seed=SEED + 1)
    expect(not torch.equal(first, other), "generators seeded differently gave the same images: nothing is random")


# -- loggers --------------------------------------------------------------------------------------
#
# A short run, as the trainer gives it: records of each event, the sample grids, the end; then the
# same run resumed. Each in a temporary run folder, with a copy of every record to compare.

LOGGER_CONFIG = {"name": "contract-check", "seed": 0, "train": {"epochs": 1, "batch_size": 4}}


def _logger_records() -> list[dict[str, Any]]:
    values = {"d_loss": 1.3, "g_loss": 0.7, "D(x)": 0.6, "D(G(z))": 0.4, "images/s": 100.0}
    return [
        {"event": "step", "epoch": 1, "step": 2, "seconds": 0.1, **values},
        {"event": "epoch", "epoch": 1, "step": 4, "seconds": 0.2, **values},
        {
            "event": "eval", "epoch": 1, "step": 4, "fid": 12.5, "precision": 0.5,
            "floor": {"fid": 1.0, "precision": 0.9}, "seconds": 1.0, "protocol": {"reference": "real images"},
        },
    ]  # fmt: skip


def _logger(component: Component) -> RunLogger:
    try:
        return component.build({})
    except UsageError as error:  # its package is not installed here
        raise CheckSkipped(first_line(str(error))) from None


def _follow_a_run(logger: RunLogger, run_dir: Path, resumed: bool, step: int) -> None:
    config = copy.deepcopy(LOGGER_CONFIG)
    records = [record | {"step": record["step"] + step} for record in _logger_records()]
    given = copy.deepcopy(records)
    process_hooks = (sys.exit, sys.excepthook)
    logger.start(config, run_dir, resumed)
    images = torch.linspace(-1, 1, 4 * 28 * 28).reshape(4, 1, 28, 28)
    if not resumed:
        logger.images("real", images.clone(), 0)
    for record in records:
        logger.log(record)
    logger.images("generated", images.clone(), 4 + step)
    logger.finish("finished")
    expect(config == LOGGER_CONFIG, "the logger changed the config it was given")
    expect(records == given, "the logger changed a record it was given")
    expect(
        (sys.exit, sys.excepthook) == process_hooks,
        "the logger replaced sys.exit or sys.excepthook: it must leave the process as it found it",
    )


def check_logger_follows_a_run(component: Component) -> None:
    """start, log (a step, an epoch and an evaluation record), images (real and generated), finish: no error, and
    nothing it was given changed."""
    with tempfile.TemporaryDirectory() as folder:
        _follow_a_run(_logger(component), Path(folder), resumed=False, step=0)


def check_logger_follows_a_resumed_run(component: Component) -> None:
    """A run stopped and resumed in the same folder: a second logger follows it on, steps going on from the first."""
    with tempfile.TemporaryDirectory() as folder:
        _follow_a_run(_logger(component), Path(folder), resumed=False, step=0)
        _follow_a_run(_logger(component), Path(folder), resumed=True, step=4)


CHECKS: dict[Kind, tuple[Check, ...]] = {
    Kind.ARCHITECTURE: (
        check_default_params,
        check_params_json_round_trip,
        check_generator_output,
        check_discriminator_output,
        check_discriminator_returns_logits,
        check_gradients_reach_every_parameter,
        check_train_and_eval_modes,
        check_state_dict_round_trip,
        check_same_seed_same_output,
        check_moves_to_another_device,
        check_labels_change_the_output,
        check_every_label_works,
        check_labels_out_of_range_are_refused,
    ),
    Kind.LOSS: (
        check_default_params,
        check_params_json_round_trip,
        check_loss_is_a_finite_differentiable_scalar,
        check_loss_direction,
        check_penalty_is_per_sample,
    ),
    Kind.DATASET: (
        check_default_params,
        check_params_json_round_trip,
        check_items_match_the_spec,
        check_length_is_stable,
        check_picklable,
    ),
    Kind.METRIC: (
        check_default_params,
        check_params_json_round_trip,
        check_identical_sets_score_no_difference,
        check_shifted_set_scores_worse,
    ),
    Kind.AUGMENTATION: (
        check_default_params,
        check_params_json_round_trip,
        check_augmentation_keeps_shape_and_dtype,
        check_augmentation_is_identity_at_strength_zero,
        check_augmentation_is_differentiable,
        check_augmentation_draws_from_the_generator_given,
    ),
    Kind.LOGGER: (
        check_default_params,
        check_params_json_round_trip,
        check_logger_follows_a_run,
        check_logger_follows_a_resumed_run,
    ),
}


def checks_for(component: Component) -> tuple[Check, ...]:
    return CHECKS[component.kind]


@dataclass(frozen=True)
class CheckResult:
    component: str
    kind: str
    check: str
    status: str  # "passed", "failed", "skipped", or "known failure" (declared at registration, still failing)
    message: str = ""


def run_check(component: Component, check: Check) -> CheckResult:
    """Run one check; a failure the component declared (``known_failures`` at registration) is a known
    failure, and a declared one that passes is a failure: the declaration must go."""
    outcome = _run_check(component, check)
    reason = component.known_failures.get(check.__name__)
    if reason is None or outcome.status == "skipped":
        return outcome
    if outcome.status == "failed":
        return dataclasses.replace(outcome, status="known failure", message=f"{reason} ({outcome.message})")
    return dataclasses.replace(
        outcome,
        status="failed",
        message=f"declared a known failure ({reason}) but passed: remove {check.__name__} from its known_failures",
    )


def _run_check(component: Component, check: Check) -> CheckResult:
    def result(status: str, message: str = "") -> CheckResult:
        return CheckResult(component.qualified_name, component.kind.value, check.__name__, status, message)

    with torch.random.fork_rng(devices=[]):
        try:
            check(component)
        except CheckSkipped as skipped:
            return result("skipped", str(skipped))
        except ContractError as error:
            return result("failed", str(error))
        except Exception as error:  # the component crashed: that breaks its contract too
            return result("failed", f"raised {type(error).__name__}: {error}")
    return result("passed")


def check_component(component: Component) -> list[CheckResult]:
    """Run every check of the component's kind; failures are returned, not raised."""
    return [run_check(component, check) for check in checks_for(component)] + _unknown_known_failures(component)


def _unknown_known_failures(component: Component) -> list[CheckResult]:
    """A known failure naming no check of the component's kind is a mistake: most likely a typo."""
    names = [check.__name__ for check in checks_for(component)]
    return [
        CheckResult(
            component.qualified_name,
            component.kind.value,
            declared,
            "failed",
            f"known_failures names {declared}, which is not a check of {component.kind.plural}; "
            f"they are: {', '.join(names)}",
        )
        for declared in component.known_failures
        if declared not in names
    ]


def parametrize_with_checks(components: Iterable[Component], expected_failures: dict[str, str] | None = None):
    """A ``pytest.mark.parametrize`` over (component, check) with ids ``dist:name-check_x``.

    A component's own ``known_failures`` (declared when it registers) are marked xfail, strict: a
    fixed one fails until the declaration goes. ``expected_failures`` adds marks for this test run
    only: it maps a check name (every component's) or a test id ``dist:name-check_x`` (one
    component's; ``dist`` is the distribution's name) to the reason.
    """
    import pytest

    expected_failures = expected_failures or {}
    params = []
    for component in components:
        for check in checks_for(component):
            test_id = f"{component.qualified_name}-{check.__name__}"
            reason = (
                expected_failures.get(test_id)
                or expected_failures.get(check.__name__)
                or component.known_failures.get(check.__name__)
            )
            marks = [pytest.mark.xfail(reason=reason, strict=True, raises=ContractError)] if reason else []
            params.append(pytest.param(component, check, id=test_id, marks=marks))
    return pytest.mark.parametrize(("component", "check"), params)


def assert_check(component: Component, check: Check) -> None:
    """For tests: run one check; a failure raises ContractError, a skip calls pytest.skip.

    A declared known failure raises too: ``parametrize_with_checks`` marks it xfail (strict), so
    pytest expects the failure and fails the test once the check passes.
    """
    result = _run_check(component, check)
    if result.status == "skipped":
        import pytest

        pytest.skip(result.message)
    if result.status == "failed":
        raise ContractError(f"{result.component} fails {result.check}: {result.message}")
