"""Contract checks of architectures: G's images, D's logits, gradients, modes, state dicts, seeds, devices, labels.

Each check builds the architecture with its default params and with every ``check_params``
variant it registered, on data with NUM_CLASSES classes. Conditional models are called with
labels (G(z, y), D(x, y)), as training calls them; the label checks skip unconditional ones.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from typing import Any

import torch
from torch import nn

from ganforge.contracts import (
    ContractViolation,
    DataSpec,
    GANModels,
    all_finite,
    are_class_logits,
    are_scores,
    are_scores_and_class_logits,
    describe_value,
    discriminate,
    discriminator_output,
    has_shape,
    in_signed_unit,
    require,
    synthesize,
    value_range,
)
from ganforge.errors import first_line
from ganforge.generation import balanced_labels
from ganforge.registry import Component
from ganforge.testing.checks.common import SEED, CheckSkipped

Shape = tuple[int, int, int]
# MNIST-sized grey and CIFAR-sized colour: every architecture is checked at both unless asked for others.
DEFAULT_SHAPES: tuple[Shape, ...] = ((1, 28, 28), (3, 32, 32))
# A context variable rather than a parameter of every check, so that a check keeps the one-argument signature
# plugin authors call and parametrize; the first shape is the one the single-shape checks use.
_CHECKED_SHAPES: ContextVar[tuple[Shape, ...]] = ContextVar("ganforge_checked_shapes", default=DEFAULT_SHAPES)
BATCH_SIZES = (1, 4)
NUM_CLASSES = 10


@contextmanager
def data_shapes(shapes: Iterable[Shape] | None) -> Iterator[None]:
    """Check architectures on these data shapes (C, H, W) inside the block; None keeps the defaults."""
    chosen = tuple(shapes) if shapes is not None else DEFAULT_SHAPES
    if not chosen:
        raise ValueError("data_shapes needs at least one shape")
    token = _CHECKED_SHAPES.set(chosen)
    try:
        yield
    finally:
        _CHECKED_SHAPES.reset(token)


def checked_shapes() -> tuple[Shape, ...]:
    return _CHECKED_SHAPES.get()


def _variants(component: Component) -> list[dict[str, Any]]:
    return [{}, *(dict(variant) for variant in component.check_params)]


def _where(params: dict[str, Any]) -> str:
    """How a failure names the variant: nothing for the defaults."""
    return f"with params {params}: " if params else ""


def _build_models(component: Component, shape: Shape, params: dict[str, Any] | None = None) -> GANModels:
    torch.manual_seed(SEED)
    return component.build(params or {}, DataSpec(shape, num_classes=NUM_CLASSES))


def _each_model(component: Component, shapes: Iterable[Shape] | None = None):
    """``(models, shape, where)`` for each params variant and data shape (the checked ones unless given), freshly
    built and seeded."""
    for params in _variants(component):
        for shape in shapes if shapes is not None else checked_shapes():
            yield _build_models(component, shape, params), shape, _where(params)


def _labels(models: GANModels, batch: int) -> torch.Tensor | None:
    """Labels for a batch, each class in turn (as ganforge samples); None for unconditional models."""
    if not models.conditional:
        return None
    return balanced_labels(batch, models.num_classes)


def _generate(models: GANModels, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    return synthesize(models.generator, z, labels if labels is not None else _labels(models, len(z)))


def _judge(models: GANModels, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    labels = labels if labels is not None else _labels(models, len(images))
    output = discriminator_output(models.discriminator, images, labels)
    if models.class_logits:
        require(
            are_scores_and_class_logits(output),
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
            require(
                has_shape(images, (batch, *shape)),
                f"{where}for data {shape} and batch {batch}, G(z) has shape {tuple(images.shape)}, expected "
                f"{(batch, *shape)}",
            )
            low, high = value_range(images)
            require(
                in_signed_unit(images), f"{where}G(z) must lie in [-1, 1] (end in tanh); got [{low:.3f}, {high:.3f}]"
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
                    require(
                        are_class_logits(class_logits, batch, models.num_classes),
                        f"{where}D's class logits have shape {tuple(class_logits.shape)}, expected "
                        f"({batch}, {models.num_classes})",
                    )
            require(are_scores(scores, batch), f"{where}D(x) has shape {tuple(scores.shape)}, expected ({batch},)")
            require(all_finite(scores), f"{where}D(x) has non-finite values")


def check_discriminator_returns_logits(component: Component) -> None:
    """D's scores are logits, not probabilities: trained to separate two sets, they leave [0, 1]."""
    for models, shape, where in _each_model(component, checked_shapes()[:1]):
        real, fake = torch.full((8, *shape), 0.5), torch.full((8, *shape), -0.5)
        bottom, top = _separating_scores(models, real, fake)
        require(
            top > 1 or bottom < 0,
            f"{where}after training to separate two image sets, D's scores stay within [{bottom:.3f}, {top:.3f}] "
            "inside [0, 1]: it looks like D returns probabilities; return raw logits and leave the sigmoid to the loss",
        )


def _separating_scores(
    models: GANModels, real: torch.Tensor, fake: torch.Tensor, steps: int = 60, look_every: int = 10
) -> tuple[float, float]:
    """D trained for up to ``steps`` steps to tell ``real`` from ``fake``: its lowest score of fake and highest of real
    (in eval mode), as soon as they leave [0, 1] (logits do within a few steps; probabilities never)."""
    discriminator = models.discriminator
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-2)
    for step in range(1, steps + 1):
        discriminator.train()
        scores_real, scores_fake = _judge(models, real), _judge(models, fake)
        loss = nn.functional.softplus(-scores_real).mean() + nn.functional.softplus(scores_fake).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % look_every == 0 or step == steps:
            discriminator.eval()
            with torch.no_grad():
                top, bottom = _judge(models, real).max().item(), _judge(models, fake).min().item()
            if top > 1 or bottom < 0:
                break
    return bottom, top


def check_gradients_reach_every_parameter(component: Component) -> None:
    """A step on D(G(z)) reaches every generator parameter; a step on D(x) every discriminator one. Where a
    zero-initialised layer holds the layers before it back (SkipInit, Fixup, R3GAN's residual branches), they must
    be reached once the parameters that were reached have taken one step."""
    for models, shape, where in _each_model(component):
        models.generator.train()
        models.discriminator.train()
        # Every label of the class count at least once, so that each class's own parameters get a gradient.
        batch = max(4, models.num_classes or 0)
        labels = _labels(models, batch)
        z, real = torch.randn(batch, models.latent_dim), torch.rand(batch, *shape) * 2 - 1
        _expect_gradients(
            models.generator,
            partial(_discriminator_output_of_generated, models, z, labels),
            f"{where}D(G(z)) gives no gradient to generator parameter(s)",
        )
        _expect_gradients(
            models.discriminator,
            partial(_discriminator_output, models, real, labels),
            f"{where}D(x) gives no gradient to discriminator parameter(s)",
        )


def _discriminator_output_of_generated(models: GANModels, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    return _discriminator_output(models, _generate(models, z, labels), labels)


def _discriminator_output(models: GANModels, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The sum of D's scores and, where it has them, of its class logits: a scalar every D parameter feeds."""
    labels = labels if labels is not None else _labels(models, len(images))
    scores, class_logits = discriminate(models.discriminator, images, labels)
    return scores.sum() + (class_logits.sum() if class_logits is not None else 0)


def _expect_gradients(network: nn.Module, output: Callable[[], torch.Tensor], failure: str) -> None:
    missing = _parameters_not_reached(network, output)
    if missing:
        _step_what_was_reached(network)
        missing = _parameters_not_reached(network, output)
    require(not missing, f"{failure} {', '.join(missing)}")


def _parameters_not_reached(network: nn.Module, output: Callable[[], torch.Tensor]) -> list[str]:
    network.zero_grad(set_to_none=True)
    output().backward()
    return [name for name, p in network.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]


def _step_what_was_reached(network: nn.Module, size: float = 1e-2) -> None:
    """A signed step, so that a tiny gradient still moves its zero-initialised parameter off zero."""
    with torch.no_grad():
        for parameter in network.parameters():
            if parameter.grad is not None:
                parameter.sub_(size * parameter.grad.sign())


def check_train_and_eval_modes(component: Component) -> None:
    """Both networks run in train and in eval mode."""
    for models, _shape, _where_text in _each_model(component, checked_shapes()[:1]):
        for mode in (True, False):
            models.generator.train(mode)
            models.discriminator.train(mode)
            with torch.no_grad():
                _judge(models, _generate(models, torch.randn(2, models.latent_dim)))


def check_state_dict_round_trip(component: Component) -> None:
    """Weights saved and loaded into a fresh build give the same outputs (checkpoints depend on it)."""
    for params in _variants(component):
        models = _build_models(component, checked_shapes()[0], params)
        buffer = io.BytesIO()
        torch.save({"g": models.generator.state_dict(), "d": models.discriminator.state_dict()}, buffer)
        buffer.seek(0)
        saved = torch.load(buffer, weights_only=True)
        torch.manual_seed(SEED + 1)
        fresh = component.build(params, DataSpec(checked_shapes()[0], num_classes=NUM_CLASSES))
        fresh.generator.load_state_dict(saved["g"])
        fresh.discriminator.load_state_dict(saved["d"])
        z = torch.randn(3, models.latent_dim)
        for network in (models.generator, models.discriminator, fresh.generator, fresh.discriminator):
            network.eval()
        where = _where(params)
        with torch.no_grad():
            images = _generate(models, z)
            require(torch.equal(images, _generate(fresh, z)), f"{where}G differs after a state_dict round trip")
            require(
                torch.equal(_judge(models, images), _judge(fresh, images)),
                f"{where}D differs after a state_dict round trip",
            )


def check_same_seed_same_output(component: Component) -> None:
    """The same seed builds the same networks: runs are reproducible."""
    for params in _variants(component):
        first = _build_models(component, checked_shapes()[0], params)
        second = _build_models(component, checked_shapes()[0], params)
        z = torch.randn(2, first.latent_dim)
        first.generator.eval()
        second.generator.eval()
        with torch.no_grad():
            require(
                torch.equal(_generate(first, z), _generate(second, z)),
                f"{_where(params)}two builds with the same seed differ",
            )


def check_moves_to_another_device(component: Component) -> None:
    """The networks move to CUDA and run there (only where a GPU is present)."""
    if not torch.cuda.is_available():
        raise CheckSkipped("no CUDA device here")
    for params in _variants(component):
        models = _build_models(component, checked_shapes()[0], params)
        models.generator.cuda()
        models.discriminator.cuda()
        labels = _labels(models, 2)
        labels = labels.cuda() if labels is not None else None
        scores = _judge(models, _generate(models, torch.randn(2, models.latent_dim, device="cuda"), labels), labels)
        require(scores.device.type == "cuda", f"{_where(params)}scores came back on {scores.device}")


def _conditional_models(component: Component):
    """``(models, where)`` for each conditional variant; CheckSkipped where there is none."""
    found = False
    for params in _variants(component):
        models = _build_models(component, checked_shapes()[0], params)
        if models.conditional:
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
            require(
                not torch.equal(images[0], images[1]),
                f"{where}G(z, 0) and G(z, 1) are the same image: the generator ignores its labels",
            )
            if models.class_logits:
                continue  # D predicts the class rather than reading it: its class logits are checked for shape
            image = images[:1].repeat(models.num_classes, 1, 1, 1)
            scores = _judge(models, image, every_label)
            require(
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
        low, high = value_range(images)
        require(in_signed_unit(images), f"{where}G(z, y) left [-1, 1] for some label: [{low:.3f}, {high:.3f}]")
        require(all_finite(scores), f"{where}D(x, y) is not finite for some label")


def check_labels_out_of_range_are_refused(component: Component) -> None:
    """A label outside [0, num_classes) raises an error that names the class count, in G and in D."""
    for models, where in _conditional_models(component):
        count = models.num_classes
        assert count is not None
        models.generator.eval()
        models.discriminator.eval()
        z, images = torch.randn(2, models.latent_dim), torch.rand(2, *checked_shapes()[0]) * 2 - 1
        calls = [("G(z, y)", models.generator, z)]
        if not models.class_logits:  # a classifier D reads no labels: nothing to refuse
            calls.append(("D(x, y)", models.discriminator, images))
        for role, network, first_input in calls:
            for bad in (count, -1):
                try:
                    with torch.no_grad():
                        network(first_input, torch.tensor([0, bad]))
                except Exception as error:
                    require(
                        str(count) in str(error),
                        f"{where}{role} with label {bad} for {count} classes raised {type(error).__name__}: "
                        f"{first_line(str(error))!r}, which does not say how many classes there are; refuse it "
                        "with a message naming the range (ganforge.check_labels does)",
                    )
                else:
                    raise ContractViolation(
                        f"{where}{role} accepted label {bad} for {count} classes; it must refuse it"
                    )
