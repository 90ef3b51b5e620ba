"""What every contract check uses, and the checks every kind of component takes: its params.

A check is a small function ``check_x(component) -> None`` that raises ``ContractViolation`` (the one
error of a broken contract, ``ganforge.contracts``; ``ContractError`` to a plugin's tests) with a
message saying what was expected and what happened, or :class:`CheckSkipped` where it cannot run here.
"""

from __future__ import annotations

from collections.abc import Callable

from ganforge.contracts import ContractViolation, require
from ganforge.registry import Component

SEED = 0  # of every check's random numbers: a check gives the same result each time


class CheckSkipped(Exception):
    """A check that cannot run here (no GPU, no data files); not a failure."""


Check = Callable[[Component], None]


# -- every component ----------------------------------------------------------------------------


def check_default_params(component: Component) -> None:
    """The component can be named with no params: its params model has a default for everything."""
    try:
        component.parse_params({})
    except Exception as error:
        raise ContractViolation(
            f"params model {component.params_model.__name__} needs values without defaults: {error}"
        ) from None


def check_params_json_round_trip(component: Component) -> None:
    """Params survive JSON (the run folder's config.yaml and checkpoints store them that way)."""
    params = component.parse_params({})
    again = component.parse_params(params.model_validate_json(params.model_dump_json()).model_dump(mode="json"))
    require(again == params, f"params {params!r} came back from JSON as {again!r}")
