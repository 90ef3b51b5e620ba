"""What one training step does, seen from outside: which batches G and D see, augmentation and ADA in a run."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from ganforge.cli import create_app
from ganforge.plugins import load_plugins
from tests.plugin_fixtures import install_distribution
from tests.runs import SMOKE, weights

# An architecture whose generator notes the size of every batch of noise it turns into images in training.
BATCH_PROBE = """
import torch
from torch import nn
import ganforge

SEEN = []


class Generator(nn.Module):
    def __init__(self, latent_dim, size):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(latent_dim, size * size), nn.Tanh(), nn.Unflatten(1, (1, size, size)))

    def forward(self, z):
        if self.training:
            SEEN.append(z.shape[0])
        return self.net(z)


def build(params, data):
    size = data.shape[-1]
    discriminator = nn.Sequential(nn.Flatten(), nn.Linear(size * size, 1), nn.Flatten(0))
    return ganforge.GANModels(Generator(8, size), discriminator, 8)


@ganforge.hookimpl
def register_architectures(register):
    register("batch_probe", build)
"""


# An augmentation that notes what it is given (batch size, whether gradients flow to G, the strength) and
# passes the images on unchanged.
AUGMENTATION_PROBE = """
import ganforge

SEEN = []


class Probe(ganforge.Augmentation):
    def __call__(self, images, strength=1.0, generator=None):
        SEEN.append((images.shape[0], images.requires_grad, strength))
        return images


@ganforge.hookimpl
def register_augmentations(register):
    register("probe", lambda params: Probe())
"""


# A loss that notes each call of its penalty, which adds nothing.
PENALTY_PROBE = """
import torch
import torch.nn.functional as F
import ganforge

SEEN = []


class Probe(ganforge.GANLoss):
    def discriminator_loss(self, real_scores, fake_scores):
        return F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()

    def generator_loss(self, fake_scores):
        return F.softplus(-fake_scores).mean()

    def penalty(self, discriminator, real, fake):
        SEEN.append(len(real))
        return real.new_zeros(())


@ganforge.hookimpl
def register_losses(register):
    register("penalty_probe", lambda params: Probe())
"""


# A relativistic loss that notes the real scores ganforge hands its generator_loss.
REAL_SCORES_PROBE = """
import torch.nn.functional as F
import ganforge

SEEN = []


class Probe(ganforge.GANLoss):
    decision_threshold = None
    generator_reads_real_scores = True

    def discriminator_loss(self, real_scores, fake_scores):
        return F.softplus(fake_scores - real_scores).mean()

    def generator_loss(self, fake_scores, real_scores):
        SEEN.append((len(fake_scores), len(real_scores), real_scores.requires_grad))
        return F.softplus(real_scores - fake_scores).mean()


@ganforge.hookimpl
def register_losses(register):
    register("real_scores_probe", lambda params: Probe())
"""


def installed_probe(tmp_path_factory, monkeypatch, module: str, code: str):
    """The CLI with the probe plugin ``code`` installed as ``module``, and the list the probe fills."""
    site = tmp_path_factory.mktemp("site")
    install_distribution(site, module.replace("_", "-"), "0.1.0", {module: module}, code)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    app = create_app(load_plugins(strict=True))
    return app, sys.modules[module].SEEN


@pytest.fixture
def batch_probe(tmp_path_factory, monkeypatch):
    yield installed_probe(tmp_path_factory, monkeypatch, "ganforge_batch_probe", BATCH_PROBE)
    sys.modules.pop("ganforge_batch_probe", None)


@pytest.fixture
def penalty_probe(tmp_path_factory, monkeypatch):
    yield installed_probe(tmp_path_factory, monkeypatch, "ganforge_penalty_probe", PENALTY_PROBE)
    sys.modules.pop("ganforge_penalty_probe", None)


@pytest.fixture
def real_scores_probe(tmp_path_factory, monkeypatch):
    yield installed_probe(tmp_path_factory, monkeypatch, "ganforge_real_scores_probe", REAL_SCORES_PROBE)
    sys.modules.pop("ganforge_real_scores_probe", None)


@pytest.fixture
def augmentation_probe(tmp_path_factory, monkeypatch):
    yield installed_probe(tmp_path_factory, monkeypatch, "ganforge_augmentation_probe", AUGMENTATION_PROBE)
    sys.modules.pop("ganforge_augmentation_probe", None)


def smoke_config(folder: Path, **train) -> Path:
    config = yaml.safe_load(SMOKE.read_text())
    config["train"].update(train)
    path = folder / "smoke.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run(app, config: Path, *overrides: str):
    args = ["run", str(config), "--quiet"]
    for override in overrides:
        args += ["--set", override]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    ("generator_batch", "per_step"),
    [("reuse", [32]), ("fresh", [32, 32]), (48, [32, 48])],
    ids=["reuse", "fresh", "a number"],
)
def test_the_generator_step_reuses_or_draws_its_batch_as_configured(batch_probe, workdir, generator_batch, per_step):
    app, seen = batch_probe
    config = smoke_config(workdir, epochs=1, generator_batch=generator_batch)
    seen.clear()
    run(app, config, "model.name=batch_probe", "model.params={}", "data.params.num_samples=96")
    assert seen == per_step * 3  # 96 images in batches of 32: three steps, each G's batches in turn


def test_a_generator_batch_that_does_not_split_over_the_processes_is_refused_before_any_starts(app, workdir):
    config = smoke_config(workdir, generator_batch=33)
    result = CliRunner().invoke(app, ["run", str(config), "--quiet", "--nproc", "2"])
    assert result.exit_code == 2
    assert "train.generator_batch: 33" in result.output and "multiple of 2" in result.output
    assert not (workdir / "runs").exists()


ADA = [
    "augment.pipeline=[translation, cutout, colour]",
    "augment.strength=0.0",
    "augment.adaptive={target: 0.6, interval: 1, ramp_images: 2000}",
]


def test_a_resumed_run_with_adaptive_augmentation_and_spectral_norm_ends_bit_for_bit_as_an_uninterrupted_one(
    app, tmp_path, monkeypatch
):
    straight, split = tmp_path / "straight", tmp_path / "split"
    for folder in (straight, split):
        folder.mkdir()
    monkeypatch.chdir(straight)
    run(app, smoke_config(straight, epochs=3), *ADA, "model.params.spectral_norm=true")
    monkeypatch.chdir(split)
    run(app, smoke_config(split, epochs=1), *ADA, "model.params.spectral_norm=true")
    run_dir = split / "runs" / "smoke"
    result = CliRunner().invoke(app, ["run", "--resume", str(run_dir), "--quiet", "--set", "train.epochs=3"])
    assert result.exit_code == 0, result.output
    uninterrupted = straight / "runs" / "smoke" / "checkpoints" / "last.pt"
    resumed = run_dir / "checkpoints" / "last.pt"
    first, second = weights(uninterrupted), weights(resumed)
    assert all(torch.equal(first[key], second[key]) for key in first)
    states = [torch.load(path, weights_only=True)["adaptive_augmentation"] for path in (uninterrupted, resumed)]
    assert states[0] == states[1] and states[0]["strength"] > 0
    strengths = [record["augment_strength"] for record in metrics(straight / "runs" / "smoke")]
    assert strengths == [record["augment_strength"] for record in metrics(run_dir)]


def test_ada_raises_the_strength_for_a_discriminator_that_overfits_and_logs_it(app, workdir):
    """32 images and a fast D: D soon calls every real image real (r_t near 1), and ADA answers by augmenting."""
    config = smoke_config(workdir, epochs=8, batch_size=32, log_every=1)
    run(app, config, "data.params.num_samples=32", "optim.discriminator.lr=2e-3", *ADA)
    records = metrics(workdir / "runs" / "smoke")
    assert records[0]["augment_strength"] < records[-1]["augment_strength"]
    assert max(record["ada_r_t"] for record in records) > 0.6
    assert all(0.0 <= record["augment_strength"] <= 1.0 for record in records)


def test_fixed_augmentation_is_logged_at_its_strength_and_no_r_t(app, workdir):
    result = run(app, smoke_config(workdir, epochs=1), "augment.pipeline=[translation]", "augment.strength=0.5")
    records = metrics(workdir / "runs" / "smoke")
    assert {record["augment_strength"] for record in records} == {0.5}
    assert all("ada_r_t" not in record for record in records)
    assert "augment p 0.500" in result.output  # the progress line shows it too


def test_ada_with_a_loss_whose_scores_have_no_threshold_is_refused_before_the_run_folder(app, workdir):
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(smoke_config(workdir)),
            "--quiet",
            "--set",
            "loss.name=wasserstein",
            *[word for setting in ADA for word in ("--set", setting)],
        ],
    )
    assert result.exit_code == 2
    assert "augment.adaptive" in result.output and "'wasserstein'" in result.output
    assert "Traceback" not in result.output
    assert not (workdir / "runs").exists()


def test_augmentation_is_applied_to_the_real_and_generated_images_of_d_and_g_steps_alike(augmentation_probe, workdir):
    app, seen = augmentation_probe
    seen.clear()
    run(app, smoke_config(workdir, epochs=1), "augment.pipeline=[probe]", "augment.strength=0.3")
    steps = 256 // 32
    # Per step: D's real batch and D's generated batch (no gradient to G), then G's batch (gradients to G).
    assert seen == [(32, False, 0.3), (32, False, 0.3), (32, True, 0.3)] * steps


def test_validate_lists_the_augmentations_and_refuses_ada_with_a_loss_without_a_threshold(app, workdir):
    config = str(smoke_config(workdir))
    settings = [word for setting in ADA for word in ("--set", setting)]
    valid = CliRunner().invoke(app, ["validate", config, *settings])
    assert valid.exit_code == 0, valid.output
    assert "augmentation translation" in valid.output and "augmentation colour" in valid.output
    refused = CliRunner().invoke(app, ["validate", config, *settings, "--set", "loss.name=wasserstein"])
    assert refused.exit_code == 2
    assert "augment.adaptive" in refused.output and "Traceback" not in refused.output


@pytest.mark.parametrize(("penalty_every", "calls"), [(1, 8), (3, 3)])
def test_lazy_regularisation_computes_the_penalty_every_kth_step(penalty_probe, workdir, penalty_every, calls):
    app, seen = penalty_probe
    seen.clear()
    run(app, smoke_config(workdir, epochs=1, penalty_every=penalty_every), "loss.name=penalty_probe")
    assert len(seen) == calls  # 8 steps: each one, or steps 0, 3 and 6


def test_a_lazy_penalty_weighs_k_times_on_the_steps_it_is_taken(app, tmp_path, monkeypatch):
    """One step with R1 every 3rd step at gamma 1 is one step with R1 every step at gamma 3."""
    finals = []
    for penalty_every, gamma in ((3, 1.0), (1, 3.0)):
        folder = tmp_path / str(penalty_every)
        folder.mkdir()
        monkeypatch.chdir(folder)
        config = smoke_config(folder, epochs=1, penalty_every=penalty_every)
        run(app, config, "data.params.num_samples=32", f"loss.params.r1_gamma={gamma}")
        finals.append(weights(folder / "runs" / "smoke" / "checkpoints" / "last.pt"))
    lazy, every_step = finals
    assert all(torch.allclose(lazy[key], every_step[key], atol=1e-6) for key in lazy)
    monkeypatch.chdir(tmp_path / "1")
    run(
        app,
        smoke_config(tmp_path / "1", epochs=1),
        "output.dir=runs/plain",
        "data.params.num_samples=32",
        "loss.params.r1_gamma=1.0",
    )
    plain = weights(tmp_path / "1" / "runs" / "plain" / "checkpoints" / "last.pt")
    assert not all(torch.allclose(lazy[key], plain[key], atol=1e-6) for key in lazy)  # the weight k matters


@pytest.mark.parametrize("generator_batch", ["reuse", "fresh"])
def test_a_relativistic_generator_loss_gets_the_real_scores_of_its_step_without_gradients(
    real_scores_probe, workdir, generator_batch
):
    app, seen = real_scores_probe
    seen.clear()
    run(app, smoke_config(workdir, epochs=1, generator_batch=generator_batch), "loss.name=real_scores_probe")
    in_training = [entry for entry in seen if entry[0] == 32]  # the pre-flight check's batch of 4 aside
    assert in_training == [(32, 32, False)] * 8  # eight G steps, each with as many real scores as generated ones


@pytest.mark.parametrize("command", [["run", "--quiet"], ["validate"]], ids=["run", "validate"])
def test_a_generator_batch_of_another_size_is_refused_for_a_loss_that_pairs_real_and_generated(app, workdir, command):
    config = str(smoke_config(workdir, generator_batch=48))
    result = CliRunner().invoke(app, [command[0], config, *command[1:], "--set", "loss.name=rpgan"])
    assert result.exit_code == 2
    assert "train.generator_batch" in result.output and "'rpgan'" in result.output
    assert "Traceback" not in result.output
    assert not (workdir / "runs").exists()
    fits = CliRunner().invoke(app, [command[0], config, *command[1:], "--set", "train.generator_batch=fresh"])
    assert fits.exit_code == 0, fits.output
