"""Contract predicates: each property a component's output must have, defined once, and the one error a broken
contract raises.

The contract-test kit (``ganforge.testing``: a component alone, on the CPU, with default params) and
the pre-flight check (``ganforge.guards.preflight``: the run's own components on its data and device)
test the same properties through these predicates, each wording its failure for its reader, and
raise :class:`ContractViolation`. ``Component.build`` refuses a factory's result that is not its
kind's type (:func:`contract_problem`) before anything uses it.
"""

from __future__ import annotations

import numbers
import reprlib
from typing import Any

import torch
from torch import nn

from ganforge.contracts.conventions import (
    Augmentation,
    DataSpec,
    GANLoss,
    GANMetric,
    GANModels,
    LoadedDataset,
    RunLogger,
    Schedule,
)
from ganforge.errors import UsageError


class ContractViolation(UsageError, AssertionError):
    """A component that broke its contract, in a message that says what was expected and what came.

    A UsageError: the pre-flight check stops a run with it before the run folder is written. An
    AssertionError: the contract-test kit's failures are assertions in a plugin's tests
    (``ganforge.testing.ContractError`` is this class).
    """


def require(condition: bool, message: str) -> None:
    """Raise ContractViolation with ``message`` unless ``condition`` holds."""
    if not condition:
        raise ContractViolation(message)


# -- images, scores, losses, labels ---------------------------------------------------------------


def value_range(values: torch.Tensor) -> tuple[float, float]:
    """The lowest and the highest value, for a message (nan where any value is nan)."""
    return values.min().item(), values.max().item()


def all_finite(values: torch.Tensor) -> bool:
    """No nan, no inf: scores, losses, penalties, images."""
    return bool(torch.isfinite(values).all())


def in_signed_unit(images: torch.Tensor) -> bool:
    """Every value within [-1, 1], as images are (nan and inf are outside)."""
    low, high = value_range(images)
    return low >= -1 and high <= 1


def has_shape(values: torch.Tensor, shape: tuple[int, ...]) -> bool:
    """The tensor's shape is ``shape``: images ``[B, C, H, W]`` as the data spec says, one item ``[C, H, W]``."""
    return tuple(values.shape) == tuple(shape)


def are_scores(scores: Any, batch: int) -> bool:
    """D's scores of a batch: a tensor of shape ``[B]``, one raw logit per image."""
    return isinstance(scores, torch.Tensor) and has_shape(scores, (batch,))


def are_scores_and_class_logits(output: Any) -> bool:
    """What a discriminator with class logits returns: a pair ``(scores, class_logits)``."""
    return isinstance(output, tuple) and len(output) == 2


def are_class_logits(class_logits: Any, batch: int, num_classes: int) -> bool:
    """An ACGAN discriminator's class logits of a batch: a tensor of shape ``[B, num_classes]``."""
    return isinstance(class_logits, torch.Tensor) and has_shape(class_logits, (batch, num_classes))


def is_scalar(value: Any) -> bool:
    """A loss or a penalty: a tensor with no dimensions (reduced over the batch)."""
    return isinstance(value, torch.Tensor) and value.dim() == 0


def is_differentiable(value: torch.Tensor) -> bool:
    """A loss that gradients flow back from, to the scores and through them to the networks."""
    return value.requires_grad


def labels_in_range(labels: torch.Tensor | int, num_classes: int) -> bool:
    """Class labels, one or a tensor of them, within ``[0, num_classes)``."""
    values = torch.as_tensor(labels)
    return not values.numel() or (int(values.min()) >= 0 and int(values.max()) < num_classes)


def check_labels(labels: torch.Tensor, num_classes: int, who: str = "labels") -> None:
    """Refuse labels that are not int64 ``[B]`` in ``[0, num_classes)``, naming what would be accepted.

    For a conditional network to call on the labels it is given: its embedding would otherwise fail
    with an index error (or, on a GPU, a device-side assert) that names neither the label nor the
    class count. A ValueError, as the contract asks of the network, not a ContractViolation.
    """
    if labels.dim() != 1 or labels.dtype != torch.int64:
        raise ValueError(f"{who} must be an int64 tensor [B] of class indices, got {labels.dtype} {list(labels.shape)}")
    if not labels_in_range(labels, num_classes):
        raise ValueError(
            f"{who} must lie in [0, {num_classes}) for {num_classes} classes, got values from {int(labels.min())} "
            f"to {int(labels.max())}"
        )


# -- what a factory returns -----------------------------------------------------------------------

# Each kind's contract type, by kind (``registry.Kind`` values), and the contract in words.
CONTRACT_TYPES: dict[str, type] = {
    "architecture": GANModels,
    "loss": GANLoss,
    "dataset": LoadedDataset,
    "metric": GANMetric,
    "augmentation": Augmentation,
    "logger": RunLogger,
    "schedule": Schedule,
}
CONTRACTS = {
    "architecture": (
        "an architecture factory returns GANModels(generator, discriminator: nn.Module, latent_dim, "
        "num_classes=None, class_logits=False)"
    ),
    "loss": "a loss factory returns a GANLoss",
    "dataset": "a dataset factory returns LoadedDataset(dataset with __len__ and __getitem__, spec: DataSpec)",
    "metric": "a metric factory returns a GANMetric",
    "augmentation": "an augmentation factory returns an Augmentation",
    "logger": "a logger factory returns a RunLogger",
    "schedule": "a schedule factory returns a Schedule",
}


def contract_problem(kind: str, built: Any) -> str | None:
    """What keeps a factory's result from being its kind's contract type, in words, or None."""
    if not isinstance(built, CONTRACT_TYPES[kind]):
        return f"{describe_value(built)}, but {CONTRACTS[kind]} (see ganforge.contracts)"
    if isinstance(built, GANModels):
        return _models_problem(built)
    if isinstance(built, LoadedDataset):
        return _dataset_problem(built)
    return None


def _models_problem(models: GANModels) -> str | None:
    for role in ("generator", "discriminator"):
        part = getattr(models, role)
        if not isinstance(part, nn.Module):
            return f"GANModels whose {role} is {describe_value(part)}, not a torch.nn.Module"
    if not _is_count(models.latent_dim):
        return f"GANModels whose latent_dim is {describe_value(models.latent_dim)}, not a positive int"
    if models.num_classes is not None and not _is_count(models.num_classes):
        return f"GANModels whose num_classes is {describe_value(models.num_classes)}, not None or a positive int"
    if models.class_logits and models.num_classes is None:
        return "GANModels with class_logits but no num_classes: class logits need the classes they score"
    return None


def _dataset_problem(loaded: LoadedDataset) -> str | None:
    dataset_type = type(loaded.dataset)
    if not (hasattr(dataset_type, "__len__") and hasattr(dataset_type, "__getitem__")):
        return f"LoadedDataset whose dataset {describe_value(loaded.dataset)} has no __len__ and __getitem__"
    spec = loaded.spec
    if not isinstance(spec, DataSpec):
        return f"LoadedDataset whose spec is {describe_value(spec)}, not a DataSpec"
    shape = spec.shape
    if not (isinstance(shape, tuple | list) and len(shape) == 3 and all(_is_count(size) for size in shape)):
        return f"a DataSpec whose shape is {describe_value(shape)}, not three positive ints (C, H, W)"
    if spec.num_classes is not None and not _is_count(spec.num_classes):
        return f"a DataSpec whose num_classes is {describe_value(spec.num_classes)}, not None or a positive int"
    names = spec.class_names
    if names is not None and not (
        isinstance(names, tuple)
        and len(names) == spec.num_classes
        and all(isinstance(name, str) and name for name in names)
        and len(set(names)) == len(names)
    ):
        return (
            f"a DataSpec whose class_names are {describe_value(names)}, not None or a tuple of "
            f"{spec.num_classes} different non-empty strings, one per class"
        )
    return None


def _is_count(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value > 0


_short = reprlib.Repr()
_short.maxstring = _short.maxother = 80


def describe_value(value: Any) -> str:
    """A value's type and the start of its repr, on one line: ``tuple ('built', 8, ...)``: what came, in a message."""
    if value is None:
        return "None"
    if isinstance(value, torch.Tensor):  # its shape says more than the first of its numbers
        return f"a tensor of shape [{', '.join(map(str, value.shape))}]"
    cls = type(value)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    try:
        text = " ".join(_short.repr(value).split())
    except Exception:  # a plugin's own __repr__ may fail
        return name
    return f"{name} {text}"
