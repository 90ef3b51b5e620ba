"""The ``ganforge`` command line: typer commands, rich output, errors on stderr with an exit code.

Each group of commands lives in a module of its own (components, run, evaluate, sample, check, export, report);
``create_app`` only puts them together, then lets plugins add theirs
(beside the built-ins, never over one: see plugin_commands). A command reaches the loaded
plugins (and their registry) through ``ctx.obj``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from ganforge import __version__
from ganforge.cli import check, components, data, evaluate, export, report, run, sample
from ganforge.cli.plugin_commands import add_plugin_commands
from ganforge.cli.render import console, err_console
from ganforge.errors import GanforgeError
from ganforge.guards import startup
from ganforge.plugins import Plugins, default_plugins
from ganforge.training.distributed import launched_rank, leave_launch, rank_label

HELP = "Train GANs from a YAML config; every architecture, loss, dataset and metric is a plugin."

# In the order `ganforge --help` lists them: a command's function, or a group's typer app.
COMMANDS: list[tuple[str, Callable[..., None] | typer.Typer]] = [
    ("list", components.list_components),
    ("plugins", components.list_plugins),
    ("show", components.show_component),
    ("data", data.app),
    ("run", run.run),
    ("validate", run.validate),
    ("schema", components.schema),
    ("sample", sample.sample),
    ("check", check.check),
    ("eval", evaluate.evaluate),
    ("export", export.export),
    ("report", report.report),
]


def report_error(error: GanforgeError) -> None:
    # The hints know the errors of every command, evaluation's and training's too: imported on an error alone.
    from ganforge.cli.hints import with_flag_hints

    message = f"{rank_label()}{with_flag_hints(error)}"
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


class _ReportingGroup(TyperGroup):
    """Turns a GanforgeError from any command, a plugin's too, into a message and its exit code."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GanforgeError as error:
            report_error(error)
            raise typer.Exit(error.exit_code) from None

    def list_commands(self, ctx: typer.Context) -> list[str]:
        # typer adds groups after commands; the help lists them in COMMANDS' order, plugins' commands last.
        order = [name for name, _ in COMMANDS]
        return sorted(super().list_commands(ctx), key=lambda name: order.index(name) if name in order else len(order))


def create_app(plugins: Plugins) -> typer.Typer:
    """The CLI over a set of loaded plugins (tests pass an isolated set)."""
    app = typer.Typer(
        cls=_ReportingGroup,
        name="ganforge",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"obj": plugins},
    )
    app.callback()(root)
    for name, command in COMMANDS:
        if isinstance(command, typer.Typer):
            app.add_typer(command, name=name)
        else:
            app.command(name)(command)
    add_plugin_commands(plugins, app)
    return app


def print_version(value: bool) -> None:
    if value:
        console.print(f"ganforge {__version__}", highlight=False)
        raise typer.Exit()


def root(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=print_version, is_eager=True)
    ] = False,
) -> None:
    """Train GANs from a YAML config; every architecture, loss, dataset and metric is a plugin."""


def main() -> None:
    """The ``ganforge`` command (the console script and ``python -m ganforge``)."""
    # ganforge/__init__.py installed the Ctrl-C guard already when it saw this command; main() may be called otherwise.
    startup.begin_command()
    startup.stop_if_interrupted()  # a Ctrl-C that an import caught and dropped
    try:
        plugins = default_plugins()
        startup.stop_if_interrupted()
        app = create_app(plugins)
    except GanforgeError as error:  # strict mode and a plugin failed, at loading or adding its commands
        report_error(error)
        sys.exit(error.exit_code)
    try:
        try:
            app(prog_name="ganforge")
        finally:
            startup.end_command()
    except SystemExit as finished:
        # A failing rank ends the usual way: slower, so the launcher sees it fail, and names it, before the
        # peers it leaves behind fail in their collectives.
        if launched_rank() is not None and finished.code in (None, 0):
            leave_launch()
        raise
