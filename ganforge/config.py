"""The run config: which components to use, with what params, and how to train them.

A config names each component as ``{name, params}``; the params are validated by that
component's own params model, found in the registry, so a third party's architecture gets the
same checking as a built-in one. Every model forbids unknown keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ganforge.errors import ConfigError, ParamsError, UsageError, describe_validation_error
from ganforge.registry import Component, Kind, Registry

DEFAULT_RUNS_DIR = Path("runs")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ComponentConfig(Strict):
    name: str = Field(description="A registered component: name, alias or distribution:name.")
    params: dict[str, Any] = Field(default_factory=dict, description="Params for the component's own params model.")


class OptimizerConfig(Strict):
    lr: float = Field(2e-4, gt=0, description="Adam learning rate.")
    betas: tuple[float, float] = Field((0.5, 0.999), description="Adam (beta1, beta2).")
    weight_decay: float = Field(0.0, ge=0, description="Adam L2 weight decay.")

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
    epochs: int = Field(10, ge=1, description="Passes over the dataset.")
    batch_size: int = Field(
        64,
        ge=1,
        description="Real images per discriminator step: the global batch, split evenly over the processes of a "
        "distributed run.",
    )
    device: str = Field("auto", description="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")
    n_critic: int = Field(1, ge=1, description="Discriminator steps per generator step.")
    ema_decay: float | None = Field(
        None, ge=0.0, lt=1.0, description="Decay of an exponential moving average of G's weights, used for samples."
    )
    sample_every: int = Field(1, ge=0, description="Epochs between sample grids; 0 = only at the end.")
    checkpoint_every: int = Field(10, ge=0, description="Epochs between kept checkpoints; last.pt is every epoch.")
    checkpoint_minutes: float | None = Field(
        None,
        gt=0,
        description="Also save last.pt mid-epoch when this many minutes have passed since it was last saved; "
        "null = only at the end of each epoch.",
    )
    log_every: int = Field(100, ge=1, description="Steps between metric lines in metrics.jsonl and progress updates.")
    num_workers: int = Field(0, ge=0, description="DataLoader workers for datasets not held in memory.")
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


class OutputConfig(Strict):
    dir: Path | None = Field(None, description="Run folder; default runs/<name>.")
    tensorboard: bool | Literal["auto"] = Field(
        "auto", description="Also write TensorBoard events: true, false, or auto (when tensorboard is installed)."
    )


class EvalConfig(Strict):
    every: int = Field(0, ge=0, description="Epochs between evaluations during training; 0 = none.")
    metrics: list[str | ComponentConfig] = Field(
        default_factory=lambda: ["fid", "kid", "classifier_score", "precision_recall", "mode_coverage"],
        description="Metrics to compute: names, or {name, params}; see `ganforge list metrics`.",
    )
    samples: int = Field(10_000, ge=2, description="Generated images per evaluation (and real reference images).")
    best: str | None = Field(
        "fid",
        description="Keep checkpoints/best.pt by this metric value (its direction comes from the metric); "
        "null keeps none.",
    )


class RunConfig(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Run name; the run folder's name.")
    seed: int = Field(0, description="Seed of every random number the run draws.")
    data: ComponentConfig
    model: ComponentConfig
    loss: ComponentConfig = Field(default_factory=lambda: ComponentConfig(name="non_saturating"))
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    def run_dir(self) -> Path:
        return self.output.dir if self.output.dir is not None else DEFAULT_RUNS_DIR / self.name


COMPONENT_SECTIONS: dict[str, Kind] = {"data": Kind.DATASET, "model": Kind.ARCHITECTURE, "loss": Kind.LOSS}


def parse_overrides(assignments: Iterable[str], option: str = "--set") -> list[tuple[list[str], Any]]:
    """``train.epochs=5`` into (["train", "epochs"], 5); values are read as YAML."""
    parsed = []
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        path = [part.strip() for part in key.split(".")]
        if not sep or not all(path):
            raise ConfigError(f"{option} expects dotted.key=value, got {assignment!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError as error:
            raise ConfigError(f"{option} {assignment!r}: cannot read the value: {error}") from None
        parsed.append((path, value))
    return parsed


def apply_overrides(
    raw: dict[str, Any], overrides: Iterable[tuple[list[str], Any]], option: str = "--set"
) -> dict[str, Any]:
    for path, value in overrides:
        target = raw
        for depth, part in enumerate(path[:-1]):
            existing = target.setdefault(part, {})
            if not isinstance(existing, dict):
                raise ConfigError(f"{option} {'.'.join(path)}: {'.'.join(path[: depth + 1])} is not a section")
            target = existing
        target[path[-1]] = value
    return raw


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"config {path} is not UTF-8 text (byte {error.start}: {error.reason})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"config {path} is not valid YAML:\n{error}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path}: expected a mapping of sections at the top, got {type(raw).__name__}")
    return raw


@dataclass(frozen=True)
class Chosen:
    """A component picked by a config, with its params validated by the component's own model."""

    component: Component
    params: BaseModel

    def build(self, *args: Any) -> Any:
        return self.component.build(self.params, *args)


@dataclass(frozen=True)
class ResolvedRun:
    """A validated config with every component it names found in the registry."""

    config: RunConfig
    data: Chosen
    model: Chosen
    loss: Chosen
    metrics: tuple[Chosen, ...]

    def chosen(self) -> dict[str, Chosen]:
        return {section: getattr(self, section) for section in COMPONENT_SECTIONS}

    def as_dict(self) -> dict[str, Any]:
        """The config as it will run, every default filled in: what the run folder records."""
        data = self.config.model_dump(mode="json")
        for section, chosen in self.chosen().items():
            data[section]["params"] = chosen.params.model_dump(mode="json")
        data["eval"]["metrics"] = [
            {"name": chosen.component.name, "params": chosen.params.model_dump(mode="json")} for chosen in self.metrics
        ]
        return data


def load_config(path: Path | str, registry: Registry, overrides: Iterable[str] = ()) -> ResolvedRun:
    """Read, override and validate a config file; resolve each named component and its params."""
    path = Path(path)
    raw = apply_overrides(read_yaml(path), parse_overrides(overrides))
    return validate_config(raw, registry, source=str(path))


def validate_config(raw: Mapping[str, Any], registry: Registry, source: str = "config") -> ResolvedRun:
    try:
        config = RunConfig.model_validate(dict(raw))
    except ValidationError as error:
        raise ConfigError(f"{source} is invalid:\n{describe_validation_error(error, (), RunConfig)}") from None
    chosen = {
        section: _choose(registry, kind, getattr(config, section), (section,), source)
        for section, kind in COMPONENT_SECTIONS.items()
    }
    metrics = tuple(
        _choose(registry, Kind.METRIC, as_component_config(entry), ("eval", "metrics", index), source)
        for index, entry in enumerate(config.eval.metrics)
    )
    resolved = ResolvedRun(config, chosen["data"], chosen["model"], chosen["loss"], metrics)
    _check_best(resolved, source)
    return resolved


def as_component_config(entry: str | ComponentConfig) -> ComponentConfig:
    return ComponentConfig(name=entry) if isinstance(entry, str) else entry


def _choose(
    registry: Registry, kind: Kind, entry: ComponentConfig, location: tuple[str | int, ...], source: str
) -> Chosen:
    where = ".".join(str(part) for part in location)
    try:
        component = registry.get(kind, entry.name)
    except UsageError as error:  # unknown or ambiguous name
        raise ConfigError(f"{source} is invalid:\n  {where}.name: {error}") from None
    try:
        params = component.parse_params(entry.params, location=(*location, "params"))
    except ParamsError as error:
        raise ConfigError(f"{source} is invalid: {error}") from None
    return Chosen(component, params)


def _check_best(resolved: ResolvedRun, source: str) -> None:
    best = resolved.config.eval.best
    if best is None or resolved.config.eval.every == 0:
        return
    ranked = {
        key: goal
        for chosen in resolved.metrics
        for key, goal in chosen.build().goals.items()
        if goal.better is not None
    }
    if best not in ranked:
        accepted = ", ".join(sorted(ranked)) or "none (eval.metrics gives no value with a direction)"
        raise ConfigError(
            f"{source} is invalid:\n  eval.best: {best!r} is not a value of the metrics in eval.metrics; "
            f"accepted: {accepted}, or null"
        )


def json_schema() -> dict[str, Any]:
    return RunConfig.model_json_schema()
