"""The Inception metrics: inception_fid, inception_kid, inception_score, inception_precision_recall.

The scores papers report, computed by torch-fidelity's own functions on the features of its
Inception-v3 (see :mod:`ganforge.evaluation.inception`), so that they are torch-fidelity's numbers
for the same images and weights. torch-fidelity is an optional extra (``pip install
'ganforge[inception]'``): the metrics are always listed, and say how to install it when used
without it. This module registers them itself, as the plugin ``inception_metrics`` (its own entry
point), apart from the domain classifier's metrics.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from ganforge.contracts import FeatureNetworkName, FeatureSet, GANMetric, Goal, NoParams, Params, SampleNeeds
from ganforge.errors import UsageError
from ganforge.hookspecs import hookimpl
from ganforge.registry import Register

TORCH_FIDELITY_SEED = 2020  # torch-fidelity's default rng_seed, for its KID subsets and IS shuffle


class InceptionMetric(GANMetric):
    feature_network: ClassVar[FeatureNetworkName] = "inception"


class InceptionFID(InceptionMetric):
    """FID on Inception-v3 pool features (Heusel et al. 2017), by torch-fidelity."""

    goals: ClassVar[dict[str, Goal]] = {"inception_fid": Goal("lower", ideal=0.0)}

    def __init__(self, params: NoParams) -> None:
        self.params = params

    def sample_needs(self) -> SampleNeeds:
        return SampleNeeds(2, 2, "a covariance needs two images of each set")

    def compute(self, generated: FeatureSet, real: FeatureSet) -> dict[str, float]:
        from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

        statistics = [fid_features_to_statistics(features.features) for features in (generated, real)]
        return {"inception_fid": fid_statistics_to_metric(*statistics, verbose=False)[KEY_METRIC_FID]}


class InceptionKIDParams(Params):
    subsets: int = Field(100, ge=1, description="Random subsets the MMD is averaged over.")
    subset_size: int = Field(1000, ge=2, description="Samples per subset (capped at the smaller set).")
    degree: int = Field(3, ge=1, description="Degree of the polynomial kernel (x.y/d + 1)^degree.")
    seed: int = Field(TORCH_FIDELITY_SEED, description="Seed of the subset draws (torch-fidelity's by default).")


class InceptionKID(InceptionMetric):
    """KID on Inception-v3 pool features (Binkowski et al. 2018), by torch-fidelity."""

    goals: ClassVar[dict[str, Goal]] = {"inception_kid": Goal("lower", ideal=0.0), "inception_kid_std": Goal(None)}

    def __init__(self, params: InceptionKIDParams) -> None:
        self.params = params

    def sample_needs(self) -> SampleNeeds:
        return SampleNeeds(2, 2, "the unbiased estimate needs two images of each set")

    def compute(self, generated: FeatureSet, real: FeatureSet) -> dict[str, float]:
        from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

        values = kid_features_to_metric(
            generated.features,
            real.features,
            kid_subsets=self.params.subsets,
            kid_subset_size=min(self.params.subset_size, len(generated), len(real)),
            kid_kernel="poly",
            kid_kernel_poly_degree=self.params.degree,
            rng_seed=self.params.seed,
            verbose=False,
        )
        return {"inception_kid": values[KEY_METRIC_KID_MEAN], "inception_kid_std": values[KEY_METRIC_KID_STD]}


class InceptionScoreParams(Params):
    splits: int = Field(10, ge=1, description="Equal parts the score is computed on; the std is over them.")


class InceptionScore(InceptionMetric):
    """The Inception Score (Salimans et al. 2016) of the generated images alone, by torch-fidelity."""

    goals: ClassVar[dict[str, Goal]] = {"inception_score": Goal("higher"), "inception_score_std": Goal(None)}

    def __init__(self, params: InceptionScoreParams) -> None:
        self.params = params

    def sample_needs(self) -> SampleNeeds:
        splits = self.params.splits
        return SampleNeeds(splits, 1, f"each of the {splits} splits needs an image")

    def compute(self, generated: FeatureSet, real: FeatureSet) -> dict[str, float]:
        from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

        if generated.logits is None:
            raise UsageError("metric inception_score needs class logits, which this feature network does not give")
        values = isc_features_to_metric(generated.logits, splits=self.params.splits, rng_seed=TORCH_FIDELITY_SEED)
        return {"inception_score": values[KEY_METRIC_ISC_MEAN], "inception_score_std": values[KEY_METRIC_ISC_STD]}


class InceptionPrecisionRecallParams(Params):
    k: int = Field(3, ge=1, description="The k-th nearest neighbour sets each sample's manifold radius.")


class InceptionPrecisionRecall(InceptionMetric):
    """Improved precision and recall (Kynkaanniemi et al. 2019) on Inception-v3 pool features, by torch-fidelity."""

    goals: ClassVar[dict[str, Goal]] = {
        "inception_precision": Goal("higher", ideal=1.0),
        "inception_recall": Goal("higher", ideal=1.0),
    }

    def __init__(self, params: InceptionPrecisionRecallParams) -> None:
        self.params = params

    def sample_needs(self) -> SampleNeeds:
        k = self.params.k
        return SampleNeeds(k + 1, k + 1, f"each image's radius is the distance to its k-th nearest other image, k={k}")

    def compute(self, generated: FeatureSet, real: FeatureSet) -> dict[str, float]:
        from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

        values = prc_features_to_metric(
            generated.features, real.features, prc_neighborhood=self.params.k, save_cpu_ram=False, verbose=False
        )
        return {"inception_precision": values[KEY_METRIC_PRECISION], "inception_recall": values[KEY_METRIC_RECALL]}


@hookimpl
def register_metrics(register: Register) -> None:
    needs = "needs ganforge[inception]"
    register("inception_fid", InceptionFID, summary=f"FID on Inception-v3 features as papers report it ({needs}).")
    register(
        "inception_kid",
        InceptionKID,
        params=InceptionKIDParams,
        summary=f"KID on Inception-v3 features: unbiased MMD^2, cubic kernel ({needs}).",
    )
    register(
        "inception_score",
        InceptionScore,
        params=InceptionScoreParams,
        summary=f"Inception Score of the generated images as papers report it ({needs}).",
    )
    register(
        "inception_precision_recall",
        InceptionPrecisionRecall,
        params=InceptionPrecisionRecallParams,
        summary=f"Improved precision and recall on Inception-v3 features ({needs}).",
    )
