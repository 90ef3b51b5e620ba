"""The relativistic average loss, RaGAN (Jolicoeur-Martineau 2018, "The relativistic discriminator").

D judges how much more real a real image looks than the average generated one, and how much less
real a generated image looks than the average real one; G is judged by the same two terms with
the roles swapped. G's terms read the real scores, which ganforge passes to ``generator_loss`` as
its second argument because this loss sets ``generator_reads_real_scores`` (D's scores of the
step's real batch, at D's current weights, without gradients).
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


def _average_terms(above: torch.Tensor, below: torch.Tensor) -> torch.Tensor:
    """``above`` should score higher than the mean of ``below``, and ``below`` lower than the mean of ``above``."""
    return F.softplus(below.mean() - above).mean() + F.softplus(below - above.mean()).mean()


class Relativistic(GANLoss):
    """RaGAN: each image scored against the other side's mean score, D and G with the roles swapped.

    - D: ``mean softplus(-(D(x_r) - mean D(x_f))) + mean softplus(D(x_f) - mean D(x_r))``.
    - G: ``mean softplus(-(D(x_f) - mean D(x_r))) + mean softplus(D(x_r) - mean D(x_f))``, the
      second term pulling the generated scores' mean above each real score.

    Scores are relative, so the loss has neither a probability nor a decision threshold.
    """

    decision_threshold = None
    generator_reads_real_scores = True

    def __init__(self, params: RelativisticParams) -> None:
        self.r1_gamma = params.r1_gamma

    def discriminator_loss(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        return _average_terms(above=real_scores, below=fake_scores)

    def generator_loss(self, fake_scores: torch.Tensor, real_scores: torch.Tensor) -> torch.Tensor:
        return _average_terms(above=fake_scores, below=real_scores)

    def penalty(self, discriminator: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor | None:
        return r1_penalty(discriminator, real, self.r1_gamma) if self.r1_gamma > 0 else None
