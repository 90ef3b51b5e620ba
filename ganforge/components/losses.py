"""Built-in adversarial losses, on raw discriminator scores (logits).

Each works on scores, never probabilities, so the sigmoid lives inside softplus, where it is
numerically stable. The discriminator loss is the sum of the mean real term and the mean fake
term (2 log 2 at zero logits for the logistic losses).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ganforge.contracts import GANLoss, Params
from ganforge.hookspecs import hookimpl
from ganforge.penalties import gradient_penalty, r1_penalty, r2_penalty

LABEL_SMOOTHING = Field(
    0.0,
    ge=0.0,
    lt=1.0,
    description="One-sided label smoothing (Salimans et al. 2016): the discriminator's real target becomes "
    "1 - label_smoothing; fake targets stay 0.",
)
R1_GAMMA = Field(
    0.0,
    ge=0.0,
    description="Weight gamma of the R1 penalty gamma/2 * E||grad D(x_real)||^2 (Mescheder et al. 2018); "
    "0 disables it.",
)
R2_GAMMA = Field(
    0.0,
    ge=0.0,
    description="Weight gamma of the R2 penalty gamma/2 * E||grad D(G(z))||^2 at generated images (Roth et al. "
    "2017; R1 + R2 in R3GAN, Huang et al. 2024); 0 disables it.",
)


class LogisticParams(Params):
    label_smoothing: float = LABEL_SMOOTHING
    r1_gamma: float = R1_GAMMA
    r2_gamma: float = R2_GAMMA


class ZeroCentredParams(Params):
    r1_gamma: float = R1_GAMMA
    r2_gamma: float = R2_GAMMA


class LeastSquaresParams(Params):
    label_smoothing: float = LABEL_SMOOTHING
    r1_gamma: float = R1_GAMMA
    r2_gamma: float = R2_GAMMA


class WassersteinParams(Params):
    gradient_penalty: float = Field(
        10.0,
        ge=0.0,
        description="Weight lambda of the WGAN-GP penalty lambda * E(||grad D(x_hat)||_2 - 1)^2 on random "
        "interpolates of real and fake (Gulrajani et al. 2017); 0 disables it.",
    )


class _ZeroCentredMixin:
    """R1 at real images and R2 at generated ones, each where its gamma is above 0.

    The gammas are read from ``self.params`` at each call, so that a schedule can drive them."""

    params: ZeroCentredParams | LogisticParams | LeastSquaresParams

    def __init__(self, params: ZeroCentredParams | LogisticParams | LeastSquaresParams) -> None:
        self.params = params

    def penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor | None:
        terms = []
        if self.params.r1_gamma > 0:
            terms.append(r1_penalty(discriminator, real, self.params.r1_gamma))
        if self.params.r2_gamma > 0:
            terms.append(r2_penalty(discriminator, fake, self.params.r2_gamma))
        return torch.stack(terms).sum() if terms else None


class _LogisticLoss(_ZeroCentredMixin, GANLoss):
    """The discriminator side shared by minimax and non-saturating: BCE on logits."""

    params: LogisticParams

    def discriminator_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        # BCE(sigmoid(s), t) = t * softplus(-s) + (1 - t) * softplus(s)
        real_term = F.softplus(-real_scores)
        real_target = 1.0 - self.params.label_smoothing
        if real_target != 1.0:
            real_term = real_target * real_term + (1.0 - real_target) * F.softplus(real_scores)
        return real_term.mean() + F.softplus(fake_scores).mean()

    def probability(self, scores: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(scores)


class Minimax(_LogisticLoss):
    """Goodfellow et al. 2014's saturating objective: G minimises log(1 - D(G(z)))."""

    def generator_loss(self, fake_scores: torch.Tensor) -> torch.Tensor:
        # log(1 - sigmoid(s)) = -softplus(s)
        return -F.softplus(fake_scores).mean()


class NonSaturating(_LogisticLoss):
    """The non-saturating objective both seeds train: G minimises -log D(G(z)) (BCE against 'real')."""

    def generator_loss(self, fake_scores: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake_scores).mean()


class Hinge(_ZeroCentredMixin, GANLoss):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018): D margins at +-1, G maximises D(G(z))."""

    def discriminator_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()

    def generator_loss(self, fake_scores: torch.Tensor) -> torch.Tensor:
        return -fake_scores.mean()


class RelativisticPairing(_ZeroCentredMixin, GANLoss):
    """RpGAN (Jolicoeur-Martineau 2018): each image scored against its pair; + R1 + R2 = R3GAN (Huang et al. 2024).

    D: ``mean_i softplus(D(G(z_i)) - D(x_i))``; G: ``mean_i softplus(D(x_i) - D(G(z_i)))``, with the
    real scores of the same step at D's current weights. Real image i and generated image i are
    paired, so the batches are as large as each other. Scores only mean something against each
    other: no probability, no decision threshold.
    """

    decision_threshold = None
    generator_reads_real_scores = True

    def discriminator_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        return F.softplus(fake_scores - _paired(real_scores, fake_scores)).mean()

    def generator_loss(self, fake_scores: torch.Tensor, real_scores: torch.Tensor) -> torch.Tensor:
        return F.softplus(_paired(real_scores, fake_scores) - fake_scores).mean()


def _paired(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    if real_scores.shape != fake_scores.shape:
        raise ValueError(
            f"rpgan pairs real and generated scores by index: got shapes {tuple(real_scores.shape)} and "
            f"{tuple(fake_scores.shape)}"
        )
    return real_scores


class Wasserstein(GANLoss):
    """Wasserstein critic loss with gradient penalty, WGAN-GP (Gulrajani et al. 2017)."""

    decision_threshold = None  # a critic's scores are only meaningful relative to each other

    def __init__(self, params: WassersteinParams) -> None:
        self.params = params  # read at each call: a schedule may drive gradient_penalty

    def discriminator_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        return fake_scores.mean() - real_scores.mean()

    def generator_loss(self, fake_scores: torch.Tensor) -> torch.Tensor:
        return -fake_scores.mean()

    def penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor | None:
        if self.params.gradient_penalty <= 0:
            return None
        return gradient_penalty(discriminator, real, fake, self.params.gradient_penalty)


class LeastSquares(_ZeroCentredMixin, GANLoss):
    """Least-squares GAN (Mao et al. 2017): D regresses real to 1 and fake to 0, G pulls fake to 1."""

    decision_threshold = 0.5
    params: LeastSquaresParams

    def discriminator_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        real_target = 1.0 - self.params.label_smoothing
        return 0.5 * (real_scores - real_target).pow(2).mean() + 0.5 * fake_scores.pow(2).mean()

    def generator_loss(self, fake_scores: torch.Tensor) -> torch.Tensor:
        return 0.5 * (fake_scores - 1.0).pow(2).mean()


@hookimpl
def register_losses(register) -> None:
    register("minimax", Minimax, params=LogisticParams)
    register("non_saturating", NonSaturating, params=LogisticParams, aliases=["bce"])
    register("hinge", Hinge, params=ZeroCentredParams)
    register("rpgan", RelativisticPairing, params=ZeroCentredParams, aliases=["relativistic_pairing"])
    register("wasserstein", Wasserstein, params=WassersteinParams, aliases=["wgan_gp"])
    register("least_squares", LeastSquares, params=LeastSquaresParams, aliases=["lsgan"])
