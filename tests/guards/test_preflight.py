"""The pre-flight check names a component that breaks its contract before the run folder exists; a crash
inside a component during training names it after the traceback and leaves no half-made run folder.

The components are a plugin registered in-process, as the distribution ganforge-foo 1.0, next to the
installed ones, and every run goes through the command line.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from typer.testing import CliRunner

from ganforge import GANLoss, GANModels
from ganforge.cli import create_app
from ganforge.plugins import PluginSource, load_plugins
from tests.plugin_fixtures import plugin_module
from tests.runs import SMOKE  # synthetic 1x28x28 images, batch 32, 8 steps per epoch

PLUGIN = "plugin 'ganforge-foo:foo' (ganforge-foo==1.0)"
LATENT = 8
STEP_CALLS = 3  # D's forward passes per training step: real, generated, and generated again for G's step


class Generator(nn.Module):
    """z -> images of ``shape``, scaled by ``scale`` after a tanh (beyond [-1, 1] when scale > 1)."""

    def __init__(self, shape: tuple[int, ...], scale: float = 1.0) -> None:
        super().__init__()
        self.shape, self.scale = shape, scale
        self.layer = nn.Linear(LATENT, int(torch.tensor(shape).prod()))

    def forward(self, z):
        return self.scale * torch.tanh(self.layer(z)).view(z.shape[0], *self.shape)


class Discriminator(nn.Module):
    """Images -> one score per image, shaped [B, 1] where ``keep_dim``; through a sigmoid where ``sigmoid``."""

    def __init__(self, pixels: int, keep_dim: bool = False, sigmoid: bool = False) -> None:
        super().__init__()
        self.layer = nn.Linear(pixels, 1)
        self.keep_dim, self.sigmoid = keep_dim, sigmoid

    def forward(self, images):
        scores = self.layer(images.flatten(1))
        scores = torch.sigmoid(scores) if self.sigmoid else scores
        return scores if self.keep_dim else scores.squeeze(1)


class CrashingDiscriminator(Discriminator):
    """Raises in its forward pass of training step ``crash_step``, counting its calls."""

    def __init__(self, pixels: int, crash_step: int) -> None:
        super().__init__(pixels)
        self.calls, self.crash_call = 0, (crash_step - 1) * STEP_CALLS + 1

    def forward(self, images):
        self.calls += 1
        if self.calls == self.crash_call:
            raise RuntimeError("mydisc blew up")
        return super().forward(images)


class LabelledGenerator(Generator):
    """G(z, y) that draws the same image for every label: enough for the pre-flight check's shapes."""

    def forward(self, z, labels):
        return super().forward(z)


class ClassifyingDiscriminator(Discriminator):
    """D(x, y) -> (scores, class logits [B, classes]), or the scores alone where ``classes`` is None."""

    def __init__(self, pixels: int, classes: int | None) -> None:
        super().__init__(pixels)
        self.classes = classes
        self.head = nn.Linear(pixels, classes or 1)

    def forward(self, images, labels):
        scores = super().forward(images)
        return scores if self.classes is None else (scores, self.head(images.flatten(1)))


def classifying_architecture(class_logit_count):
    """An ACGAN whose D returns ``class_logit_count(K)`` class logits per image, or none where that is None."""

    def factory(params, data):
        pixels = data.channels * data.height * data.width
        d = ClassifyingDiscriminator(pixels, class_logit_count(data.num_classes))
        return GANModels(LabelledGenerator(data.shape), d, LATENT, num_classes=data.num_classes, class_logits=True)

    return factory


def architecture(generator=None, **discriminator):
    def factory(params, data):
        pixels = data.channels * data.height * data.width
        options = dict(discriminator)
        crash_step = options.pop("crash_step", None)
        d = CrashingDiscriminator(pixels, crash_step) if crash_step else Discriminator(pixels, **options)
        return GANModels(generator(data) if generator else Generator(data.shape), d, LATENT)

    return factory


class NoMean(GANLoss):
    """The logistic loss, but per image: no mean over the batch."""

    def discriminator_loss(self, real_scores, fake_scores):
        return F.softplus(-real_scores) + F.softplus(fake_scores)

    def generator_loss(self, fake_scores):
        return F.softplus(-fake_scores).mean()


def register_architectures(register):
    register("flat_disc", architecture(keep_dim=True))
    register("sigmoid_disc", architecture(sigmoid=True))
    register("small_g", architecture(lambda data: Generator((data.channels, 14, 14))))
    register("loud_g", architecture(lambda data: Generator(data.shape, scale=3.0)))
    register("crash_at_step_3", architecture(crash_step=3))
    register("crash_at_step_12", architecture(crash_step=12))  # in epoch 2, after epoch 1's checkpoint
    register("acgan_no_logits", classifying_architecture(lambda classes: None))
    register("acgan_too_few_logits", classifying_architecture(lambda classes: classes - 1))


def register_losses(register):
    register("no_mean", lambda params: NoMean())


@pytest.fixture(scope="module")
def app():
    foo = plugin_module("foo", register_architectures=register_architectures, register_losses=register_losses)
    sources = [PluginSource.from_entry_point(ep) for ep in entry_points(group="ganforge")]
    sources.append(PluginSource.from_object(foo, "foo", "ganforge-foo", "1.0"))
    return create_app(load_plugins(sources, disabled=[], strict=True))


def train(app, *overrides):
    args = ["run", str(SMOKE), "--quiet", "--set", "train.epochs=2"]
    for override in overrides:
        args += ["--set", override]
    return CliRunner().invoke(app, args)


def with_model(name):
    return (f"model.name={name}", "model.params={}")


def last_line(output):
    return [line for line in output.splitlines() if line.strip()][-1]


# -- the pre-flight check ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            with_model("flat_disc"),
            f"pre-flight check: the discriminator of architecture 'flat_disc' of {PLUGIN} returned shape [4, 1] for "
            "a batch of 4 images from the dataset; the contract is logits of shape [B] = [4] (flatten its last "
            "layer's output: .view(-1), or .squeeze(1) for [B, 1])",
        ),
        (
            with_model("small_g"),
            f"pre-flight check: the generator of architecture 'small_g' of {PLUGIN} returned shape [4, 1, 14, 14] for "
            "noise of shape [4, 8]; the contract is images of shape [B, C, H, W] = [4, 1, 28, 28]",
        ),
        (
            with_model("loud_g"),
            f"pre-flight check: the generator of architecture 'loud_g' of {PLUGIN} returned values in [",
        ),
        (
            ("loss.name=no_mean",),
            f"pre-flight check: loss 'no_mean' of {PLUGIN}: its discriminator_loss returned shape [4] for scores "
            "of shape [4]; the contract is a scalar (reduce over the batch: .mean())",
        ),
        (  # smoke.yaml's synthetic data has 4 classes
            with_model("acgan_no_logits"),
            f"pre-flight check: the discriminator of architecture 'acgan_no_logits' of {PLUGIN} returned a tensor "
            "of shape [4] for a batch of 4 images from the dataset; its GANModels has class_logits, so "
            "the contract is a pair (scores [4], class_logits [4, 4])",
        ),
        (
            with_model("acgan_too_few_logits"),
            f"pre-flight check: the discriminator of architecture 'acgan_too_few_logits' of {PLUGIN} returned class "
            "logits [4, 3] for a batch of 4 images from the dataset; the contract is (scores [4], class_logits [4, 4])",
        ),
    ],
    ids=[
        "discriminator-B-by-1",
        "generator-shape",
        "generator-range",
        "loss-not-scalar",
        "acgan-scores-alone",
        "acgan-class-logits-shape",
    ],
)
def test_a_component_that_breaks_its_contract_is_named_before_the_run_folder_exists(app, workdir, overrides, expected):
    result = train(app, *overrides)
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert expected in message
    assert "Traceback" not in result.output
    assert not (workdir / "runs").exists()


def test_a_generator_beyond_minus_one_to_one_is_told_the_range(app, workdir):
    message = " ".join(train(app, *with_model("loud_g")).output.split())
    low, high = (float(value) for value in message.split("returned values in [")[1].split("]")[0].split(", "))
    assert low < -1 and high > 1
    assert "the contract is images in [-1, 1], as the data is (end the generator in tanh)" in message


def test_a_discriminator_ending_in_a_sigmoid_gets_a_warning_and_the_run_goes_on(app, workdir):
    result = train(app, *with_model("sigmoid_disc"))
    assert result.exit_code == 0, result.output
    message = " ".join(result.output.split())
    assert (
        f"warning: pre-flight check: every score of the discriminator of architecture 'sigmoid_disc' of {PLUGIN} "
        "lies in [0, 1]" in message
    )
    assert "they look like probabilities (a sigmoid at its end?)" in message
    assert (workdir / "runs" / "smoke" / "checkpoints" / "last.pt").exists()


def test_built_in_components_get_no_warning(app, workdir):
    for seed in (1, 3):  # seeds whose untrained discriminator scores the first images within [0, 1]
        result = train(app, f"seed={seed}", "train.epochs=1", f"name=seed{seed}")
        assert result.exit_code == 0, result.output
        assert "warning" not in result.output


# -- a crash inside a component ------------------------------------------------------------------


def test_a_crash_inside_a_plugin_is_named_after_its_traceback_and_leaves_no_run_folder(app, workdir):
    result = train(app, *with_model("crash_at_step_3"))
    assert result.exit_code == 1, result.output
    assert "Traceback" in result.output and "RuntimeError: mydisc blew up" in result.output
    assert last_line(result.output) == (
        f"ganforge: the error above was raised inside the discriminator of architecture 'crash_at_step_3' of "
        f"{PLUGIN}, at epoch 1, step 3: report it to that plugin's authors"
    )
    assert not (workdir / "runs").exists()


def test_a_crash_after_a_checkpoint_leaves_the_run_resumable(app, workdir):
    result = train(app, *with_model("crash_at_step_12"))
    assert result.exit_code == 1, result.output
    assert last_line(result.output).endswith("at epoch 2, step 12: report it to that plugin's authors")
    run_dir = workdir / "runs" / "smoke"
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1
    assert (run_dir / "config.yaml").exists() and (run_dir / "metrics.jsonl").exists()


def test_a_crash_in_a_folder_that_was_there_before_leaves_the_folder(app, workdir):
    (workdir / "runs" / "smoke").mkdir(parents=True)
    assert train(app, *with_model("crash_at_step_3")).exit_code == 1
    assert [path.name for path in (workdir / "runs" / "smoke").iterdir()] == [".ganforge-lock"]


def test_a_crash_inside_a_built_in_component_is_called_a_bug_in_ganforge(app, workdir, monkeypatch):
    def broken_forward(self, images):
        raise ValueError("a built-in bug")

    monkeypatch.setattr("ganforge.components.architectures.mlp.MLPDiscriminator.forward", broken_forward)
    result = train(app)
    assert result.exit_code == 1
    assert "ValueError: a built-in bug" in result.output
    assert last_line(result.output).startswith("ganforge: the error above was raised inside the discriminator of ")
    assert "architecture 'mlp' of plugin 'ganforge:" in last_line(result.output)
    assert last_line(result.output).endswith(
        "in the pre-flight check, before the run folder was written: a bug in ganforge: please report it"
    )
    assert not (workdir / "runs").exists()


# -- the check changes nothing -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mlp", "dcgan"])  # dcgan: batch norm, whose running statistics must not move
def test_the_check_leaves_training_bit_for_bit_as_it_was(app, workdir, monkeypatch, model):
    overrides = [f"model.name={model}", "model.params={}", "train.epochs=1", "train.ema_decay=0.9"]
    assert train(app, *overrides, "name=checked").exit_code == 0
    monkeypatch.setattr("ganforge.training.runs.check_components", lambda *args: [])
    assert train(app, *overrides, "name=unchecked").exit_code == 0
    checked, unchecked = (
        torch.load(workdir / "runs" / name / "checkpoints" / "last.pt", weights_only=True)
        for name in ("checked", "unchecked")
    )
    for part in ("generator", "discriminator", "ema_generator"):
        assert checked[part].keys() == unchecked[part].keys()
        for key, tensor in checked[part].items():
            assert torch.equal(tensor, unchecked[part][key]), f"{part}.{key}"
