"""Spectral normalisation of a discriminator's layers (Miyato et al. 2018), an option of the built-ins."""

from __future__ import annotations

from pydantic import Field
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

SPECTRAL_NORM = Field(
    default=False,
    description="Spectral normalisation (Miyato et al. 2018) of every linear and convolutional layer of the "
    "discriminator, and of its label embeddings where it is conditional: each weight divided by its largest "
    "singular value (one power iteration per training call), which bounds D's Lipschitz constant.",
)


def spectrally_normalised(discriminator: nn.Module) -> nn.Module:
    """``discriminator`` with each of its linear, convolutional and embedding weights spectrally normalised, in
    place (a conditional D's label embeddings too, as Miyato & Koyama 2018 normalise the projection's).

    Applied after the weights are initialised: the normalised weight is computed from the original one.
    """
    for module in list(discriminator.modules()):
        if isinstance(module, nn.Linear | nn.Conv2d | nn.Embedding):
            spectral_norm(module)
    return discriminator
