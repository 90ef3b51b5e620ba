"""Errors that ganforge reports to a user: each carries a message and an exit code."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError


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


class DataError(GanforgeError):
    """Data that exists but cannot be used (corrupt, empty, inconsistent)."""


def describe_validation_error(error: ValidationError, prefix: Iterable[str | int] = ()) -> str:
    """One line per problem: the dotted field path, what was given, what is accepted."""
    lines = []
    for problem in error.errors():
        path = ".".join(str(part) for part in (*prefix, *problem["loc"])) or "(top level)"
        given = _short_repr(problem.get("input"))
        lines.append(f"  {path}: {problem['msg']} (given: {given})")
    return "\n".join(lines)


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
