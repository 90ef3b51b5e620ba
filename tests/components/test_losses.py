import math

import pytest
import torch
from torch import nn

from ganforge.contracts import generator_loss_of
from ganforge.errors import ParamsError
from ganforge.registry import Kind

ALL_LOSSES = ["minimax", "non_saturating", "hinge", "wasserstein", "least_squares", "rpgan"]
ZERO_CENTRED = ["non_saturating", "minimax", "hinge", "least_squares", "rpgan"]


def build(registry, name, **params):
    return registry.get(Kind.LOSS, name).build(params)


class HalfSquaredNorm(nn.Module):
    """D(x) = 0.5 * ||x||^2 per sample, so grad D(x) = x: penalties have closed forms."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.pow(2).flatten(1).sum(dim=1)


def test_bce_is_an_alias_of_non_saturating(registry):
    assert registry.get(Kind.LOSS, "bce") is registry.get(Kind.LOSS, "non_saturating")


@pytest.mark.parametrize(
    ("name", "d_loss", "g_loss"),
    [
        ("non_saturating", 2 * math.log(2), math.log(2)),
        ("minimax", 2 * math.log(2), -math.log(2)),
        ("hinge", 2.0, 0.0),
        ("wasserstein", 0.0, 0.0),
        ("least_squares", 0.5, 0.5),
        ("rpgan", math.log(2), math.log(2)),
    ],
)
def test_known_values_at_zero_scores(registry, name, d_loss, g_loss):
    loss = build(registry, name)
    zeros = torch.zeros(8)
    assert loss.discriminator_loss(zeros, zeros).item() == pytest.approx(d_loss, abs=1e-6)
    assert generator_loss_of(loss, zeros, zeros).item() == pytest.approx(g_loss, abs=1e-6)


def test_one_sided_label_smoothing_changes_only_the_real_target(registry):
    loss = build(registry, "non_saturating", label_smoothing=0.1)
    real, fake = torch.full((4,), 2.0), torch.full((4,), -1.0)
    softplus = torch.nn.functional.softplus
    expected = 0.9 * softplus(torch.tensor(-2.0)) + 0.1 * softplus(torch.tensor(2.0)) + softplus(torch.tensor(-1.0))
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_gradient_directions(registry, name):
    """Raising real scores and lowering fake ones lowers D's loss; raising fake scores lowers G's."""
    loss = build(registry, name)
    real = torch.full((6,), 0.5, requires_grad=True)
    fake = torch.full((6,), 0.5, requires_grad=True)
    d_loss = loss.discriminator_loss(real, fake)
    assert d_loss.dim() == 0 and torch.isfinite(d_loss)
    d_loss.backward()
    assert (real.grad < 0).all()
    assert (fake.grad > 0).all()

    fake_for_g = torch.full((6,), 0.5, requires_grad=True)
    generator_loss_of(loss, fake_for_g, torch.full((6,), 0.5)).backward()
    assert (fake_for_g.grad < 0).all()


def test_minimax_saturates_where_non_saturating_does_not(registry):
    """With D sure the fakes are fake, minimax gives G almost no gradient: why both seeds use BCE vs 'real'."""
    confident_fake = torch.full((4,), -10.0)
    gradients = {}
    for name in ("minimax", "non_saturating"):
        scores = confident_fake.clone().requires_grad_(True)
        build(registry, name).generator_loss(scores).backward()
        gradients[name] = scores.grad.abs().sum().item()
    assert gradients["minimax"] < 1e-3
    assert gradients["non_saturating"] > 0.99


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_large_logits_stay_finite(registry, name):
    loss = build(registry, name)
    big = torch.tensor([1e4, -1e4])
    assert torch.isfinite(loss.discriminator_loss(big, -big))
    assert torch.isfinite(generator_loss_of(loss, big, -big))


def test_wgan_gp_matches_a_hand_computation(registry):
    loss = build(registry, "wasserstein", gradient_penalty=10.0)
    torch.manual_seed(0)
    real = torch.randn(5, 2, 3, 3)
    fake = torch.randn(5, 2, 3, 3)

    torch.manual_seed(1)
    penalty = loss.penalty(HalfSquaredNorm(), real, fake)

    torch.manual_seed(1)
    alpha = torch.rand(5, 1, 1, 1)  # one interpolation weight per sample
    mixed = alpha * real + (1 - alpha) * fake
    norms = mixed.flatten(1).norm(dim=1)  # grad D(x) = x; the norm runs over C, H and W together
    expected = 10.0 * ((norms - 1) ** 2).mean()
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-6)


def test_wgan_gp_of_a_unit_slope_critic_is_zero(registry):
    """A linear critic with ||w|| = 1 meets the 1-Lipschitz target exactly."""
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1, bias=False))
    with torch.no_grad():
        critic[1].weight.fill_(1.0 / math.sqrt(12))
    loss = build(registry, "wasserstein")
    penalty = loss.penalty(lambda x: critic(x).squeeze(1), torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2))
    assert penalty.item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_reaches_the_discriminator_weights(registry):
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 1))
    penalty = build(registry, "wasserstein").penalty(
        lambda x: critic(x).squeeze(1), torch.randn(3, 4), torch.randn(3, 4)
    )
    penalty.backward()
    assert critic[1].weight.grad is not None and critic[1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ZERO_CENTRED)
def test_r1_penalty_matches_a_hand_computation(registry, name):
    real = torch.randn(4, 1, 3, 3)
    penalty = build(registry, name, r1_gamma=2.0).penalty(HalfSquaredNorm(), real, torch.randn(4, 1, 3, 3))
    expected = 0.5 * 2.0 * real.pow(2).flatten(1).sum(dim=1).mean()
    assert penalty.item() == pytest.approx(expected.item(), rel=1e-6)


@pytest.mark.parametrize("name", ZERO_CENTRED)
def test_r2_penalty_at_generated_images_and_with_r1(registry, name):
    real, fake = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    # D(x) = |x|^2 / 2 has gradient x: R2 = gamma/2 * mean |fake|^2, R1 likewise at the real images.
    r2 = build(registry, name, r2_gamma=3.0).penalty(HalfSquaredNorm(), real, fake)
    assert r2.item() == pytest.approx(1.5 * fake.pow(2).flatten(1).sum(dim=1).mean().item(), rel=1e-6)
    both = build(registry, name, r1_gamma=2.0, r2_gamma=3.0).penalty(HalfSquaredNorm(), real, fake)
    r1 = 1.0 * real.pow(2).flatten(1).sum(dim=1).mean()
    assert both.item() == pytest.approx(r1.item() + r2.item(), rel=1e-6)


@pytest.mark.parametrize("name", ALL_LOSSES)
def test_no_penalty_unless_configured(registry, name):
    params = {"gradient_penalty": 0.0} if name == "wasserstein" else {}
    assert build(registry, name, **params).penalty(HalfSquaredNorm(), torch.randn(2, 3), torch.randn(2, 3)) is None


def test_probabilities_only_where_the_objective_has_them(registry):
    scores = torch.tensor([0.0, 2.0])
    assert torch.allclose(build(registry, "bce").probability(scores), torch.sigmoid(scores))
    assert build(registry, "hinge").probability(scores) is None


@pytest.mark.parametrize(("params", "field"), [({"label_smoothing": 1.5}, "label_smoothing"), ({"r1": 1}, "r1")])
def test_bad_params_name_the_field(registry, params, field):
    with pytest.raises(ParamsError, match=rf"params\.{field}"):
        build(registry, "non_saturating", **params)


def test_rpgan_pairs_each_real_score_with_a_generated_one_by_hand(registry):
    loss = build(registry, "rpgan")
    assert registry.get(Kind.LOSS, "relativistic_pairing") is registry.get(Kind.LOSS, "rpgan")
    assert (
        loss.generator_reads_real_scores and loss.decision_threshold is None and loss.probability(torch.ones(2)) is None
    )
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([3.0, 1.0])
    softplus = torch.nn.functional.softplus
    # pairs (1, 3) and (3, 1): D wants real above its pair, G its image above its pair's real one
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(
        ((softplus(torch.tensor(2.0)) + softplus(torch.tensor(-2.0))) / 2).item()
    )
    assert loss.generator_loss(torch.tensor([0.0, 5.0]), real).item() == pytest.approx(
        ((softplus(torch.tensor(1.0)) + softplus(torch.tensor(-2.0))) / 2).item()
    )
    with pytest.raises(ValueError, match="pairs real and generated"):
        loss.discriminator_loss(real, torch.zeros(3))
