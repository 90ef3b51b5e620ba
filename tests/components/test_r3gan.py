"""R3GAN (`r3gan`), built through the registry as a training run builds it."""

from __future__ import annotations

import json
import math
import types
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from ganforge import hookimpl
from ganforge.components.architectures import R3GAN_CONDITIONAL_VARIANTS
from ganforge.components.architectures.r3gan import R3GANParams, build_r3gan
from ganforge.components.architectures.r3gan_blocks import (
    LEAKY_GAIN,
    BiasedLeakyReLU,
    GenerativeBasis,
    Resample,
    ResidualBlock,
)
from ganforge.contracts import DataSpec, GANModels
from ganforge.errors import ParamsError
from ganforge.registry import Kind, Registry
from ganforge.testing import assert_check, isolated_registry, parametrize_with_checks
from tests.runs import metrics
from tests.small_configs import tiny_config

CONDITIONAL = {"conditioning": "embedding"}
# Small enough for a CPU test: two stages of 16 channels in 4 groups (8 channels a group inside), one of 8.
NARROW = {"latent_dim": 16, "generator_embedding_dim": 8, "expansion": 2}
CLASSES = 10

# The paper's CIFAR-10 networks as brownvc/R3GAN builds them: R3GAN/Networks.py's Generator and Discriminator
# with train.py's preset CIFAR10 (widths 3 * 1024 // 4 = 768, 2 blocks and cardinality 3 * 32 = 96 per stage,
# expansion 2, noise 64; conditional: G's embedding 64, D's 768), for 10 classes. Counted by building them on a
# CPU at commit 19a7ddf463fbac2bd39b4c1c73d63f1c441c7403 (its compiled upfirdn2d and bias_act ops replaced by the
# pure-PyTorch classes of the same files, which have the same parameters).
REFERENCE_COMMIT = "19a7ddf463fbac2bd39b4c1c73d63f1c441c7403"
REFERENCE_CIFAR10_COUNTS = {
    "unconditional": (20_732_160, 20_683_776),
    "conditional": (20_781_952, 21_280_512),
}


def build(registry: Registry, params: dict[str, Any], shape: tuple[int, int, int]) -> GANModels:
    return registry.get(Kind.ARCHITECTURE, "r3gan").build(params, DataSpec(shape, CLASSES))


def parameter_count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def narrow_stages(side: int) -> dict[str, Any]:
    """Per-stage lists for ``side`` px: 16 channels in 4 groups, 8 channels at the image side, one block each."""
    count = int(math.log2(side // (7 if side == 28 else 4))) + 1
    return {"widths": [16] * (count - 1) + [8], "cardinality": [4] * count, "blocks": [1] * count}


def narrow_r3gan(params: R3GANParams, data: DataSpec) -> GANModels:
    """r3gan's own factory, with narrow stages for the data's side where the params leave them to the paper's."""
    narrow = {key: value for key, value in narrow_stages(data.shape[1]).items() if getattr(params, key) is None}
    return build_r3gan(params.model_copy(update={**NARROW, **narrow}), data)


def register_narrow_r3gan(register) -> None:
    register(
        "r3gan",
        narrow_r3gan,
        params=R3GANParams,
        check_params=R3GAN_CONDITIONAL_VARIANTS,
    )


NARROW_PLUGIN = types.ModuleType("narrow_r3gan")
NARROW_PLUGIN.register_architectures = hookimpl(register_narrow_r3gan)
NARROW_COMPONENT = isolated_registry(NARROW_PLUGIN, distribution="narrow").get(Kind.ARCHITECTURE, "r3gan")


@parametrize_with_checks([NARROW_COMPONENT])
def test_the_contract_kit_passes_at_narrow_widths(component, check):
    # The kit on r3gan's own code at the kit's sizes (28 and 32 px), unconditional and conditional, with
    # narrow stages: the paper's widths take minutes on a CPU (the slow test below runs `ganforge check`).
    assert_check(component, check)


@pytest.mark.parametrize("variant", ["unconditional", "conditional"])
def test_cifar10_preset_has_the_reference_parameter_counts(registry, variant):
    models = build(registry, CONDITIONAL if variant == "conditional" else {}, (3, 32, 32))
    counts = (parameter_count(models.generator), parameter_count(models.discriminator))
    print(f"r3gan CIFAR-10 {variant}: G {counts[0]:,} D {counts[1]:,}; reference ({REFERENCE_COMMIT[:7]}):", end=" ")
    print("G {:,} D {:,}".format(*REFERENCE_CIFAR10_COUNTS[variant]))
    assert counts == REFERENCE_CIFAR10_COUNTS[variant]
    # The same figure from the layer shapes: a block is 768 -> 1536 (1x1), 1536 -> 1536 in 96 groups (3x3),
    # 1536 -> 768 (1x1), two biases of 1536; eight blocks in each network.
    blocks = 8 * (768 * 1536 + 1536 * 16 * 9 + 1536 * 768 + 2 * 1536)
    generator = blocks + (768 * 4 * 4 + 64 * 768) + 768 * 3  # basis and its linear map, the 1x1 to RGB
    discriminator = blocks + 3 * 768 + 768 * 4 * 4 + 768  # 1x1 from RGB, depthwise 4x4 basis, linear to the score
    if variant == "conditional":  # G: 64 more inputs and a 64-wide embedding; D: a 768-wide output and embedding
        generator += 64 * 768 + CLASSES * 64
        discriminator += 768 * 767 + CLASSES * 768
    assert counts == (generator, discriminator)


SHAPES = [(1, 28, 28), (3, 28, 28), (3, 32, 32), (1, 32, 32), (3, 64, 64), (3, 128, 128), (4, 64, 64)]


@pytest.mark.parametrize("conditional", [False, True], ids=["unconditional", "conditional"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: "x".join(map(str, shape)))
def test_images_scores_and_labels_at_each_size(registry, shape, conditional):
    torch.manual_seed(0)
    models = build(registry, {**NARROW, **narrow_stages(shape[1]), **(CONDITIONAL if conditional else {})}, shape)
    assert models.conditional is conditional
    labels = torch.tensor([0, 1, 2, 9]) if conditional else None
    args = (labels,) if conditional else ()
    fakes = models.generator(torch.randn(4, models.latent_dim), *args)
    assert fakes.shape == (4, *shape)
    assert fakes.min() >= -1.0 and fakes.max() <= 1.0
    scores = models.discriminator(fakes, *args)
    assert scores.shape == (4,) and torch.isfinite(scores).all()
    if conditional:  # the same z and image, another label: another image and another score
        with torch.no_grad():
            images = models.generator(torch.randn(1, models.latent_dim).repeat(2, 1), torch.tensor([3, 4]))
            judged = models.discriminator(images[:1].repeat(2, 1, 1, 1), torch.tensor([3, 4]))
        assert not torch.equal(images[0], images[1]) and judged[0] != judged[1]


def test_256_px_grows_from_4x4_in_seven_stages(registry):
    models = build(registry, {**NARROW, **narrow_stages(256)}, (3, 256, 256))
    assert sum(isinstance(m, Resample) for m in models.generator.modules()) == 6
    assert models.generator(torch.randn(1, 16)).shape == (1, 3, 256, 256)


def branch_parameters(network: nn.Module) -> set[str]:
    """The names of every residual branch's first two convolutions and their biases."""
    return {
        f"{name}.{inner}"
        for name, module in network.named_modules()
        if isinstance(module, ResidualBlock)
        for inner in ("widen.weight", "mix.weight", "act1.bias", "act2.bias")
    }


def without_gradient(network: nn.Module) -> set[str]:
    return {name for name, p in network.named_parameters() if p.grad is None or not p.grad.any()}


@pytest.mark.parametrize("conditional", [False, True], ids=["unconditional", "conditional"])
@pytest.mark.parametrize("side", [32, 64, 128])
def test_every_parameter_learns_from_the_second_step(registry, side, conditional):
    # The paper's zero-initialised branch ends keep the branches' other parameters from any gradient at first
    # (the contract kit allows it: it steps what was reached and looks again); one step moves those ends, and
    # then all learn.
    torch.manual_seed(0)
    shape = (3, side, side)
    models = build(registry, {**NARROW, **narrow_stages(side), **(CONDITIONAL if conditional else {})}, shape)
    networks = (models.generator, models.discriminator)
    optimisers = [torch.optim.Adam(network.parameters(), lr=1e-3) for network in networks]
    labels = torch.arange(CLASSES) if conditional else None
    args = (labels,) if conditional else ()
    for step in range(2):
        for optimiser in optimisers:
            optimiser.zero_grad(set_to_none=True)
        fakes = models.generator(torch.randn(CLASSES, models.latent_dim), *args)
        reals = torch.rand(CLASSES, *shape) * 2 - 1
        (models.discriminator(fakes, *args).sum() - models.discriminator(reals, *args).sum()).backward()
        if step == 0:
            assert [without_gradient(network) for network in networks] == [branch_parameters(n) for n in networks]
            assert all(branch_parameters(network) for network in networks)
        for optimiser in optimisers:
            optimiser.step()
    assert [without_gradient(network) for network in networks] == [set(), set()]


def test_initialisation_is_the_papers_variance_scaling(registry):
    torch.manual_seed(0)
    models = build(registry, CONDITIONAL, (3, 32, 32))
    blocks = [m for m in models.generator.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 8
    gain = LEAKY_GAIN * 8 ** (-1 / 4)  # L = 8 blocks, 3 layers a branch: L^(-1/(2*3-2))
    widen = torch.cat([block.widen.weight.flatten() for block in blocks])
    mix = torch.cat([block.mix.weight.flatten() for block in blocks])
    assert widen.std().item() == pytest.approx(gain / math.sqrt(768), rel=0.01)
    assert mix.std().item() == pytest.approx(gain / math.sqrt(16 * 9), rel=0.01)  # 16 channels a group, 3x3
    assert all(not block.narrow.weight.any() for block in blocks)  # each block starts as the identity
    networks = (models.generator, models.discriminator)
    activations = [m for network in networks for m in network.modules() if isinstance(m, BiasedLeakyReLU)]
    assert len(activations) == 2 * 2 * 8 and not any(m.bias.any() for m in activations)  # the only biases
    layers = [m for network in networks for m in network.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    assert all(m.bias is None for m in layers)
    [basis] = [m for m in models.generator.modules() if isinstance(m, GenerativeBasis)]
    assert basis.basis.std().item() == pytest.approx(1.0, rel=0.05)
    # The labels' embeddings as the reference's bias-free linear maps of one-hot labels: std gain / sqrt(classes).
    g_embedding = models.generator.embedding.embedding.weight
    d_embedding = models.discriminator.embedding.embedding.weight
    assert g_embedding.shape == (CLASSES, 64) and d_embedding.shape == (CLASSES, 768)
    assert g_embedding.std().item() == pytest.approx(1 / math.sqrt(CLASSES), rel=0.15)
    assert d_embedding.std().item() == pytest.approx(1 / math.sqrt(768 * CLASSES), rel=0.05)


def test_resampling_filters_with_the_binomial_kernel():
    up, down = Resample(2, 2, up=True), Resample(2, 2, up=False)
    row = torch.tensor([1.0, 3.0, 3.0, 1.0]) / 8  # [1, 2, 1] held over two pixels
    assert torch.allclose(up.kernel[0, 0], torch.outer(row, row))
    constant = torch.full((1, 2, 8, 8), 0.5)
    assert torch.allclose(up(constant)[..., 2:-2, 2:-2], torch.full((1, 2, 12, 12), 0.5))  # the mean is kept
    assert torch.allclose(down(constant)[..., 1:-1, 1:-1], torch.full((1, 2, 2, 2), 0.5))
    impulse = torch.zeros(1, 2, 8, 8)
    impulse[0, 0, 4, 4] = 1.0
    assert torch.allclose(down(impulse)[0, 0].sum(), torch.tensor(0.25)) and not down(impulse)[0, 1].any()
    assert down(impulse)[0, 0, 1:4, 1:4].count_nonzero() == 4  # the 4x4 kernel spreads one pixel over 2x2


def test_no_normalisation_layers_and_leaky_activations(registry):
    models = build(registry, {**NARROW, **narrow_stages(32)}, (3, 32, 32))
    for network in (models.generator, models.discriminator):
        kinds = {type(m) for m in network.modules()}
        assert not any(issubclass(kind, nn.modules.batchnorm._NormBase | nn.GroupNorm | nn.LayerNorm) for kind in kinds)
        assert BiasedLeakyReLU in kinds


def test_images_are_clamped_with_the_identitys_gradient(registry):
    torch.manual_seed(0)
    models = build(registry, {**NARROW, **narrow_stages(32)}, (3, 32, 32))
    with torch.no_grad():
        models.generator.output.weight.mul_(50)  # push most pixels out of range
    z = torch.randn(2, 16)
    images = models.generator(z)
    assert images.min() == -1.0 and images.max() == 1.0
    images.sum().backward()
    assert models.generator.output.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("params", "shape", "expected"),
    [
        pytest.param({}, (3, 48, 48), r"3x48x48.*28, 32, 64, 128, 256", id="side"),
        pytest.param({}, (3, 32, 30), "3x32x30", id="non-square"),
        pytest.param({"widths": [768, 768]}, (3, 32, 32), r"widths.*needs 4: one per stage, 4x4 to 32x32", id="w"),
        pytest.param({"blocks": [2] * 4}, (3, 28, 28), r"blocks.*needs 3: one per stage, 7x7 to 28x28", id="blocks"),
        pytest.param({"cardinality": [96, 96, 96, 100]}, (3, 32, 32), r"stage 3 \(32x32\).*1536.*100", id="groups"),
        pytest.param({"blocks": [0, 1, 1, 1]}, (3, 32, 32), "blocks", id="no-blocks"),
        pytest.param({"conditioning": "projection"}, (3, 32, 32), "conditioning", id="design"),
    ],
)
def test_bad_params_and_shapes_are_refused_by_name(registry, params, shape, expected):
    with pytest.raises(ParamsError, match=expected):
        build(registry, params, shape)


def test_conditioning_needs_classes(registry):
    component = registry.get(Kind.ARCHITECTURE, "r3gan")
    with pytest.raises(ParamsError, match=r"needs a dataset with classes.*params\.conditioning"):
        component.build(CONDITIONAL, DataSpec((3, 32, 32), None))


def test_every_param_is_described_and_the_conditional_design_is_checked(registry):
    component = registry.get(Kind.ARCHITECTURE, "r3gan")
    assert component.summary and list(component.check_params) == [CONDITIONAL]
    assert [key for key, field in component.params_model.model_fields.items() if not field.description] == []


@pytest.mark.slow
def test_a_few_steps_through_the_command_line_at_28_px(app, workdir):
    data = {"name": "synthetic", "params": {"num_samples": 32, "num_classes": 2, "size": 28, "channels": 3}}
    model = {"name": "r3gan", "params": {**NARROW, **narrow_stages(28), **CONDITIONAL}}
    loss = {"name": "rpgan", "params": {"r1_gamma": 0.05, "r2_gamma": 0.05}}
    config = tiny_config(workdir, name="r3gan", data=data, model=model, loss=loss)
    result = CliRunner().invoke(app, ["run", str(config), "--quiet"])
    assert result.exit_code == 0, result.output
    records = [record for record in metrics(workdir / "runs" / "r3gan") if record["event"] == "step"]
    assert records and all(torch.isfinite(torch.tensor(record["d_loss"])) for record in records)


@pytest.mark.slow
def test_ganforge_check_passes_at_the_papers_cifar10_widths(app):
    # At 64 and 128 px the paper's widths run at under one image a second on a CPU (benchmarks/architectures.py):
    # there the kit runs on r3gan's own code at narrow widths (below); the full widths wait for a GPU.
    result = CliRunner().invoke(app, ["check", "architecture:r3gan", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    statuses = {r["check"]: r["status"] for r in payload["results"]}
    assert payload["passed"] and set(statuses.values()) <= {"passed", "skipped"}  # skipped: CUDA, without a GPU
    assert statuses["check_gradients_reach_every_parameter"] == "passed"


@parametrize_with_checks([NARROW_COMPONENT])
def test_the_contract_kit_passes_at_64_and_128_px_at_narrow_widths(component, check):
    assert_check(component, check, shapes=[(3, 64, 64), (3, 128, 128)])


def test_each_side_defaults_to_the_papers_preset_for_it(registry):
    def blocks(side: int) -> list[ResidualBlock]:
        models = registry.get(Kind.ARCHITECTURE, "r3gan").build({}, DataSpec((3, side, side)))
        return [block for block in models.generator.modules() if isinstance(block, ResidualBlock)]

    assert [block.widen.in_channels for block in blocks(32)] == [768] * 8  # CIFAR-10: four stages of two blocks
    at_64 = blocks(64)
    assert [block.widen.in_channels for block in at_64] == [768] * 8 + [384] * 2  # FFHQ 64 px
    assert [block.mix.groups for block in at_64] == [96] * 8 + [48] * 2  # 16 channels a group inside every block
