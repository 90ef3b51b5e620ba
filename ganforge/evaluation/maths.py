"""Metric maths on feature tensors: FID, KID, classifier (Inception) score, precision/recall, mode coverage.

Everything here takes plain tensors (features ``[N, D]`` or class probabilities ``[N, K]``) and knows nothing
about networks or datasets, so each formula can be tested against a closed form or a reference computation.
Sums that cancel (traces, kernel means, log-ratios) are done in float64; only the pairwise distances of
precision/recall run in float32, where speed matters and a ball test tolerates a relative error of 1e-6.
"""

from __future__ import annotations

import torch

__all__ = [
    "class_histogram",
    "classifier_score",
    "feature_statistics",
    "frechet_distance",
    "kernel_inception_distance",
    "mode_coverage",
    "precision_recall",
]

# Keeps KL(p_gen || p_real) finite when the generator produces a class that the real set lacks (and vice versa).
_HISTOGRAM_SMOOTHING = 1e-6


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` of features ``[N, D]``, computed in float64.

    cov = (X - mu)^T (X - mu) / (N - 1), the statistics that the Frechet distance compares.
    """
    matrix = _checked_matrix(features, "features", metric="feature_statistics", min_rows=2).to(torch.float64)
    mean = matrix.mean(dim=0)
    centred = matrix - mean
    covariance = centred.T @ centred / (matrix.shape[0] - 1)
    return mean, _symmetrised(covariance)


def frechet_distance(mean_a: torch.Tensor, cov_a: torch.Tensor, mean_b: torch.Tensor, cov_b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^{1/2}) (Dowson & Landau 1982; Heusel et al. 2017).

    The Frechet (2-Wasserstein) distance between two Gaussians, i.e. FID when the statistics come from
    Inception features. Never NaN and never negative, also for singular covariances (fewer samples than
    dimensions, a constant feature, a set of identical samples).
    """
    mean_a, cov_a = _checked_gaussian(mean_a, cov_a, "a")
    mean_b, cov_b = _checked_gaussian(mean_b, cov_b, "b")
    if mean_a.shape != mean_b.shape:
        raise ValueError(
            f"frechet_distance needs statistics of the same dimension, got {mean_a.shape[0]} and {mean_b.shape[0]}"
        )
    # S_a S_b is not symmetric, so a general matrix square root of it (scipy's sqrtm) can return complex
    # values or NaN when the covariances are singular. Its eigenvalues are those of the symmetric PSD matrix
    # S_a^{1/2} S_b S_a^{1/2} (XY and YX share their spectrum), whose eigendecomposition is always stable.
    root_a = _psd_square_root(cov_a)
    middle = _symmetrised(root_a @ cov_b @ root_a)
    trace_of_root = torch.linalg.eigvalsh(middle).clamp_min(0).sqrt().sum()
    difference = mean_a - mean_b
    distance = difference.dot(difference) + cov_a.trace() + cov_b.trace() - 2 * trace_of_root
    # Equal statistics cancel to a rounding error that can fall just below zero.
    return max(float(distance), 0.0)


def kernel_inception_distance(
    generated: torch.Tensor,
    real: torch.Tensor,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    coef0: float = 1.0,
    seed: int = 0,
) -> tuple[float, float]:
    """Unbiased MMD^2 with the polynomial kernel k(x, y) = (x.y / d + coef0)^degree (Binkowski et al. 2018).

    The estimate is averaged over ``subsets`` random subsets of ``subset_size`` samples from each set (capped at
    the smaller set), drawn without replacement by a generator seeded with ``seed``, so the result is
    deterministic. Returns (mean, standard deviation over subsets); the standard deviation is the population
    one, as in the paper's reference code, so that a single subset gives 0 rather than NaN.
    """
    generated = _checked_matrix(generated, "generated", metric="kernel_inception_distance", min_rows=2)
    real = _checked_matrix(real, "real", metric="kernel_inception_distance", min_rows=2)
    _check_same_dimension(generated, real, "kernel_inception_distance")
    if subsets < 1:
        raise ValueError(f"kernel_inception_distance needs at least 1 subset, got subsets={subsets}")
    if subset_size < 2:
        raise ValueError(
            f"kernel_inception_distance needs subset_size >= 2 for the unbiased estimate, got {subset_size}"
        )
    if degree < 1:
        raise ValueError(f"kernel_inception_distance needs a polynomial degree >= 1, got {degree}")
    generated = generated.to(torch.float64)
    real = real.to(generated.device, torch.float64)
    size = min(subset_size, generated.shape[0], real.shape[0])
    # A CPU generator gives the same subsets whatever device holds the features.
    generator = torch.Generator().manual_seed(seed)
    estimates = torch.empty(subsets, dtype=torch.float64)
    for subset in range(subsets):
        pick_generated = torch.randperm(generated.shape[0], generator=generator)[:size].to(generated.device)
        pick_real = torch.randperm(real.shape[0], generator=generator)[:size].to(real.device)
        estimates[subset] = _unbiased_mmd_squared(
            generated[pick_generated], real[pick_real], degree=degree, coef0=coef0
        )
    return float(estimates.mean()), float(estimates.std(correction=0))


def classifier_score(probabilities: torch.Tensor, *, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))), the Inception Score (Salimans et al. 2016), from any classifier.

    ``probabilities`` are class probabilities ``[N, K]`` (softmax outputs). The samples are cut into ``splits``
    consecutive parts of equal size (differing by at most one sample; ``splits`` capped at N), p(y) is the
    mean prediction within a part, and the score of each part is computed with 0 log 0 = 0. Returns the mean
    and the population standard deviation of the parts' scores, as in the paper's reference code.
    """
    probabilities = _checked_matrix(probabilities, "probabilities", metric="classifier_score", min_rows=1)
    probabilities = probabilities.to(torch.float64)
    row_sums = probabilities.sum(dim=1)
    if bool((probabilities < 0).any()) or not torch.allclose(row_sums, torch.ones_like(row_sums), atol=1e-3):
        raise ValueError(
            "classifier_score needs class probabilities (non-negative rows summing to 1, e.g. softmax outputs), "
            "not logits"
        )
    if splits < 1:
        raise ValueError(f"classifier_score needs splits >= 1, got {splits}")
    scores = []
    for part in probabilities.tensor_split(min(splits, probabilities.shape[0])):
        marginal = part.mean(dim=0, keepdim=True)
        # xlogy makes 0 log 0 = 0; where p(y|x) > 0 the marginal is positive too, so no 0 * log 0 remains.
        divergence = (torch.special.xlogy(part, part) - torch.special.xlogy(part, marginal)).sum(dim=1)
        scores.append(divergence.mean().exp())
    stacked = torch.stack(scores)
    return float(stacked.mean()), float(stacked.std(correction=0))


def precision_recall(
    generated: torch.Tensor, real: torch.Tensor, *, k: int = 3, chunk_size: int = 1024
) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    A sample lies on the other set's manifold when it falls inside the ball of some member of that set whose
    radius is that member's distance to its k-th nearest neighbour in its own set (the member itself excluded,
    duplicates of it counted). Precision is the fraction of generated samples on the real manifold, recall the
    fraction of real samples on the generated manifold. Distances are computed ``chunk_size`` rows at a time,
    so at most ``chunk_size`` x N of them are held at once.
    """
    generated = _checked_matrix(generated, "generated", metric="precision_recall", min_rows=1)
    real = _checked_matrix(real, "real", metric="precision_recall", min_rows=1)
    _check_same_dimension(generated, real, "precision_recall")
    if k < 1:
        raise ValueError(f"precision_recall needs k >= 1, got {k}")
    if k >= generated.shape[0] or k >= real.shape[0]:
        raise ValueError(
            f"precision_recall needs k smaller than each set's size (a radius needs k other members), got k={k} "
            f"with {generated.shape[0]} generated and {real.shape[0]} real samples"
        )
    if chunk_size < 1:
        raise ValueError(f"precision_recall needs chunk_size >= 1, got {chunk_size}")
    real = real.to(generated.device)
    # Distances come from |a|^2 + |b|^2 - 2 a.b in float32, whose rounding grows with the norms: moving the
    # common centre to the origin keeps the norms at the scale of the distances themselves (features such as
    # Inception's are all positive, far from the origin), and makes a set of identical samples exactly zero.
    centre = (generated.to(torch.float64).sum(dim=0) + real.to(torch.float64).sum(dim=0)) / (
        generated.shape[0] + real.shape[0]
    )
    generated = (generated.to(torch.float64) - centre).to(torch.float32)
    real = (real.to(torch.float64) - centre).to(torch.float32)
    real_radii = _kth_neighbour_distances(real, k, chunk_size)
    generated_radii = _kth_neighbour_distances(generated, k, chunk_size)
    precision = _inside_some_ball(generated, real, real_radii, chunk_size).to(torch.float64).mean()
    recall = _inside_some_ball(real, generated, generated_radii, chunk_size).to(torch.float64).mean()
    return float(precision), float(recall)


def class_histogram(probabilities: torch.Tensor) -> torch.Tensor:
    """Fraction of samples whose most probable class is each class: ``[K]`` float64 summing to 1.

    h_c = |{x : argmax_y p(y|x) = c}| / N; logits give the same histogram, since only the argmax is used.
    """
    probabilities = _checked_matrix(probabilities, "probabilities", metric="class_histogram", min_rows=1)
    counts = torch.bincount(probabilities.argmax(dim=1), minlength=probabilities.shape[1])
    return counts.to(torch.float64) / probabilities.shape[0]


def modes_and_kl(probabilities: torch.Tensor) -> tuple[int, float]:
    """(modes reached, KL(p_gen || uniform)): the published mode-collapse counts (Metz et al. 2017, PacGAN).

    A mode (class) is reached when at least one sample's most probable class is it. KL(p || U) =
    sum_c p(c) log(K p(c)) over the classes with p(c) > 0 (0 log 0 = 0): 0 for a uniform histogram,
    log K when every sample falls in one class. Unlike ``mode_coverage`` nothing is compared with the
    real set: the modes of a dataset such as Stacked MNIST are equally likely by construction.
    """
    histogram = class_histogram(probabilities)
    reached = histogram[histogram > 0]
    return len(reached), float((reached * (reached * len(histogram)).log()).sum())


def mode_coverage(
    generated_probabilities: torch.Tensor, real_probabilities: torch.Tensor, *, min_share: float = 0.1
) -> tuple[float, int, float]:
    """(covered fraction, covered count, KL(p_gen || p_real)) over the classes of the argmax histograms.

    A class is covered when the real set has it and the generated set gives it at least ``min_share`` times the
    real share: h_gen(c) >= min_share * h_real(c). The fraction is over the classes present in the real set.
    KL(p_gen || p_real) = sum_c p_gen(c) log(p_gen(c) / p_real(c)) on both histograms smoothed by 1e-6 and
    renormalised, so that a class missing from one side gives a large but finite divergence.
    """
    generated_histogram = class_histogram(generated_probabilities)
    real_histogram = class_histogram(real_probabilities).to(generated_histogram.device)
    if generated_histogram.shape != real_histogram.shape:
        raise ValueError(
            f"mode_coverage needs the same number of classes on both sides, got {generated_histogram.shape[0]} "
            f"generated and {real_histogram.shape[0]} real"
        )
    if min_share < 0:
        raise ValueError(f"mode_coverage needs min_share >= 0, got {min_share}")
    present = real_histogram > 0
    covered = present & (generated_histogram >= min_share * real_histogram)
    covered_count = int(covered.sum())
    generated_smoothed = _smoothed(generated_histogram)
    real_smoothed = _smoothed(real_histogram)
    divergence = (generated_smoothed * (generated_smoothed / real_smoothed).log()).sum()
    return covered_count / int(present.sum()), covered_count, float(divergence)


def _checked_matrix(tensor: torch.Tensor, name: str, *, metric: str, min_rows: int) -> torch.Tensor:
    """``tensor`` itself once it is a finite [N, D] matrix with at least ``min_rows`` rows."""
    if tensor.ndim != 2:
        raise ValueError(f"{metric} needs {name} as a matrix [N, D], got shape {tuple(tensor.shape)}")
    if tensor.shape[0] < min_rows:
        raise ValueError(f"{metric} needs at least {min_rows} {name} samples, got {tensor.shape[0]}")
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{metric} got {name} containing NaN or infinity")
    return tensor


def _checked_gaussian(mean: torch.Tensor, covariance: torch.Tensor, side: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean [D] and symmetrised covariance [D, D] in float64, after checking their shapes and finiteness."""
    mean = torch.as_tensor(mean, dtype=torch.float64)
    covariance = torch.as_tensor(covariance, dtype=torch.float64, device=mean.device)
    dimension = mean.shape[0] if mean.ndim == 1 else -1
    if mean.ndim != 1 or covariance.shape != (dimension, dimension):
        raise ValueError(
            f"frechet_distance needs mean_{side} [D] and cov_{side} [D, D], got shapes {tuple(mean.shape)} and "
            f"{tuple(covariance.shape)}"
        )
    if not (bool(torch.isfinite(mean).all()) and bool(torch.isfinite(covariance).all())):
        raise ValueError(f"frechet_distance got mean_{side} or cov_{side} containing NaN or infinity")
    return mean, _symmetrised(covariance)


def _check_same_dimension(generated: torch.Tensor, real: torch.Tensor, metric: str) -> None:
    """Raise unless both feature matrices have the same number of columns D."""
    if generated.shape[1] != real.shape[1]:
        raise ValueError(
            f"{metric} needs features of the same dimension, got {generated.shape[1]} generated and "
            f"{real.shape[1]} real"
        )


def _symmetrised(matrix: torch.Tensor) -> torch.Tensor:
    """(M + M^T) / 2: removes the rounding asymmetry that eigh would otherwise silently ignore."""
    return (matrix + matrix.T) / 2


def _psd_square_root(matrix: torch.Tensor) -> torch.Tensor:
    """V diag(sqrt(max(lambda, 0))) V^T for a symmetric M = V diag(lambda) V^T: the PSD square root.

    Rounding turns the zero eigenvalues of a singular covariance into tiny negative ones; they are clamped to 0.
    """
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    return (eigenvectors * eigenvalues.clamp_min(0).sqrt()) @ eigenvectors.T


def _polynomial_kernel(x: torch.Tensor, y: torch.Tensor, *, degree: int, coef0: float) -> torch.Tensor:
    """k(x, y) = (x.y / d + coef0)^degree for every pair of rows: [len(x), len(y)]."""
    return (x @ y.T / x.shape[1] + coef0) ** degree


def _unbiased_mmd_squared(x: torch.Tensor, y: torch.Tensor, *, degree: int, coef0: float) -> torch.Tensor:
    """sum_{i!=j} k(x_i, x_j) / (m(m-1)) + sum_{i!=j} k(y_i, y_j) / (m(m-1)) - 2 mean k(x_i, y_j), m = len(x) = len(y).

    Dropping the diagonals k(x_i, x_i) is what makes the estimate unbiased (Gretton et al. 2012), so it can be
    slightly negative when the two distributions are equal.
    """
    size = x.shape[0]
    within_x = _polynomial_kernel(x, x, degree=degree, coef0=coef0)
    within_y = _polynomial_kernel(y, y, degree=degree, coef0=coef0)
    across = _polynomial_kernel(x, y, degree=degree, coef0=coef0)
    pairs = size * (size - 1)
    return (
        (within_x.sum() - within_x.diagonal().sum()) / pairs
        + (within_y.sum() - within_y.diagonal().sum()) / pairs
        - 2 * across.mean()
    )


def _kth_neighbour_distances(points: torch.Tensor, k: int, chunk_size: int) -> torch.Tensor:
    """Each point's distance to its k-th nearest other point of the same set: [N]."""
    radii = torch.empty(points.shape[0], dtype=points.dtype, device=points.device)
    for start in range(0, points.shape[0], chunk_size):
        stop = min(start + chunk_size, points.shape[0])
        distances = torch.cdist(points[start:stop], points)
        # Only the point itself is excluded, by index: a duplicate elsewhere in the set is a genuine neighbour.
        rows = torch.arange(stop - start, device=points.device)
        distances[rows, rows + start] = torch.inf
        radii[start:stop] = distances.topk(k, dim=1, largest=False).values[:, -1]
    return radii


def _inside_some_ball(
    queries: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk_size: int
) -> torch.Tensor:
    """For each query, whether ||query - centre_j|| <= radius_j for some j: [len(queries)] bool."""
    inside = torch.empty(queries.shape[0], dtype=torch.bool, device=queries.device)
    for start in range(0, queries.shape[0], chunk_size):
        stop = min(start + chunk_size, queries.shape[0])
        inside[start:stop] = (torch.cdist(queries[start:stop], centres) <= radii).any(dim=1)
    return inside


def _smoothed(histogram: torch.Tensor) -> torch.Tensor:
    """(h + eps) / sum(h + eps) with eps = 1e-6: no class keeps probability 0."""
    smoothed = histogram + _HISTOGRAM_SMOOTHING
    return smoothed / smoothed.sum()
