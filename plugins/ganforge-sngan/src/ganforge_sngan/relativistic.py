"""The relativistic loss (Jolicoeur-Martineau 2018, "The relativistic discriminator").

The discriminator is trained with the relativistic *pairing* loss (RpGAN): real image i and fake
image i are compared, ``softplus(-(D(x_real_i) - D(x_fake_i)))``. The generator loss of RpGAN
needs the real scores too, but ganforge's trainer hands ``generator_loss`` only the scores of the
generated images. The generator therefore uses the relativistic *average* form (RaGAN's fake
term), against the mean real score the loss object remembers from its last ``discriminator_loss``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from ganforge import GANLoss, Params, r1_penalty


class RelativisticParams(Params):
    r1_gamma: float = Field(
        0.0,
        ge=0.0,
        description="Weight gamma of the R1 penalty gamma/2 * E||grad D(x_real)||^2 (Mescheder et al. 2018); "
        "0 disables it.",
    )


class Relativistic(GANLoss):
    """Relativistic GAN: D scores real against fake, G scores fake against the remembered mean real score.

    - D: ``mean_i softplus(-(D(x_real_i) - D(x_fake_i)))``, real and fake paired by index (RpGAN),
      so both batches must have the same size.
    - G: ``mean_j softplus(-(D(G(z_j)) - m))`` with ``m`` the detached mean of the real scores of
      the last ``discriminator_loss`` call (0 before the first one). This is the relativistic
      *average* generator loss, without RaGAN's second term (which would push real scores down):
      ganforge's ``generator_loss`` receives only fake scores, so the loss object keeps ``m`` as
      state. In ganforge's trainer ``m`` comes from the same real batch, scored by D just before
      D's update on it; with ``n_critic > 1`` it is from the last critic step.

    Scores are relative, so the loss has neither a probability nor a decision threshold.
    """

    decision_threshold = None

    def __init__(self, params: RelativisticParams) -> None:
        self.r1_gamma = params.r1_gamma
        self.mean_real_score: torch.Tensor | None = None

    def discriminator_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        if real_scores.shape != fake_scores.shape:
            raise ValueError(
                f"the relativistic pairing loss pairs real and fake scores by index: got shapes "
                f"{tuple(real_scores.shape)} and {tuple(fake_scores.shape)}"
            )
        self.mean_real_score = real_scores.detach().mean()
        return F.softplus(fake_scores - real_scores).mean()

    def generator_loss(self, fake_scores: torch.Tensor) -> torch.Tensor:
        mean_real = self.mean_real_score
        if mean_real is None:
            mean_real = fake_scores.new_zeros(())
        return F.softplus(mean_real.to(fake_scores) - fake_scores).mean()

    def penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor | None:
        return r1_penalty(discriminator, real, self.r1_gamma) if self.r1_gamma > 0 else None
