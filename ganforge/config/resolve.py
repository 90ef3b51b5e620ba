"""A config resolved against the registry, and every rule that weighs one part of a config against another.

``load_config`` reads a file (yaml_reader.py), applies ``--set`` overrides (overrides.py) and
resolves it: the schema (schema.py) checks each field alone, each component named is found in the
registry and its params checked by its own params model, and then the rules below weigh the
parts against each other. Every problem found is reported at once (problems.py).

The rules live here, in one place, and ``ganforge validate`` and ``ganforge run`` ask the same ones:
those that need only the resolved config run inside ``validate_config``, for both; those that need
a component built (the loss's needs, the model's labels) are asked by ``ganforge run`` where it
builds them (the training step, the trainer), and by ``ganforge validate`` through
``check_with_built_components``, on what can be built without loading the data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ValidationError

from ganforge.config.overrides import apply_overrides, parse_overrides
from ganforge.config.problems import (
    ConfigProblem,
    InvalidConfigError,
    leftover_params,
    renamed_by_overrides,
    schema_problem,
)
from ganforge.config.schedule_targets import LOSS_PARAMS, schedule_problems
from ganforge.config.schema import (
    COMPONENT_ENTRY,
    COMPONENT_SECTIONS,
    MAX_AUGMENTATIONS,
    MAX_LOGGERS,
    MAX_METRICS,
    MAX_SCHEDULES,
    ComponentConfig,
    RunConfig,
    as_component_config,
)
from ganforge.contracts import DataSpec, GANLoss, GANModels, estimate_of
from ganforge.documents import read_yaml_mapping
from ganforge.errors import ConfigError, GanforgeError, ParamsError, UsageError
from ganforge.registry import Chosen, Kind, Registry
from ganforge.yaml_reader import MAX_CONFIG_BYTES


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
    schedules: Mapping[str, Chosen] = field(default_factory=dict)  # by the setting each drives

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
        data["schedules"] = {
            target: {"name": chosen.component.name, "params": chosen.params.model_dump(mode="json")}
            for target, chosen in self.schedules.items()
        }
        return data


def load_config(
    path: Path | str, registry: Registry, overrides: Iterable[str] = (), *, overrides_option: str = "override"
) -> ResolvedRun:
    """Read, override and validate a config file; resolve each named component and its params.

    ``overrides_option`` names where the overrides came from in messages (the CLI's ``--set``). An
    override that renames a component while the file's params for the previous one stay is told
    apart in the error (``InvalidConfigError.leftover_params``).
    """
    path = Path(path)
    raw = read_yaml_mapping(path, what="config", limit=MAX_CONFIG_BYTES, error=ConfigError, follow_links=True)
    parsed = parse_overrides(overrides, overrides_option)
    renamed = renamed_by_overrides(raw, parsed)
    raw = apply_overrides(raw, parsed, overrides_option)
    try:
        return validate_config(raw, registry, source=str(path))
    except InvalidConfigError as error:
        leftovers = [found for section in renamed if (found := leftover_params(section, raw, registry)) is not None]
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
        problems.append(schema_problem(error))
    chosen: dict[tuple[str | int, ...], Chosen] = {}
    for kind, location, entry in _named_components(raw, config):
        found = _metrics_file_listed(location, entry) if kind == Kind.LOGGER else None
        found = found or _choose(registry, kind, entry, location)
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
    schedules = {target: chosen[("schedules", target)] for target in config.schedules}
    resolved = ResolvedRun(config, *parts, metrics, augmentations, loggers, schedules)
    checks = (_check_best, _check_metric_needs)
    problems = [problem for check in checks if (problem := check(resolved)) is not None]
    problems += schedule_problems(config, resolved.loss, schedules)
    if problems:
        raise InvalidConfigError(source, problems)
    return resolved


def _named_components(
    raw: Mapping[str, Any], config: RunConfig | None
) -> list[tuple[Kind, tuple[str | int, ...], ComponentConfig]]:
    """Each component the config names, and where: every one of a valid config; of an invalid one, those in
    sections well-formed on their own (the schema's problems name the others; defaults are built-ins)."""
    sections: dict[str, ComponentConfig | None]
    metrics: list[str | ComponentConfig | None]
    augmentations: list[str | ComponentConfig | None]
    loggers: list[str | ComponentConfig | None]
    schedules: dict[str, ComponentConfig | None]
    if config is not None:
        sections = {section: getattr(config, section) for section in COMPONENT_SECTIONS}
        metrics = list(config.eval.metrics)
        augmentations = list(config.augment.pipeline)
        loggers = list(config.output.loggers)
        schedules = dict(config.schedules)
    else:
        sections = {
            section: _well_formed(ComponentConfig.model_validate, raw.get(section)) for section in COMPONENT_SECTIONS
        }
        metrics = _well_formed_entries(raw.get("eval"), "metrics", MAX_METRICS)
        augmentations = _well_formed_entries(raw.get("augment"), "pipeline", MAX_AUGMENTATIONS)
        loggers = _well_formed_entries(raw.get("output"), "loggers", MAX_LOGGERS)
        schedules = _well_formed_schedules(raw.get("schedules"))
    named = [(kind, (section,), sections[section]) for section, kind in COMPONENT_SECTIONS.items()]
    named += [(Kind.METRIC, ("eval", "metrics", index), metric) for index, metric in enumerate(metrics)]
    named += [(Kind.AUGMENTATION, ("augment", "pipeline", index), entry) for index, entry in enumerate(augmentations)]
    named += [(Kind.LOGGER, ("output", "loggers", index), entry) for index, entry in enumerate(loggers)]
    named += [(Kind.SCHEDULE, ("schedules", target), entry) for target, entry in schedules.items()]
    return [(kind, location, as_component_config(entry)) for kind, location, entry in named if entry is not None]


def _well_formed_entries(section: Any, key: str, most: int) -> list[str | ComponentConfig | None]:
    """The entries of the list ``section[key]`` (names or {name, params}), None for each malformed one."""
    listed = section.get(key) if isinstance(section, Mapping) else None
    if not isinstance(listed, list):
        return []
    return [_well_formed(COMPONENT_ENTRY.validate_python, item) for item in listed[:most]]


def _well_formed_schedules(section: Any) -> dict[str, ComponentConfig | None]:
    """The entries of ``schedules`` by target, None for each malformed one."""
    if not isinstance(section, Mapping):
        return {}
    entries = list(section.items())[:MAX_SCHEDULES]
    return {str(target): _well_formed(ComponentConfig.model_validate, entry) for target, entry in entries}


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


# -- rules on the resolved config: validate_config reports them as problems, for validate and run alike ----------


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
    short = first_metric_short_of_images(resolved.metrics, generated=settings.samples, real=settings.samples)
    if short is None:
        return None
    index, chosen, shortfall = short
    return ConfigProblem(
        "eval.samples",
        f"  eval.samples: {settings.samples} is too few for eval.metrics.{index} ({chosen.component.name}), "
        f"which needs {shortfall}",
    )


def first_metric_short_of_images(
    metrics: Sequence[Chosen], *, generated: int, real: int
) -> tuple[int, Chosen, str] | None:
    """The first metric that ``generated`` and ``real`` images are too few for: its place, itself, what it needs.

    The one test of a metric's ``sample_needs``: eval.samples here, and every count an evaluation
    scores (evaluation/protocol.py), ask it.
    """
    for index, chosen in enumerate(metrics):
        shortfall = chosen.build().sample_needs().shortfall(generated, real)
        if shortfall is not None:
            return index, chosen, shortfall
    return None


# metrics.jsonl, which resume, plot and report read, is the run folder's own: every run writes it, and a config
# that lists it among the loggers that also follow a run is told so rather than that no such logger exists.
METRICS_FILE_LOGGER = "metrics_file"


def _metrics_file_listed(location: tuple[str | int, ...], entry: ComponentConfig) -> ConfigProblem | None:
    if entry.name != METRICS_FILE_LOGGER:
        return None
    where = ".".join(str(part) for part in location)
    return ConfigProblem(
        where,
        f"  {where}: {METRICS_FILE_LOGGER} is not listed: every run writes metrics.jsonl (resume, plot and "
        "report read it); list only the loggers that also follow the run",
    )


# -- rules that need components built: run asks each where it builds them, validate all at once ---------------


def check_with_built_components(run: ResolvedRun) -> None:
    """For ``ganforge validate``: the rules ``ganforge run`` asks of the components it builds.

    The loss is built as it is; the networks only where the dataset's params tell its images before
    loading (``data_spec()``), on the meta device, which allocates nothing. A factory's own refusal
    of those images is raised, as the real build would raise it; one that cannot build on the meta
    device leaves the networks' rules unasked.
    """
    check_the_loss_fits(run.config, run.loss.build())
    models = _networks_before_loading(run)
    if models is not None and run.config.eval.every:
        check_best_is_scored(run.metrics, run.config.eval.best, conditional=models.conditional)


def check_the_loss_fits(config: RunConfig, loss: GANLoss) -> None:
    """What the rest of the config asks of the loss beyond its contract (the training step asks it too)."""
    if config.augment.adaptive is not None:
        require_a_threshold(config.loss.name, loss.decision_threshold)
    scheduled = sorted(target for target in config.schedules if target.startswith(LOSS_PARAMS))
    if scheduled and not isinstance(getattr(loss, "params", None), BaseModel):
        raise UsageError(
            f"schedules.{scheduled[0]}: loss {config.loss.name!r} keeps no params model as `params`, which the "
            "trainer sets before each step, so its params cannot follow a schedule (see docs/plugins.md); "
            "fix its value in loss.params instead"
        )
    train = config.train
    if loss.generator_reads_real_scores and train.fresh_generator_batch() not in (None, train.batch_size):
        raise UsageError(
            f"train.generator_batch: loss {config.loss.name!r} compares each generated image's score with a "
            f"real one's in G's step, so G's batch must be as large as the real batch ({train.batch_size}); "
            "use reuse or fresh"
        )


def require_a_threshold(loss_name: str, threshold: float | None) -> float:
    """The threshold ADA reads real scores against: the loss's decision threshold, which must exist."""
    if threshold is None:
        raise UsageError(
            f"augment.adaptive: ADA steers by how often D calls a real image real, and loss {loss_name!r} gives "
            "D's scores no threshold for that (they only rank images); use a fixed augment.strength, or a loss "
            "such as non_saturating, hinge or least_squares"
        )
    return threshold


def check_best_is_scored(metrics: Sequence[Chosen], best: str | None, *, conditional: bool) -> None:
    """``eval.best`` must name a value the evaluation will have: a class-by-class one only for conditional models."""
    if best is None or conditional:
        return
    for chosen in metrics:
        metric = chosen.build()
        if best in metric.goals and metric.needs_labels:
            raise UsageError(
                f"eval.best: {best!r} is a value of metric {chosen.component.name}, which compares generated images "
                "class by class, and this run's model is unconditional (its architecture reads no labels), so it is "
                "never scored; choose another value, e.g. fid"
            )


def data_spec_before_loading(run: ResolvedRun) -> DataSpec | None:
    """The images the dataset yields, where its params model tells before loading (``data_spec()``); else None."""
    return estimate_of(run.data.params, "data_spec", DataSpec)


def networks_on_meta(run: ResolvedRun, spec: DataSpec) -> GANModels | None:
    """The run's networks for ``spec``, built on the meta device, which allocates nothing; None where the factory
    does something the meta device cannot. A GanforgeError of the factory (params that cannot take these images)
    is raised: the real build raises it too."""
    try:
        with torch.device("meta"):
            return run.model.build(spec)
    except GanforgeError:
        raise
    except Exception:
        return None


def _networks_before_loading(run: ResolvedRun) -> GANModels | None:
    spec = data_spec_before_loading(run)
    return None if spec is None else networks_on_meta(run, spec)
