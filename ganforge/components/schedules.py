"""Built-in schedules: a setting's value as a function of the real images shown to D so far.

Each is a pure function of that count (no state), so a resumed run and every process of a
distributed one compute the same values (see ``ganforge.contracts.Schedule``). ``constant``,
``linear`` and ``cosine`` go from ``start`` to ``end`` over ``images`` images, beginning after
``begin`` images; ``r3gan`` is the schedule R3GAN (Huang et al. 2024) trains with: an optional
linear warm-up, a hold, then a half-cosine from ``base`` to ``final``, reached after ``images``
images in all and kept from there on.
"""

from __future__ import annotations

import math

from pydantic import ConfigDict, Field, model_validator

from ganforge.contracts import Params, Schedule
from ganforge.hookspecs import hookimpl

MAX_IMAGES = 10**13  # far beyond any run: a bound that keeps the arithmetic exact in floats


class _ScheduleParams(Params):
    model_config = ConfigDict(allow_inf_nan=False)  # a value is a setting's: never NaN or infinite


class ConstantParams(_ScheduleParams):
    value: float = Field(1.0, description="The value at every step.")


class RampParams(_ScheduleParams):
    start: float = Field(1.0, description="The value until `begin` images have been shown.")
    end: float = Field(0.0, description="The value from `begin + images` images on.")
    images: int = Field(1_000_000, ge=1, le=MAX_IMAGES, description="Images over which the value goes to `end`.")
    begin: int = Field(0, ge=0, le=MAX_IMAGES, description="Images shown before the value starts to change.")


class R3GANParams(_ScheduleParams):
    base: float = Field(2e-4, description="The value after the warm-up, where the cosine decay starts.")
    final: float = Field(5e-5, description="The value reached at `images` images and kept from there on.")
    images: int = Field(
        20_000_000, ge=1, le=MAX_IMAGES, description="Images shown when the decay ends (R3GAN's total_nimg)."
    )
    warmup_images: int = Field(0, ge=0, le=MAX_IMAGES, description="Images of a linear warm-up to `base`; 0: none.")
    warmup_start: float = Field(0.0, description="The value at 0 images, where there is a warm-up.")
    hold_images: int = Field(0, ge=0, le=MAX_IMAGES, description="Images `base` is held for after the warm-up.")

    @model_validator(mode="after")
    def _decay_after_warmup_and_hold(self) -> R3GANParams:
        if self.warmup_images + self.hold_images >= self.images:
            raise ValueError(
                f"images ({self.images}) must be more than warmup_images + hold_images "
                f"({self.warmup_images + self.hold_images}): the decay comes after them"
            )
        return self


def _progress(images: int, begin: int, length: int) -> float:
    """How far ``images`` is through the ``length`` images after ``begin``: 0 before, 1 after."""
    return min(1.0, max(0.0, (images - begin) / length))


def _between(start: float, end: float, fraction: float) -> float:
    """``start`` at 0, ``end`` at 1 (each exactly, whatever rounding would make of it), in proportion between."""
    if fraction <= 0.0:
        return start
    return end if fraction >= 1.0 else start + (end - start) * fraction


def _half_cosine(start: float, end: float, progress: float) -> float:
    """From ``start`` at progress 0 to ``end`` at 1, flat at both ends."""
    return _between(start, end, 0.5 * (1.0 - math.cos(math.pi * progress)))


class Constant(Schedule):
    """The same value at every step."""

    def __init__(self, params: ConstantParams) -> None:
        self.value = params.value

    def __call__(self, images: int) -> float:
        return self.value

    def extremes(self) -> tuple[float, float]:
        return self.value, self.value


class _Ramp(Schedule):
    def __init__(self, params: RampParams) -> None:
        self.params = params

    def extremes(self) -> tuple[float, float]:
        return min(self.params.start, self.params.end), max(self.params.start, self.params.end)


class Linear(_Ramp):
    """From start to end in a straight line over `images` images, after `begin`."""

    def __call__(self, images: int) -> float:
        p = self.params
        return _between(p.start, p.end, _progress(images, p.begin, p.images))


class Cosine(_Ramp):
    """From start to end along a half-cosine over `images` images, after `begin` (flat at both ends)."""

    def __call__(self, images: int) -> float:
        p = self.params
        return _half_cosine(p.start, p.end, _progress(images, p.begin, p.images))


class R3GAN(Schedule):
    """R3GAN's: linear warm-up, hold, then cosine decay from base to final by `images` images."""

    def __init__(self, params: R3GANParams) -> None:
        self.params = params

    def __call__(self, images: int) -> float:
        p = self.params
        if images < p.warmup_images:
            return _between(p.warmup_start, p.base, images / p.warmup_images)
        decay_begins = p.warmup_images + p.hold_images
        return _half_cosine(p.base, p.final, _progress(images, decay_begins, p.images - decay_begins))

    def extremes(self) -> tuple[float, float]:
        p = self.params
        values = [p.base, p.final, *([p.warmup_start] if p.warmup_images else [])]
        return min(values), max(values)


@hookimpl
def register_schedules(register) -> None:
    register("constant", Constant, params=ConstantParams)
    register("linear", Linear, params=RampParams)
    register("cosine", Cosine, params=RampParams)
    register("r3gan", R3GAN, params=R3GANParams)
