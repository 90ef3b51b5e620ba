"""ganforge-sngan's components, as installed, obey ganforge's contracts and have the right shapes."""

import json
import subprocess
import sys

import pytest
import torch

from ganforge import DataSpec, Kind, ParamsError
from ganforge.testing import assert_check, installed_registry, parametrize_with_checks

DISTRIBUTION = "ganforge-sngan"
REGISTRY = installed_registry()
COMPONENTS = [c for c in REGISTRY.components() if c.provider.distribution == DISTRIBUTION]


@parametrize_with_checks(COMPONENTS)
def test_components_obey_their_contracts(component, check):
    assert_check(component, check)


def test_components_are_registered_with_this_distribution_as_provider():
    found = {(c.kind, c.name): c for c in COMPONENTS}
    assert set(found) == {(Kind.ARCHITECTURE, "sngan"), (Kind.LOSS, "relativistic")}
    for component in found.values():
        assert str(component.provider) == f"{DISTRIBUTION}==0.1.0"
        assert component.summary
    assert REGISTRY.get(Kind.LOSS, "ragan") is found[(Kind.LOSS, "relativistic")]
    assert REGISTRY.get(Kind.ARCHITECTURE, f"{DISTRIBUTION}:sngan") is found[(Kind.ARCHITECTURE, "sngan")]


@pytest.mark.parametrize(("shape", "blocks"), [((1, 28, 28), 2), ((3, 32, 32), 3)])
def test_sngan_shapes(shape, blocks):
    torch.manual_seed(0)
    models = REGISTRY.build(
        Kind.ARCHITECTURE, "sngan", {"generator_channels": 8, "discriminator_channels": 8}, DataSpec(shape)
    )
    assert models.latent_dim == 128
    assert len(models.generator.blocks) == blocks
    images = models.generator(torch.randn(5, models.latent_dim))
    assert images.shape == (5, *shape)
    assert models.discriminator(images).shape == (5,)


@pytest.mark.parametrize("shape", [(3, 64, 64), (1, 28, 32)])
def test_sngan_rejects_other_shapes(shape):
    with pytest.raises(ParamsError, match=r"cannot handle the data shape .*28x28 .* or 32x32"):
        REGISTRY.build(Kind.ARCHITECTURE, "sngan", {}, DataSpec(shape))


def test_relativistic_average_loss_by_hand():
    loss = REGISTRY.build(Kind.LOSS, "ragan", {})
    assert loss.generator_reads_real_scores  # ganforge hands G's loss the real scores
    softplus = torch.nn.functional.softplus
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 2.0])  # means 2 and 1
    d_loss = (softplus(1.0 - real).mean() + softplus(fake - 2.0).mean()).item()
    g_loss = (softplus(2.0 - fake).mean() + softplus(real - 1.0).mean()).item()
    assert loss.discriminator_loss(real, fake).item() == pytest.approx(d_loss)
    assert loss.generator_loss(fake, real).item() == pytest.approx(g_loss)
    assert loss.decision_threshold is None and loss.probability(fake) is None


def test_relativistic_r1_penalty():
    loss = REGISTRY.build(Kind.LOSS, "relativistic", {"r1_gamma": 2.0})
    real = torch.randn(4, 1, 4, 4)
    penalty = loss.penalty(lambda images: 3.0 * images.flatten(1).sum(dim=1), real, real)
    assert torch.allclose(penalty, torch.tensor(9.0 * 16))  # gamma/2 * ||grad||^2 = 1 * 16 pixels * 3^2


TINY_RUN = """
name: sngan_smoke
data: {name: synthetic, params: {num_samples: 64, num_classes: 4, size: 28}}
model: {name: sngan, params: {latent_dim: 16, generator_channels: 16, discriminator_channels: 16}}
loss: {name: relativistic}
train: {epochs: 2, batch_size: 16, device: cpu, log_every: 2}
"""


def test_ganforge_trains_sngan_with_the_relativistic_loss(tmp_path):
    (tmp_path / "run.yaml").write_text(TINY_RUN)
    command = [sys.executable, "-m", "ganforge", "run", "run.yaml", "--quiet"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    records = [json.loads(line) for line in (tmp_path / "runs" / "sngan_smoke" / "metrics.jsonl").open()]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [1, 2]
    assert all(r["d_loss"] is not None and r["g_loss"] is not None for r in records)
    assert (tmp_path / "runs" / "sngan_smoke" / "checkpoints" / "last.pt").exists()
