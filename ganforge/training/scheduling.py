"""The config's ``schedules:``, applied before each step: every setting a pure function of the images shown.

Before each step every schedule is read at the real images shown so far (all processes
together; the batch order counts them from where the run stands), and its value is set where the
step reads it: the optimisers' param groups (lr, betas), the EMA's decay, the augmentation
strength, the loss's params (a copy with the scheduled fields, as ``loss.params``). Nothing is
kept between steps but the values themselves, so a resumed run, or a distributed one, takes the
same values at the same step as a run never stopped. A checkpoint keeps the values the next step
takes; a resume computes them again and refuses a config whose schedules say otherwise.
Reading a schedule is a few float operations on the host: no device work, no sync.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ganforge.config import ResolvedRun
from ganforge.config.schedule_targets import LOSS_PARAMS, OPTIMIZER_SETTINGS, RECORD_PREFIX
from ganforge.config.schema import ema_decay_of_half_life
from ganforge.contracts import Schedule
from ganforge.training.step import GANStep

RELATIVE_TOLERANCE = 1e-9  # between a checkpoint's values and the same schedules read again (libm may differ)


class ScheduledSettings:
    """The run's schedules, each with where its value goes; a part of the checkpoint (its ``schedules``)."""

    def __init__(self, run: ResolvedRun, step: GANStep, images_shown: Callable[[], int]) -> None:
        self.schedules: dict[str, Schedule] = {target: chosen.build() for target, chosen in run.schedules.items()}
        self.step = step
        self.images_shown = images_shown
        train = run.config.train
        self.images_per_ema_update = train.batch_size * train.n_critic
        self.setters = {
            target: _setter(target, step, self.images_per_ema_update)
            for target in self.schedules
            if not target.startswith(LOSS_PARAMS)
        }
        self.values: dict[str, float] = {}

    def values_at(self, images: int) -> dict[str, float]:
        return {target: float(schedule(images)) for target, schedule in self.schedules.items()}

    def apply(self) -> None:
        """Before a step: every scheduled setting at the images shown so far."""
        if not self.schedules:
            return
        self.values = self.values_at(self.images_shown())
        loss_params = {}
        for target, value in self.values.items():
            if target in self.setters:
                self.setters[target](value)
            else:
                loss_params[target.removeprefix(LOSS_PARAMS)] = value
        if loss_params:
            loss = self.step.loss
            loss.params = loss.params.model_copy(update=loss_params)  # type: ignore[attr-defined]  # resolve.py checked it

    def record(self) -> dict[str, float]:
        """For a logged line: the value each scheduled setting took in the last step."""
        return {f"{RECORD_PREFIX}{target}": value for target, value in self.values.items()}

    # -- in checkpoints ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The values the next step takes, where any setting is scheduled."""
        return {"schedules": self.values_at(self.images_shown())} if self.schedules else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """After the batch order and the progress are loaded: the config's schedules must give the saved values."""
        saved = state.get("schedules") or {}
        images = self.images_shown()
        now = self.values_at(images)
        differences = [
            f"{target} is {_shown(now.get(target))} by the config, {_shown(saved.get(target))} in the checkpoint"
            for target in sorted(set(saved) | set(now))
            if not _agree(saved.get(target), now.get(target))
        ]
        if differences:
            raise ValueError(
                f"schedules: at {images} images shown, " + "; ".join(differences) + " (resume with the schedules "
                "the run was trained with, or start a new run)"
            )


def _agree(saved: float | None, now: float | None) -> bool:
    if saved is None or now is None:
        return saved is None and now is None
    return math.isclose(saved, now, rel_tol=RELATIVE_TOLERANCE, abs_tol=0.0)


def _shown(value: float | None) -> str:
    return "not scheduled" if value is None else f"{value:.9g}"


def _setter(target: str, step: GANStep, images_per_ema_update: int) -> Callable[[float], None]:
    """What sets ``target`` where the step reads it (a target resolve.py accepted, the loss's params aside)."""
    section, _, setting = target.rpartition(".")
    if section.startswith("optim."):
        optimizer = step.optimizer_g if section == "optim.generator" else step.optimizer_d
        index = OPTIMIZER_SETTINGS[setting]

        def set_optimizer(value: float) -> None:
            for group in optimizer.param_groups:
                if index is None:
                    group["lr"] = value
                else:
                    betas = list(group["betas"])
                    betas[index] = value
                    group["betas"] = tuple(betas)

        return set_optimizer
    if target == "train.ema_decay":
        return lambda value: setattr(step, "ema_decay", value)
    if target == "train.ema_half_life":
        return lambda value: setattr(step, "ema_decay", ema_decay_of_half_life(value, images_per_ema_update))
    if target == "augment.strength":
        return lambda value: setattr(step, "strength", value)
    raise ValueError(f"schedules: {target!r} is not a setting a schedule can drive")
