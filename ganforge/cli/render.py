"""How the commands show things: the two consoles, JSON on stdout, and the text of components, plugins and params."""

from __future__ import annotations

import json
import sys
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from rich.console import Console
from rich.markup import escape

from ganforge.plugins import PluginStatus
from ganforge.registry import Component, Conflict

console = Console()
err_console = Console(stderr=True)


def print_json(payload: dict[str, Any]) -> None:
    """Machine-readable output, written as is: no rich markup, wrapping or colour."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def print_note(message: str) -> None:
    """A line for the user on stderr (progress of a long step, advice), kept out of stdout's results."""
    err_console.print(message, highlight=False, soft_wrap=True)


def component_json(component: Component) -> dict[str, Any]:
    return {
        "kind": component.kind.value,
        "name": component.name,
        "aliases": list(component.aliases),
        "qualified_name": component.qualified_name,
        "provider": {
            "distribution": component.provider.distribution,
            "version": component.provider.version,
            "plugin": component.provider.plugin,
        },
        "summary": component.summary,
        "params": component.params_model.__name__,
    }


def conflict_json(conflict: Conflict) -> dict[str, Any]:
    return {
        "kind": conflict.kind.value,
        "name": conflict.name,
        "providers": [component.qualified_name for component in conflict.components],
    }


def status_json(status: PluginStatus) -> dict[str, Any]:
    return {
        "name": status.name,
        "distribution": status.distribution,
        "version": status.version,
        "state": status.state.value,
        "hooks": list(status.hooks),
        "phase": status.phase.value if status.phase else None,
        "error": status.error,
        "refused": list(status.refusals),
    }


def type_name(annotation: Any) -> str:
    """A readable type: ``list[int] | None``, ``'batch' | 'none'``, without pydantic's metadata."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_name(args[0])
    if origin is Literal:
        return " | ".join(repr(arg) for arg in args)
    if origin in (Union, UnionType):
        return " | ".join(type_name(arg) for arg in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(type_name(arg) for arg in args)}]"
    if annotation is type(None):
        return "None"
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def constraints_text(field: FieldInfo) -> str:
    """Bounds such as ``> 0`` from the field's annotated-types metadata."""
    symbols = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    parts = [
        f"{symbol} {getattr(item, attribute)}"
        for item in field.metadata
        for attribute, symbol in symbols.items()
        if getattr(item, attribute, None) is not None
    ]
    return ", ".join(parts)


def default_text(field: FieldInfo) -> str:
    """A field's default as JSON, rich markup escaped; ``(required)`` for a field without one."""
    if field.default is PydanticUndefined and field.default_factory is None:
        return "(required)"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return escape(json.dumps(value, default=str))
