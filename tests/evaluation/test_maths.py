import math

import pytest
import torch

from ganforge.evaluation.maths import (
    class_histogram,
    classifier_score,
    feature_statistics,
    frechet_distance,
    kernel_inception_distance,
    mode_coverage,
    precision_recall,
)


def gaussian_samples(n: int, mean: torch.Tensor, mixing: torch.Tensor, seed: int) -> torch.Tensor:
    """n samples of N(mean, mixing mixing^T) in float64."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, mixing.shape[1], generator=generator, dtype=torch.float64)
    return noise @ mixing.T + mean


def random_gaussian(dimension: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A mean and a mixing matrix whose covariance has correlated, unequal directions."""
    generator = torch.Generator().manual_seed(seed)
    mean = torch.randn(dimension, generator=generator, dtype=torch.float64)
    mixing = torch.randn(dimension, dimension, generator=generator, dtype=torch.float64) / math.sqrt(dimension)
    return mean, mixing + 0.5 * torch.eye(dimension, dtype=torch.float64)


def fid_of(a: torch.Tensor, b: torch.Tensor) -> float:
    return frechet_distance(*feature_statistics(a), *feature_statistics(b))


def one_hot(labels: torch.Tensor, classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(labels, classes).to(torch.float64)


# --- feature statistics and the Frechet distance -------------------------------------------------------------


def test_feature_statistics_match_numpy():
    np = pytest.importorskip("numpy")
    features = gaussian_samples(500, *random_gaussian(8, seed=1), seed=2).float()
    mean, covariance = feature_statistics(features)
    assert mean.dtype == covariance.dtype == torch.float64
    reference = features.double().numpy()
    assert torch.allclose(mean, torch.from_numpy(reference.mean(axis=0)), rtol=0, atol=1e-12)
    assert torch.allclose(covariance, torch.from_numpy(np.cov(reference, rowvar=False)), rtol=0, atol=1e-12)
    assert torch.equal(covariance, covariance.T)


@pytest.mark.parametrize("dimension", [16, 64])
def test_frechet_distance_matches_scipy_sqrtm(dimension):
    np = pytest.importorskip("numpy")
    linalg = pytest.importorskip("scipy.linalg")
    a = gaussian_samples(2000, *random_gaussian(dimension, seed=10), seed=11)
    b = gaussian_samples(2000, *random_gaussian(dimension, seed=20), seed=21)

    mean_a, mean_b = a.numpy().mean(axis=0), b.numpy().mean(axis=0)
    cov_a, cov_b = np.cov(a.numpy(), rowvar=False), np.cov(b.numpy(), rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    reference = float(((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(root))

    assert reference > 1.0
    assert fid_of(a, b) == pytest.approx(reference, rel=1e-6)


@pytest.mark.parametrize("rotated", [False, True])
def test_frechet_distance_of_gaussians_sharing_eigenvectors_has_a_closed_form(rotated):
    # Commuting covariances have tr((S_a S_b)^{1/2}) = sum sqrt(a_i b_i): d = |mu_a - mu_b|^2 + sum (sqrt a - sqrt b)^2
    generator = torch.Generator().manual_seed(3)
    dimension = 12
    variances_a = torch.rand(dimension, generator=generator, dtype=torch.float64) * 4 + 0.1
    variances_b = torch.rand(dimension, generator=generator, dtype=torch.float64) * 4 + 0.1
    mean_a = torch.randn(dimension, generator=generator, dtype=torch.float64)
    mean_b = torch.randn(dimension, generator=generator, dtype=torch.float64)
    basis = torch.eye(dimension, dtype=torch.float64)
    if rotated:
        basis, _ = torch.linalg.qr(torch.randn(dimension, dimension, generator=generator, dtype=torch.float64))
    cov_a = basis @ torch.diag(variances_a) @ basis.T
    cov_b = basis @ torch.diag(variances_b) @ basis.T

    expected = float((mean_a - mean_b).pow(2).sum() + (variances_a.sqrt() - variances_b.sqrt()).pow(2).sum())
    assert frechet_distance(mean_a, cov_a, mean_b, cov_b) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mean_b, cov_b, mean_a, cov_a) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("samples", "dimension"), [(2000, 16), (10, 64)])
def test_frechet_distance_of_a_set_with_itself_is_zero(samples, dimension):
    features = gaussian_samples(samples, *random_gaussian(dimension, seed=4), seed=5)
    mean, covariance = feature_statistics(features)
    distance = frechet_distance(mean, covariance, mean, covariance)
    assert 0.0 <= distance < 1e-8 * float(covariance.trace())


def test_frechet_distance_with_fewer_samples_than_dimensions_is_finite_and_positive():
    a = gaussian_samples(10, *random_gaussian(64, seed=6), seed=7)
    b = gaussian_samples(10, *random_gaussian(64, seed=8), seed=9)
    distance = fid_of(a, b)
    assert math.isfinite(distance)
    assert distance > 0.0


def test_frechet_distance_with_a_constant_feature_is_finite():
    a = gaussian_samples(300, *random_gaussian(16, seed=12), seed=13)
    b = gaussian_samples(300, *random_gaussian(16, seed=14), seed=15)
    a[:, 3] = 2.5
    b[:, 3] = 2.5
    b[:, 7] = -1.0
    distance = fid_of(a, b)
    assert math.isfinite(distance)
    assert distance > 0.0
    assert fid_of(a, a) < 1e-8 * float(feature_statistics(a)[1].trace())


def test_frechet_distance_with_a_zero_covariance_reduces_to_the_other_trace():
    # With S_a = 0 the cross term vanishes: d = |mu_a - mu_b|^2 + tr(S_b), a value a NaN-prone sqrtm misses.
    collapsed = torch.full((50, 32), 0.7, dtype=torch.float64)
    spread = gaussian_samples(400, *random_gaussian(32, seed=16), seed=17)
    mean_c, cov_c = feature_statistics(collapsed)
    mean_s, cov_s = feature_statistics(spread)
    assert float(cov_c.abs().max()) < 1e-30  # zero up to the rounding of the mean of 50 x 0.7
    expected = float((mean_c - mean_s).pow(2).sum() + cov_s.trace())
    assert frechet_distance(mean_c, cov_c, mean_s, cov_s) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance(mean_s, cov_s, mean_c, cov_c) == pytest.approx(expected, rel=1e-9)
    assert 0.0 <= frechet_distance(mean_c, cov_c, mean_c, cov_c) < 1e-15
    other_point = torch.full((50, 32), -0.3, dtype=torch.float64)
    assert fid_of(collapsed, other_point) == pytest.approx(32.0, rel=1e-12)


def test_frechet_distance_rejects_mismatched_or_non_finite_statistics():
    mean, covariance = feature_statistics(gaussian_samples(100, *random_gaussian(8, seed=18), seed=19))
    with pytest.raises(ValueError, match="same dimension"):
        frechet_distance(mean, covariance, mean[:4], covariance[:4, :4])
    with pytest.raises(ValueError, match=r"\[D, D\]"):
        frechet_distance(mean, covariance[:4], mean, covariance)
    broken = covariance.clone()
    broken[0, 0] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance(mean, broken, mean, covariance)
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(torch.zeros(1, 8))


# --- kernel inception distance -------------------------------------------------------------------------------


def polynomial_mmd_by_hand(x: list[list[float]], y: list[list[float]], degree: int, coef0: float) -> float:
    """The unbiased MMD^2 estimator written out pair by pair."""

    def kernel(u, v):
        return (sum(a * b for a, b in zip(u, v, strict=True)) / len(u) + coef0) ** degree

    m = len(x)
    within_x = sum(kernel(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    within_y = sum(kernel(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    across = sum(kernel(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return within_x + within_y - 2 * across


@pytest.mark.parametrize(("degree", "coef0"), [(3, 1.0), (2, 0.5)])
def test_kid_of_one_full_subset_matches_a_hand_computation(degree, coef0):
    generator = torch.Generator().manual_seed(30)
    generated = torch.randn(7, 3, generator=generator, dtype=torch.float64)
    real = torch.randn(7, 3, generator=generator, dtype=torch.float64) + 0.4
    expected = polynomial_mmd_by_hand(generated.tolist(), real.tolist(), degree, coef0)
    for subset_size in (7, 1000):  # capped at the set size: the whole sets, in some order
        mean, std = kernel_inception_distance(
            generated, real, subsets=1, subset_size=subset_size, degree=degree, coef0=coef0
        )
        assert mean == pytest.approx(expected, rel=1e-12)
        assert std == 0.0


def test_kid_separates_equal_from_shifted_distributions():
    generator = torch.Generator().manual_seed(31)
    real = torch.randn(1500, 16, generator=generator)
    same = torch.randn(1500, 16, generator=generator)
    shifted = torch.randn(1500, 16, generator=generator) + 0.5
    same_mean, same_std = kernel_inception_distance(same, real, subsets=20, subset_size=300)
    shifted_mean, shifted_std = kernel_inception_distance(shifted, real, subsets=20, subset_size=300)
    assert same_std > 0.0
    assert abs(same_mean) < 3 * same_std
    assert shifted_mean > 10 * shifted_std
    assert shifted_mean > 10 * abs(same_mean)


def test_kid_is_deterministic_for_a_seed():
    generator = torch.Generator().manual_seed(32)
    generated = torch.randn(200, 8, generator=generator)
    real = torch.randn(300, 8, generator=generator) + 0.2
    first = kernel_inception_distance(generated, real, subsets=5, subset_size=50, seed=7)
    assert kernel_inception_distance(generated, real, subsets=5, subset_size=50, seed=7) == first
    assert kernel_inception_distance(generated, real, subsets=5, subset_size=50, seed=8) != first


def test_kid_needs_two_samples_per_set():
    with pytest.raises(ValueError, match="at least 2 generated samples"):
        kernel_inception_distance(torch.zeros(1, 4), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="at least 2 real samples"):
        kernel_inception_distance(torch.zeros(5, 4), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="same dimension"):
        kernel_inception_distance(torch.zeros(5, 4), torch.zeros(5, 3))


# --- classifier (Inception) score ----------------------------------------------------------------------------


@pytest.mark.parametrize("splits", [1, 10])
def test_classifier_score_of_evenly_spread_confident_predictions_is_the_class_count(splits):
    classes = 10
    probabilities = one_hot(torch.arange(1000) % classes, classes)
    mean, std = classifier_score(probabilities, splits=splits)
    assert mean == pytest.approx(classes, rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-9)


def test_classifier_score_of_a_single_class_or_of_uniform_predictions_is_one():
    same_class = one_hot(torch.full((100,), 4), 10)
    uniform = torch.full((100, 10), 0.1, dtype=torch.float64)
    assert classifier_score(same_class)[0] == pytest.approx(1.0, abs=1e-12)
    assert classifier_score(uniform)[0] == pytest.approx(1.0, abs=1e-12)


def test_classifier_score_matches_a_hand_computation():
    rows = [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]]
    marginal = [sum(column) / 3 for column in zip(*rows, strict=True)]
    divergence = sum(p * math.log(p / q) for row in rows for p, q in zip(row, marginal, strict=True) if p > 0) / 3
    mean, std = classifier_score(torch.tensor(rows), splits=1)
    assert mean == pytest.approx(math.exp(divergence), rel=1e-6)  # float32 input rows
    assert std == 0.0


def test_classifier_score_caps_splits_and_rejects_logits():
    mean, std = classifier_score(one_hot(torch.tensor([0, 1, 2]), 3), splits=10)
    assert (mean, std) == (pytest.approx(1.0), pytest.approx(0.0))  # three parts of one sample each
    with pytest.raises(ValueError, match="not logits"):
        classifier_score(torch.randn(20, 5))


# --- precision and recall ------------------------------------------------------------------------------------


def brute_force_precision_recall(generated: torch.Tensor, real: torch.Tensor, k: int) -> tuple[float, float]:
    """The definition with every distance at once, in float64."""

    def radii(points):
        distances = torch.cdist(points, points)
        distances.fill_diagonal_(math.inf)
        return distances.sort(dim=1).values[:, k - 1]

    def inside(queries, centres):
        return (torch.cdist(queries, centres) <= radii(centres)).any(dim=1).double().mean().item()

    generated, real = generated.double(), real.double()
    return inside(generated, real), inside(real, generated)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_precision_recall_matches_brute_force(seed, chunk_size):
    generator = torch.Generator().manual_seed(seed)
    real = torch.randn(83, 5, generator=generator)
    generated = torch.randn(61, 5, generator=generator) * 1.3 + 0.4
    expected = brute_force_precision_recall(generated, real, k=3)
    assert 0.0 < expected[0] < 1.0
    assert 0.0 < expected[1] < 1.0
    assert precision_recall(generated, real, k=3, chunk_size=chunk_size) == pytest.approx(expected, abs=1e-12)


def test_precision_recall_of_identical_and_of_far_apart_sets():
    points = torch.randn(300, 16, generator=torch.Generator().manual_seed(40))
    assert precision_recall(points, points.clone()) == (1.0, 1.0)
    assert precision_recall(points + 100.0, points) == (0.0, 0.0)


def test_precision_recall_when_the_generator_covers_half_of_the_real_clusters():
    generator = torch.Generator().manual_seed(41)
    left, right = torch.zeros(4), torch.zeros(4)
    left[0], right[0] = -20.0, 20.0
    left_cluster = torch.randn(300, 4, generator=generator) + left
    right_cluster = torch.randn(300, 4, generator=generator) + right
    generated = torch.randn(600, 4, generator=generator) + right
    precision, recall = precision_recall(generated, torch.cat([left_cluster, right_cluster]), k=5)
    assert precision > 0.9
    assert 0.45 < recall <= 0.5  # a few of the right cluster's outliers lie outside the generated balls


def test_precision_recall_counts_duplicates_as_neighbours():
    # Every real point twice: its first neighbour is its copy, so with k=1 every real ball has radius 0 and a
    # generated point 0.01 away from a real one is outside. Excluding the copy would give precision 1.
    distinct = torch.randn(40, 4, generator=torch.Generator().manual_seed(42)) * 3
    real = torch.cat([distinct, distinct])
    nudged = distinct + 0.01
    assert precision_recall(nudged, real, k=1)[0] == 0.0
    assert precision_recall(nudged, real, k=2)[0] == 1.0
    assert precision_recall(distinct, real, k=1)[0] == 1.0


def test_precision_recall_of_collapsed_sets():
    point = torch.randn(1, 8, generator=torch.Generator().manual_seed(43))
    collapsed = point.repeat(50, 1)
    assert precision_recall(collapsed, collapsed.clone()) == (1.0, 1.0)
    spread = point + torch.randn(50, 8, generator=torch.Generator().manual_seed(44))
    precision, recall = precision_recall(collapsed, spread)
    assert recall == 0.0  # the collapsed manifold is a single point of radius 0
    assert precision == 1.0  # that point lies well inside the spread set


def test_precision_recall_holds_at_most_a_chunk_of_rows_of_distances(monkeypatch):
    shapes = []
    original_cdist = torch.cdist

    def recording_cdist(a, b, *args, **kwargs):
        shapes.append((a.shape[0], b.shape[0]))
        return original_cdist(a, b, *args, **kwargs)

    monkeypatch.setattr(torch, "cdist", recording_cdist)
    generator = torch.Generator().manual_seed(45)
    precision_recall(torch.randn(100, 3, generator=generator), torch.randn(70, 3, generator=generator), chunk_size=16)
    assert shapes
    assert max(rows for rows, _ in shapes) <= 16
    # both radius passes and both membership passes walk every row
    assert sum(rows for rows, _ in shapes) == 2 * (100 + 70)


def test_precision_recall_needs_k_below_each_set_size():
    generated, real = torch.randn(5, 3), torch.randn(10, 3)
    with pytest.raises(ValueError, match="k smaller than each set"):
        precision_recall(generated, real, k=5)
    with pytest.raises(ValueError, match="k smaller than each set"):
        precision_recall(real, generated, k=5)
    with pytest.raises(ValueError, match="k >= 1"):
        precision_recall(generated, real, k=0)
    assert precision_recall(generated, real, k=4) is not None


# --- class histograms and mode coverage ----------------------------------------------------------------------


def test_class_histogram_counts_argmax_classes():
    probabilities = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.4, 0.1], [0.0, 0.9, 0.1], [0.2, 0.3, 0.5]])
    histogram = class_histogram(probabilities)
    assert histogram.dtype == torch.float64
    assert histogram.tolist() == [0.25, 0.5, 0.25]
    assert class_histogram((probabilities + 1e-3).log()).tolist() == [0.25, 0.5, 0.25]  # logits work too


def test_mode_coverage_of_a_single_repeated_class():
    real = one_hot(torch.arange(1000) % 10, 10)
    generated = one_hot(torch.full((500,), 3), 10)
    fraction, covered, divergence = mode_coverage(generated, real)
    assert (fraction, covered) == (0.1, 1)
    assert divergence == pytest.approx(math.log(10), rel=1e-3)
    assert divergence > 1.0


def test_mode_coverage_of_identical_sets():
    probabilities = torch.softmax(torch.randn(2000, 10, generator=torch.Generator().manual_seed(50)) * 3, dim=1)
    fraction, covered, divergence = mode_coverage(probabilities, probabilities.clone())
    assert (fraction, covered) == (1.0, 10)
    assert divergence == pytest.approx(0.0, abs=1e-12)


def test_mode_coverage_counts_only_real_classes_and_applies_min_share():
    real = one_hot(torch.arange(500) % 5, 10)  # classes 0-4, 20% each
    # class 0: 49%, class 1: 49%, class 2: 2% (a tenth of its real share), class 7: absent from the real set
    labels = torch.tensor([0] * 49 + [1] * 49 + [2] * 2 + [7] * 0)
    generated = one_hot(torch.cat([labels, torch.full((10,), 7)]), 10)
    fraction, covered, divergence = mode_coverage(generated, real, min_share=0.05)
    assert (covered, fraction) == (3, 0.6)
    assert mode_coverage(generated, real, min_share=0.5)[1] == 2
    assert math.isfinite(divergence)
    # a generated class the real set lacks costs p_gen(7) log(p_gen(7) / 1e-6): large but finite
    assert divergence > (10 / 110) * math.log((10 / 110) / 1e-5)


def test_mode_coverage_kl_matches_the_smoothed_formula():
    real = one_hot(torch.tensor([0, 0, 1, 2]), 4)
    generated = one_hot(torch.tensor([0, 1, 1, 1, 3]), 4)
    p_gen = [(share + 1e-6) / (1 + 4e-6) for share in (0.2, 0.6, 0.0, 0.2)]
    p_real = [(share + 1e-6) / (1 + 4e-6) for share in (0.5, 0.25, 0.25, 0.0)]
    expected = sum(p * math.log(p / q) for p, q in zip(p_gen, p_real, strict=True))
    assert mode_coverage(generated, real)[2] == pytest.approx(expected, rel=1e-12)


def test_mode_coverage_needs_the_same_classes_on_both_sides():
    with pytest.raises(ValueError, match="same number of classes"):
        mode_coverage(one_hot(torch.tensor([0, 1]), 3), one_hot(torch.tensor([0, 1]), 4))
