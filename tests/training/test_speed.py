"""The fast paths train the same networks as the plain fp32 path, within stated tolerances.

Two runs from the same seed are compared by the weight updates they made: the relative error
||update_a - update_b|| / ||update_b||, where update = final weights - initial weights over
every floating-point tensor of both networks, after one epoch (8 steps). Adam's update is
proportional to its learning rate, so a learning rate 10% off gives an error of 0.1 (a test
below shows the measure sees it); each tolerance lies below that.
"""

import pytest
import torch
from typer.testing import CliRunner

from ganforge.config import load_config
from ganforge.contracts import ImageTensorDataset, to_signed_unit
from ganforge.data_root import default_data_root
from ganforge.training.batches import InMemoryBatches, ShardedOrder
from tests.runs import SMOKE

# A convolutional network on 16x16 synthetic images, with batch norm in both networks.
CONVOLUTIONAL = [
    "model.name=dcgan",
    "model.params={latent_dim: 16, generator_width: 8, discriminator_width: 8}",
    "data.params.size=16",
]

# Tolerances on the relative update error; measured on this project's CPU in brackets.
SAME_MATHS = 1e-5  # fused vs foreach Adam, channels_last vs contiguous: rounding alone [2e-8, 6e-7]
COMPILED = 1e-4  # torch.compile fuses and reorders float32 arithmetic [3e-8]
FLOAT16 = 0.03  # 11-bit mantissa in the forward passes, gradients scaled [0.004 dcgan, 0.010 mlp]
BFLOAT16 = 0.05  # 8-bit mantissa in the forward passes [0.002 dcgan, 0.021 mlp]
LEARNING_RATE_10_PERCENT_OFF = 0.1


def train(app, tmp_path, name, *overrides):
    args = ["run", str(SMOKE), "--set", f"output.dir={tmp_path / name}", "--set", "train.epochs=1"]
    for override in overrides:
        args += ["--set", override]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    state = torch.load(tmp_path / name / "checkpoints" / "last.pt", weights_only=True)
    return floating_weights(state["generator"], state["discriminator"]), result.output


def floating_weights(*state_dicts):
    return torch.cat([t.detach().float().flatten() for sd in state_dicts for t in sd.values() if t.is_floating_point()])


def initial_weights(registry, *overrides):
    run = load_config(SMOKE, registry, overrides)
    torch.manual_seed(run.config.seed)  # as the trainer seeds before building its networks
    models = run.model.build(run.data.build(default_data_root()).spec)
    return floating_weights(models.generator.state_dict(), models.discriminator.state_dict())


def update_error(weights, reference, initial):
    return ((weights - initial) - (reference - initial)).norm().item() / (reference - initial).norm().item()


@pytest.mark.parametrize("network", [[], CONVOLUTIONAL], ids=["mlp", "dcgan"])
@pytest.mark.parametrize(("precision", "tolerance"), [("bf16", BFLOAT16), ("fp16", FLOAT16)])
def test_mixed_precision_trains_like_fp32(app, registry, tmp_path, network, precision, tolerance):
    initial = initial_weights(registry, *network)
    reference, _ = train(app, tmp_path, "fp32", *network, "train.precision=fp32")
    mixed, output = train(app, tmp_path, precision, *network, f"train.precision={precision}")
    assert f"training step on cpu: {precision}" in output
    assert update_error(mixed, reference, initial) < tolerance


CONDITIONAL_CONVOLUTIONAL = [
    *CONVOLUTIONAL,
    "model.params.generator_conditioning=batch_norm",
    "model.params.discriminator_conditioning=projection",
]


@pytest.mark.slow
@pytest.mark.parametrize("network", [CONVOLUTIONAL, CONDITIONAL_CONVOLUTIONAL], ids=["dcgan", "conditional-dcgan"])
def test_compiled_training_matches_eager(app, registry, tmp_path, network):
    initial = initial_weights(registry, *network)
    eager, _ = train(app, tmp_path, "eager", *network, "train.compile=false")
    compiled, output = train(app, tmp_path, "compiled", *network, "train.compile=true")
    assert "training step on cpu: fp32, torch.compile" in output
    assert "torch.compile failed" not in output
    assert update_error(compiled, eager, initial) < COMPILED


def test_channels_last_matches_contiguous(app, registry, tmp_path):
    initial = initial_weights(registry, *CONVOLUTIONAL)
    contiguous, _ = train(app, tmp_path, "contiguous", *CONVOLUTIONAL, "train.channels_last=false")
    channels_last, output = train(app, tmp_path, "channels_last", *CONVOLUTIONAL, "train.channels_last=true")
    assert "channels_last" in output
    assert update_error(channels_last, contiguous, initial) < SAME_MATHS


def test_a_failing_compile_falls_back_to_eager_with_a_warning(app, tmp_path, monkeypatch):
    class CannotCompile(torch.nn.Module):
        def forward(self, *args):
            raise RuntimeError("no C++ compiler found")

    eager, _ = train(app, tmp_path, "eager", "train.compile=false")
    monkeypatch.setattr(torch, "compile", lambda module: CannotCompile())
    fallen_back, output = train(app, tmp_path, "fallback", "train.compile=true")
    assert "warning: train.compile: torch.compile failed (RuntimeError: no C++ compiler found)" in output
    # The failed step is undone and redone eagerly: the run is the eager run, bit for bit.
    assert torch.equal(fallen_back, eager)


def test_a_failing_compile_in_a_distributed_run_falls_back_to_the_ddp_modules(registry, tmp_path, monkeypatch):
    """The eager retry must keep DistributedDataParallel: the plain networks would stop averaging gradients."""
    from torch import distributed
    from torch.nn.parallel import DistributedDataParallel

    from ganforge.training.distributed import Processes
    from ganforge.training.run_folder import RunFolder
    from ganforge.training.trainer import Trainer

    class CannotCompile(torch.nn.Module):
        def forward(self, *args):
            raise RuntimeError("no C++ compiler found")

    # A group of one process stands for the run's two: DDP and the collectives need a group, not a peer.
    distributed.init_process_group("gloo", store=distributed.HashStore(), rank=0, world_size=1)
    try:
        monkeypatch.setattr(torch, "compile", lambda module: CannotCompile())
        run = load_config(SMOKE, registry, ["train.compile=true"])
        trainer = Trainer(run, RunFolder(tmp_path / "run"), processes=Processes(torch.device("cpu"), 0, 2))
        assert isinstance(trainer.gan_step.step_generator, CannotCompile)
        trainer.gan_step.train_on(*next(iter(trainer.batches)), 0)
        assert isinstance(trainer.gan_step.step_generator, DistributedDataParallel)
        assert isinstance(trainer.gan_step.step_discriminator, DistributedDataParallel)
    finally:
        distributed.destroy_process_group()


def test_the_trainer_matches_a_plain_loop_with_unfused_adam(app, registry, tmp_path):
    """ganforge's step (fused Adam, in-memory batches, statistics on the device) against the textbook loop."""
    trained, _ = train(app, tmp_path, "ganforge")

    run = load_config(SMOKE, registry)
    config = run.config
    torch.manual_seed(config.seed)
    data = run.data.build(default_data_root())
    models = run.model.build(data.spec)
    generator, discriminator = models.generator, models.discriminator
    initial = floating_weights(generator.state_dict(), discriminator.state_dict())
    adam = {"lr": config.optim.generator.lr, "betas": tuple(config.optim.generator.betas), "fused": False}
    optimizer_g = torch.optim.Adam(generator.parameters(), **adam)
    optimizer_d = torch.optim.Adam(discriminator.parameters(), **adam)
    images = data.dataset.images
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(config.seed))
    loss = torch.nn.BCEWithLogitsLoss()
    for batch in order.split(config.train.batch_size):
        real = to_signed_unit(images[batch])
        fake = generator(torch.randn(len(batch), models.latent_dim))
        real_scores, fake_scores = discriminator(real), discriminator(fake.detach())
        d_loss = loss(real_scores, torch.ones_like(real_scores)) + loss(fake_scores, torch.zeros_like(fake_scores))
        optimizer_d.zero_grad()
        d_loss.backward()
        optimizer_d.step()
        scores = discriminator(fake)
        g_loss = loss(scores, torch.ones_like(scores))
        optimizer_g.zero_grad()
        g_loss.backward()
        optimizer_g.step()
    reference = floating_weights(generator.state_dict(), discriminator.state_dict())

    assert update_error(trained, reference, initial) < SAME_MATHS


def test_the_measure_sees_a_learning_rate_ten_percent_off(app, registry, tmp_path):
    initial = initial_weights(registry)
    reference, _ = train(app, tmp_path, "reference")
    lr = load_config(SMOKE, registry).config.optim.generator.lr * 1.1
    off, _ = train(app, tmp_path, "off", f"optim.generator.lr={lr}", f"optim.discriminator.lr={lr}")
    error = update_error(off, reference, initial)
    assert error == pytest.approx(LEARNING_RATE_10_PERCENT_OFF, rel=0.2)
    assert error > max(BFLOAT16, FLOAT16, COMPILED, SAME_MATHS)


def test_the_speed_settings_are_reported_and_pointless_ones_refused_with_a_warning(app, tmp_path):
    _, output = train(app, tmp_path, "defaults")
    assert "training step on cpu: fp32, eager" in output
    _, output = train(app, tmp_path, "mlp_channels_last", "train.channels_last=true")
    assert "warning: train.channels_last: the models have no convolutions" in output


def test_an_unknown_precision_is_refused_with_the_accepted_values(app, tmp_path):
    result = CliRunner().invoke(app, ["validate", str(SMOKE), "--set", "train.precision=fp8"])
    assert result.exit_code == 2
    assert "train.precision" in result.output and "'bf16'" in result.output


@pytest.mark.parametrize(("count", "batch_size"), [(1000, 64), (1024, 64), (1025, 64), (7, 7)])
def test_in_memory_batches_visit_each_image_once_per_epoch_with_its_label(count, batch_size):
    # Each image carries its index in two pixels (high and low byte), and its label is its index too.
    index = torch.arange(count)
    images = torch.stack([index // 256, index % 256], dim=1).to(torch.uint8).reshape(count, 1, 1, 2)
    order = ShardedOrder(count, batch_size, torch.Generator().manual_seed(0))
    batches = InMemoryBatches(ImageTensorDataset(images, index), order, torch.device("cpu"))
    previous_order = None
    for _epoch in range(3):
        seen = []
        for batch, labels in batches:
            pixels = batch.add(1).mul(127.5).round().long().reshape(-1, 2)
            indices = (pixels[:, 0] * 256 + pixels[:, 1]).tolist()
            assert labels.tolist() == indices
            seen += indices
        lone_last = count % batch_size == 1  # batch norm cannot train on one image: it sits this epoch out
        assert len(seen) == len(set(seen)) == count - lone_last
        assert set(seen) <= set(range(count))
        assert len(batches) == len(range(0, len(seen), batch_size))
        assert seen != previous_order  # a fresh permutation each epoch
        previous_order = seen


def test_an_fp16_run_resumes_to_the_weights_of_an_uninterrupted_one(app, tmp_path):
    """The gradient scalers' state travels in the checkpoint with everything else."""
    straight, _ = train(app, tmp_path, "straight", "train.precision=fp16", "train.epochs=2")
    train(app, tmp_path, "resumed", "train.precision=fp16", "train.epochs=1")
    result = CliRunner().invoke(app, ["run", "--resume", str(tmp_path / "resumed"), "--set", "train.epochs=2"])
    assert result.exit_code == 0, result.output
    state = torch.load(tmp_path / "resumed" / "checkpoints" / "last.pt", weights_only=True)
    assert state["grad_scalers"]["generator"]["scale"] > 0
    assert torch.equal(floating_weights(state["generator"], state["discriminator"]), straight)
