"""What a checkpoint holds: each part of a run gives its own state, laid out in one flat dict.

Fabric's shape: the trainer names its parts; ``compose_checkpoint`` asks each for its
``state_dict()``, and a resume hands each part the whole dict to take its own keys from
(``load_state_dict``). The parts: the training step (networks, optimisers, gradient scalers, the
EMA copy, ADA, the noise generators: training/step.py), the scheduled values the next step takes
(training/scheduling.py), the batch order with its mid-epoch position
(training/batches.py), the run's progress (epoch, step, best: ``RunProgress`` here), the count of
metrics.jsonl's lines (the run folder's metrics file), and each process's own part, gathered onto
rank 0 (training/process_state.py). The layout is the one ganforge has always saved, so older
checkpoints load as before: flat keys, and one ``rng`` dict shared by the step's noise generators
and the batch order's data generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ganforge import __version__
from ganforge.contracts import DataSpec

# The keys of a checkpoint, in the order they are saved.
CHECKPOINT_LAYOUT = (
    "ganforge_version",
    "config",
    "data_spec",
    "latent_dim",
    "epoch",
    "step",
    "epoch_step",
    "generator",
    "discriminator",
    "ema_generator",
    "optimizer_generator",
    "optimizer_discriminator",
    "grad_scalers",
    "rng",
    "adaptive_augmentation",
    "schedules",
    "best",
    "metrics_records",
    "processes",
)
SHARED_KEYS = frozenset({"rng"})  # dicts that several parts fill, each with keys of its own


class Saved(Protocol):
    """A part of a run that a checkpoint holds: its own keys of the checkpoint's dict."""

    def state_dict(self) -> dict[str, Any]: ...


class Stateful(Saved, Protocol):
    """A part that a resume sets again, reading its own keys of the checkpoint's dict."""

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class RunProgress:
    """Where a run stands: the epochs finished, the steps taken, the best evaluation so far."""

    epoch: int = 0
    step: int = 0
    best: dict[str, Any] | None = None

    @property
    def epoch_in_progress(self) -> int:
        """The epoch being trained, counted from 1 (``epoch`` counts those finished): what records and messages name."""
        return self.epoch + 1

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "step": self.step, "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = state["epoch"]
        self.step = state["step"]
        self.best = state.get("best")


def run_description(config: dict[str, Any], spec: DataSpec, latent_dim: int) -> dict[str, Any]:
    """What a checkpoint says of the run it comes from, for ``sample`` and ``eval`` to rebuild its generator."""
    return {
        "ganforge_version": __version__,
        "config": config,
        "data_spec": {
            "shape": list(spec.shape),
            "num_classes": spec.num_classes,
            "class_names": list(spec.class_names) if spec.class_names is not None else None,
        },
        "latent_dim": latent_dim,
    }


def compose_checkpoint(
    description: dict[str, Any], parts: Sequence[Saved], every_process: list[dict[str, Any]]
) -> dict[str, Any]:
    """The checkpoint's dict: the run's description, each part's state, and every process's own part."""
    state = dict(description)
    for part in parts:
        for key, value in part.state_dict().items():
            if key in state and key not in SHARED_KEYS:
                raise ValueError(f"two parts of the run save {key!r}")
            state[key] = {**state[key], **value} if key in state else value
    state["processes"] = every_process
    return {key: state.pop(key) for key in CHECKPOINT_LAYOUT if key in state} | state


def load_checkpoint_state(parts: Sequence[Stateful], state: dict[str, Any]) -> None:
    """Each part takes its own keys of ``state``, in the order given (a later part may reseed what an earlier set)."""
    for part in parts:
        part.load_state_dict(state)


@dataclass(frozen=True)
class EpochPlan:
    """What the config being resumed makes of an epoch: its images, batch size and steps, and how many epochs."""

    images: int
    batch_size: int
    steps: int
    epochs: int


def position_contradiction(state: dict[str, Any], plan: EpochPlan) -> str | None:
    """Where a checkpoint says the run stands, against the config it is resumed with; None when they agree.

    Its fields agree with each other already (fields.py); the config may have changed since: a resume that
    trained nothing, or went on from other images than the ones the checkpoint's epoch_step counted, is
    refused instead. ``state`` is a checked checkpoint's.
    """
    epoch, epoch_step = state["epoch"], state.get("epoch_step", 0)
    train = state["config"].get("train")
    saved_batch = train.get("batch_size") if isinstance(train, dict) else None
    if epoch > plan.epochs or (epoch == plan.epochs and epoch_step):
        where = f"epoch: {epoch} epochs finished" + (f" and {epoch_step} steps of the next" if epoch_step else "")
        return (
            f"{where}, beyond train.epochs {plan.epochs} of the config being resumed: nothing would be trained; "
            f"to train on, resume with --set train.epochs=N, N above {epoch}"
        )
    if epoch_step and isinstance(saved_batch, int) and saved_batch != plan.batch_size:
        return (
            f"epoch_step: saved {epoch_step} steps into epoch {epoch + 1} at train.batch_size {saved_batch}; going on "
            f"at train.batch_size {plan.batch_size} would skip other images than those trained; resume this "
            f"checkpoint with --set train.batch_size={saved_batch} (or one saved at an epoch's end, epoch_NNNN.pt)"
        )
    # epoch_step == steps: a timed save after an epoch's last step, before its end; the resume ends that epoch.
    if epoch_step > plan.steps:
        return (
            f"epoch_step: {epoch_step} steps of the epoch in progress, but an epoch of {plan.images} images at "
            f"train.batch_size {plan.batch_size} has {plan.steps} steps"
        )
    return None
