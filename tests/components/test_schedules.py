"""The built-in schedules, through the registry: their values at known points, their extremes, their params."""

import math

import pytest

from ganforge.errors import ParamsError
from ganforge.registry import Kind
from ganforge.testing import check_component


def schedule(registry, name, **params):
    return registry.build(Kind.SCHEDULE, name, params)


def test_every_built_in_schedule_is_registered_and_passes_its_contract_checks(registry):
    names = {component.name for component in registry.components(Kind.SCHEDULE)}
    assert {"constant", "linear", "cosine", "r3gan"} <= names
    for name in ("constant", "linear", "cosine", "r3gan"):
        results = check_component(registry.get(Kind.SCHEDULE, name))
        assert [r.check for r in results if r.status != "passed"] == [], results


def test_constant_is_its_value_at_every_count(registry):
    constant = schedule(registry, "constant", value=3.5)
    assert [constant(images) for images in (0, 1, 10**12)] == [3.5, 3.5, 3.5]
    assert constant.extremes() == (3.5, 3.5)


def test_linear_holds_then_goes_in_a_straight_line_then_holds(registry):
    linear = schedule(registry, "linear", start=1.0, end=3.0, images=100, begin=50)
    assert [linear(images) for images in (0, 50, 75, 100, 150, 151, 10**9)] == [1.0, 1.0, 1.5, 2.0, 3.0, 3.0, 3.0]
    assert linear.extremes() == (1.0, 3.0)


def test_cosine_follows_a_half_cosine_and_ends_exactly_at_its_end(registry):
    cosine = schedule(registry, "cosine", start=1.0, end=0.1, images=1000)
    assert cosine(0) == 1.0
    assert cosine(250) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)), rel=1e-12)
    assert cosine(500) == pytest.approx(0.55, rel=1e-12)
    assert cosine(1000) == 0.1 and cosine(5000) == 0.1  # exactly: no rounding left at the end
    assert cosine.extremes() == (0.1, 1.0)
    values = [cosine(images) for images in range(0, 1001, 50)]
    assert values == sorted(values, reverse=True)  # decreasing all the way


def test_r3gan_warms_up_holds_and_decays_to_its_final_value(registry):
    r3gan = schedule(
        registry,
        "r3gan",
        base=2e-4,
        final=5e-5,
        images=1000,
        warmup_images=100,
        warmup_start=0.0,
        hold_images=100,
    )
    assert r3gan(0) == 0.0
    assert r3gan(50) == pytest.approx(1e-4, rel=1e-12)  # half-way through the warm-up
    assert r3gan(100) == r3gan(150) == r3gan(200) == 2e-4  # base, held
    assert r3gan(600) == pytest.approx(1.25e-4, rel=1e-12)  # half-way through the decay (200 to 1000)
    assert r3gan(1000) == 5e-5 and r3gan(10**9) == 5e-5
    assert r3gan.extremes() == (0.0, 2e-4)


def test_r3gan_without_warmup_is_the_cosine_from_base_to_final(registry):
    r3gan = schedule(registry, "r3gan", base=0.9, final=0.99, images=20_000_000)
    cosine = schedule(registry, "cosine", start=0.9, end=0.99, images=20_000_000)
    assert all(r3gan(images) == cosine(images) for images in range(0, 25_000_000, 999_983))
    assert r3gan.extremes() == (0.9, 0.99)  # no warm-up: its start value is never taken


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("r3gan", {"images": 100, "warmup_images": 60, "hold_images": 40}, "must be more than warmup_images"),
        ("linear", {"images": 0}, "images: Input should be greater than or equal to 1"),
        ("cosine", {"begin": -1}, "begin: Input should be greater than or equal to 0"),
        ("constant", {"value": float("nan")}, "value: Input should be a finite number"),
    ],
)
def test_params_a_schedule_cannot_follow_are_refused_naming_them(registry, name, params, expected):
    with pytest.raises(ParamsError, match=expected):
        registry.get(Kind.SCHEDULE, name).parse_params(params)
