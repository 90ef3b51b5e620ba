"""Running the contract checks: which checks each kind takes, one check's result, a pytest parametrization.

A declared known failure (``known_failures`` at registration) that still fails is reported as such;
one that passes is a failure, so that the declaration goes once the component is fixed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from ganforge.contracts import ContractViolation
from ganforge.registry import Component, Kind
from ganforge.testing.checks import architectures, augmentations, datasets, loggers, losses, metrics, schedules
from ganforge.testing.checks.common import (
    Check,
    CheckSkipped,
    check_default_params,
    check_params_json_round_trip,
)

CHECKS: dict[Kind, tuple[Check, ...]] = {
    Kind.ARCHITECTURE: (
        check_default_params,
        check_params_json_round_trip,
        architectures.check_generator_output,
        architectures.check_discriminator_output,
        architectures.check_discriminator_returns_logits,
        architectures.check_gradients_reach_every_parameter,
        architectures.check_train_and_eval_modes,
        architectures.check_state_dict_round_trip,
        architectures.check_same_seed_same_output,
        architectures.check_moves_to_another_device,
        architectures.check_labels_change_the_output,
        architectures.check_every_label_works,
        architectures.check_labels_out_of_range_are_refused,
    ),
    Kind.LOSS: (
        check_default_params,
        check_params_json_round_trip,
        losses.check_loss_is_a_finite_differentiable_scalar,
        losses.check_loss_direction,
        losses.check_penalty_is_per_sample,
    ),
    Kind.DATASET: (
        check_default_params,
        check_params_json_round_trip,
        datasets.check_items_match_the_spec,
        datasets.check_length_is_stable,
        datasets.check_picklable,
    ),
    Kind.METRIC: (
        check_default_params,
        check_params_json_round_trip,
        metrics.check_identical_sets_score_no_difference,
        metrics.check_shifted_set_scores_worse,
    ),
    Kind.AUGMENTATION: (
        check_default_params,
        check_params_json_round_trip,
        augmentations.check_augmentation_keeps_shape_and_dtype,
        augmentations.check_augmentation_is_identity_at_strength_zero,
        augmentations.check_augmentation_is_differentiable,
        augmentations.check_augmentation_draws_from_the_generator_given,
    ),
    Kind.LOGGER: (
        check_default_params,
        check_params_json_round_trip,
        loggers.check_logger_follows_a_run,
        loggers.check_logger_follows_a_resumed_run,
    ),
    Kind.SCHEDULE: (
        check_default_params,
        check_params_json_round_trip,
        schedules.check_schedule_stays_within_its_extremes,
        schedules.check_schedule_depends_on_images_alone,
    ),
}


def checks_for(component: Component) -> tuple[Check, ...]:
    return CHECKS[component.kind]


@dataclass(frozen=True)
class CheckResult:
    component: str
    kind: str
    check: str
    status: str  # "passed", "failed", "skipped", or "known failure" (declared at registration, still failing)
    message: str = ""


def run_check(component: Component, check: Check) -> CheckResult:
    """Run one check; a failure the component declared (``known_failures`` at registration) is a known
    failure, and a declared one that passes is a failure: the declaration must go."""
    outcome = _run_check(component, check)
    reason = component.known_failures.get(check.__name__)
    if reason is None or outcome.status == "skipped":
        return outcome
    if outcome.status == "failed":
        return dataclasses.replace(outcome, status="known failure", message=f"{reason} ({outcome.message})")
    return dataclasses.replace(
        outcome,
        status="failed",
        message=f"declared a known failure ({reason}) but passed: remove {check.__name__} from its known_failures",
    )


def _run_check(component: Component, check: Check) -> CheckResult:
    def result(status: str, message: str = "") -> CheckResult:
        return CheckResult(component.qualified_name, component.kind.value, check.__name__, status, message)

    with torch.random.fork_rng(devices=[]):
        try:
            check(component)
        except CheckSkipped as skipped:
            return result("skipped", str(skipped))
        except ContractViolation as error:
            return result("failed", str(error))
        except Exception as error:  # the component crashed: that breaks its contract too
            return result("failed", f"raised {type(error).__name__}: {error}")
    return result("passed")


def check_component(component: Component, shapes: Iterable[architectures.Shape] | None = None) -> list[CheckResult]:
    """Run every check of the component's kind; failures are returned, not raised. An architecture is checked on
    data of each of ``shapes`` (C, H, W); by default 1x28x28 and 3x32x32."""
    with architectures.data_shapes(shapes):
        results = [run_check(component, check) for check in checks_for(component)]
    return results + _unknown_known_failures(component)


def _unknown_known_failures(component: Component) -> list[CheckResult]:
    """A known failure naming no check of the component's kind is a mistake: most likely a typo."""
    names = [check.__name__ for check in checks_for(component)]
    return [
        CheckResult(
            component.qualified_name,
            component.kind.value,
            declared,
            "failed",
            f"known_failures names {declared}, which is not a check of {component.kind.plural}; "
            f"they are: {', '.join(names)}",
        )
        for declared in component.known_failures
        if declared not in names
    ]


def parametrize_with_checks(components: Iterable[Component], expected_failures: dict[str, str] | None = None):
    """A ``pytest.mark.parametrize`` over (component, check) with ids ``dist:name-check_x``.

    A component's own ``known_failures`` (declared when it registers) are marked xfail, strict: a
    fixed one fails until the declaration goes. ``expected_failures`` adds marks for this test run
    only: it maps a check name (every component's) or a test id ``dist:name-check_x`` (one
    component's; ``dist`` is the distribution's name) to the reason.
    """
    import pytest

    expected_failures = expected_failures or {}
    params = []
    for component in components:
        for check in checks_for(component):
            test_id = f"{component.qualified_name}-{check.__name__}"
            reason = (
                expected_failures.get(test_id)
                or expected_failures.get(check.__name__)
                or component.known_failures.get(check.__name__)
            )
            marks = [pytest.mark.xfail(reason=reason, strict=True, raises=ContractViolation)] if reason else []
            params.append(pytest.param(component, check, id=test_id, marks=marks))
    return pytest.mark.parametrize(("component", "check"), params)


def assert_check(component: Component, check: Check, shapes: Iterable[architectures.Shape] | None = None) -> None:
    """For tests: run one check (an architecture's on data of ``shapes``, by default 1x28x28 and 3x32x32); a
    failure raises ContractViolation, a skip calls pytest.skip.

    A declared known failure raises too: ``parametrize_with_checks`` marks it xfail (strict), so
    pytest expects the failure and fails the test once the check passes.
    """
    with architectures.data_shapes(shapes):
        result = _run_check(component, check)
    if result.status == "skipped":
        import pytest

        pytest.skip(result.message)
    if result.status == "failed":
        raise ContractViolation(f"{result.component} fails {result.check}: {result.message}")
