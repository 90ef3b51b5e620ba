"""The run config: which components to use, with what params, and how to train them.

A config names each component as ``{name, params}``; the params are validated by that
component's own params model, found in the registry, so a third party's architecture gets the
same checking as a built-in one. Every model forbids unknown keys.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, field_validator

from ganforge.contracts import MAX_SEED
from ganforge.errors import ConfigError, ParamsError, UsageError, describe_validation_error, quote, shorten
from ganforge.registry import Chosen, Kind, Registry

DEFAULT_RUNS_DIR = Path("runs")

# What a config may cost to read: each bound is far above any real config, and stops a hostile one
# (an alias bomb, a huge or deeply nested file) in well under a second.
MAX_CONFIG_BYTES = 2**20
MAX_CONFIG_VALUES = 10_000  # every value of the file, each use of an alias counting all it stands for
MAX_CONFIG_DEPTH = 50  # collections inside collections
MAX_NAME_LENGTH = 100
MAX_METRICS = 64
MAX_AUGMENTATIONS = 16
MAX_LOGGERS = 16
METRICS_FILE_LOGGER = "metrics_file"
MAX_PATH_LENGTH = 4096
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEVICE_SETTING = re.compile(r"^(auto|cpu|mps|cuda(:[0-9]{1,4})?)$")
DEVICES_ACCEPTED = "auto, cpu, cuda, cuda:N or mps"
DEFAULT_EVAL_SAMPLES = 10_000  # generated (and real reference) images an evaluation scores: eval.samples, eval --n


class Strict(BaseModel):
    # A NaN or an infinity is never a sensible setting: refuse them where they are read.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


ComponentName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH)]


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


class OutputConfig(Strict):
    dir: Path | None = Field(None, description="Run folder; default runs/<name>. Not empty and not '.'.")
    loggers: list[ComponentName | ComponentConfig] = Field(
        default_factory=list,
        max_length=MAX_LOGGERS,
        description="Loggers that also follow the run (metrics_file, which writes metrics.jsonl, is always on): "
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

    @field_validator("name")
    @classmethod
    def _a_folder_name(cls, name: str) -> str:
        if len(name) > MAX_NAME_LENGTH or not RUN_NAME.match(name):
            raise ValueError(
                f"a run name is the name of its folder: 1 to {MAX_NAME_LENGTH} letters, digits, '_', '.' or '-', "
                "starting with a letter or digit (so not empty, '.', '..' or a path)"
            )
        return name

    def run_dir(self) -> Path:
        return self.output.dir if self.output.dir is not None else DEFAULT_RUNS_DIR / self.name


COMPONENT_SECTIONS: dict[str, Kind] = {"data": Kind.DATASET, "model": Kind.ARCHITECTURE, "loss": Kind.LOSS}


def parse_overrides(assignments: Iterable[str], option: str = "override") -> list[tuple[list[str], Any]]:
    """``train.epochs=5`` into (["train", "epochs"], 5); values are read as YAML, within a config's bounds.

    ``option`` names where the assignments came from in messages (a command line passes its option's name).
    """
    parsed = []
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        path = [part.strip() for part in key.split(".")]
        if not sep or not all(path):
            raise ConfigError(f"{option} expects dotted.key=value, got {quote(assignment)}")
        where = f"{option} {quote(assignment)}"
        value = load_yaml_text(raw, where) if raw.strip() else raw
        parsed.append((path, value))
    return parsed


def apply_overrides(
    raw: dict[str, Any], overrides: Iterable[tuple[list[str], Any]], option: str = "override"
) -> dict[str, Any]:
    """Set each dotted key of ``overrides`` in ``raw``, making missing sections; ``option`` as for parse_overrides."""
    for path, value in overrides:
        target = raw
        for depth, part in enumerate(path[:-1]):
            existing = target.setdefault(part, {})
            if not isinstance(existing, dict):
                shown = shorten(".".join(path), 100)
                raise ConfigError(f"{option} {shown}: {shorten('.'.join(path[: depth + 1]), 100)} is not a section")
            target = existing
        target[path[-1]] = value
    return raw


def read_yaml(path: Path) -> dict[str, Any]:
    """A config file's top-level mapping, read within the bounds above (size, values, nesting)."""
    try:
        with Path(path).open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror or error}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config {path} is larger than {MAX_CONFIG_BYTES // 2**20} MiB; a run config is a few kilobytes of YAML"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"config {path} is not UTF-8 text (byte {error.start}: {error.reason})") from None
    raw = load_yaml_text(text, f"config {path}")
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path}: expected a mapping of sections at the top, got {type(raw).__name__}")
    return raw


def load_yaml_text(text: str, where: str) -> Any:
    """YAML text as plain data, or a ConfigError that starts with ``where`` (a file, or an option and its value).

    Only YAML's plain types are built (as ``yaml.safe_load`` does), each mapping key appears once, and the
    size of what the text expands to is bounded while it is read: an alias stands for a copy of its value,
    so a few hundred bytes of nested aliases could otherwise stand for billions of values.
    """
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{where}: longer than {MAX_CONFIG_BYTES // 2**20} MiB")
    try:
        loader = _BoundedLoader(text, where)  # libyaml checks the characters here already
        try:
            return _unshared(loader.get_single_data())
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        raise ConfigError(f"{where} is not valid YAML:\n{_bounded_lines(str(error))}") from None


def _bounded_lines(text: str, width: int = 200, lines: int = 12) -> str:
    """A message from the YAML reader, which may quote the input, cut to a few lines of bounded width."""
    kept = [shorten(line, width) for line in text.splitlines()[:lines]]
    return "\n".join(kept)


def _unshared(value: Any) -> Any:
    """A copy in which no dict or list appears twice: an override then changes one place only, not every
    place an alias stood for. The size is bounded by MAX_CONFIG_VALUES, so copying costs little."""
    if isinstance(value, dict):
        return {key: _unshared(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unshared(item) for item in value]
    return value


try:  # PyYAML built with libyaml: its parser reads text some 30 times faster than the pure-Python one
    from yaml.cyaml import CParser as _EventParser
except ImportError:  # pragma: no cover - depends on how PyYAML was built

    class _EventParser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)


MERGE_TAG = "tag:yaml.org,2002:merge"


class _BoundedLoader(yaml.composer.Composer, _EventParser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """``yaml.SafeLoader`` that counts what the document expands to while composing it.

    Each node's expanded size (itself and everything below it, an alias counting the whole of the
    value it names) is known when the node is complete, so the running total of the document is
    too, and reading stops as soon as it passes MAX_CONFIG_VALUES: long before a bomb is built.
    """

    def __init__(self, text: str, where: str) -> None:
        _EventParser.__init__(self, text)
        yaml.composer.Composer.__init__(self)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self.where = where
        self.expanded: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth), once the node is complete
        self.total = 0
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None and id(target) not in self.expanded:
                raise self.refused(
                    event.start_mark, f"alias *{shorten(event.anchor, 40)} is used inside the value it names"
                )
            node = super().compose_node(parent, index)
            self.count(node, self.expanded[id(node)][0])
            return node
        if self.depth >= MAX_CONFIG_DEPTH:
            raise self.refused(self.peek_event().start_mark, f"values nested more than {MAX_CONFIG_DEPTH} deep")
        self.depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        children = [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else []
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        sizes = [self.expanded[id(child)] for child in children]
        values = 1 + sum(size for size, _ in sizes)
        depth = 1 + max((child_depth for _, child_depth in sizes), default=0)
        self.expanded[id(node)] = (values, depth)
        if depth > MAX_CONFIG_DEPTH:
            raise self.refused(
                node.start_mark,
                f"the value here is nested more than {MAX_CONFIG_DEPTH} deep, counting what its aliases stand for",
            )
        self.count(node, 1)
        return node

    def count(self, node: yaml.Node, values: int) -> None:
        self.total += values
        if self.total > MAX_CONFIG_VALUES:
            raise self.refused(
                node.start_mark,
                f"more than {MAX_CONFIG_VALUES:,} values by here, counting each use of an alias as a copy of the "
                "value it names (an alias bomb?); a config holds at most that many",
            )

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        first_lines: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node)
            if key in first_lines:
                raise self.refused(
                    key_node.start_mark,
                    f"key {quote(key)} appears twice in the same mapping (first on line {first_lines[key]})",
                )
            first_lines[key] = key_node.start_mark.line + 1
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as error:  # e.g. an integer of more digits than Python converts
            raise self.refused(node.start_mark, f"cannot read this value: {shorten(str(error), 200)}") from None

    def refused(self, mark: yaml.Mark, problem: str) -> ConfigError:
        return ConfigError(f"{self.where}: line {mark.line + 1}, column {mark.column + 1}: {problem}")


@dataclass(frozen=True)
class ResolvedRun:
    """A validated config with every component it names found in the registry."""

    config: RunConfig
    data: Chosen
    model: Chosen
    loss: Chosen
    metrics: tuple[Chosen, ...]
    augmentations: tuple[Chosen, ...]
    loggers: tuple[Chosen, ...]
    metrics_file: Chosen  # the logger that writes metrics.jsonl: every run has it, no config lists it

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
        data["augment"]["pipeline"] = [
            {"name": chosen.component.name, "params": chosen.params.model_dump(mode="json")}
            for chosen in self.augmentations
        ]
        data["output"]["loggers"] = [
            {"name": chosen.component.name, "params": chosen.params.model_dump(mode="json")} for chosen in self.loggers
        ]
        return data


# Problems are listed until the report passes this many characters (the first always is): a screenful, whatever
# the input; where the rest are is named after them.
MAX_REPORT_CHARACTERS = 1500


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in a config: where it is (a field, or the fields of the schema's problems), and the
    report's lines that say what, the first indented by two spaces."""

    where: str
    lines: str


@dataclass(frozen=True)
class LeftoverParams:
    """Params that a config file wrote for the component its section named there (``name_in_file``), left in
    place when an override named another one (``name``); ``keys`` are those of them the new one does not take."""

    section: str
    name_in_file: str
    name: str
    keys: tuple[str, ...]


class InvalidConfigError(ConfigError):
    """A config that does not validate, with every problem found in it, in the order of its sections.

    ``leftover_params`` are set where an override renamed a component and the file's params for the one
    before are among the problems: the command line's wording adds how to clear them.
    """

    def __init__(
        self, source: str, problems: Sequence[ConfigProblem], leftover_params: Sequence[LeftoverParams] = ()
    ) -> None:
        super().__init__(describe_problems(source, problems))
        self.source = source
        self.problems = tuple(problems)
        self.leftover_params = tuple(leftover_params)


def describe_problems(source: str, problems: Sequence[ConfigProblem]) -> str:
    """``SOURCE is invalid:``, then the problems that fit in MAX_REPORT_CHARACTERS, then where the others are."""
    report = [f"{source} is invalid:"]
    length = len(report[0])
    shown = 0
    for problem in problems:
        if shown and length + len(problem.lines) > MAX_REPORT_CHARACTERS:
            break
        report.append(problem.lines)
        length += len(problem.lines) + 1
        shown += 1
    if shown < len(problems):
        places = shorten(", ".join(problem.where for problem in problems[shown:]), 200)
        report.append(f"  ... and more problems, at {places}")
    return "\n".join(report)


def load_config(
    path: Path | str, registry: Registry, overrides: Iterable[str] = (), *, overrides_option: str = "override"
) -> ResolvedRun:
    """Read, override and validate a config file; resolve each named component and its params.

    ``overrides_option`` names where the overrides came from in messages (the CLI's ``--set``). An
    override that renames a component while the file's params for the previous one stay is told
    apart in the error (``InvalidConfigError.leftover_params``).
    """
    path = Path(path)
    raw = read_yaml(path)
    parsed = parse_overrides(overrides, overrides_option)
    renamed = _renamed_by_overrides(raw, parsed)
    raw = apply_overrides(raw, parsed, overrides_option)
    try:
        return validate_config(raw, registry, source=str(path))
    except InvalidConfigError as error:
        leftovers = [found for section in renamed if (found := _leftover_params(section, raw, registry)) is not None]
        if not leftovers:
            raise
        raise InvalidConfigError(error.source, error.problems, leftovers) from None


def validate_config(raw: Mapping[str, Any], registry: Registry, source: str = "config") -> ResolvedRun:
    """The run ``raw`` describes, or an InvalidConfigError that names every problem in it at once.

    A section the schema rejects hides no other: each component named in a section that is
    well-formed on its own is still looked up, and its params checked by its own params model.
    """
    problems: list[ConfigProblem] = []
    config: RunConfig | None = None
    try:
        config = RunConfig.model_validate(dict(raw))
    except ValidationError as error:
        problems.append(_schema_problem(error))
    chosen: dict[tuple[str | int, ...], Chosen] = {}
    for kind, location, entry in _named_components(raw, config):
        found = _choose(registry, kind, entry, location)
        if isinstance(found, Chosen):
            chosen[location] = found
        else:
            problems.append(found)
    if problems or config is None:
        raise InvalidConfigError(source, problems)
    metrics = tuple(chosen[("eval", "metrics", index)] for index in range(len(config.eval.metrics)))
    augmentations = tuple(chosen[("augment", "pipeline", index)] for index in range(len(config.augment.pipeline)))
    loggers = tuple(chosen[("output", "loggers", index)] for index in range(len(config.output.loggers)))
    parts = (chosen[("data",)], chosen[("model",)], chosen[("loss",)])
    metrics_file_logger = registry.get(Kind.LOGGER, METRICS_FILE_LOGGER)
    metrics_file = Chosen(metrics_file_logger, metrics_file_logger.parse_params({}))
    resolved = ResolvedRun(config, *parts, metrics, augmentations, loggers, metrics_file)
    checks = (_check_best, _check_metric_needs, _check_loggers)
    problems = [problem for check in checks if (problem := check(resolved)) is not None]
    if problems:
        raise InvalidConfigError(source, problems)
    return resolved


def flattened(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}``: a resolved config as dotted settings (what --set takes)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            flat.update(flattened(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def as_component_config(entry: str | ComponentConfig) -> ComponentConfig:
    return ComponentConfig(name=entry) if isinstance(entry, str) else entry


COMPONENT_ENTRY: TypeAdapter[str | ComponentConfig] = TypeAdapter(ComponentName | ComponentConfig)


def _schema_problem(error: ValidationError) -> ConfigProblem:
    fields = (".".join(str(part) for part in problem["loc"]) or "(top level)" for problem in error.errors())
    return ConfigProblem(shorten(", ".join(fields), 200), describe_validation_error(error, (), RunConfig))


def _named_components(
    raw: Mapping[str, Any], config: RunConfig | None
) -> list[tuple[Kind, tuple[str | int, ...], ComponentConfig]]:
    """Each component the config names, and where: every one of a valid config; of an invalid one, those in
    sections well-formed on their own (the schema's problems name the others; defaults are built-ins)."""
    sections: dict[str, ComponentConfig | None]
    metrics: list[str | ComponentConfig | None]
    augmentations: list[str | ComponentConfig | None]
    loggers: list[str | ComponentConfig | None]
    if config is not None:
        sections = {section: getattr(config, section) for section in COMPONENT_SECTIONS}
        metrics = list(config.eval.metrics)
        augmentations = list(config.augment.pipeline)
        loggers = list(config.output.loggers)
    else:
        sections = {
            section: _well_formed(ComponentConfig.model_validate, raw.get(section)) for section in COMPONENT_SECTIONS
        }
        metrics = _well_formed_entries(raw.get("eval"), "metrics", MAX_METRICS)
        augmentations = _well_formed_entries(raw.get("augment"), "pipeline", MAX_AUGMENTATIONS)
        loggers = _well_formed_entries(raw.get("output"), "loggers", MAX_LOGGERS)
    named = [(kind, (section,), sections[section]) for section, kind in COMPONENT_SECTIONS.items()]
    named += [(Kind.METRIC, ("eval", "metrics", index), metric) for index, metric in enumerate(metrics)]
    named += [(Kind.AUGMENTATION, ("augment", "pipeline", index), entry) for index, entry in enumerate(augmentations)]
    named += [(Kind.LOGGER, ("output", "loggers", index), entry) for index, entry in enumerate(loggers)]
    return [(kind, location, as_component_config(entry)) for kind, location, entry in named if entry is not None]


def _well_formed_entries(section: Any, key: str, most: int) -> list[str | ComponentConfig | None]:
    """The entries of the list ``section[key]`` (names or {name, params}), None for each malformed one."""
    listed = section.get(key) if isinstance(section, Mapping) else None
    if not isinstance(listed, list):
        return []
    return [_well_formed(COMPONENT_ENTRY.validate_python, item) for item in listed[:most]]


def _well_formed(validate: Any, value: Any) -> Any:
    """``validate(value)``, or None where it raises a ValidationError."""
    try:
        return validate(value)
    except ValidationError:
        return None


def _choose(
    registry: Registry, kind: Kind, entry: ComponentConfig, location: tuple[str | int, ...]
) -> Chosen | ConfigProblem:
    where = ".".join(str(part) for part in location)
    try:
        component = registry.get(kind, entry.name)
    except UsageError as error:  # unknown or ambiguous name
        return ConfigProblem(f"{where}.name", _indented(f"{where}.name: {error}", "  ", "    "))
    try:
        params = component.parse_params(entry.params, location=(*location, "params"))
    except ParamsError as error:
        return ConfigProblem(f"{where}.params", _indented(str(error), "  ", "  "))
    return Chosen(component, params)


def _indented(text: str, first: str, rest: str) -> str:
    lines = text.splitlines() or [""]
    return "\n".join([first + lines[0], *(rest + line for line in lines[1:])])


@dataclass(frozen=True)
class _ParamsFromFile:
    """A component section that an override renamed while params the file wrote for it stayed (``keys``)."""

    section: str
    name_in_file: Any
    keys: frozenset[str]


def _renamed_by_overrides(raw: Mapping[str, Any], overrides: Sequence[tuple[list[str], Any]]) -> list[_ParamsFromFile]:
    """Sections whose ``name`` an override sets while neither the whole section nor its params are set."""
    renamed = []
    for section in COMPONENT_SECTIONS:
        in_file = raw.get(section)
        params = in_file.get("params") if isinstance(in_file, dict) else None
        touched = [path[1:] for path, _ in overrides if path[0] == section]
        if not isinstance(params, dict) or ["name"] not in touched or [] in touched or ["params"] in touched:
            continue
        set_by_overrides = {path[1] for path in touched if len(path) > 1 and path[0] == "params"}
        keys = frozenset(str(key) for key in params) - set_by_overrides
        if keys:
            assert isinstance(in_file, dict)
            renamed.append(_ParamsFromFile(section, in_file.get("name"), keys))
    return renamed


def _leftover_params(found: _ParamsFromFile, raw: Mapping[str, Any], registry: Registry) -> LeftoverParams | None:
    """The file's params that the component now named rejects as unknown keys; None when there are none."""
    kind = COMPONENT_SECTIONS[found.section]
    try:
        entry = ComponentConfig.model_validate(raw.get(found.section))
        component = registry.get(kind, entry.name)
    except (ValidationError, UsageError):
        return None
    if isinstance(found.name_in_file, str) and _names(registry, kind, found.name_in_file, component):
        return None  # the same component, named again: its params are the file's own mistake
    rejected = tuple(key for key in _unknown_keys(component.params_model, entry.params) if key in found.keys)
    if not rejected:
        return None
    return LeftoverParams(found.section, shorten(str(found.name_in_file), MAX_NAME_LENGTH), entry.name, rejected)


def _names(registry: Registry, kind: Kind, name: str, component: Any) -> bool:
    try:
        return registry.get(kind, name) is component
    except UsageError:
        return False


def _unknown_keys(model: type[BaseModel], params: Mapping[str, Any]) -> list[str]:
    """The top-level keys of ``params`` that ``model`` refuses as extra inputs."""
    try:
        model.model_validate(dict(params))
    except ValidationError as error:
        return [str(p["loc"][0]) for p in error.errors() if p["type"] == "extra_forbidden" and len(p["loc"]) == 1]
    except Exception:  # a params model that fails in itself: parse_params has reported it already
        return []
    return []


def _check_loggers(resolved: ResolvedRun) -> ConfigProblem | None:
    for index, chosen in enumerate(resolved.loggers):
        if chosen.component is resolved.metrics_file.component:
            where = f"output.loggers.{index}"
            return ConfigProblem(
                where,
                f"  {where}: {METRICS_FILE_LOGGER} is not listed: every run writes metrics.jsonl (resume, plot and "
                "report read it); list only the loggers that also follow the run",
            )
    return None


def _check_best(resolved: ResolvedRun) -> ConfigProblem | None:
    best = resolved.config.eval.best
    if best is None or resolved.config.eval.every == 0:
        return None
    ranked = {
        key: goal
        for chosen in resolved.metrics
        for key, goal in chosen.build().goals.items()
        if goal.better is not None
    }
    if best in ranked:
        return None
    accepted = ", ".join(sorted(ranked)) or "none (eval.metrics gives no value with a direction)"
    return ConfigProblem(
        "eval.best",
        f"  eval.best: {best!r} is not a value of the metrics in eval.metrics; accepted: {accepted}, or null",
    )


def _check_metric_needs(resolved: ResolvedRun) -> ConfigProblem | None:
    """eval.samples gives every metric the images it needs (the held-out count is checked once data is read)."""
    settings = resolved.config.eval
    if settings.every == 0:
        return None
    for index, chosen in enumerate(resolved.metrics):
        shortfall = chosen.build().sample_needs().shortfall(settings.samples, settings.samples)
        if shortfall is not None:
            return ConfigProblem(
                "eval.samples",
                f"  eval.samples: {settings.samples} is too few for eval.metrics.{index} ({chosen.component.name}), "
                f"which needs {shortfall}",
            )
    return None


def json_schema() -> dict[str, Any]:
    return RunConfig.model_json_schema()
