"""The report's scheduled settings: each value a run's ``schedules:`` drove, over the steps, as its lines logged it.

Read from metrics.jsonl alone (the ``schedule/<target>`` values of every step line), so the page
shows what the run took, not what its config would compute now. One panel per setting, every run
in the same axes; a table gives each setting's first and last logged value.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ganforge.config.schedule_targets import RECORD_PREFIX
from ganforge.report_charts import chartable, drawing

PANELS_PER_ROW = 3


class LoggedRun(Protocol):
    name: str

    @property
    def steps(self) -> list[dict[str, Any]]: ...


def scheduled_targets(runs: Sequence[LoggedRun]) -> list[str]:
    """Every setting some run's step lines carry a scheduled value of, in order of appearance."""
    targets: list[str] = []
    for run in runs:
        for record in run.steps:
            for key in record:
                if key.startswith(RECORD_PREFIX) and key.removeprefix(RECORD_PREFIX) not in targets:
                    targets.append(key.removeprefix(RECORD_PREFIX))
    return targets


def _points(run: LoggedRun, target: str) -> list[tuple[int, float]]:
    key = RECORD_PREFIX + target
    return [(record["step"], float(record[key])) for record in run.steps if chartable(record.get(key))]


def schedules_figure(runs: Sequence[LoggedRun], targets: Sequence[str], colours: Sequence[str]) -> Any:
    """A matplotlib figure: a panel per setting, its values over the steps, a colour per run."""
    columns = min(PANELS_PER_ROW, len(targets))
    rows = -(-len(targets) // columns)
    with drawing() as plt:
        figure, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 3 * rows), squeeze=False)
        _draw_panels(axes, runs, targets, colours)
        figure.tight_layout()
    return figure


def _draw_panels(axes: Any, runs: Sequence[LoggedRun], targets: Sequence[str], colours: Sequence[str]) -> None:
    for place, axis in enumerate(axes.flat):
        if place >= len(targets):
            axis.set_visible(False)
            continue
        for index, run in enumerate(runs):
            points = _points(run, targets[place])
            if points:
                axis.plot(*zip(*points, strict=True), color=colours[index % len(colours)], label=run.name)
        axis.set_title(targets[place], fontsize=9)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        if len(runs) > 1 and axis.lines:
            axis.legend(fontsize=8)


def schedules_table(runs: Sequence[LoggedRun], targets: Sequence[str], names: Mapping[str, str]) -> str:
    """A row per run and setting: the schedule's name (``names``, by run and target) and its first and last value."""
    rows = []
    for run in runs:
        for target in targets:
            points = _points(run, target)
            if not points:
                continue
            (first_step, first), (last_step, last) = points[0], points[-1]
            rows.append(
                f"<tr><td>{html.escape(run.name)}</td><td>{html.escape(target)}</td>"
                f"<td>{html.escape(names.get(f'{run.name}/{target}', ''))}</td>"
                f"<td>{first:.4g} (step {first_step})</td><td>{last:.4g} (step {last_step})</td></tr>"
            )
    head = "<tr><th>run</th><th>setting</th><th>schedule</th><th>first logged</th><th>last logged</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"
