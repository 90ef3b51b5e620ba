"""The built-in architectures, built through the registry as a training run would build them."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from ganforge.contracts import DataSpec, GANModels
from ganforge.errors import ParamsError, UsageError
from ganforge.registry import Kind, Registry

# Seed 000's networks: Dense(100 -> 7x7x128), two ConvTranspose(128, 4x4, /2), Conv(1, 7x7) + tanh;
# two Conv(64, 3x3, /2) + LeakyReLU + Dropout(0.4), Dense(1).
SEED_000 = {
    "latent_dim": 100,
    "generator_channels": [128, 128, 128],
    "generator_norm": "none",
    "generator_activation": "leaky_relu",
    "generator_output": "conv",
    "output_kernel_size": 7,
    "discriminator_channels": [64, 64],
    "discriminator_kernel_size": 3,
    "discriminator_norm": "none",
    "dropout": 0.4,
    "weight_init": "default",
}
MNIST = (1, 28, 28)
SHAPES = [MNIST, (3, 32, 32), (3, 64, 64)]
CASES = [
    *[pytest.param("mlp", {}, shape, id=f"mlp-{'x'.join(map(str, shape))}") for shape in SHAPES],
    *[pytest.param("dcgan", {}, shape, id=f"dcgan-{'x'.join(map(str, shape))}") for shape in SHAPES],
    pytest.param("dcgan", SEED_000, MNIST, id="dcgan-seed000-1x28x28"),
]


def build(registry: Registry, name: str, params: dict[str, Any], shape: tuple[int, int, int]) -> GANModels:
    return registry.get(Kind.ARCHITECTURE, name).build(params, DataSpec(shape, 10))


def parameter_count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def parameters_without_gradient(module: nn.Module) -> list[str]:
    return [name for name, parameter in module.named_parameters() if parameter.grad is None or not parameter.grad.any()]


def layer_widths(module: nn.Module, layer_type: type[nn.Module]) -> list[int]:
    return [
        getattr(layer, "out_channels", getattr(layer, "out_features", None))
        for layer in module.modules()
        if isinstance(layer, layer_type)
    ]


@pytest.mark.parametrize(
    ("name", "params", "generator_count", "discriminator_count"),
    [
        pytest.param("mlp", {}, 283_920, 267_009, id="mlp-defaults"),
        pytest.param("dcgan", SEED_000, 1_164_289, 40_705, id="dcgan-seed000"),
    ],
)
def test_parameter_counts_on_mnist(registry, name, params, generator_count, discriminator_count):
    models = build(registry, name, params, MNIST)
    assert parameter_count(models.generator) == generator_count
    assert parameter_count(models.discriminator) == discriminator_count


@pytest.mark.parametrize("batch_size", [1, 5])
@pytest.mark.parametrize(("name", "params", "shape"), CASES)
def test_shapes_ranges_and_gradients(registry, name, params, shape, batch_size):
    torch.manual_seed(0)
    models = build(registry, name, params, shape)
    # Train mode with a real batch; eval mode for a single image, as at sampling time.
    for module in (models.generator, models.discriminator):
        module.train(batch_size > 1)

    fakes = models.generator(torch.randn(batch_size, models.latent_dim))
    assert fakes.shape == (batch_size, *shape)
    assert fakes.min() >= -1.0 and fakes.max() <= 1.0
    models.discriminator(fakes).sum().backward()
    assert parameters_without_gradient(models.generator) == []

    models.discriminator.zero_grad()
    reals = torch.rand(batch_size, *shape) * 2 - 1
    scores = models.discriminator(reals)
    assert scores.shape == (batch_size,)
    scores.sum().backward()
    assert parameters_without_gradient(models.discriminator) == []


def test_mlp_discriminator_uses_hidden_widths_in_reverse(registry):
    models = build(registry, "mlp", {"hidden": [128, 32], "dropout": 0.3}, MNIST)
    assert layer_widths(models.generator, nn.Linear) == [128, 32, 784]
    assert layer_widths(models.discriminator, nn.Linear) == [32, 128, 1]
    assert sum(isinstance(layer, nn.Dropout) for layer in models.discriminator.modules()) == 2


@pytest.mark.parametrize(
    ("shape", "params", "generator_widths", "discriminator_widths"),
    [
        pytest.param((3, 32, 32), {}, [256, 128, 64, 3], [64, 128, 256], id="32-classic"),
        pytest.param(MNIST, {}, [128, 64, 1], [64, 128], id="28-classic"),
        pytest.param(MNIST, {"generator_output": "conv"}, [256, 128, 64, 1], [64, 128], id="28-conv-output"),
        pytest.param((3, 64, 64), {"generator_width": 16}, [128, 64, 32, 16, 3], [64, 128, 256, 512], id="64-narrow"),
    ],
)
def test_dcgan_channel_profile(registry, shape, params, generator_widths, discriminator_widths):
    models = build(registry, "dcgan", params, shape)
    projection = next(layer for layer in models.generator.modules() if isinstance(layer, nn.Unflatten))
    projection_width = projection.unflattened_size[0]
    convolution_widths = layer_widths(models.generator, nn.ConvTranspose2d | nn.Conv2d)
    assert [projection_width, *convolution_widths] == generator_widths
    assert layer_widths(models.discriminator, nn.Conv2d) == discriminator_widths


@pytest.mark.parametrize("kernel_size", [3, 4, 5])
def test_dcgan_discriminator_kernel_sizes_halve_the_image(registry, kernel_size):
    models = build(registry, "dcgan", {"discriminator_kernel_size": kernel_size}, (3, 32, 32))
    assert models.discriminator(torch.zeros(2, 3, 32, 32)).shape == (2,)


def test_dcgan_weight_init(registry):
    torch.manual_seed(0)
    models = build(registry, "dcgan", {}, (3, 64, 64))
    convolutions = [layer for layer in models.generator.modules() if isinstance(layer, nn.ConvTranspose2d)]
    norms = [layer for layer in models.generator.modules() if isinstance(layer, nn.BatchNorm2d)]
    assert all(abs(layer.weight.std().item() - 0.02) < 0.002 for layer in convolutions)
    assert all(abs(layer.weight.mean().item() - 1.0) < 0.01 and not layer.bias.any() for layer in norms)
    assert not convolutions[-1].bias.any()


def test_dcgan_glorot_init_is_keras_default(registry):
    torch.manual_seed(0)
    models = build(registry, "dcgan", {**SEED_000, "weight_init": "glorot"}, MNIST)
    for layer in models.generator.modules():
        if isinstance(layer, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
            fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
            limit = math.sqrt(6 / (fan_in + fan_out))
            assert layer.weight.abs().max() <= limit
            assert layer.weight.abs().max() > 0.9 * limit  # uniform over the whole range
            assert not layer.bias.any()


def test_dcgan_unit_pixel_range_is_a_sigmoid_generator_and_a_discriminator_reading_0_to_1(registry):
    """pixel_range 'unit' is seed 000's program: G's sigmoid in [0, 1] and D on [0, 1], seen from [-1, 1]."""
    torch.manual_seed(0)
    unit = build(registry, "dcgan", {**SEED_000, "pixel_range": "unit"}, MNIST)
    symmetric = build(registry, "dcgan", SEED_000, MNIST)
    symmetric.generator.load_state_dict(unit.generator.state_dict())  # the same weights, names and shapes
    symmetric.discriminator.load_state_dict(unit.discriminator.state_dict())
    unit.generator.eval(), unit.discriminator.eval(), symmetric.discriminator.eval()
    z = torch.randn(6, 100)
    pre_activation = unit.generator.net[:-1](z)
    assert torch.allclose(unit.generator(z), 2 * torch.sigmoid(pre_activation) - 1, atol=1e-6)
    assert torch.allclose(symmetric.generator(z), torch.tanh(pre_activation), atol=1e-6)
    images = torch.rand(6, 1, 28, 28) * 2 - 1
    by_hand = symmetric.discriminator((images + 1) / 2)  # the same layers, given the images in [0, 1]
    assert torch.allclose(unit.discriminator(images), by_hand, atol=1e-6)
    assert not torch.allclose(symmetric.discriminator(images), by_hand, atol=1e-3)


@pytest.mark.parametrize("name", ["mlp", "dcgan"])
def test_spectral_norm_brings_each_discriminator_weight_to_a_largest_singular_value_of_one(registry, name):
    torch.manual_seed(0)
    plain = build(registry, name, {}, MNIST).discriminator
    torch.manual_seed(0)
    normalised = build(registry, name, {"spectral_norm": True}, MNIST).discriminator
    assert parameter_count(plain) == parameter_count(normalised)  # the same weights, reparametrised
    layers = [m for m in normalised.modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    assert layers and all(hasattr(layer, "parametrizations") for layer in layers)
    images = torch.rand(8, *MNIST) * 2 - 1
    for _ in range(30):  # each training call refines the power iteration's estimate
        normalised(images)
    normalised.eval()
    for layer in layers:
        largest = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2).item()
        assert largest == pytest.approx(1.0, abs=0.05), layer
    unnormalised = [
        torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item()
        for m in plain.modules()
        if isinstance(m, nn.Linear | nn.Conv2d)
    ]
    assert max(abs(value - 1.0) for value in unnormalised) > 0.1


def test_dcgan_layers_feeding_batch_norm_have_no_bias(registry):
    models = build(registry, "dcgan", {}, (3, 32, 32))
    for network in (models.generator.net, models.discriminator.net):
        weighted_layer = None
        for layer in network:
            if isinstance(layer, nn.BatchNorm2d):
                assert weighted_layer is not None and weighted_layer.bias is None
            elif isinstance(layer, nn.Linear | nn.Conv2d | nn.ConvTranspose2d):
                weighted_layer = layer


@pytest.mark.parametrize(
    ("name", "params", "shape", "expected"),
    [
        pytest.param("dcgan", {"generator_channels": [128, 64, 32]}, MNIST, r"generator_channels.*needs 2", id="g-len"),
        pytest.param(
            "dcgan",
            {"generator_channels": [128, 64], "generator_output": "conv"},
            MNIST,
            r"generator_channels.*needs 3",
            id="g-len-conv",
        ),
        pytest.param("dcgan", {"discriminator_channels": [64]}, MNIST, r"discriminator_channels.*needs 2", id="d-len"),
        pytest.param("dcgan", {}, (1, 28, 30), "1x28x30", id="non-square"),
        pytest.param("dcgan", {}, (1, 9, 9), "1x9x9", id="odd-size"),
        pytest.param("dcgan", {}, (1, 4, 4), "1x4x4", id="too-small"),
        pytest.param("dcgan", {"latent_size": 10}, MNIST, "latent_size", id="unknown-key"),
        pytest.param("mlp", {"latent_size": 10}, MNIST, "latent_size", id="mlp-unknown-key"),
        pytest.param("dcgan", {"latent_dim": -3}, MNIST, "latent_dim", id="negative-latent"),
        pytest.param("mlp", {"latent_dim": -3}, MNIST, "latent_dim", id="mlp-negative-latent"),
        pytest.param("dcgan", {"output_kernel_size": 6}, MNIST, "output_kernel_size", id="even-output-kernel"),
        pytest.param("dcgan", {"generator_norm": "layer"}, MNIST, "generator_norm", id="unknown-choice"),
        pytest.param("mlp", {"dropout": 1.5}, MNIST, "dropout", id="mlp-dropout"),
        pytest.param("mlp", {"hidden": [256, 0]}, MNIST, "hidden", id="mlp-zero-width"),
        pytest.param("dcgan", {"discriminator_channels": [64, -1]}, MNIST, "discriminator_channels", id="d-width"),
    ],
)
def test_bad_params_are_reported_by_name(registry, name, params, shape, expected):
    with pytest.raises(ParamsError, match=expected) as raised:
        build(registry, name, params, shape)
    assert isinstance(raised.value, UsageError)


@pytest.mark.parametrize(("name", "params"), [("mlp", {}), ("dcgan", {}), ("dcgan", SEED_000)])
def test_same_seed_gives_same_networks(registry, name, params):
    def weights_and_sample(seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        torch.manual_seed(seed)
        models = build(registry, name, params, MNIST)
        generator = models.generator.eval()
        return generator.state_dict(), generator(torch.randn(3, models.latent_dim))

    first_weights, first_sample = weights_and_sample(7)
    again_weights, again_sample = weights_and_sample(7)
    other_weights, _ = weights_and_sample(8)
    assert all(torch.equal(first_weights[key], again_weights[key]) for key in first_weights)
    assert torch.equal(first_sample, again_sample)
    assert not all(torch.equal(first_weights[key], other_weights[key]) for key in first_weights)


@pytest.mark.parametrize("name", ["mlp", "dcgan"])
def test_every_param_is_described(registry, name):
    component = registry.get(Kind.ARCHITECTURE, name)
    assert component.summary
    undescribed = [key for key, field in component.params_model.model_fields.items() if not field.description]
    assert undescribed == []
