"""The ``report`` command: one self-contained HTML page of one run, or of several side by side."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ganforge import __version__
from ganforge.cli.render import console, err_console
from ganforge.marks import REPORT
from ganforge.outputs import check_output_file, write_output_file
from ganforge.plugins import Plugins
from ganforge.registry import Kind


def report(
    ctx: typer.Context,
    runs: Annotated[list[Path], typer.Argument(help="Run folders: one, or several to compare (finished or not).")],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="The HTML file to write (self-contained); new, or a report ganforge wrote."),
    ],
) -> None:
    """Write one HTML page of runs: configs, curves, evaluations beside the floor, sample grids over the epochs."""
    from ganforge.report import render
    from ganforge.report_runs import read_run

    read = [path for run in runs for path in (run / "config.yaml", run / "metrics.jsonl", *run.glob("samples/*.png"))]
    check_output_file(out, "--out", REPORT, inputs=read)
    plugins: Plugins = ctx.obj
    directions = {
        key: goal.better
        for component in plugins.registry.components(Kind.METRIC)
        for key, goal in component.build({}).goals.items()
    }
    views = [read_run(run) for run in runs]
    for note in (note for view in views for note in view.notes):
        err_console.print(f"[yellow]warning:[/] {escape(note)}", highlight=False, soft_wrap=True)
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    page = render(views, f"Written by ganforge {__version__} on {stamp}.", directions)
    write_output_file(out, "--out", REPORT, lambda stream: stream.write(page.encode("utf-8")), inputs=read)
    console.print(f"wrote {out} ({len(page.encode('utf-8')) / 1e6:.1f} MB): open it in a browser", highlight=False)
