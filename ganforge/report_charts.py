"""The report's charts, drawn with matplotlib and embedded in the page as PNG data URIs.

Run names and metric keys are the user's text (a config's ``name``, a plugin metric's key): every
chart draws them as written, never as mathtext, since a ``$\\undefinedcommand{x}$`` in one would
fail the whole page.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ganforge.report_runs import RunView

# Panels of training curves, each drawn where a run logs its first value: an ACGAN's class head has the third.
CURVES = (("d_loss", "g_loss"), ("D(x)", "D(G(z))"), ("class_acc_real", "class_acc_fake"))
# matplotlib cannot scale an axis to values far beyond this (1e308 beside -1e308 fails): larger ones are left off the
# charts, and stay in the tables.
CHARTABLE = 1e100
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


@contextmanager
def drawing() -> Iterator[Any]:
    """pyplot on the Agg backend (no display); every text made inside is drawn as written (mathtext off)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"text.parse_math": False}):
        yield plt


def chartable(value: Any) -> bool:
    """A logged value a chart can draw: a number within CHARTABLE (NaN and the infinities: gaps, as matplotlib's)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and not abs(value) > CHARTABLE


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure_uri(figure: Any) -> str:
    """A figure as a PNG data URI; the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(figure)
    return png_uri(buffer.getvalue())


def curves_chart(runs: Sequence[RunView]) -> str:
    """Losses, D's outputs and (for an ACGAN) its class head's accuracy over the steps, every run in the same
    axes (one colour per run)."""
    panels = [keys for keys in CURVES if any(keys[0] in record for run in runs for record in run.steps)]
    panels = panels or list(CURVES[:2])  # a run with no step logged yet: empty axes, titled
    with drawing() as plt:
        figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
        for axis, keys in zip(axes[0], panels, strict=True):
            for index, run in enumerate(runs):
                colour = COLOURS[index % len(COLOURS)]
                for key, style in zip(keys, ("-", "--"), strict=True):
                    points = [(r["step"], float(r[key])) for r in run.steps if chartable(r.get(key))]
                    if points:
                        label = f"{key} ({run.name})" if len(runs) > 1 else key
                        axis.plot(*zip(*points, strict=True), style, color=colour, label=label, linewidth=1.2)
            axis.set_xlabel("step")
            axis.set_title(" and ".join(keys))
            axis.grid(alpha=0.3)
            if axis.lines:
                axis.legend(fontsize=8)
        return figure_uri(figure)


def evaluation_chart(runs: Sequence[RunView], keys: Sequence[str]) -> str:
    """Each evaluation value over the epochs, every run in the same axes, its real floor dotted."""
    with drawing() as plt:
        figure, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
        for axis, key in zip(axes[0], keys, strict=True):
            for index, run in enumerate(runs):
                colour = COLOURS[index % len(COLOURS)]
                points = [(r["epoch"], float(r[key])) for r in run.evaluations if chartable(r.get(key))]
                if points:
                    axis.plot(*zip(*points, strict=True), "o-", color=colour, label=run.name, markersize=4)
                    floor = run.evaluations[-1].get("floor", {}).get(key)
                    if chartable(floor):
                        axis.axhline(floor, color=colour, linestyle=":", linewidth=1)
            axis.set_title(f"{key} (dotted: real floor)", fontsize=9)
            axis.set_xlabel("epoch")
            axis.grid(alpha=0.3)
            if len(runs) > 1 and axis.lines:
                axis.legend(fontsize=8)
        return figure_uri(figure)
