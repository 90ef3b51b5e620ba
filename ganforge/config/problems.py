"""What is wrong with a config, worded for the person who wrote it: every problem at once, on a screen.

``InvalidConfigError`` carries each ``ConfigProblem`` (where, and the report's lines) in the order
of the config's sections; its message is the report, cut at about a screenful whatever the input.
One diagnosis goes further than a problem's own lines: an override that renames a component
(``--set model.name=dcgan``) while the file's params for the one before stay, which the new one
then rejects as unknown keys. Those are told apart (``LeftoverParams``) so that the command line
can say how to clear them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from ganforge.config.schema import COMPONENT_SECTIONS, MAX_NAME_LENGTH, ComponentConfig, RunConfig
from ganforge.errors import ConfigError, UsageError, describe_validation_error, shorten
from ganforge.registry import Kind, Registry

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


def schema_problem(error: ValidationError) -> ConfigProblem:
    """Every problem the schema found, as one: its lines list each, its place names every field among them."""
    fields = (".".join(str(part) for part in problem["loc"]) or "(top level)" for problem in error.errors())
    return ConfigProblem(shorten(", ".join(fields), 200), describe_validation_error(error, (), RunConfig))


@dataclass(frozen=True)
class ParamsFromFile:
    """A component section that an override renamed while params the file wrote for it stayed (``keys``)."""

    section: str
    name_in_file: Any
    keys: frozenset[str]


def renamed_by_overrides(raw: Mapping[str, Any], overrides: Sequence[tuple[list[str], Any]]) -> list[ParamsFromFile]:
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
            renamed.append(ParamsFromFile(section, in_file.get("name"), keys))
    return renamed


def leftover_params(found: ParamsFromFile, raw: Mapping[str, Any], registry: Registry) -> LeftoverParams | None:
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
