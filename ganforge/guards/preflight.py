"""The pre-flight check: one small batch through the run's own networks and loss before the run folder exists.

What the training step relies on and one batch can show (ganforge/contracts/, whose predicates
test it): the dataset's images have its spec's shape and lie in [-1, 1]; G(z), z ~ N(0, I), gives
images of that shape in [-1, 1]; D gives one finite logit per image, shape [B]; both losses are
finite scalars that depend on the scores. A component that breaks one is named with its plugin and
distribution, with what was expected and what came (a ContractViolation, which is a UsageError),
before anything is written; a discriminator whose scores all look like probabilities gets a
warning. It runs on the run's device with the run's own modules, so it also catches what the
plugin's contract tests (ganforge.testing, on the CPU with default params) could not: the user's
params, the user's data, the device.

The check changes nothing the run goes on with, so a run gives the same weights with it as without:
it runs on copies of the networks and the loss (:func:`own_copies`), so that whatever state a
component keeps (a call counter, a running mean of the scores) the run's own is untouched; its noise
comes from a generator of its own, and torch's generators (the CPU's and the device's) are forked
around it for any a component draws from; the networks run in eval mode (no batch-norm statistics or
spectral-norm vectors updated), and where they could not be copied, the originals go back to their
own modes with every buffer as it was; no optimiser, EMA copy or gradient is touched (the losses
build a graph, never a backward pass).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ganforge.config import ResolvedRun
from ganforge.contracts import (
    ContractViolation,
    GANLoss,
    GANModels,
    all_finite,
    are_class_logits,
    are_scores,
    are_scores_and_class_logits,
    describe_value,
    discriminator_output,
    generator_loss_of,
    has_shape,
    in_signed_unit,
    is_differentiable,
    is_scalar,
    require,
    synthesize,
    value_range,
)
from ganforge.generation import balanced_labels
from ganforge.registry import Component

PREFLIGHT_BATCH = 4
NOISE_SEED = 0
# A logit discriminator's scores grow with its input; a sigmoid's stay in [0, 1] whatever it is given.
# Untrained logit discriminators often score a batch of real images within [0, 1] (a third of the
# built-ins' seeds did); none of them did on those images scaled by this factor.
PROBE_SCALE = 100.0
PREFIX = "pre-flight check: "


def own_copies(models: GANModels, loss: GANLoss) -> tuple[GANModels, GANLoss]:
    """Copies of the networks and the loss for the check, or the originals where they cannot be copied.

    Copied together, so that a module the networks or the loss share stays shared. A copy of the
    weights is less than training takes on top of them (gradients and Adam's moments, not yet made).
    """
    try:
        generator, discriminator, copied_loss = copy.deepcopy((models.generator, models.discriminator, loss))
    except Exception:  # a plugin's object that refuses to be copied: the originals, their state restored after
        return models, loss
    return dataclasses.replace(models, generator=generator, discriminator=discriminator), copied_loss


def check_components(
    run: ResolvedRun,
    models: GANModels,
    loss: GANLoss,
    real_images: torch.Tensor,
    device: torch.device,
    image_shape: tuple[int, int, int],
    real_labels: torch.Tensor | None = None,
) -> list[str]:
    """Raise ContractViolation for the first broken contract; return warnings (probabilities for logits).

    ``models`` are the plain networks the run trains, on ``device``, and ``loss`` its loss, best
    :func:`own_copies` of them; ``real_images`` the dataset's first images (on any device), of which
    the first ``PREFLIGHT_BATCH`` are used, with their ``real_labels`` for conditional models.
    """
    real = real_images[:PREFLIGHT_BATCH]
    check_dataset_images(run.data.component, real, image_shape)
    architecture = run.model.component
    labels = fake_labels = None
    if models.conditional:
        if real_labels is None:
            raise ValueError("a conditional model's pre-flight check needs the real images' labels")
        labels = real_labels[:PREFLIGHT_BATCH].to(device)
        fake_labels = balanced_labels(len(real), models.num_classes).to(device)
    with networks_left_as_they_were([models.generator, models.discriminator], device):
        with torch.no_grad():
            fake = check_generator(
                architecture, models.generator, models.latent_dim, len(real), image_shape, device, fake_labels
            )
        real = real.to(device)
        real_scores = check_scores(architecture, models, real, "images from the dataset", labels)
        fake_scores = check_scores(architecture, models, fake, "generated images", fake_labels)
        check_losses(run.loss.component, loss, real_scores, fake_scores)
        scores = torch.cat([real_scores, fake_scores]).detach()
        both_labels = None if labels is None or fake_labels is None else torch.cat([labels, fake_labels]).repeat(2)
        if looks_like_probabilities(models.discriminator, torch.cat([real, fake]), scores, both_labels):
            return [probabilities_warning(architecture)]
    return []


@contextmanager
def networks_left_as_they_were(networks: list[nn.Module], device: torch.device) -> Iterator[None]:
    """The networks in eval mode inside, with torch's generators forked; afterwards modes and buffers as before."""
    modes = [(module, module.training) for network in networks for module in network.modules()]
    buffers = [
        (module, name, buffer, buffer.detach().clone())
        for network in networks
        for module in network.modules()
        for name, buffer in module.named_buffers(recurse=False)
    ]
    forked: list[int] = []  # the CPU's generator is always forked; a GPU's where the run trains on one
    if device.type == "cuda":
        forked.append(device.index if device.index is not None else torch.cuda.current_device())
    try:
        with torch.random.fork_rng(devices=forked):
            for network in networks:
                network.eval()
            yield
    finally:
        with torch.no_grad():
            for module, name, buffer, saved in buffers:
                if getattr(module, name, None) is not buffer:  # replaced, not updated in place: the original goes back
                    setattr(module, name, buffer)
                if not torch.equal(buffer, saved):
                    buffer.copy_(saved)
        for module, mode in modes:
            module.training = mode


def check_dataset_images(dataset: Component, images: torch.Tensor, image_shape: tuple[int, int, int]) -> None:
    """The dataset's own images: what its spec says, in [-1, 1] (else D would be blamed for the data's mistake)."""
    who = f"{PREFIX}{dataset.describe()} gives images"
    require(
        has_shape(images, (len(images), *image_shape)),
        f"{who} of shape {shape_text(images.shape[1:])}, but its DataSpec says {shape_text(image_shape)} "
        "(C, H, W); the two must agree",
    )
    require_finite_in_signed_unit(
        images,
        f"{who} with",
        "",
        "the contract is float images in [-1, 1] (ganforge.contracts.to_signed_unit converts 8-bit pixels)",
    )


def check_generator(
    architecture: Component,
    generator: nn.Module,
    latent_dim: int,
    batch: int,
    image_shape: tuple[int, int, int],
    device: torch.device,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """G(z) (or G(z, y)) for z ~ N(0, I) ``[batch, latent_dim]``: images ``[batch, C, H, W]``, finite, in [-1, 1]."""
    noise = torch.randn(batch, latent_dim, generator=torch.Generator().manual_seed(NOISE_SEED)).to(device)
    images = synthesize(generator, noise, labels)
    who = f"{PREFIX}the generator of {architecture.describe()}"
    expected = (batch, *image_shape)
    require(
        isinstance(images, torch.Tensor), f"{who} returned {describe_value(images)}; the contract is a tensor of images"
    )
    require(
        has_shape(images, expected),
        f"{who} returned shape {shape_text(images.shape)} for noise of shape {shape_text(noise.shape)}; the "
        f"contract is images of shape [B, C, H, W] = {shape_text(expected)}, the dataset's (C, H, W) for each z",
    )
    require_finite_in_signed_unit(
        images,
        f"{who} returned",
        " for z ~ N(0, I)",
        "the contract is images in [-1, 1], as the data is (end the generator in tanh)",
    )
    return images


def require_finite_in_signed_unit(images: torch.Tensor, who_did: str, when: str, contract: str) -> None:
    """Images finite and within [-1, 1], else a violation naming who gave what and what the contract is."""
    require(all_finite(images), f"{who_did} non-finite values (nan or inf){when}; {contract}")
    low, high = value_range(images)
    require(in_signed_unit(images), f"{who_did} values in [{low:.4g}, {high:.4g}]{when}; {contract}")


def check_scores(
    architecture: Component, models: GANModels, images: torch.Tensor, which: str, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """D(images) (or D(images, y)): one finite logit per image, shape exactly ``[B]``; with class logits, those
    ``[B, num_classes]`` beside them."""
    output = discriminator_output(models.discriminator, images, labels)
    batch = images.shape[0]
    who = f"{PREFIX}the discriminator of {architecture.describe()}"
    scores = output
    if models.class_logits:
        scores = check_class_logits(who, output, batch, models.num_classes or 0, which)
    require(
        isinstance(scores, torch.Tensor),
        f"{who} returned {describe_value(scores)}; the contract is a tensor of logits [B]",
    )
    if not are_scores(scores, batch):
        hint = ""
        if scores.numel() == batch:
            hint = " (flatten its last layer's output: .view(-1), or .squeeze(1) for [B, 1])"
        raise ContractViolation(
            f"{who} returned shape {shape_text(scores.shape)} for a batch of {batch} {which}; the contract is "
            f"logits of shape [B] = [{batch}]{hint}"
        )
    require(all_finite(scores), f"{who} returned non-finite scores (nan or inf) for a batch of {batch} {which}")
    return scores.float()


def check_losses(loss: Component, built: GANLoss, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> None:
    """Both losses on the discriminator's scores: finite scalars that depend on the scores."""
    results = (
        ("discriminator_loss", built.discriminator_loss(real_scores, fake_scores)),
        ("generator_loss", generator_loss_of(built, fake_scores, real_scores)),
    )
    graphed = real_scores.requires_grad and fake_scores.requires_grad
    for method, value in results:
        who = f"{PREFIX}{loss.describe()}: its {method}"
        scores = f"scores of shape {shape_text(fake_scores.shape)}"
        require(
            isinstance(value, torch.Tensor), f"{who} returned {describe_value(value)}; the contract is a scalar tensor"
        )
        require(
            is_scalar(value),
            f"{who} returned shape {shape_text(value.shape)} for {scores}; the contract is a scalar "
            "(reduce over the batch: .mean())",
        )
        require(all_finite(value), f"{who} returned {value.item()} for finite {scores}; the contract: a finite value")
        require(
            not graphed or is_differentiable(value),
            f"{who} returned a value that does not depend on the scores (no gradient reaches the networks); "
            "compute it from the scores with torch operations, without .item() or .detach()",
        )


def check_class_logits(who: str, output: Any, batch: int, num_classes: int, which: str) -> Any:
    """A discriminator with class logits returns ``(scores, class_logits [B, K])``; the scores, for the checks after."""
    expected = f"(scores [{batch}], class_logits [{batch}, {num_classes}])"
    require(
        are_scores_and_class_logits(output),
        f"{who} returned {describe_value(output)} for a batch of {batch} {which}; its GANModels has class_logits, "
        f"so the contract is a pair {expected}",
    )
    scores, class_logits = output
    if not are_class_logits(class_logits, batch, num_classes):
        got = shape_text(class_logits.shape) if isinstance(class_logits, torch.Tensor) else describe_value(class_logits)
        raise ContractViolation(
            f"{who} returned class logits {got} for a batch of {batch} {which}; the contract is {expected}"
        )
    require(all_finite(class_logits), f"{who} returned non-finite class logits for a batch of {batch} {which}")
    return scores


def looks_like_probabilities(
    discriminator: nn.Module, images: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor | None = None
) -> bool:
    """Whether D's scores stay in [0, 1] on these images and on them scaled far out of range (a sigmoid's would)."""
    if not within_unit_interval(scores):
        return False
    try:
        scaled = torch.cat([images * PROBE_SCALE, images * -PROBE_SCALE])
        with torch.no_grad():
            probed = discriminator_output(discriminator, scaled, labels)
        if isinstance(probed, tuple):
            probed = probed[0]
    except Exception:  # out-of-range images are no part of the contract: judge by the batch alone
        return True
    return not isinstance(probed, torch.Tensor) or within_unit_interval(probed)


def within_unit_interval(values: torch.Tensor) -> bool:
    return bool(((values >= 0) & (values <= 1)).all())


def probabilities_warning(architecture: Component) -> str:
    return (
        f"{PREFIX}every score of the discriminator of {architecture.describe()} lies in [0, 1], even for "
        "images scaled far out of range: they look like probabilities (a sigmoid at its end?), but the losses "
        "expect raw logits and apply the sigmoid themselves; training goes on, though it may not learn"
    )


def shape_text(shape: Any) -> str:
    return "[" + ", ".join(str(size) for size in shape) + "]"
