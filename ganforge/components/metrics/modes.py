"""The metrics that read classes: modes, mode_coverage, and for conditional generators class_accuracy and intra_fid.

They ask of the generated images which classes they fall in (through the feature network's class
probabilities) or compare them class by class (the labels a conditional generator was given), where
the metrics in ``domain.py`` compare two distributions whole.

``modes`` and ``mode_coverage`` both count the classes generated images fall in, and differ in what
they compare with. ``modes`` is the published mode-collapse protocol (Stacked MNIST: Metz et al.
2017, Srivastava et al. 2017, Lin et al. 2018): the classes that receive at least one sample, and
KL(generated histogram || uniform); it reads the generated images alone. ``mode_coverage`` compares
with the real set: a class is covered when it gets at least ``min_share`` of its real share, and its
KL is from the real histogram, so it suits datasets whose classes are not equally frequent.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field

from ganforge.components.metrics.domain import class_probabilities
from ganforge.contracts import FeatureSet, GANMetric, Goal, NoParams, Params, SampleNeeds
from ganforge.errors import UsageError


class ModeCoverageParams(Params):
    min_share: float = Field(
        0.1,
        gt=0,
        le=1,
        description="A class is covered when generated samples give it at least this fraction of its real share.",
    )


class ModeCoverage(GANMetric):
    """Classes that receive samples, and KL(generated || real) between the class histograms."""

    goals: ClassVar[dict[str, Goal]] = {
        "mode_coverage": Goal("higher", ideal=1.0),
        "modes_covered": Goal("higher"),
        "mode_kl": Goal("lower", ideal=0.0),
    }
    needs_probabilities = True

    def __init__(self, params: ModeCoverageParams) -> None:
        self.params = params

    def compute(self, generated: FeatureSet, real: FeatureSet) -> dict[str, float]:
        from ganforge.evaluation import maths

        fraction, covered, kl = maths.mode_coverage(
            class_probabilities(generated, "mode_coverage"),
            class_probabilities(real, "mode_coverage"),
            min_share=self.params.min_share,
        )
        return {"mode_coverage": fraction, "modes_covered": float(covered), "mode_kl": kl}


class Modes(GANMetric):
    """Classes that receive at least one sample, and KL(generated class histogram || uniform)."""

    goals: ClassVar[dict[str, Goal]] = {"modes": Goal("higher"), "modes_kl": Goal("lower", ideal=0.0)}
    needs_probabilities = True

    def __init__(self, params: NoParams) -> None:
        self.params = params

    def compute(self, generated: FeatureSet, real: FeatureSet) -> dict[str, float]:
        from ganforge.evaluation import maths

        reached, divergence = maths.modes_and_kl(class_probabilities(generated, "modes"))
        return {"modes": float(reached), "modes_kl": divergence}


class ClassAccuracy(GANMetric):
    """How often the feature network sees the class a conditional generator was asked for (the real images':
    how often it sees their own label, the floor)."""

    goals: ClassVar[dict[str, Goal]] = {
        "class_accuracy": Goal("higher", ideal=1.0),
        "class_accuracy_min": Goal("higher", ideal=1.0),
    }
    needs_probabilities = True
    needs_labels = True

    def __init__(self, params: NoParams) -> None:
        self.params = params

    def compute(self, generated: FeatureSet, real: FeatureSet) -> dict[str, float]:
        probabilities, labels = class_probabilities(generated, "class_accuracy"), _labels(generated, "class_accuracy")
        predicted = probabilities.argmax(dim=1)
        accuracies = [float((predicted[labels == k] == k).float().mean()) for k in labels.unique().tolist()]
        return {"class_accuracy": sum(accuracies) / len(accuracies), "class_accuracy_min": min(accuracies)}


class IntraClassFID(GANMetric):
    """FID within each class (generated images asked for class k against real images of class k), averaged
    over the classes (Miyato & Koyama 2018), and the worst class's."""

    goals: ClassVar[dict[str, Goal]] = {"intra_fid": Goal("lower", ideal=0.0), "intra_fid_max": Goal("lower")}
    needs_labels = True

    def __init__(self, params: NoParams) -> None:
        self.params = params

    def sample_needs(self) -> SampleNeeds:
        return SampleNeeds(2, 2, "a covariance needs two images of a class in each set")

    def compute(self, generated: FeatureSet, real: FeatureSet) -> dict[str, float]:
        from ganforge.evaluation import maths

        generated_labels, real_labels = _labels(generated, "intra_fid"), _labels(real, "intra_fid")
        distances = []
        for k in generated_labels.unique().tolist():
            ours, theirs = generated.features[generated_labels == k], real.features[real_labels == k]
            if len(ours) < 2 or len(theirs) < 2:
                continue  # too few images of this class to fit a Gaussian
            distances.append(maths.frechet_distance(*maths.feature_statistics(ours), *maths.feature_statistics(theirs)))
        if not distances:
            raise UsageError("metric intra_fid needs at least 2 images of one class in both sets; score more images")
        return {"intra_fid": sum(distances) / len(distances), "intra_fid_max": max(distances)}


def _labels(features: FeatureSet, metric: str) -> torch.Tensor:
    if features.labels is None:
        raise UsageError(f"metric {metric} compares images class by class and needs the classes of both sets")
    return features.labels
