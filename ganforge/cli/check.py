"""The ``check`` command: the contract checks on installed components, as tables or JSON."""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ganforge.cli.render import console, print_json
from ganforge.errors import UsageError
from ganforge.plugins import Plugins
from ganforge.registry import Component, Kind, Registry, same_distribution
from ganforge.testing import CHECKS, CheckResult, check_component
from ganforge.testing.checks.architectures import DEFAULT_SHAPES

STATUSES = ("passed", "failed", "skipped", "known failure")
MAX_CHECKED_CHANNELS = 16
MAX_CHECKED_SIDE = 1024
SHAPE_TEXT = re.compile(r"^([0-9]{1,5})x([0-9]{1,5})x([0-9]{1,5})$")


def check(
    ctx: typer.Context,
    target: Annotated[
        str | None,
        typer.Argument(help="A distribution (all its components), KIND:NAME, or nothing for everything."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable results.")] = False,
    shapes: Annotated[
        list[str] | None,
        typer.Option(
            "--shape",
            metavar="CxHxW",
            help="Check architectures on data of this shape (repeatable), e.g. --shape 3x64x64 --shape 3x128x128; "
            "default 1x28x28 and 3x32x32.",
        ),
    ] = None,
) -> None:
    """Run the contract checks on installed components; exit 1 if any fails (known failures declared by a
    component at registration do not count)."""
    plugins: Plugins = ctx.obj
    data_shapes = [parse_shape(text) for text in shapes] if shapes else None
    components = select_components(plugins.registry, target)
    results = [result for component in components for result in check_component(component, data_shapes)]
    failed = [result for result in results if result.status == "failed"]
    if as_json:
        print_json({"passed": not failed, "results": [dataclasses.asdict(r) for r in results]})
    else:
        print_check_tables(components, results)
        counts = {status: sum(r.status == status for r in results) for status in STATUSES}
        console.print(
            f"{len(components)} components: {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['skipped']} skipped, {counts['known failure']} known failures"
            + _shapes_note(components, data_shapes),
            highlight=False,
        )
    if failed:
        raise typer.Exit(1)


def _shapes_note(components: list[Component], shapes: list[tuple[int, int, int]] | None) -> str:
    if not any(component.kind is Kind.ARCHITECTURE for component in components):
        return ""
    checked = shapes or DEFAULT_SHAPES
    return "; architectures checked on data " + ", ".join("x".join(map(str, shape)) for shape in checked)


def parse_shape(text: str) -> tuple[int, int, int]:
    """``3x64x64`` -> (3, 64, 64), within bounds a check can build on this machine."""
    match = SHAPE_TEXT.match(text.strip().lower())
    if match is None:
        raise UsageError(f"--shape {text!r}: expected CHANNELSxHEIGHTxWIDTH, e.g. 3x64x64 or 1x28x28")
    channels, height, width = (int(group) for group in match.groups())
    if not 1 <= channels <= MAX_CHECKED_CHANNELS or not (
        1 <= height <= MAX_CHECKED_SIDE and 1 <= width <= MAX_CHECKED_SIDE
    ):
        raise UsageError(
            f"--shape {text!r}: channels must be 1 to {MAX_CHECKED_CHANNELS} and each side 1 to {MAX_CHECKED_SIDE} "
            "pixels"
        )
    return channels, height, width


def select_components(registry: Registry, target: str | None) -> list[Component]:
    """Everything, one distribution's components, or one ``kind:name``."""
    if not target:
        return registry.components()
    kind_text, separator, name = target.partition(":")
    if separator and kind_text.lower() in {text for kind in Kind for text in (kind.value, kind.plural)}:
        return [registry.get(Kind.parse(kind_text), name)]
    chosen = [c for c in registry.components() if same_distribution(c.provider.distribution, target)]
    if not chosen:
        distributions = sorted({c.provider.distribution for c in registry.components()})
        raise UsageError(
            f"no installed distribution {target!r} provides components; give one of {', '.join(distributions)}, "
            "or KIND:NAME such as architecture:mlp"
        )
    return chosen


def print_check_tables(components: list[Component], results: list[CheckResult]) -> None:
    """A table per kind (a row per check, a column per component), then what failed or was skipped, and why."""
    marks = {
        "passed": "[green]pass[/]",
        "failed": "[bold red]FAIL[/]",
        "skipped": "[dim]skip[/]",
        "known failure": "[yellow]known[/]",
    }
    by_key = {(r.component, r.check): r for r in results}
    for kind in Kind:
        members = [c for c in components if c.kind is kind]
        if not members:
            continue
        table = Table(title=f"{kind.plural.capitalize()}: contract checks", title_justify="left")
        table.add_column("check", no_wrap=True)
        for component in members:
            table.add_column(component.qualified_name, justify="center")
        for check_function in CHECKS[kind]:
            name = check_function.__name__
            table.add_row(
                name.removeprefix("check_"), *(marks[by_key[(c.qualified_name, name)].status] for c in members)
            )
        console.print(table)
    for result in results:
        if result.status != "passed":
            colour = "red" if result.status == "failed" else "dim"
            console.print(
                f"[{colour}]{result.status}[/] {result.component} {result.check}: {escape(result.message)}",
                highlight=False,
                soft_wrap=True,
            )
