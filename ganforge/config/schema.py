"""The run config's schema: pydantic models of every section, their bounds, and the JSON schema they give.

A config names each component as ``{name, params}``; here its params are any mapping, for they
are validated by that component's own params model, found in the registry (resolve.py), so a
third party's architecture gets the same checking as a built-in one. Every model forbids unknown
keys and refuses NaN and infinity. Rules that weigh one section against another, or a setting
against a component, are resolve.py's: a model here checks its own fields alone.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, field_validator

from ganforge.contracts import MAX_SEED
from ganforge.registry import Kind

DEFAULT_RUNS_DIR = Path("runs")
MAX_NAME_LENGTH = 100
MAX_METRICS = 64
MAX_AUGMENTATIONS = 16
MAX_LOGGERS = 16
MAX_PATH_LENGTH = 4096
MAX_SCHEDULES = 32
EMA_TARGETS = ("train.ema_decay", "train.ema_half_life")
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEVICE_SETTING = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]{1,4})?)$")
DEVICES_ACCEPTED = "auto, cpu, cuda, cuda:N or mps"
DEFAULT_EVAL_SAMPLES = 10_000  # generated (and real reference) images an evaluation scores: eval.samples, eval --n


class Strict(BaseModel):
    # A NaN or an infinity is never a sensible setting: refuse them where they are read.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


ComponentName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH)]
ScheduleTarget = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH)]


class ComponentConfig(Strict):
    name: ComponentName = Field(description="A registered component: name, alias or distribution:name.")
    params: dict[str, Any] = Field(default_factory=dict, description="Params for the component's own params model.")


class OptimizerConfig(Strict):
    lr: float = Field(2e-4, gt=0, description="Adam learning rate.")
    betas: tuple[float, float] = Field((0.5, 0.999), description="Adam (beta1, beta2).")
    weight_decay: float = Field(0.0, ge=0, description="Adam L2 weight decay.")
    eps: float = Field(
        1e-8, gt=0, le=1.0, description="Adam's epsilon, added to the root of the second moment (Keras: 1e-7)."
    )

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, betas: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError("each beta must be in [0, 1)")
        return betas


class OptimConfig(Strict):
    generator: OptimizerConfig = Field(default_factory=OptimizerConfig)
    discriminator: OptimizerConfig = Field(default_factory=OptimizerConfig)


class TrainConfig(Strict):
    epochs: int = Field(10, ge=1, le=1_000_000, description="Passes over the dataset.")
    batch_size: int = Field(
        64,
        ge=1,
        le=2**20,
        description="Real images per discriminator step: the global batch, split evenly over the processes of a "
        "distributed run.",
    )
    device: str = Field(
        "auto",
        description="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.",
        json_schema_extra={"pattern": DEVICE_SETTING.pattern},
    )
    n_critic: int = Field(1, ge=1, le=1000, description="Discriminator steps per generator step.")
    penalty_every: int = Field(
        1,
        ge=1,
        le=10_000,
        description="Lazy regularisation (Karras et al. 2020, StyleGAN2): the loss's penalty on every k-th "
        "discriminator step only, weighted by k, so that it weighs the same on average; 1 = every step.",
    )
    generator_batch: Literal["reuse", "fresh"] | Annotated[int, Field(ge=1, le=2**20)] = Field(
        "reuse",
        description="What the generator's step judges: reuse = the generated batch of the discriminator's step; "
        "fresh = a new batch of batch_size noise vectors; a number = a new batch of that many (global, split over "
        "the processes like batch_size).",
    )
    ema_decay: float | None = Field(
        None, ge=0.0, lt=1.0, description="Decay of an exponential moving average of G's weights, used for samples."
    )
    ema_half_life: float | None = Field(
        None,
        ge=0.0,
        le=1e13,
        description="The EMA of G's weights set as StyleGAN and R3GAN do: the images shown over which an old "
        "weight's share halves; each update's decay is 0.5 ** (batch_size * n_critic / ema_half_life). "
        "Instead of ema_decay.",
    )
    generated_labels: Literal["uniform", "data"] = Field(
        "uniform",
        description="Conditional models: the classes of each step's generated images, drawn uniformly or in the "
        "training data's class frequencies. Unconditional models draw none.",
    )
    class_loss_weight: float = Field(
        1.0,
        ge=0.0,
        le=1000.0,
        description="Conditional models whose discriminator returns class logits (ACGAN's auxiliary classifier): "
        "weight of the classifier's cross-entropy, added to D's loss (on real and generated images) and to G's "
        "(on generated ones). 0 = the class logits are not trained.",
    )
    sample_every: int = Field(1, ge=0, le=1_000_000, description="Epochs between sample grids; 0 = only at the end.")
    checkpoint_every: int = Field(
        10, ge=0, le=1_000_000, description="Epochs between kept checkpoints; last.pt is every epoch."
    )
    checkpoint_minutes: float | None = Field(
        None,
        gt=0,
        le=1_000_000,
        description="Also save last.pt mid-epoch when this many minutes have passed since it was last saved; "
        "null = only at the end of each epoch.",
    )
    log_every: int = Field(
        100, ge=1, le=10**9, description="Steps between metric lines in metrics.jsonl and progress updates."
    )
    num_workers: int = Field(0, ge=0, le=256, description="DataLoader workers for datasets not held in memory.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="Precision of the networks' forward passes: fp32, or bf16/fp16 mixed precision (autocast; fp16 "
        "with gradient scaling); auto = bf16 on CUDA GPUs that support it, fp32 elsewhere.",
    )
    compile: bool | Literal["auto"] = Field(
        "auto",
        description="torch.compile the generator and discriminator for training; auto = on CUDA only. Falls back to "
        "eager mode, with a warning, where compiling fails.",
    )
    channels_last: bool | Literal["auto"] = Field(
        "auto",
        description="Keep convolutional models and batches in channels_last memory format; auto = on CUDA for "
        "models with convolutions.",
    )
    on_nonfinite: Literal["stop", "skip"] = Field(
        "stop",
        description="A non-finite loss: stop at the next logged line, naming the last good checkpoint; or skip "
        "each such step and count it (a host sync per step). Non-finite weights always stop the run.",
    )
    sync_batchnorm: bool = Field(
        False,
        description="In a distributed run on CUDA, batch norm layers use the statistics of the whole global batch "
        "(SyncBatchNorm) instead of each process's share.",
    )

    def ema_decay_per_update(self) -> float | None:
        """The decay of each EMA update (one per G step), from ema_decay or ema_half_life; None: no EMA."""
        if self.ema_half_life is not None:
            return ema_decay_of_half_life(self.ema_half_life, self.batch_size * self.n_critic)
        return self.ema_decay

    def fresh_generator_batch(self) -> int | None:
        """How many noise vectors G's step draws afresh (global); None where it reuses D's generated batch."""
        if self.generator_batch == "reuse":
            return None
        return self.batch_size if self.generator_batch == "fresh" else self.generator_batch

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        if not DEVICE_SETTING.match(device):
            raise ValueError(f"not a device ganforge trains on; accepted: {DEVICES_ACCEPTED}")
        return device


def ema_decay_of_half_life(half_life: float, images_per_update: int) -> float:
    """The decay per EMA update that halves an old weight's share every ``half_life`` images (0: no averaging)."""
    return 0.5 ** (images_per_update / half_life) if half_life > 0 else 0.0


class OutputConfig(Strict):
    dir: Path | None = Field(None, description="Run folder; default runs/<name>. Not empty and not '.'.")
    loggers: list[ComponentName | ComponentConfig] = Field(
        default_factory=list,
        max_length=MAX_LOGGERS,
        description="Loggers that also follow the run (metrics.jsonl is written by every run, whatever is listed): "
        "names, or {name, params}; see `ganforge list loggers` (tensorboard, mlflow, wandb, a plugin's).",
    )

    @field_validator("dir", mode="before")
    @classmethod
    def _a_folder_of_its_own(cls, value: Any) -> Any:
        # The run folder is made, filled and, with --overwrite, replaced: never the current directory itself.
        if isinstance(value, str | os.PathLike):
            text = os.fspath(value)
            if isinstance(text, str) and os.path.normpath(text) == ".":
                raise ValueError(
                    "the current directory cannot be a run folder; name a folder of its own, e.g. runs/NAME, "
                    "or leave output.dir out for runs/<name>"
                )
            if isinstance(text, str) and "\0" in text:
                raise ValueError("a path cannot hold a NUL character")
            if len(text) > MAX_PATH_LENGTH:
                raise ValueError(f"a path of {len(text)} characters; at most {MAX_PATH_LENGTH}")
        return value


class EvalConfig(Strict):
    every: int = Field(0, ge=0, le=1_000_000, description="Epochs between evaluations during training; 0 = none.")
    metrics: list[ComponentName | ComponentConfig] = Field(
        default_factory=lambda: [
            "fid",
            "kid",
            "classifier_score",
            "precision_recall",
            "mode_coverage",
            "class_accuracy",
            "intra_fid",
        ],
        max_length=MAX_METRICS,
        description="Metrics to compute: names, or {name, params}; see `ganforge list metrics`. Class-by-class "
        "metrics (class_accuracy, intra_fid) score conditional generators only.",
    )
    samples: int = Field(
        DEFAULT_EVAL_SAMPLES,
        ge=2,
        le=1_000_000,
        description="Generated images per evaluation (and real reference images).",
    )
    best: Annotated[str, StringConstraints(max_length=MAX_NAME_LENGTH)] | None = Field(
        "fid",
        description="Keep checkpoints/best.pt by this metric value (its direction comes from the metric); "
        "null keeps none.",
    )


class AdaptiveConfig(Strict):
    """ADA's heuristic (Karras et al. 2020): the strength follows how sure D is of the real images."""

    target: float = Field(
        0.6,
        gt=0,
        lt=1,
        description="The value of r_t = E[sign(D(real) - t)] the strength steers towards; t is the loss's "
        "decision threshold (0 for logits).",
    )
    interval: int = Field(4, ge=1, le=10_000, description="Steps between adjustments of the strength.")
    ramp_images: int = Field(500_000, ge=1, le=10**12, description="Images over which the strength can go from 0 to 1.")


class AugmentConfig(Strict):
    pipeline: list[ComponentName | ComponentConfig] = Field(
        default_factory=list,
        max_length=MAX_AUGMENTATIONS,
        description="Augmentations of every image D sees, real and generated, in order: names, or {name, "
        "params}; see `ganforge list augmentations`. Empty: none.",
    )
    strength: float = Field(
        1.0,
        ge=0,
        le=1,
        description="The probability that each augmentation transforms an image (DiffAugment: 1); with "
        "adaptive, where the strength starts.",
    )
    adaptive: AdaptiveConfig | None = Field(
        None, description="Adjust the strength during training by ADA's heuristic; null keeps it fixed."
    )


class RunConfig(Strict):
    name: str = Field(
        description="Run name; the run folder's name: letters, digits, '_', '.' and '-', starting with a letter or "
        "digit.",
        json_schema_extra={"pattern": RUN_NAME.pattern, "maxLength": MAX_NAME_LENGTH},
    )
    seed: int = Field(0, ge=0, le=MAX_SEED, description="Seed of every random number the run draws.")
    data: ComponentConfig
    model: ComponentConfig
    loss: ComponentConfig = Field(default_factory=lambda: ComponentConfig(name="non_saturating"))
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    schedules: dict[ScheduleTarget, ComponentConfig] = Field(
        default_factory=dict,
        max_length=MAX_SCHEDULES,
        description="Settings that change during training, each a function of the real images shown: the "
        "setting (optim.generator.lr, loss.params.r1_gamma, ...; see docs/schedules.md) to a schedule, "
        "{name, params}; see `ganforge list schedules`.",
    )

    @field_validator("name")
    @classmethod
    def _a_folder_name(cls, name: str) -> str:
        if len(name) > MAX_NAME_LENGTH or not RUN_NAME.match(name):
            raise ValueError(
                f"a run name is the name of its folder: 1 to {MAX_NAME_LENGTH} letters, digits, '_', '.' or '-', "
                "starting with a letter or digit (so not empty, '.', '..' or a path)"
            )
        return name

    def keeps_ema(self) -> bool:
        """Whether G's weights are averaged: an EMA set by train.ema_decay or ema_half_life, or scheduled."""
        settings = (self.train.ema_decay, self.train.ema_half_life)
        return any(value is not None for value in settings) or any(target in self.schedules for target in EMA_TARGETS)

    def run_dir(self) -> Path:
        return self.output.dir if self.output.dir is not None else DEFAULT_RUNS_DIR / self.name


COMPONENT_SECTIONS: dict[str, Kind] = {"data": Kind.DATASET, "model": Kind.ARCHITECTURE, "loss": Kind.LOSS}


def as_component_config(entry: str | ComponentConfig) -> ComponentConfig:
    return ComponentConfig(name=entry) if isinstance(entry, str) else entry


COMPONENT_ENTRY: TypeAdapter[str | ComponentConfig] = TypeAdapter(ComponentName | ComponentConfig)


def json_schema() -> dict[str, Any]:
    return RunConfig.model_json_schema()
