"""ganforge's built-in architectures: a fully connected GAN, DCGAN, a residual GAN (SNGAN/BigGAN) and R3GAN."""

from __future__ import annotations

from ganforge.components.architectures.dcgan import DCGANParams, build_dcgan
from ganforge.components.architectures.mlp import MLPParams, build_mlp
from ganforge.components.architectures.r3gan import R3GANParams, build_r3gan
from ganforge.components.architectures.resnet import ResNetParams, build_resnet
from ganforge.hookspecs import hookimpl
from ganforge.registry import Register

# The classic conditional designs (conditioning.py), checked like the defaults by the contract kit.
CONDITIONAL_VARIANTS = (
    {"generator_conditioning": "concat", "discriminator_conditioning": "concat"},
    {"generator_conditioning": "batch_norm", "discriminator_conditioning": "projection", "spectral_norm": True},
    {"generator_conditioning": "concat", "discriminator_conditioning": "classifier"},
)
# The residual GAN's conditional design (SNGAN's, Miyato & Koyama 2018), checked like its defaults.
RESNET_CONDITIONAL_VARIANTS = ({"generator_conditioning": "batch_norm", "discriminator_conditioning": "projection"},)
# R3GAN's one conditional design (Huang et al. 2024): label embeddings in G's input and D's output.
R3GAN_CONDITIONAL_VARIANTS = ({"conditioning": "embedding"},)


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
    register(
        "resnet",
        build_resnet,
        params=ResNetParams,
        summary="Residual GAN after SNGAN/BigGAN (Miyato et al. 2018, Brock et al. 2019): spectral norm, "
        "optional self-attention, conditional batch norm and projection; 28/32/64/128/256 px.",
        check_params=RESNET_CONDITIONAL_VARIANTS,
    )
    register(
        "r3gan",
        build_r3gan,
        params=R3GANParams,
        summary="R3GAN (Huang et al. 2024): grouped-convolution inverted-bottleneck residual blocks, no "
        "normalisation, filtered resampling, label embeddings; the paper's preset for each side; 28/32/64/128/256 px.",
        check_params=R3GAN_CONDITIONAL_VARIANTS,
    )
