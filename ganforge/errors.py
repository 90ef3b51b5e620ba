"""Errors that ganforge reports to a user: each carries a message and an exit code."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, get_args

from pydantic import BaseModel, ValidationError


class GanforgeError(Exception):
    """A problem the user can act on; the CLI prints its message, never a traceback."""

    exit_code = 1


class UsageError(GanforgeError):
    """Bad input from the user: a config, a parameter, a component name."""

    exit_code = 2


class ComponentNotFoundError(UsageError):
    """A component name that no plugin registered."""


class AmbiguousComponentError(UsageError):
    """A component name that more than one distribution registered."""


class ParamsError(UsageError):
    """Component parameters that its params model rejects."""


class PluginError(GanforgeError):
    """A plugin that failed to load, in strict mode (GANFORGE_STRICT_PLUGINS=1)."""


class RegistrationError(GanforgeError):
    """A plugin's own mistake while it registers components (raised inside its hook)."""


class DatasetNotFoundError(GanforgeError):
    """The files of a dataset are not where ganforge looked for them."""


class ConfigError(UsageError):
    """A run config that cannot be read or does not validate."""


class DataError(GanforgeError):
    """Data that exists but cannot be used (corrupt, empty, inconsistent)."""


def describe_validation_error(
    error: ValidationError, prefix: Iterable[str | int] = (), model: type[BaseModel] | None = None
) -> str:
    """One line per problem: the dotted field path, what was wrong, what was given.

    With the ``model`` that raised, an unknown key also lists the keys that are accepted there.
    """
    lines = []
    for problem in error.errors():
        path = ".".join(str(part) for part in (*prefix, *problem["loc"])) or "(top level)"
        line = f"  {path}: {problem['msg']} (given: {_short_repr(problem.get('input'))})"
        if problem["type"] == "extra_forbidden" and model is not None:
            accepted = _fields_at(model, problem["loc"][:-1])
            if accepted:
                line += f"; accepted keys: {', '.join(accepted)}"
        lines.append(line)
    return "\n".join(lines)


def _fields_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The field names of the (sub)model found by following ``loc`` from ``model``."""
    current: Any = model
    for part in loc:
        field = current.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return []
        candidates = [field.annotation, *get_args(field.annotation)]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if current is None:
            return []
    return list(current.model_fields)


def first_line(text: str | None) -> str:
    """The first non-blank line of a message or docstring, stripped; "" when there is none."""
    return (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
