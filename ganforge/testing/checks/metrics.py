"""Contract checks of metrics, on two synthetic feature sets: identical sets score each value's ideal, a worse
set scores worse."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from ganforge.contracts import (
    FEATURE_NETWORKS,
    FeatureSet,
    GANMetric,
    require,
)
from ganforge.registry import Component
from ganforge.testing.checks.common import SEED

METRIC_CLASSES, METRIC_PER_CLASS, METRIC_FEATURE_DIM = 10, 40, 16


def _metric(component: Component) -> GANMetric:
    metric = component.build({})
    goals = getattr(metric, "goals", None)
    require(bool(goals), "the metric declares no goals: name each value compute() returns and which way is better")
    network = getattr(metric, "feature_network", None)
    require(
        network in FEATURE_NETWORKS,
        f"the metric's feature_network is {network!r}; accepted: {', '.join(map(repr, FEATURE_NETWORKS))}",
    )
    return metric


def _feature_sets() -> tuple[FeatureSet, FeatureSet]:
    """A real set of ten confident, well-separated classes, and a worse one: half the classes, shifted, unsure,
    each image labelled as the next class (what a conditional generator that ignores its labels would give)."""
    generator = torch.Generator().manual_seed(SEED)
    labels = torch.arange(METRIC_CLASSES).repeat_interleave(METRIC_PER_CLASS)
    centres = 3.0 * torch.eye(METRIC_CLASSES, METRIC_FEATURE_DIM)
    features = centres[labels] + torch.randn(len(labels), METRIC_FEATURE_DIM, generator=generator)
    logits = 6.0 * nn.functional.one_hot(labels, METRIC_CLASSES).double()
    logits += 0.5 * torch.randn(logits.shape, generator=generator, dtype=torch.float64)
    real = FeatureSet(features, torch.softmax(logits, dim=1), labels, logits)
    kept = labels < METRIC_CLASSES // 2
    unsure = logits[kept] / 4
    worse = FeatureSet(features[kept] + 2.0, torch.softmax(unsure, dim=1), labels[kept] + 1, unsure)
    return real, worse


def _metric_values(metric: GANMetric, generated: FeatureSet, real: FeatureSet) -> dict[str, float]:
    values = metric.compute(generated, real)
    require(isinstance(values, dict), f"compute() returned {type(values).__name__}, expected a dict of floats")
    require(
        set(values) == set(metric.goals),
        f"compute() returned the values {sorted(values)} but the goals name {sorted(metric.goals)}",
    )
    for key, value in values.items():
        require(isinstance(value, float), f"{key} is a {type(value).__name__}, expected a float")
        require(math.isfinite(value), f"{key} is {value}, expected a finite number")
    return values


def _copied(features: FeatureSet) -> FeatureSet:
    parts = (getattr(features, field.name) for field in dataclasses.fields(features))
    return FeatureSet(*(None if part is None else part.clone() for part in parts))


def check_identical_sets_score_no_difference(component: Component) -> None:
    """Two identical sets get each value's ideal (0 for a distance, 1 for precision), far closer than a worse set."""
    metric = _metric(component)
    real, worse = _feature_sets()
    same = _metric_values(metric, _copied(real), real)
    again = _metric_values(metric, _copied(real), real)
    require(same == again, f"the same sets scored twice give {same} and then {again}: seed any randomness")
    shifted = _metric_values(metric, worse, real)
    for key, goal in metric.goals.items():
        if goal.ideal is None:
            continue
        gap, worse_gap = abs(same[key] - goal.ideal), abs(shifted[key] - goal.ideal)
        require(
            gap <= 0.05 * worse_gap,
            f"{key} of two identical sets is {same[key]:.6g}, not near its ideal {goal.ideal:g} "
            f"(a worse set scores {shifted[key]:.6g})",
        )


def check_shifted_set_scores_worse(component: Component) -> None:
    """A set with half the classes, shifted and less confident, scores worse on every value with a direction."""
    metric = _metric(component)
    real, worse = _feature_sets()
    same, shifted = _metric_values(metric, real, real), _metric_values(metric, worse, real)
    for key, goal in metric.goals.items():
        if goal.better is None:
            continue
        require(
            goal.improves(same[key], shifted[key]),
            f"{key} should be {goal.better} for identical sets than for a shifted set, "
            f"but identical sets score {same[key]:.6g} and the shifted set {shifted[key]:.6g}",
        )
