"""Commands that show what is installed: components, plugins, one component's params, the config schema."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ganforge import __version__
from ganforge.cli.render import (
    component_json,
    conflict_json,
    console,
    constraints_text,
    default_text,
    print_json,
    status_json,
    type_name,
)
from ganforge.config.schema import json_schema
from ganforge.plugins import Plugins, PluginState, PluginStatus
from ganforge.registry import Component, Conflict, Kind

AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output (see docs/cli.md).")]


def list_components(
    ctx: typer.Context,
    kind: Annotated[
        str | None, typer.Argument(help="architecture, loss, dataset or metric (plural works too).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List registered components with their providers, then conflicts and failed plugins."""
    plugins: Plugins = ctx.obj
    chosen = Kind.parse(kind) if kind else None
    components = plugins.registry.components(chosen)
    conflicts = plugins.registry.conflicts(chosen)
    failed = plugins.failed()
    if as_json:
        print_json(
            {
                "ganforge_version": __version__,
                "components": [component_json(c) for c in components],
                "conflicts": [conflict_json(c) for c in conflicts],
                "failed_plugins": [status_json(s) for s in failed],
            }
        )
        return
    for list_kind in [chosen] if chosen else list(Kind):
        print_component_table(list_kind, [c for c in components if c.kind is list_kind], conflicts)
    for conflict in conflicts:
        providers = " and ".join(f"{c.qualified_name} ({c.provider})" for c in conflict.components)
        console.print(
            f"[yellow]conflict:[/] {conflict.kind.value} {conflict.name!r} comes from {providers}; "
            f"a config must name one as distribution:name",
            highlight=False,
        )
    for status in failed:
        console.print(f"[red]failed plugin:[/] {escape(status.describe_failure())}", highlight=False)


def print_component_table(kind: Kind, components: list[Component], conflicts: list[Conflict]) -> None:
    """One kind's components; a name that two distributions register is shown qualified and marked."""
    if not components:
        console.print(f"[bold]{kind.plural.capitalize()}[/]: none registered")
        return
    ambiguous = {(c.kind, c.name) for c in conflicts}
    table = Table(title=kind.plural.capitalize(), title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("aliases")
    table.add_column("provider", no_wrap=True)
    table.add_column("summary", ratio=1)
    for component in components:
        name = component.name
        if any((component.kind, key) in ambiguous for key in (component.name, *component.aliases)):
            name = f"[yellow]{component.qualified_name}[/] (conflict)"
        table.add_row(name, ", ".join(component.aliases), str(component.provider), escape(component.summary))
    console.print(table)


def list_plugins(ctx: typer.Context, as_json: AsJson = False) -> None:
    """List plugins: distribution, version, hooks and whether each loaded."""
    plugins: Plugins = ctx.obj
    if as_json:
        print_json({"plugins": [status_json(s) for s in plugins.statuses]})
        return
    table = Table(title="Plugins", title_justify="left")
    for column in ("plugin", "distribution", "hooks", "status"):
        table.add_column(column)
    for status in plugins.statuses:
        table.add_row(status.name, f"{status.distribution}=={status.version}", ", ".join(status.hooks), state(status))
    console.print(table)


def state(status: PluginStatus) -> str:
    """Whether a plugin loaded, as rich markup; a failure says at which phase and why."""
    refused = "".join(f"; [yellow]refused[/]: {escape(what)}" for what in status.refusals)
    return {PluginState.LOADED: f"[green]loaded[/]{refused}", PluginState.DISABLED: "[dim]disabled[/]"}.get(
        status.state, f"[red]failed at {status.phase}[/]: {escape(status.error or '')}"
    )


def show_component(
    ctx: typer.Context,
    kind: Annotated[str, typer.Argument(help="architecture, loss, dataset or metric.")],
    name: Annotated[str, typer.Argument(help="Component name, alias or distribution:name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the params' JSON schema.")] = False,
) -> None:
    """Show a component's params: type, default and description of each."""
    plugins: Plugins = ctx.obj
    component = plugins.registry.get(Kind.parse(kind), name)
    if as_json:
        print_json({**component_json(component), "params_schema": component.params_model.model_json_schema()})
        return
    console.print(
        f"[bold]{component.kind.value} {component.name}[/] from {component.provider} "
        f"(plugin {component.provider.plugin})",
        highlight=False,
    )
    if component.summary:
        console.print(escape(component.summary), highlight=False)
    if component.aliases:
        console.print(f"aliases: {', '.join(component.aliases)}", highlight=False)
    if not component.params_model.model_fields:
        console.print("params: none")
        return
    console.print(params_table(component))


def params_table(component: Component) -> Table:
    """Each param of a component: its type with any bounds, its default and its description."""
    table = Table(title="params", title_justify="left")
    table.add_column("param", no_wrap=True)
    table.add_column("type")
    table.add_column("default")
    table.add_column("description", ratio=1)
    for field_name, field in component.params_model.model_fields.items():
        bounds = constraints_text(field)
        kind_text = type_name(field.annotation) + (f" ({bounds})" if bounds else "")
        table.add_row(field_name, escape(kind_text), default_text(field), escape(field.description or ""))
    return table


def schema() -> None:
    """Print the JSON schema of a run config."""
    print_json(json_schema())
