"""ganforge's built-in metrics, one module per family.

``domain.py`` (fid, kid, classifier_score, precision_recall) and ``modes.py`` (modes, mode_coverage,
class_accuracy, intra_fid) score on the domain classifier ganforge trains, and are registered here:
this package is the plugin ``metrics``. ``inception.py`` (torch-fidelity's scores on Inception-v3)
registers itself, as the plugin ``inception_metrics``: ``ganforge plugins`` lists the two apart,
each under its own entry point.
"""

from __future__ import annotations

from ganforge.components.metrics.domain import (
    ClassifierScore,
    ClassifierScoreParams,
    FrechetDistance,
    KernelDistance,
    KIDParams,
    PrecisionRecall,
    PrecisionRecallParams,
)
from ganforge.components.metrics.modes import ClassAccuracy, IntraClassFID, ModeCoverage, ModeCoverageParams, Modes
from ganforge.hookspecs import hookimpl
from ganforge.registry import Register


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
        "modes",
        Modes,
        summary="Classes that receive at least one sample, and KL(class histogram || uniform): Stacked MNIST's counts.",
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
