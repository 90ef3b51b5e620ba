"""Built-in metrics: fid, kid, classifier_score, precision_recall, mode_coverage, and for
class-conditional generators class_accuracy and intra_fid.

Each compares generated and real images through the features (and class probabilities) of one
feature network, extracted once by the evaluation protocol; the maths lives in
:mod:`ganforge.evaluation.maths`, imported where a metric computes: registering the metrics, which
every command does, leaves the evaluation code unloaded.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ganforge.contracts import FeatureSet, GANMetric, Goal, NoParams, Params, SampleNeeds
from ganforge.errors import UsageError
from ganforge.hookspecs import hookimpl
from ganforge.registry import Register


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

        mean, std = maths.classifier_score(_probabilities(generated, "classifier_score"), splits=self.params.splits)
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
            _probabilities(generated, "mode_coverage"),
            _probabilities(real, "mode_coverage"),
            min_share=self.params.min_share,
        )
        return {"mode_coverage": fraction, "modes_covered": float(covered), "mode_kl": kl}


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
        probabilities, labels = _probabilities(generated, "class_accuracy"), _labels(generated, "class_accuracy")
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


def _labels(features: FeatureSet, metric: str):
    if features.labels is None:
        raise UsageError(f"metric {metric} compares images class by class and needs the classes of both sets")
    return features.labels


def _probabilities(features: FeatureSet, metric: str):
    if features.probabilities is None:
        raise UsageError(f"metric {metric} needs class probabilities, which this feature network does not give")
    return features.probabilities


@hookimpl
def register_metrics(register: Register) -> None:
    register("fid", FrechetDistance, summary="Frechet distance of features (FID); lower is better.")
    register(
        "kid",
        KernelDistance,
        params=KIDParams,
        summary="Kernel distance (KID): unbiased MMD^2, cubic kernel, over subsets; lower is better.",
    )
    register(
        "classifier_score",
        ClassifierScore,
        params=ClassifierScoreParams,
        summary="The Inception Score's formula with the domain classifier's probabilities; higher is better.",
    )
    register(
        "precision_recall",
        PrecisionRecall,
        params=PrecisionRecallParams,
        summary="Improved precision and recall, k-NN manifolds (Kynkaanniemi et al. 2019); higher is better.",
    )
    register(
        "mode_coverage",
        ModeCoverage,
        params=ModeCoverageParams,
        summary="Share of real classes that receive samples, and KL between class histograms.",
    )
    register(
        "class_accuracy",
        ClassAccuracy,
        summary="Conditional generators: how often the domain classifier sees the class asked for; mean and worst.",
    )
    register(
        "intra_fid",
        IntraClassFID,
        summary="Conditional generators: FID within each class, averaged over the classes, and the worst.",
    )
