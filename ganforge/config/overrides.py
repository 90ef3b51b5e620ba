"""``--set`` overrides: dotted settings read and written into a config's raw mapping before it is validated.

``train.epochs=5`` sets ``raw["train"]["epochs"]`` to 5, its value read as YAML by the same bounded
reader as a config file; ``flattened`` goes the other way, from a config to the dotted settings
(what trackers record, and what ``--set`` would take back). Whether the result is a valid config
is resolve.py's question, asked once every override is in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ganforge.errors import ConfigError, quote, shorten
from ganforge.yaml_reader import load_yaml_text

# Sections whose keys are dotted settings themselves (``schedules: {optim.generator.lr: ...}``).
DOTTED_KEY_SECTIONS = ("schedules",)


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
        path = _dotted_keys_joined(raw, path)
        target = raw
        for depth, part in enumerate(path[:-1]):
            existing = target.setdefault(part, {})
            if not isinstance(existing, dict):
                shown = shorten(".".join(path), 100)
                raise ConfigError(f"{option} {shown}: {shorten('.'.join(path[: depth + 1]), 100)} is not a section")
            target = existing
        target[path[-1]] = value
    return raw


def _dotted_keys_joined(raw: Mapping[str, Any], path: list[str]) -> list[str]:
    """In a section keyed by dotted settings (``schedules``), the parts that name one key, joined into it.

    The key is the longest run of parts that names an entry there already (``schedules.optim.generator.lr.
    params.end`` edits that entry's params); where none does, the rest of the path names a new entry.
    """
    if len(path) < 2 or path[0] not in DOTTED_KEY_SECTIONS:
        return path
    section = raw.get(path[0])
    existing = section if isinstance(section, Mapping) else {}
    for end in range(len(path), 1, -1):
        if ".".join(path[1:end]) in existing:
            return [path[0], ".".join(path[1:end]), *path[end:]]
    return [path[0], ".".join(path[1:])]


def flattened(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1}}`` -> ``{"train.lr": 1}``: a resolved config as dotted settings (what --set takes)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            flat.update(flattened(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
