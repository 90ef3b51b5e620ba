"""The domain classifier's metrics on the distributions: fid, kid, classifier_score, precision_recall.

Each compares generated and real images through the features (classifier_score: the class
probabilities) of the feature network, extracted once by the evaluation protocol; the maths lives
in :mod:`ganforge.evaluation.maths`, imported where a metric computes: registering the metrics,
which every command does, leaves the evaluation code unloaded.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field

from ganforge.contracts import FeatureSet, GANMetric, Goal, NoParams, Params, SampleNeeds
from ganforge.errors import UsageError


class FrechetDistance(GANMetric):
    """Frechet distance between Gaussians fitted to the two feature sets (Heusel et al. 2017)."""

    goals: ClassVar[dict[str, Goal]] = {"fid": Goal("lower", ideal=0.0)}

    def __init__(self, params: NoParams) -> None:
        self.params = params

    def sample_needs(self) -> SampleNeeds:
        return SampleNeeds(2, 2, "a covariance needs two images of each set")

    def compute(self, generated: FeatureSet, real: FeatureSet) -> dict[str, float]:
        from ganforge.evaluation import maths

        mean_generated, cov_generated = maths.feature_statistics(generated.features)
        mean_real, cov_real = maths.feature_statistics(real.features)
        return {"fid": maths.frechet_distance(mean_generated, cov_generated, mean_real, cov_real)}


class KIDParams(Params):
    subsets: int = Field(100, ge=1, description="Random subsets the MMD is averaged over.")
    subset_size: int = Field(1000, ge=2, description="Samples per subset (capped at the smaller set).")
    degree: int = Field(3, ge=1, description="Degree of the polynomial kernel (x.y/d + 1)^degree.")
    seed: int = Field(0, description="Seed of the subset draws.")


class KernelDistance(GANMetric):
    """Kernel inception distance: unbiased MMD^2 with a cubic polynomial kernel (Binkowski et al. 2018)."""

    goals: ClassVar[dict[str, Goal]] = {"kid": Goal("lower", ideal=0.0), "kid_std": Goal(None)}

    def __init__(self, params: KIDParams) -> None:
        self.params = params

    def sample_needs(self) -> SampleNeeds:
        # subset_size is capped at the smaller set, so it asks for no more than the unbiased estimate does.
        return SampleNeeds(2, 2, "the unbiased estimate needs two images of each set")

    def compute(self, generated: FeatureSet, real: FeatureSet) -> dict[str, float]:
        from ganforge.evaluation import maths

        mean, std = maths.kernel_inception_distance(
            generated.features,
            real.features,
            subsets=self.params.subsets,
            subset_size=self.params.subset_size,
            degree=self.params.degree,
            seed=self.params.seed,
        )
        return {"kid": mean, "kid_std": std}


class ClassifierScoreParams(Params):
    splits: int = Field(10, ge=1, description="Equal parts the score is computed on; the std is over them.")


class ClassifierScore(GANMetric):
    """The Inception Score (Salimans et al. 2016) with the feature network's class probabilities."""

    goals: ClassVar[dict[str, Goal]] = {"classifier_score": Goal("higher"), "classifier_score_std": Goal(None)}
    needs_probabilities = True

    def __init__(self, params: ClassifierScoreParams) -> None:
        self.params = params

    def compute(self, generated: FeatureSet, real: FeatureSet) -> dict[str, float]:
        from ganforge.evaluation import maths

        probabilities = class_probabilities(generated, "classifier_score")
        mean, std = maths.classifier_score(probabilities, splits=self.params.splits)
        return {"classifier_score": mean, "classifier_score_std": std}


class PrecisionRecallParams(Params):
    k: int = Field(3, ge=1, description="The k-th nearest neighbour sets each sample's manifold radius.")


class PrecisionRecall(GANMetric):
    """Improved precision (fidelity) and recall (diversity) from k-NN manifolds (Kynkaanniemi et al. 2019)."""

    goals: ClassVar[dict[str, Goal]] = {"precision": Goal("higher", ideal=1.0), "recall": Goal("higher", ideal=1.0)}

    def __init__(self, params: PrecisionRecallParams) -> None:
        self.params = params

    def sample_needs(self) -> SampleNeeds:
        k = self.params.k
        return SampleNeeds(k + 1, k + 1, f"each image's radius is the distance to its k-th nearest other image, k={k}")

    def compute(self, generated: FeatureSet, real: FeatureSet) -> dict[str, float]:
        from ganforge.evaluation import maths

        precision, recall = maths.precision_recall(generated.features, real.features, k=self.params.k)
        return {"precision": precision, "recall": recall}


def class_probabilities(features: FeatureSet, metric: str) -> torch.Tensor:
    """The set's class probabilities; a feature network without them is the user's choice to correct."""
    if features.probabilities is None:
        raise UsageError(f"metric {metric} needs class probabilities, which this feature network does not give")
    return features.probabilities
