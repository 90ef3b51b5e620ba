"""Errors that ganforge reports to a user: each carries a message and an exit code."""

from __future__ import annotations

import reprlib
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


class FactoryError(GanforgeError):
    """A component's factory that broke its kind's contract: it returned something else, or exited."""


MAX_PROBLEMS_SHOWN = 20
MAX_MESSAGE_PART = 300  # characters of one problem's own message


def describe_validation_error(
    error: ValidationError, prefix: Iterable[str | int] = (), model: type[BaseModel] | None = None
) -> str:
    """One line per problem: the dotted field path, what was wrong, what was given.

    With the ``model`` that raised, an unknown key also lists the keys that are accepted there.
    Every part quoted from the input is shortened, and at most ``MAX_PROBLEMS_SHOWN`` problems are
    listed, so that a hostile input cannot make the message itself huge.
    """
    prefix = tuple(prefix)
    lines = []
    problems = error.errors(include_url=False, include_context=False)
    for problem in problems[:MAX_PROBLEMS_SHOWN]:
        path = ".".join(shorten(str(part), 60) for part in (*prefix, *problem["loc"])) or "(top level)"
        message = shorten(problem["msg"], MAX_MESSAGE_PART)
        line = f"  {path}: {message} (given: {quote(problem.get('input'))})"
        if problem["type"] == "extra_forbidden" and model is not None:
            accepted = _fields_at(model, problem["loc"][:-1])
            if accepted:
                line += f"; accepted keys: {', '.join(accepted)}"
        lines.append(line)
    if len(problems) > MAX_PROBLEMS_SHOWN:
        lines.append(f"  ... and {len(problems) - MAX_PROBLEMS_SHOWN} more problems")
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


class _BoundedRepr(reprlib.Repr):
    """``repr`` that looks at only the first few items and levels of a value, whatever its size."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel = 3
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = self.maxdeque = self.maxarray = 6
        self.maxdict = 6
        self.maxstring = 60
        self.maxlong = 40
        self.maxother = 60

    def repr_int(self, value: int, level: int) -> str:
        try:
            return super().repr_int(value, level)
        except ValueError:  # more digits than Python converts to text (sys.set_int_max_str_digits)
            return f"<an integer of {value.bit_length()} bits>"

    def repr_bytes(self, value: bytes, level: int) -> str:
        return repr(value[: self.maxstring]) + ("..." if len(value) > self.maxstring else "")


_bounded_repr = _BoundedRepr()


def quote(value: Any, limit: int = 60) -> str:
    """A short ``repr`` of a value from the user's input, for a message: never longer than ``limit``.

    Only the beginning of a large value is looked at, so quoting costs little even for a huge one.
    """
    return shorten(_bounded_repr.repr(value), limit)


def shorten(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters, ending in "..." where it was cut."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."
