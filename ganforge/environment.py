"""The environment variables ganforge reads, each read through one of these: a value a variable does not take is
named with the variable, the value (shortened) and what it accepts, instead of a traceback deep in the code
that uses it, or of being quietly taken for unset.

An empty or blank value is unset, for every variable: ``GANFORGE_DATA= ganforge run ...`` is the usual way to
leave one out for a command.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from ganforge.errors import UsageError, quote
from ganforge.parsing import ACCEPTED_COUNT, parse_count

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


class EnvironmentVariableError(UsageError):
    """An environment variable set to a value it does not take."""

    def __init__(self, name: str, value: str, accepted: str) -> None:
        super().__init__(f"${name} is {quote(value)}: {accepted}; set it so, or unset it")
        self.name = name


def text_setting(name: str) -> str:
    """The variable's value without surrounding blanks; "" when unset."""
    return os.environ.get(name, "").strip()


def flag_setting(name: str) -> bool:
    """A yes/no variable: one of TRUE_WORDS or FALSE_WORDS, in any case; False when unset."""
    value = text_setting(name)
    if not value or value.lower() in FALSE_WORDS:
        return False
    if value.lower() in TRUE_WORDS:
        return True
    raise EnvironmentVariableError(name, value, f"expected {'/'.join(TRUE_WORDS)} or {'/'.join(FALSE_WORDS)}")


def count_setting(name: str) -> int | None:
    """A non-negative whole number in ASCII digits; None when unset."""
    value = text_setting(name)
    if not value:
        return None
    count = parse_count(value)
    if count is None:
        raise EnvironmentVariableError(name, value, f"expected {ACCEPTED_COUNT}")
    return count


def url_setting(name: str) -> str | None:
    """An http:// or https:// URL with a host (a mirror's base URL, say); None when unset."""
    value = text_setting(name)
    if not value:
        return None
    accepted = "expected an http:// or https:// URL with a host, e.g. http://mirror.example/datasets/"
    try:
        parts = urlsplit(value)
        has_host = bool(parts.hostname)
        parts.port  # noqa: B018 -- a port that is not a number raises here
    except ValueError:
        raise EnvironmentVariableError(name, value, accepted) from None
    if parts.scheme.lower() not in ("http", "https") or not has_host or any(char.isspace() for char in value):
        raise EnvironmentVariableError(name, value, accepted)
    return value


def path_setting(name: str) -> Path | None:
    """A path, ``~`` and ``~user`` expanded; None when unset."""
    value = text_setting(name)
    if not value:
        return None
    try:
        return Path(value).expanduser()
    except RuntimeError:  # ~user of a user this machine does not know, or ~ without a home folder
        raise EnvironmentVariableError(
            name, value, "expected a path; a leading ~ must name a user this machine knows, or be left out"
        ) from None
