"""The metric modes (classes reached, KL from uniform) on hand-made class probabilities, and the published
Stacked MNIST protocol on the real data: 26,000 real images read channel by channel reach all 1,000 modes."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from ganforge.contracts import FeatureSet
from ganforge.errors import UsageError
from ganforge.registry import Kind
from ganforge.testing import check_component

MODES = 1000


def one_hot(classes: torch.Tensor, count: int = MODES) -> FeatureSet:
    probabilities = torch.nn.functional.one_hot(classes, count).double()
    return FeatureSet(torch.zeros(len(classes), 2), probabilities)


def modes_of(registry, generated: FeatureSet) -> dict[str, float]:
    metric = registry.get(Kind.METRIC, "modes").build({})
    return metric.compute(generated, one_hot(torch.arange(MODES)))  # the real set is not read


def test_every_mode_equally_often_is_all_modes_and_no_divergence(registry):
    values = modes_of(registry, one_hot(torch.arange(MODES).repeat(26)))
    assert values == {"modes": 1000.0, "modes_kl": pytest.approx(0.0, abs=1e-12)}


def test_one_mode_is_one_and_log_of_the_modes(registry):
    values = modes_of(registry, one_hot(torch.full((500,), 371)))
    assert values["modes"] == 1.0 and values["modes_kl"] == pytest.approx(math.log(1000))


def test_half_the_modes_equally_is_log_two(registry):
    values = modes_of(registry, one_hot(torch.arange(0, MODES, 2).repeat(3)))
    assert values["modes"] == 500.0 and values["modes_kl"] == pytest.approx(math.log(2))


def test_an_uneven_histogram_gives_its_kl_from_uniform(registry):
    # Three modes of ten: shares 1/2, 1/4, 1/4.
    values = modes_of(registry, one_hot(torch.tensor([4, 4, 7, 9]), count=10))
    expected = 0.5 * math.log(5) + 2 * 0.25 * math.log(2.5)
    assert values["modes"] == 3.0 and values["modes_kl"] == pytest.approx(expected)


def test_a_mode_is_where_the_most_probable_class_is(registry):
    probabilities = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3], [0.1, 0.2, 0.7], [0.3, 0.4, 0.3]])
    values = modes_of(registry, FeatureSet(torch.zeros(4, 2), probabilities.double()))
    assert values["modes"] == 3.0
    assert values["modes_kl"] == pytest.approx(0.5 * math.log(1.5) + 2 * 0.25 * math.log(0.75))


def test_modes_need_class_probabilities(registry):
    metric = registry.get(Kind.METRIC, "modes").build({})
    with pytest.raises(UsageError, match="modes needs class probabilities"):
        metric.compute(FeatureSet(torch.zeros(3, 2)), FeatureSet(torch.zeros(3, 2)))


def test_modes_obeys_the_metric_contract(registry):
    results = check_component(registry.get(Kind.METRIC, "modes"))
    assert results and all(result.status == "passed" for result in results), results


@pytest.mark.slow
def test_real_stacked_mnist_covers_all_modes_with_a_small_kl(app, real_mnist_root):
    """The real floor of the published protocol: 26,000 real images, each channel read by the MNIST classifier
    (trained here once, as a mnist evaluation would), reach all 1,000 modes nearly uniformly."""
    result = CliRunner().invoke(
        app, ["eval", "--real", "stacked_mnist", "--n", "26000", "--metrics", "modes,fid", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    network = report["protocol"]["feature_network"]
    assert network["dataset"] == "ganforge:mnist" and network["per_channel"]["channels"] == 3
    assert network["test_accuracy"] >= 0.99
    floor = report["floor"]
    assert floor["modes"] == 1000
    # MNIST's digits are not quite equally frequent, and 26,000 draws over 1,000 modes add ~0.02 of noise.
    assert floor["modes_kl"] < 0.05
    assert 0 < floor["fid"] < 20
