"""Plugins' commands on the ``ganforge`` command line: added beside the built-ins, never over one.

click keeps the last command of a name, so a plugin that adds ``run`` would silently replace the
built-in, and of two plugins adding ``hello`` the later would win. Each plugin's
``register_commands`` hook runs on the real app; what it added is then read back, a name already
taken (by a built-in or an earlier plugin) is refused and named, and the app's tables are put back
to what they were plus what was accepted, so a hook cannot remove or reorder what is there either.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.main import get_command_name, get_group_from_info
from typer.models import CommandInfo, TyperInfo

from ganforge.errors import first_line, shorten
from ganforge.plugins import Phase, Plugins, PluginState, PluginStatus

BUILT_IN = "ganforge's built-in command"


def add_plugin_commands(plugins: Plugins, app: typer.Typer) -> None:
    """Let every loaded plugin add its commands to ``app``; a name already taken is refused, the first owner stays."""
    adding = [
        status
        for status in plugins.statuses
        if status.state is PluginState.LOADED and "register_commands" in status.hooks
    ]
    if not adding:
        return  # the usual case: no built-in's names to read
    owners = {name: BUILT_IN for entry in _entries(app) for name in top_level_names(entry)}
    for status in adding:
        commands, groups = list(app.registered_commands), list(app.registered_groups)
        known = {id(entry) for entry in (*commands, *groups)}
        called = plugins.call_hook(status, "register_commands", Phase.COMMANDS, app=app)
        added = [entry for entry in _entries(app) if id(entry) not in known] if called else []
        app.registered_commands, app.registered_groups = commands, groups
        for entry in added:
            if _accept(plugins, status, entry, owners):
                (app.registered_commands if isinstance(entry, CommandInfo) else app.registered_groups).append(entry)


def top_level_names(entry: CommandInfo | TyperInfo) -> set[str]:
    """The names an entry of a typer app's tables answers to at the top level (a nameless group: its commands')."""
    if isinstance(entry, CommandInfo):
        return {entry.name or get_command_name(entry.callback.__name__)}  # type: ignore[union-attr]
    group = get_group_from_info(entry, pretty_exceptions_short=True, suggest_commands=False, rich_markup_mode=None)
    return {group.name} if group.name else set(group.commands)


def _entries(app: typer.Typer) -> list[Any]:
    try:
        return [*app.registered_commands, *app.registered_groups]
    except TypeError:  # a hook put something that is no list in their place: nothing of it is taken
        return []


def _accept(plugins: Plugins, status: PluginStatus, entry: Any, owners: dict[str, str]) -> bool:
    """Whether a plugin's new entry may stay: a typer command or group whose names nobody has yet."""
    if not isinstance(entry, CommandInfo | TyperInfo):
        plugins.refuse(status, f"put a {type(entry).__name__} among the commands, not a typer command; left out")
        return False
    try:
        names = top_level_names(entry)
    except Exception as error:  # a malformed entry: typer cannot make a command of it
        reason = f"{type(error).__name__}: {shorten(first_line(str(error)), 200)}"
        plugins.refuse(status, f"added a command typer cannot build ({reason}); left out")
        return False
    taken = sorted(name for name in names if name in owners)
    if taken:
        holders = "; ".join(f"{name!r} is {owners[name]}" for name in taken)
        plugins.refuse(
            status,
            f"adds the command {', '.join(map(repr, taken))}, already taken ({holders}): "
            "the first stays and the plugin's is left out; a plugin's command needs a name of its own",
        )
        return False
    owner = f"the command of plugin {status.name!r} from {status.distribution}=={status.version}"
    owners.update(dict.fromkeys(names, owner))
    return True
