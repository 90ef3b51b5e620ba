"""One self-contained HTML page for one run or several side by side: ``ganforge report``.

Everything is read from the run folders (config.yaml, metrics.jsonl, samples/), so a run still in
progress can be reported too. Charts are drawn with matplotlib and embedded as PNG, as are the
sample grids: the page needs no network and no other file, and opens from a mail attachment. A
little inline script moves the epoch slider of each run's grids; it marks the page ready, and any
error it meets, on ``<body>`` (``data-ready``, ``data-errors``), for people and tests to see.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from ganforge.config.overrides import flattened
from ganforge.errors import UsageError
from ganforge.marks import HTML_GENERATOR
from ganforge.report_charts import COLOURS, curves_chart, evaluation_chart, figure_uri, png_uri
from ganforge.report_runs import RunView
from ganforge.report_schedules import scheduled_targets, schedules_figure, schedules_table

MAX_CHARTED = 6  # evaluation values charted (all are in the tables)


def config_differences(runs: Sequence[RunView]) -> list[tuple[str, list[str]]]:
    """The settings whose values differ between the runs, each with every run's value."""
    flat = [flattened(run.config) for run in runs]
    keys = sorted(set().union(*flat))
    missing = object()
    rows = []
    for key in keys:
        values = [one.get(key, missing) for one in flat]
        if any(json.dumps(value, default=str) != json.dumps(values[0], default=str) for value in values[1:]):
            rows.append(
                (key, ["(not set)" if value is missing else json.dumps(value, default=str) for value in values])
            )
    return rows


def _evaluation_keys(runs: Sequence[RunView]) -> list[str]:
    """The values the evaluations report that have a floor (scores, not their spread), in order of appearance."""
    keys: list[str] = []
    for run in runs:
        for record in run.evaluations:
            for key in record.get("floor", {}):
                if key not in keys and isinstance(record.get(key), int | float):
                    keys.append(key)
    return keys


def _evaluation_table(run: RunView, keys: Sequence[str]) -> str:
    if not run.evaluations:
        return "<p>No evaluation yet (<code>eval.every</code> is 0, or the first is still to come).</p>"
    shown = [key for key in keys if any(key in record for record in run.evaluations)]
    head = "".join(f"<th>{html.escape(key)}</th>" for key in shown)
    rows = []
    for record in run.evaluations:
        cells = "".join(f"<td>{_number(record.get(key))}</td>" for key in shown)
        rows.append(f"<tr><td>{record['epoch']}</td><td>{record['step']}</td>{cells}</tr>")
    floor = run.evaluations[-1].get("floor", {})
    floor_cells = "".join(f"<td>{_number(floor.get(key))}</td>" for key in shown)
    rows.append(f"<tr class='floor'><td colspan='2'>real floor</td>{floor_cells}</tr>")
    return f"<table><tr><th>epoch</th><th>step</th>{head}</tr>{''.join(rows)}</table>"


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) and not isinstance(value, bool) else ""


def _best_line(run: RunView, directions: Mapping[str, str | None]) -> str:
    best_key = run.settings.eval.best
    scored = [record for record in run.evaluations if isinstance(record.get(best_key), int | float)]
    if not best_key or not scored or directions.get(best_key) is None:
        return ""
    pick = min if directions[best_key] == "lower" else max
    best = pick(scored, key=lambda record: record[best_key])
    kept = f"<code>{html.escape(str(run.best_checkpoint))}</code>" if run.best_checkpoint else "not kept"
    return (
        f"<p>Best by <code>{html.escape(best_key)}</code>: {_number(best[best_key])} at epoch {best['epoch']} "
        f"(step {best['step']}); checkpoint {kept}.</p>"
    )


def _grids_section(run: RunView, index: int) -> tuple[str, list[str]]:
    """The run's grids with a slider over its epochs, and their data URIs (for the script)."""
    uris = [png_uri(png) for _, png in run.grids]
    parts = []
    if run.real_grid is not None:
        parts.append(
            f"<figure><img class='grid' alt='real images' src='{png_uri(run.real_grid)}'>"
            "<figcaption>real images</figcaption></figure>"
        )
    if run.grids:
        epochs = [epoch for epoch, _ in run.grids]
        last = len(run.grids) - 1
        parts.append(
            f"<figure><img class='grid' id='grid-{index}' alt='generated images' src='{uris[last]}'>"
            f"<figcaption>generated, epoch <span id='epoch-{index}'>{epochs[last]}</span></figcaption>"
            f"<input type='range' class='epochs' data-run='{index}' min='0' max='{last}' value='{last}' "
            f"data-epochs='{json.dumps(epochs)}' aria-label='epoch'></figure>"
        )
    else:
        parts.append("<p>No sample grid yet.</p>")
    return f"<div class='grids'>{''.join(parts)}</div>", uris


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: .9em; margin: .5em 0; }
td, th { border: 1px solid #ddd; padding: .25em .6em; text-align: right; }
th { background: #f4f4f4; } tr.floor td { font-style: italic; background: #fafafa; }
td:first-child, th:first-child { text-align: left; }
img.chart { max-width: 100%; } img.grid { image-rendering: pixelated; width: 360px; border: 1px solid #ccc; }
.grids { display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start; }
figure { margin: 0; } input.epochs { width: 360px; display: block; }
pre { background: #f7f7f7; padding: 1em; overflow: auto; font-size: .85em; max-height: 30em; }
.run-title { font-weight: bold; }
"""

# First thing on the page: errors of what follows are caught and shown on <body>.
ERROR_CATCHER = """
window.addEventListener('error', function (event) {
  var errors = document.body.dataset.errors ? document.body.dataset.errors + ' | ' : '';
  document.body.dataset.errors = errors + event.message;
});
"""

SLIDER_SCRIPT = """
document.querySelectorAll('input.epochs').forEach(function (slider) {
  var run = slider.dataset.run, epochs = JSON.parse(slider.dataset.epochs);
  slider.addEventListener('input', function () {
    document.getElementById('grid-' + run).src = GRIDS[run][slider.value];
    document.getElementById('epoch-' + run).textContent = epochs[slider.value];
  });
});
document.body.dataset.ready = '1';
"""


def render(runs: Sequence[RunView], generated: str, directions: Mapping[str, str | None]) -> str:
    """The whole page for these runs (one, or several compared); ``directions`` says which way each evaluation
    value gets better ("lower", "higher"), as the metrics' goals do."""
    if not runs:
        raise UsageError("nothing to report: name one run folder or more")
    title = runs[0].name if len(runs) == 1 else " vs ".join(run.name for run in runs)
    sections = [f"<h1>ganforge report: {html.escape(title)}</h1>", f"<p>{html.escape(generated)}</p>"]
    sections += _runs_table(runs)
    if len(runs) > 1:
        sections += _differences_section(runs)
    sections += _curves_section(runs)
    sections += _schedules_section(runs)
    sections += _evaluations_section(runs, directions)
    samples, grids = _samples_section(runs)
    sections += samples
    sections += _configs_section(runs)
    body = "\n".join(sections)
    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>{HTML_GENERATOR}"
        f"<title>ganforge report: {html.escape(title)}</title><style>{STYLE}</style>"
        f"<script>{ERROR_CATCHER}</script></head>\n<body>\n{body}\n"
        f"<script>var GRIDS = {json.dumps(grids)};\n{SLIDER_SCRIPT}</script>\n</body></html>\n"
    )


# The parts of the page, each a list of lines that render joins with newlines; a section opens with its <h2>.


def _runs_table(runs: Sequence[RunView]) -> list[str]:
    """A row per run: its name, folder, how far it got and how many records it logged."""
    rows = [
        f"<tr><td class='run-title'>{html.escape(run.name)}</td><td>{html.escape(str(run.path))}</td>"
        f"<td>{html.escape(run.status)}</td><td>{len(run.records)}</td></tr>"
        for run in runs
    ]
    return ["<table><tr><th>run</th><th>folder</th><th>status</th><th>records</th></tr>", *rows, "</table>"]


def _differences_section(runs: Sequence[RunView]) -> list[str]:
    """The settings that differ between the runs compared, a column per run."""
    differences = config_differences(runs)
    if not differences:
        return ["<h2>Where the configs differ</h2>", "<p>Nowhere: the runs have the same config.</p>"]
    head = "".join(f"<th>{html.escape(run.name)}</th>" for run in runs)
    rows = "".join(
        f"<tr><td>{html.escape(key)}</td>{''.join(f'<td>{html.escape(v)}</td>' for v in values)}</tr>"
        for key, values in differences
    )
    return ["<h2>Where the configs differ</h2>", f"<table><tr><th>setting</th>{head}</tr>{rows}</table>"]


def _curves_section(runs: Sequence[RunView]) -> list[str]:
    if not any(run.steps for run in runs):
        return ["<h2>Training curves</h2>", "<p>No training line logged yet.</p>"]
    return ["<h2>Training curves</h2>", f"<img class='chart' alt='training curves' src='{curves_chart(runs)}'>"]


def _schedules_section(runs: Sequence[RunView]) -> list[str]:
    """Where a run scheduled settings (``schedules:``): their values over the steps, and a table of each."""
    targets = scheduled_targets(runs)
    if not targets:
        return []
    names = {
        f"{run.name}/{target}": schedule.name for run in runs for target, schedule in run.settings.schedules.items()
    }
    chart = figure_uri(schedules_figure(runs, targets, COLOURS))
    return [
        "<h2>Scheduled settings</h2>",
        f"<img class='chart' alt='scheduled settings' src='{chart}'>",
        schedules_table(runs, targets, names),
    ]


def _evaluations_section(runs: Sequence[RunView], directions: Mapping[str, str | None]) -> list[str]:
    """A chart of the scores (not their spread) over the epochs, then each run's table and best epoch."""
    keys = _evaluation_keys(runs)
    section = ["<h2>Evaluations</h2>"]
    charted = [key for key in keys if directions.get(key) is not None][:MAX_CHARTED]
    if charted:
        section.append(f"<img class='chart' alt='evaluations' src='{evaluation_chart(runs, charted)}'>")
    for run in runs:
        prefix = f"{html.escape(run.name)}: " if len(runs) > 1 else ""
        section.append(
            f"<h3>{prefix}scores beside the real floor</h3>"
            + _evaluation_table(run, keys)
            + _best_line(run, directions)
        )
    return section


def _samples_section(runs: Sequence[RunView]) -> tuple[list[str], list[list[str]]]:
    """Each run's grids, and per run the data URIs of its generated grids (the slider's script reads them)."""
    section = ["<h2>Samples over the epochs</h2>"]
    grids = []
    for index, run in enumerate(runs):
        grid_section, uris = _grids_section(run, index)
        grids.append(uris)
        if len(runs) > 1:
            section.append(f"<h3>{html.escape(run.name)}</h3>")
        section.append(grid_section)
    return section, grids


def _configs_section(runs: Sequence[RunView]) -> list[str]:
    section = ["<h2>Config</h2>"]
    for run in runs:
        text = yaml.safe_dump(run.config, sort_keys=False)
        label = f"<h3>{html.escape(run.name)}</h3>" if len(runs) > 1 else ""
        section.append(f"{label}<pre>{html.escape(text)}</pre>")
    return section
