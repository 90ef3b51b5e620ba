"""The residual GAN (`resnet`), built through the registry as a training run builds it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from ganforge.components.architectures.resnet_blocks import DiscriminatorBlock, GeneratorBlock, SelfAttention
from ganforge.contracts import DataSpec, GANModels
from ganforge.errors import ParamsError
from ganforge.registry import Kind, Registry
from tests.runs import metrics
from tests.small_configs import tiny_config

CONDITIONAL = {"generator_conditioning": "batch_norm", "discriminator_conditioning": "projection"}
NARROW = {"generator_width": 16, "discriminator_width": 16, "latent_dim": 16}
CLASSES = 10


def build(registry: Registry, params: dict[str, Any], shape: tuple[int, int, int]) -> GANModels:
    return registry.get(Kind.ARCHITECTURE, "resnet").build(params, DataSpec(shape, CLASSES))


def parameter_count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def conv(in_channels: int, out_channels: int, kernel: int) -> int:
    return in_channels * out_channels * kernel * kernel + out_channels


def test_sngan_cifar10_parameter_counts(registry):
    # SNGAN's CIFAR-10 ResNet (Miyato et al. 2018, table 4), counted from its layer shapes. G, width 256:
    # linear 128 -> 4*4*256; three up-blocks of BN, conv3x3, BN, conv3x3 and a 1x1 shortcut; BN, conv3x3 to RGB.
    up_block = 2 * 2 * 256 + 2 * conv(256, 256, 3) + conv(256, 256, 1)
    generator = (128 * 4 * 4 * 256 + 4 * 4 * 256) + 3 * up_block + 2 * 256 + conv(256, 3, 3)
    # D, width 128: the first block (two conv3x3, 1x1 shortcut), a down-block (the same from 128), two blocks
    # without resampling (two conv3x3, identity shortcut), linear 128 -> 1.
    first = conv(3, 128, 3) + conv(128, 128, 3) + conv(3, 128, 1)
    down = 2 * conv(128, 128, 3) + conv(128, 128, 1)
    discriminator = first + down + 2 * 2 * conv(128, 128, 3) + 128 + 1
    assert (generator, discriminator) == (4_276_739, 1_053_825)  # the "4.3M" and "1.0M" quoted for it

    models = build(registry, {}, (3, 32, 32))
    assert parameter_count(models.generator) == generator
    assert parameter_count(models.discriminator) == discriminator
    conditional = build(registry, CONDITIONAL, (3, 32, 32))
    # Conditional batch norm: each of the six block norms a gain and bias per class instead of one affine pair;
    # projection: an embedding of 128 per class.
    assert parameter_count(conditional.generator) == generator + 6 * 2 * 256 * (CLASSES - 1)
    assert parameter_count(conditional.discriminator) == discriminator + CLASSES * 128


SHAPES = [(1, 32, 32), (3, 32, 32), (1, 64, 64), (3, 64, 64), (3, 128, 128), (1, 128, 128)]


@pytest.mark.parametrize("conditional", [False, True], ids=["unconditional", "conditional"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: "x".join(map(str, shape)))
def test_images_scores_and_gradients_at_each_size(registry, shape, conditional):
    torch.manual_seed(0)
    models = build(registry, {**NARROW, **(CONDITIONAL if conditional else {})}, shape)
    assert models.conditional is conditional
    labels = torch.tensor([0, 1, 2, 9]) if conditional else None
    args = (labels,) if conditional else ()

    fakes = models.generator(torch.randn(4, models.latent_dim), *args)
    assert fakes.shape == (4, *shape)
    assert fakes.min() >= -1.0 and fakes.max() <= 1.0
    scores = models.discriminator(fakes, *args)
    assert scores.shape == (4,)
    scores.sum().backward()
    assert [name for name, p in models.generator.named_parameters() if p.grad is None] == []
    models.discriminator.zero_grad(set_to_none=True)
    models.discriminator(torch.rand(4, *shape) * 2 - 1, *args).sum().backward()
    assert [name for name, p in models.discriminator.named_parameters() if p.grad is None] == []

    if conditional:  # the same z and image, another label: another image and another score
        models.generator.eval()
        models.discriminator.eval()
        with torch.no_grad():
            images = models.generator(torch.randn(1, models.latent_dim).repeat(2, 1), torch.tensor([3, 4]))
            judged = models.discriminator(images[:1].repeat(2, 1, 1, 1), torch.tensor([3, 4]))
        assert not torch.equal(images[0], images[1]) and judged[0] != judged[1]


def resampling(network: nn.Module) -> list[tuple[str, int, int]]:
    """Each residual block as (up/down/keep, in channels, out channels), in order; attention as ("attention", C, C)."""
    found = []
    for module in network.modules():
        if isinstance(module, GeneratorBlock | DiscriminatorBlock):
            how = (
                "up"
                if getattr(module, "upsample", False)
                else "down"
                if getattr(module, "downsample", False)
                else "keep"
            )
            found.append((how, module.conv1.in_channels, module.conv2.out_channels))
        elif isinstance(module, SelfAttention):
            found.append(("attention", module.query.in_channels, module.out.out_channels))
    return found


def test_default_discriminator_stops_at_8x8_for_32_px_and_at_4x4_above(registry):
    cifar = build(registry, {}, (3, 32, 32))
    keep = ("keep", 128, 128)
    assert resampling(cifar.discriminator) == [("down", 3, 128), ("down", 128, 128), keep, keep]
    assert resampling(cifar.generator) == [("up", 256, 256)] * 3
    widening = {"generator_channels": [1024, 512, 256, 128, 64], "discriminator_channels": [64, 128, 256, 512, 1024]}
    wide = build(registry, widening, (3, 64, 64))
    assert resampling(wide.generator) == [("up", 1024, 512), ("up", 512, 256), ("up", 256, 128), ("up", 128, 64)]
    assert resampling(wide.discriminator) == [
        ("down", 3, 64),
        ("down", 64, 128),
        ("down", 128, 256),
        ("down", 256, 512),
        ("keep", 512, 1024),
    ]


def test_blocks_per_resolution_and_attention_sit_where_asked(registry):
    models = build(registry, {**NARROW, "blocks_per_resolution": 2, "attention_side": 32}, (3, 64, 64))
    up, keep, down, attention = ("up", 16, 16), ("keep", 16, 16), ("down", 16, 16), ("attention", 16, 16)
    # G: 4 -> 8 -> 16 -> 32, attention, -> 64; D: 64 -> 32, attention, -> 16 -> 8 -> 4, a block at 4x4.
    assert resampling(models.generator) == [up, keep, up, keep, up, keep, attention, up, keep]
    assert resampling(models.discriminator) == [("down", 3, 16), keep, attention, *[down, keep] * 3, keep]
    # The attention's gain starts at 0 (the block begins as the identity) and is trained from the first step.
    fakes = models.generator(torch.randn(2, models.latent_dim))
    models.discriminator(fakes).sum().backward()
    blocks = [m for m in (*models.generator.modules(), *models.discriminator.modules()) if isinstance(m, SelfAttention)]
    assert len(blocks) == 2
    assert all(m.gain.item() == 0 and m.gain.grad is not None and m.gain.grad != 0 for m in blocks)


def test_spectral_norm_on_d_by_default_and_on_g_when_asked(registry):
    def normalised(network: nn.Module) -> list[bool]:
        return [hasattr(m, "parametrizations") for m in network.modules() if isinstance(m, nn.Conv2d | nn.Linear)]

    models = build(registry, {**NARROW, **CONDITIONAL}, (3, 32, 32))
    assert all(normalised(models.discriminator)) and not any(normalised(models.generator))
    both = build(registry, {**NARROW, **CONDITIONAL, "generator_spectral_norm": True}, (3, 32, 32))
    assert all(normalised(both.generator))
    gains = [m for m in both.generator.modules() if isinstance(m, nn.Embedding)]
    assert gains and not any(hasattr(m, "parametrizations") for m in gains)  # the class gains stay near 1
    plain = build(registry, {**NARROW, "spectral_norm": False}, (3, 32, 32))
    assert not any(normalised(plain.discriminator))


def test_28_px_grows_from_7x7_for_mnist(registry):
    models = build(registry, NARROW, (1, 28, 28))
    assert models.generator(torch.randn(2, 16)).shape == (2, 1, 28, 28)
    assert [how for how, *_ in resampling(models.discriminator)] == ["down", "down", "keep", "keep"]


@pytest.mark.parametrize(
    ("params", "shape", "expected"),
    [
        pytest.param({}, (3, 48, 48), r"3x48x48.*28, 32, 64, 128, 256 with 1 or 3 channels", id="side"),
        pytest.param({}, (3, 32, 30), "3x32x30", id="non-square"),
        pytest.param({}, (4, 32, 32), "4x32x32.*1 or 3 channels", id="channels"),
        pytest.param({"attention_side": 4}, (3, 64, 64), r"attention_side: 4 .* accepted: 32, 16, 8\b", id="attention"),
        pytest.param({"attention_side": 32}, (3, 32, 32), "accepted: 16, 8", id="attention-at-image-side"),
        pytest.param({"generator_channels": [64, 32]}, (3, 32, 32), "generator_channels.*needs 4", id="g-channels"),
        pytest.param({"discriminator_channels": [64]}, (3, 64, 64), "discriminator_channels.*needs 5", id="d-channels"),
        pytest.param({"discriminator_downsamples": 4}, (3, 32, 32), "discriminator_downsamples.*at most 3", id="downs"),
        pytest.param({"generator_conditioning": "batch_norm"}, (3, 32, 32), "conditions both networks", id="one-side"),
        pytest.param({"generator_conditioning": "concat"}, (3, 32, 32), "generator_conditioning", id="concat"),
        pytest.param({"blocks_per_resolution": 0}, (3, 32, 32), "blocks_per_resolution", id="no-blocks"),
    ],
)
def test_bad_params_and_shapes_are_refused_by_name(registry, params, shape, expected):
    with pytest.raises(ParamsError, match=expected):
        build(registry, params, shape)


def test_every_param_is_described(registry):
    component = registry.get(Kind.ARCHITECTURE, "resnet")
    assert component.summary and component.check_params  # the contract kit also checks the conditional design
    assert [key for key, field in component.params_model.model_fields.items() if not field.description] == []


@pytest.mark.slow
def test_one_epoch_through_the_command_line_at_32_px(app, workdir):
    data = {"name": "synthetic", "params": {"num_samples": 32, "num_classes": 2, "size": 32, "channels": 3}}
    model = {"name": "resnet", "params": {**NARROW, **CONDITIONAL}}
    config = tiny_config(workdir, name="resnet", data=data, model=model, loss={"name": "hinge"})
    result = CliRunner().invoke(app, ["run", str(config), "--quiet"])
    assert result.exit_code == 0, result.output
    records = [record for record in metrics(workdir / "runs" / "resnet") if record["event"] == "step"]
    assert records and all(torch.isfinite(torch.tensor(record["d_loss"])) for record in records)
    assert (workdir / "runs" / "resnet" / "checkpoints" / "last.pt").exists()


@pytest.mark.slow
def test_the_architecture_benchmark_prints_both_side_by_side():
    script = Path(__file__).parents[2] / "benchmarks" / "architectures.py"
    narrow = '{"generator_width": 8, "discriminator_width": 8}'
    narrow_r3gan = '{"widths": [8, 8, 8, 8], "cardinality": [2, 2, 2, 2]}'
    command = [sys.executable, str(script), "--size", "32", "--batch", "2", "--steps", "1", "--rounds", "1"]
    params = ["--params", f"resnet={narrow}", "--params", f"r3gan={narrow_r3gan}"]
    result = subprocess.run([*command, "--warmup", "0", *params], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith(("resnet ", "r3gan ", "dcgan "))]
    assert [row[0] for row in rows] == ["resnet", "r3gan", "dcgan"]
    assert all(float(row[-1].replace(",", "")) > 0 for row in rows)
