"""Contract checks of schedules: finite values within their own extremes, a pure function of the images shown."""

from __future__ import annotations

import math

from ganforge.contracts import Schedule, describe_value, require
from ganforge.registry import Component

# Image counts from the first step to far beyond any run, with points between: where a schedule is read.
IMAGE_COUNTS = (0, 1, 64, 1000, 65_536, 10**6, 3 * 10**6 + 7, 2 * 10**7, 10**9, 10**12)


def _values(schedule: Schedule) -> list[float]:
    values = [schedule(images) for images in IMAGE_COUNTS]
    for images, value in zip(IMAGE_COUNTS, values, strict=True):
        require(
            isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value),
            f"at {images} images it returned {describe_value(value)}, not a finite number",
        )
    return values


def check_schedule_stays_within_its_extremes(component: Component) -> None:
    """Finite values at image counts from 0 to 10^12, none outside ``extremes()``, which are finite and in order."""
    schedule = component.build({})
    extremes = schedule.extremes()
    require(
        isinstance(extremes, tuple) and len(extremes) == 2 and all(math.isfinite(value) for value in extremes),
        f"extremes() returned {describe_value(extremes)}, not (least, greatest) as two finite numbers",
    )
    least, greatest = extremes
    require(least <= greatest, f"extremes() returned ({least}, {greatest}): the least is above the greatest")
    for images, value in zip(IMAGE_COUNTS, _values(schedule), strict=True):
        require(least <= value <= greatest, f"at {images} images it returned {value}, outside ({least}, {greatest})")


def check_schedule_depends_on_images_alone(component: Component) -> None:
    """The same values read twice, backwards, and from a second build: what a resumed run relies on."""
    first, second = component.build({}), component.build({})
    forwards = _values(first)
    backwards = [first(images) for images in reversed(IMAGE_COUNTS)][::-1]
    require(forwards == backwards, "reading it again, in reverse order, gave other values: it keeps state")
    require(forwards == _values(second), "a second build gave other values for the same image counts")
