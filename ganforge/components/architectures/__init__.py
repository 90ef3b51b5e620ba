"""ganforge's built-in architectures: a fully connected GAN and DCGAN."""

from __future__ import annotations

from ganforge.components.architectures.dcgan import DCGANParams, build_dcgan
from ganforge.components.architectures.mlp import MLPParams, build_mlp
from ganforge.hookspecs import hookimpl
from ganforge.registry import Register

# The classic conditional designs (conditioning.py), checked like the defaults by the contract kit.
CONDITIONAL_VARIANTS = (
    {"generator_conditioning": "concat", "discriminator_conditioning": "concat"},
    {"generator_conditioning": "batch_norm", "discriminator_conditioning": "projection", "spectral_norm": True},
    {"generator_conditioning": "concat", "discriminator_conditioning": "classifier"},
)


@hookimpl
def register_architectures(register: Register) -> None:
    register(
        "mlp",
        build_mlp,
        params=MLPParams,
        summary="Fully connected generator and discriminator for any image shape (defaults: seed 001, MNIST).",
        check_params=CONDITIONAL_VARIANTS,
    )
    register(
        "dcgan",
        build_dcgan,
        params=DCGANParams,
        summary="DCGAN (Radford et al. 2015): transposed-conv generator, strided-conv discriminator; 28/32/64 px.",
        check_params=CONDITIONAL_VARIANTS,
    )
