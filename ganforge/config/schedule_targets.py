"""What a schedule may drive: the settings ``schedules:`` can name, and whether each schedule fits its setting.

A target is the dotted place of the setting in the config (``optim.generator.lr``), except Adam's
betas, named one by one (``optim.generator.beta2``). ``loss.params.<field>`` names a float field of
the loss's own params model, found through the registry, so a third party's loss takes schedules
as a built-in does. A schedule fits when its least and greatest values (``Schedule.extremes``)
are both values the setting's own model accepts: the bounds are checked where they are declared,
once, whatever the setting.
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ganforge.config.problems import ConfigProblem
from ganforge.config.schema import EMA_TARGETS, RunConfig
from ganforge.contracts import describe_value
from ganforge.registry import Chosen

NETWORKS = ("generator", "discriminator")
OPTIMIZER_SETTINGS = {"lr": None, "beta1": 0, "beta2": 1}  # the field's element (an index into betas), or None
LOSS_PARAMS = "loss.params."
# A logged line (metrics.jsonl) names each scheduled value by this prefix and its target: "schedule/optim.generator.lr".
RECORD_PREFIX = "schedule/"
FIXED_TARGETS = (
    *(f"optim.{network}.{setting}" for network in NETWORKS for setting in OPTIMIZER_SETTINGS),
    *EMA_TARGETS,
    "augment.strength",
)


@dataclass(frozen=True)
class Setting:
    """A setting a schedule drives: the model instance that holds it, its field there, an element of a tuple."""

    holder: BaseModel
    field: str
    index: int | None = None

    def refusal(self, value: float) -> str | None:
        """Why the setting's own model refuses ``value`` (its message), or None where it takes it."""
        values = self.holder.model_dump()
        if self.index is None:
            values[self.field] = value
        else:
            element = list(values[self.field])
            element[self.index] = value
            values[self.field] = tuple(element)
        try:
            type(self.holder).model_validate(values)
        except ValidationError as error:
            return str(error.errors()[0]["msg"]).removeprefix("Value error, ")
        return None


def setting_of(target: str, config: RunConfig, loss: Chosen) -> Setting | None:
    """The setting ``target`` names, or None where it names none a schedule may drive."""
    if target.startswith(LOSS_PARAMS):
        field = target.removeprefix(LOSS_PARAMS)
        return Setting(loss.params, field) if field in float_fields(type(loss.params)) else None
    section, _, setting = target.rpartition(".")
    if section in (f"optim.{network}" for network in NETWORKS) and setting in OPTIMIZER_SETTINGS:
        index = OPTIMIZER_SETTINGS[setting]
        optimizer = getattr(config.optim, section.removeprefix("optim."))
        return Setting(optimizer, "lr" if index is None else "betas", index)
    if target in EMA_TARGETS:
        return Setting(config.train, setting)
    if target == "augment.strength":
        return Setting(config.augment, "strength")
    return None


def float_fields(model: type[BaseModel]) -> list[str]:
    """The fields of a params model that hold a float (or a float or None): those a schedule may drive."""
    return [name for name, field in model.model_fields.items() if _holds_a_float(field.annotation)]


def _holds_a_float(annotation: object) -> bool:
    if annotation is float:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return float in get_args(annotation) and all(arg in (float, type(None)) for arg in get_args(annotation))
    return False


def schedule_problems(config: RunConfig, loss: Chosen, schedules: Mapping[str, Chosen]) -> list[ConfigProblem]:
    """Every scheduled target that names no setting, or whose schedule goes where its setting cannot."""
    problems = []
    for target, chosen in schedules.items():
        where = f"schedules.{target}"
        setting = setting_of(target, config, loss)
        if setting is None:
            problems.append(ConfigProblem(where, f"  {where}: not a setting a schedule can drive; {_accepted(loss)}"))
            continue
        problem = _conflict(target, config) or _out_of_bounds(target, setting, chosen)
        if problem is not None:
            problems.append(ConfigProblem(where, f"  {where}: {problem}"))
    if config.train.ema_decay is not None and config.train.ema_half_life is not None:
        problems.append(
            ConfigProblem("train.ema_half_life", "  train.ema_half_life: an EMA is set by ema_decay or by it, not both")
        )
    return problems


def _accepted(loss: Chosen) -> str:
    fields = ", ".join(f"{LOSS_PARAMS}{field}" for field in float_fields(type(loss.params)))
    loss_part = f"{fields} (the float params of loss {loss.component.name!r})" if fields else ""
    return "accepted: " + ", ".join(part for part in (*FIXED_TARGETS, loss_part) if part)


def _conflict(target: str, config: RunConfig) -> str | None:
    """What else in the config sets the same thing another way, in words; None where nothing does."""
    augment = config.augment
    if target == "augment.strength" and augment.adaptive is not None:
        return "augment.adaptive moves the strength by ADA's heuristic; schedule it or adapt it, not both"
    if target == "augment.strength" and not augment.pipeline:
        return "augment.pipeline is empty, so there is no augmentation for a strength to drive"
    if target in EMA_TARGETS:
        other = next(name for name in EMA_TARGETS if name != target)
        if other in config.schedules or getattr(config.train, other.removeprefix("train.")) is not None:
            return f"{other} sets the EMA too; an EMA is set by one of {' or '.join(EMA_TARGETS)}"
    return None


def _out_of_bounds(target: str, setting: Setting, chosen: Chosen) -> str | None:
    """Where the schedule's least or greatest value is one the setting refuses: which, and why."""
    extremes = chosen.build().extremes()
    if not (isinstance(extremes, tuple) and len(extremes) == 2 and all(_is_finite(value) for value in extremes)):
        return (
            f"{chosen.component.describe()}: its extremes() returned {describe_value(extremes)}, not its least and "
            "greatest value as two finite numbers"
        )
    for value in extremes:
        refusal = setting.refusal(value)
        if refusal is not None:
            return (
                f"schedule {chosen.component.name!r} reaches {value:g}, which {target} does not take: "
                f"{refusal[0].lower()}{refusal[1:]}"
            )
    return None


def _is_finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
