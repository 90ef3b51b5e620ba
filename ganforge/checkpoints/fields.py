"""The fields of a checkpoint that ganforge reads, checked once when it is loaded.

A checkpoint whose checksum holds may still have been written by hand or by another program:
``load_checkpoint`` checks every field that ``sample``, ``eval`` and ``run --resume`` read, so a
missing or mistyped one is named with its file instead of failing later, deep in the trainer.
Fields that ganforge does not read are let through, and so are the optional ones an older
checkpoint lacks.

The running statistics' layout (which sums, which counts) is declared here, and
training/statistics.py sums by it: a checkpoint is read by commands that build no trainer
(``sample``, ``eval``), so the format may not depend on the training code.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any

import torch
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    model_validator,
)

from ganforge.imagesets.prepared import MAX_CLASSES

# Shapes beyond this are not images ganforge could train on; refusing them keeps a crafted
# checkpoint from making an architecture allocate terabytes.
MAX_IMAGE_VALUES = 1 << 28
MAX_REPORTED_PROBLEMS = 3
MAX_CLASS_NAME = 1024  # characters of one class name (a folder name is at most 255 bytes)

# The running statistics a checkpoint keeps: D's per-step values, summed in this order.
STAT_KEYS = ("d_loss", "D(x)", "D(G(z))", "d_acc_real", "d_acc_fake")
# Where D's auxiliary classifier is trained (ACGAN): its cross-entropy, the mean of the real and the
# generated batch's (unweighted), and how often it names the class of each.
CLASS_KEYS = ("class_loss", "class_acc_real", "class_acc_fake")


@dataclass
class Counts:
    d_steps: int = 0
    g_steps: int = 0
    images: int = 0
    skipped: int = 0  # steps left out for a non-finite loss (train.on_nonfinite: skip)


def _is_tensor(value: Any) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"expected a tensor, got {type(value).__name__}")
    return value


def _is_generator_state(value: torch.Tensor) -> torch.Tensor:
    expected = torch.Generator().get_state().numel()
    if value.dtype != torch.uint8 or value.shape != (expected,):
        raise ValueError(
            f"expected a random generator's state (uint8 [{expected}]), got {value.dtype} {list(value.shape)}"
        )
    return value


def _is_byte_vector(value: torch.Tensor) -> torch.Tensor:
    if value.dtype != torch.uint8 or value.dim() != 1:
        raise ValueError(f"expected a random generator's state (a uint8 vector), got {value.dtype} {list(value.shape)}")
    return value


AnyTensor = Annotated[Any, AfterValidator(_is_tensor)]
GeneratorState = Annotated[Any, AfterValidator(_is_tensor), AfterValidator(_is_generator_state)]
DeviceGeneratorState = Annotated[Any, AfterValidator(_is_tensor), AfterValidator(_is_byte_vector)]


class _Fields(BaseModel):
    # strict: an epoch of 2.0 or True, a list where a dict belongs, are refused rather than converted.
    model_config = ConfigDict(strict=True, extra="allow")


class ComponentEntry(_Fields):
    name: str
    params: dict[str, Any]


class ConfigFields(_Fields):
    data: ComponentEntry
    model: ComponentEntry


def _plausible_image(shape: list[int]) -> list[int]:
    if math.prod(shape) > MAX_IMAGE_VALUES:
        raise ValueError(f"an image of {shape} has over {MAX_IMAGE_VALUES:,} values")
    return shape


class DataSpecFields(_Fields):
    shape: Annotated[list[PositiveInt], Field(min_length=3, max_length=3), AfterValidator(_plausible_image)]
    # Bounded, as the shape is: a class count is the size of a label embedding that the architecture allocates.
    num_classes: Annotated[int, Field(gt=0, le=MAX_CLASSES)] | None
    class_names: list[Annotated[str, Field(max_length=MAX_CLASS_NAME)]] | None = None  # older checkpoints have none

    @model_validator(mode="after")
    def _one_name_per_class(self) -> DataSpecFields:
        # `sample --class NAME` turns a name's position into a label: a name past the last class is no label.
        if self.class_names is not None and len(self.class_names) != (self.num_classes or 0):
            raise ValueError(
                f"class_names names {len(self.class_names)} classes, but num_classes is {self.num_classes}"
            )
        return self


class NoiseRandomState(_Fields):
    torch: GeneratorState
    cuda: list[DeviceGeneratorState]


class RunRandomState(NoiseRandomState):
    data: GeneratorState


class ParamGroup(_Fields):
    params: list[NonNegativeInt]
    lr: float
    betas: tuple[float, float]
    eps: float
    weight_decay: float


class OptimizerFields(_Fields):
    state: dict[int, dict[str, AnyTensor | float]]
    param_groups: list[ParamGroup]


class GradScalerFields(_Fields):
    scale: float
    growth_factor: float
    backoff_factor: float
    growth_interval: int
    growth_tracker: int = Field(alias="_growth_tracker")


class GradScalers(_Fields):
    generator: GradScalerFields | None = None
    discriminator: GradScalerFields | None = None


class RunningStatistics(_Fields):
    sums: AnyTensor
    class_sums: AnyTensor | None = None  # kept where an ACGAN head is trained
    g_loss_sums: AnyTensor
    counts: list[dict[str, NonNegativeInt]] = Field(min_length=2, max_length=2)

    def check_shapes(self, where: str) -> list[str]:
        expected = {"sums": [2, len(STAT_KEYS)], "class_sums": [2, len(CLASS_KEYS)], "g_loss_sums": [2]}
        problems = []
        for name, shape in expected.items():
            tensor = getattr(self, name)
            if tensor is None:
                continue
            if not tensor.is_floating_point():
                problems.append(f"{where}.{name}: expected floating point values, got {tensor.dtype}")
            if list(tensor.shape) != shape:
                problems.append(f"{where}.{name}: expected shape {shape}, got {list(tensor.shape)}")
        known = {field.name for field in dataclasses.fields(Counts)}
        for index, counts in enumerate(self.counts):
            if unknown := sorted(set(counts) - known):
                problems.append(f"{where}.counts.{index}: unknown counts {unknown}; known: {sorted(known)}")
        return problems


class ProcessFields(_Fields):
    rng: NoiseRandomState
    running_statistics: RunningStatistics


class BestFields(_Fields):
    metric: str
    value: float
    epoch: NonNegativeInt
    step: NonNegativeInt


def _is_probability(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError("expected a strength in [0, 1]")
    return value


class AdaptiveAugmentationFields(_Fields):
    """ADA's controller (ganforge/training/adaptive.py): its strength and the sums of the interval under way."""

    strength: Annotated[float, AfterValidator(_is_probability)]
    last_r_t: float | None
    totals: Annotated[list[float], Field(min_length=2, max_length=2)]
    steps_since: NonNegativeInt


class CheckpointFields(_Fields):
    config: ConfigFields
    data_spec: DataSpecFields
    epoch: NonNegativeInt
    step: NonNegativeInt
    epoch_step: NonNegativeInt = 0
    latent_dim: PositiveInt | None = None  # the architecture's, as built from the config: checked against it
    generator: dict[str, Any]
    discriminator: dict[str, Any]
    ema_generator: dict[str, Any] | None = None
    optimizer_generator: OptimizerFields
    optimizer_discriminator: OptimizerFields
    grad_scalers: GradScalers | None = None
    best: BestFields | None = None
    rng: RunRandomState
    processes: list[ProcessFields] | None = None
    adaptive_augmentation: AdaptiveAugmentationFields | None = None
    schedules: dict[str, float] | None = None  # the scheduled settings' values at the save point, where any
    ganforge_version: str | None = None


class SavedGenerator(_Fields):
    """What ``sample``, ``eval`` and ``export`` read about a saved generator, a checkpoint's or an export's."""

    model_config = ConfigDict(strict=True, extra="ignore")

    config: ConfigFields
    data_spec: DataSpecFields
    epoch: NonNegativeInt
    step: NonNegativeInt
    ganforge_version: str | None = None  # of the ganforge that trained it


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict[str, Any], which: str) -> None:
    """``optimizer.load_state_dict(saved)`` once every saved moment has its parameter's shape.

    torch does not compare them: a fused Adam stepping with moments of another shape writes past
    their memory (the process dies of heap corruption) and the plain one fails mid-run. A mismatch
    raises ValueError, which resuming reports as a checkpoint that does not fit the config.
    """
    current_groups, saved_groups = optimizer.param_groups, saved["param_groups"]
    if len(current_groups) == len(saved_groups):  # otherwise torch's own check names the difference
        for current, group in zip(current_groups, saved_groups, strict=True):
            for index, (parameter, saved_id) in enumerate(zip(current["params"], group["params"], strict=False)):
                for key, value in saved["state"].get(saved_id, {}).items():
                    if not isinstance(value, torch.Tensor):
                        continue
                    expected = () if key == "step" else tuple(parameter.shape)
                    if tuple(value.shape) != expected and not (key == "step" and value.numel() == 1):
                        raise ValueError(
                            f"{which} optimizer state {key!r} of parameter {index} has shape {list(value.shape)}, "
                            f"the parameter {list(expected)}"
                        )
    optimizer.load_state_dict(saved)


def malformed_fields(state: dict[str, Any]) -> str | None:
    """What is missing or wrong in a loaded checkpoint, in one line; None when every field ganforge reads is fine."""
    try:
        fields = CheckpointFields.model_validate(state)
    except ValidationError as error:
        # A field that fits no member of a union fails once per member: its first failure says enough.
        first_per_field = {_where(problem): problem for problem in reversed(error.errors())}
        problems = [_describe(where, problem) for where, problem in reversed(first_per_field.items())]
    else:
        problems = [
            problem
            for index, process in enumerate(fields.processes or [])
            for problem in process.running_statistics.check_shapes(f"processes.{index}.running_statistics")
        ]
        problems += contradictions(fields, state["config"])
    if not problems:
        return None
    more = len(problems) - MAX_REPORTED_PROBLEMS
    return "; ".join(problems[:MAX_REPORTED_PROBLEMS]) + (f"; and {more} more" if more > 0 else "")


def contradictions(fields: CheckpointFields, config: dict[str, Any]) -> list[str]:
    """Fields that each pass but contradict each other or the checkpoint's own config: a resume from them would
    train nothing, or other steps than those it says it took."""
    progress = f"epoch {fields.epoch} and epoch_step {fields.epoch_step}"
    problems = []
    if fields.step < fields.epoch + fields.epoch_step:
        problems.append(
            f"step: {fields.step} is fewer steps than its {progress} take (each epoch finished took one step at "
            f"least, and epoch_step counts the steps of the epoch in progress)"
        )
    train = config.get("train")
    epochs = train.get("epochs") if isinstance(train, dict) else None
    if isinstance(epochs, int) and not isinstance(epochs, bool):
        if fields.epoch > epochs:
            problems.append(f"epoch: {fields.epoch} epochs finished, beyond its own config's train.epochs {epochs}")
        elif fields.epoch == epochs and fields.epoch_step:
            problems.append(
                f"epoch_step: {fields.epoch_step} steps into epoch {fields.epoch + 1}, beyond its own config's "
                f"train.epochs {epochs} (a finished run's epoch_step is 0)"
            )
    if fields.best is not None:
        for name, best, now in (("epoch", fields.best.epoch, fields.epoch), ("step", fields.best.step, fields.step)):
            if best > now:
                problems.append(f"best.{name}: {best}, after the checkpoint's own {name} {now}")
    return problems


def _where(problem: Any) -> str:
    # pydantic adds a union member's or validator's name to the location; the field path is what a reader needs.
    parts = [str(part) for part in problem["loc"] if not _is_validator_name(part)]
    return ".".join(parts) or "(top level)"


def _is_validator_name(part: Any) -> bool:
    return isinstance(part, str) and (part.startswith("function-") or part in ("float", "int", "str", "none"))


def _describe(where: str, problem: Any) -> str:
    if problem["type"] == "missing":
        return f"{where}: missing"
    given = repr(problem.get("input"))
    given = given if len(given) <= 40 else given[:37] + "..."
    message = re.sub(r" or instance of \w+", "", problem["msg"].removeprefix("Value error, "))
    return f"{where}: {message[0].lower()}{message[1:]} (given: {given})"
