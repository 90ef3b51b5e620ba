"""The contract-test kit: every built-in passes it, and each kind of broken component is caught."""

import dataclasses
import types

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from ganforge import DataSpec, GANLoss, GANMetric, GANModels, Goal, ImageTensorDataset, LoadedDataset, hookimpl
from ganforge.errors import PluginError
from ganforge.plugins import load_plugins
from ganforge.registry import Kind
from ganforge.testing import ContractError, assert_check, check_component, isolated_registry, parametrize_with_checks
from ganforge.testing.checks.losses import check_loss_direction

BUILTINS = [c for c in load_plugins(strict=True).registry.components() if c.provider.distribution == "ganforge"]
# r3gan's defaults are the paper's CIFAR-10 networks, 41M parameters a pair: minutes through the kit on a CPU.
# tests/components/test_r3gan.py runs the kit on it at narrow widths, and `ganforge check` on it as a slow test.
HEAVY = {"r3gan"}


@parametrize_with_checks([c for c in BUILTINS if c.name not in HEAVY])
def test_builtin_components_obey_their_contracts(component, check):
    assert_check(component, check)


# Deliberately broken components, each registered through a plugin as a third party would.


class Generator(nn.Module):
    def __init__(self, shape, squeezes_batch=False, unused_layer=False):
        super().__init__()
        self.shape = shape
        self.net = nn.Linear(4, int(torch.tensor(self.shape).prod()))
        self.unused = nn.Linear(2, 2) if unused_layer else None
        self.squeezes_batch = squeezes_batch

    def forward(self, z):
        images = torch.tanh(self.net(z)).view(z.shape[0], *self.shape)
        return images.squeeze(0) if self.squeezes_batch else images  # a classic bug: a batch of one loses its axis


class Discriminator(nn.Module):
    def __init__(self, shape, probabilities=False):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(shape).prod()), 1))
        self.probabilities = probabilities

    def forward(self, x):
        scores = self.net(x).squeeze(1)
        return torch.sigmoid(scores) if self.probabilities else scores


def architecture(**flaws):
    def build(params, data: DataSpec):
        generator_flaws = {k: v for k, v in flaws.items() if k != "probabilities"}
        return GANModels(
            Generator(data.shape, **generator_flaws),
            Discriminator(data.shape, probabilities=flaws.get("probabilities", False)),
            latent_dim=4,
        )

    return build


class WrongSignLoss(GANLoss):
    def __init__(self, params):
        pass

    def discriminator_loss(self, real_scores, fake_scores):
        return nn.functional.softplus(-real_scores).mean() + nn.functional.softplus(fake_scores).mean()

    def generator_loss(self, fake_scores):
        return nn.functional.softplus(fake_scores).mean()  # pushes fakes towards "fake": the wrong way


class SummedPenaltyLoss(WrongSignLoss):
    def generator_loss(self, fake_scores):
        return nn.functional.softplus(-fake_scores).mean()

    def penalty(self, discriminator, real, fake):
        real = real.detach().requires_grad_(True)
        (gradient,) = torch.autograd.grad(discriminator(real).sum(), real, create_graph=True)
        return gradient.pow(2).flatten(1).sum()  # summed over samples: grows with the batch


class UnscaledImages(ImageTensorDataset):
    """Forgets to scale pixels to [-1, 1]."""

    def __getitem__(self, index):
        return self.images[index].float(), 0


def out_of_range_dataset(params, root):
    images = torch.arange(640).remainder(256).to(torch.uint8).view(10, 1, 8, 8)
    labels = torch.zeros(10, dtype=torch.int64)
    return LoadedDataset(UnscaledImages(images, labels), DataSpec((1, 8, 8), num_classes=1))


class MeanDistance(GANMetric):
    goals = {"distance": Goal("lower", ideal=0.0)}  # noqa: RUF012

    def __init__(self, params):
        self.params = params

    def distance(self, generated, real):
        return float((generated.features.mean(0) - real.features.mean(0)).norm())


class ReversedDistance(MeanDistance):
    """Says lower is better, then returns a value that falls as the sets drift apart."""

    def compute(self, generated, real):
        return {"distance": -self.distance(generated, real)}


class OffsetDistance(MeanDistance):
    """Identical sets do not score the declared ideal of 0."""

    def compute(self, generated, real):
        return {"distance": 5.0 + self.distance(generated, real)}


def plugin(kind, factory):
    module = types.ModuleType("broken_plugin")
    hook = {
        Kind.ARCHITECTURE: "register_architectures",
        Kind.LOSS: "register_losses",
        Kind.DATASET: "register_datasets",
        Kind.METRIC: "register_metrics",
    }

    def register(register):
        register("broken", factory)

    setattr(module, hook[kind], hookimpl(register))
    return isolated_registry(module, distribution="broken-dist").get(kind, "broken")


@pytest.mark.parametrize(
    ("kind", "factory", "failing_check", "message"),
    [
        (Kind.ARCHITECTURE, architecture(squeezes_batch=True), "check_generator_output", "G(z) has shape"),
        (Kind.ARCHITECTURE, architecture(probabilities=True), "check_discriminator_returns_logits", "probabilities"),
        (Kind.ARCHITECTURE, architecture(unused_layer=True), "check_gradients_reach_every_parameter", "unused.weight"),
        (Kind.LOSS, WrongSignLoss, "check_loss_direction", "wrong sign"),
        (Kind.LOSS, SummedPenaltyLoss, "check_penalty_is_per_sample", "mean over samples"),
        (Kind.DATASET, out_of_range_dataset, "check_items_match_the_spec", "expected [-1, 1]"),
        (Kind.METRIC, ReversedDistance, "check_shifted_set_scores_worse", "should be lower for identical sets"),
        (Kind.METRIC, OffsetDistance, "check_identical_sets_score_no_difference", "not near its ideal 0"),
    ],
)
def test_broken_components_are_caught_by_the_right_check(kind, factory, failing_check, message):
    results = {result.check: result for result in check_component(plugin(kind, factory))}
    failed = {name for name, result in results.items() if result.status == "failed"}
    assert failed == {failing_check}
    assert message in results[failing_check].message
    assert results[failing_check].component == "broken-dist:broken"


def test_assert_check_raises_a_contract_error_naming_component_and_check():
    component = plugin(Kind.LOSS, WrongSignLoss)
    from ganforge.testing.checks.losses import check_loss_direction

    with pytest.raises(ContractError, match="broken-dist:broken fails check_loss_direction"):
        assert_check(component, check_loss_direction)


def test_parametrize_ids_and_expected_failures():
    component = plugin(Kind.LOSS, WrongSignLoss)
    marker = parametrize_with_checks([component], expected_failures={"check_loss_direction": "known bad sign"})
    params = marker.args[1]
    ids = [param.id for param in params]
    assert "broken-dist:broken-check_loss_direction" in ids
    [expected] = [param for param in params if param.id.endswith("check_loss_direction")]
    assert expected.marks[0].kwargs["reason"] == "known bad sign" and expected.marks[0].kwargs["strict"]


@pytest.mark.slow
def test_check_command_passes_for_the_builtins_and_exits_1_on_a_failure(app, monkeypatch, tmp_path):
    monkeypatch.setenv("GANFORGE_DATA", str(tmp_path))
    result = CliRunner().invoke(app, ["check", "loss:hinge"])
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.stdout

    import json

    payload = json.loads(CliRunner().invoke(app, ["check", "ganforge", "--json"]).stdout)
    assert payload["passed"] is True
    assert {r["component"] for r in payload["results"]} >= {"ganforge:mlp", "ganforge:dcgan", "ganforge:hinge"}

    from ganforge.cli import create_app
    from ganforge.plugins import PluginSource

    module = types.ModuleType("broken_plugin")
    module.register_losses = hookimpl(lambda register: register("broken", WrongSignLoss))
    broken_app = create_app(load_plugins([PluginSource.from_object(module, "b", "broken-dist")], disabled=[]))
    failed = CliRunner().invoke(broken_app, ["check", "broken-dist"])
    assert failed.exit_code == 1
    assert "FAIL" in failed.stdout and "wrong sign" in failed.stdout

    unknown = CliRunner().invoke(app, ["check", "nobody"])
    assert unknown.exit_code == 2 and "no installed distribution 'nobody'" in unknown.stderr


def known_failure_app(known_failures):
    """The CLI over one plugin whose loss has the wrong sign and declares ``known_failures``."""
    from ganforge.cli import create_app
    from ganforge.plugins import PluginSource

    module = types.ModuleType("known_plugin")
    module.register_losses = hookimpl(lambda register: register("known", WrongSignLoss, known_failures=known_failures))
    return create_app(load_plugins([PluginSource.from_object(module, "k", "known-dist")], disabled=[], strict=True))


def test_a_declared_known_failure_is_reported_as_known_and_does_not_fail_ganforge_check():
    app = known_failure_app({"check_loss_direction": "the sign is flipped on purpose"})
    result = CliRunner().invoke(app, ["check", "known-dist"])
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.stdout and "1 known failures" in result.stdout
    assert "the sign is flipped on purpose" in result.stdout


def test_a_known_failure_that_passes_or_names_no_check_fails_ganforge_check():
    fixed = CliRunner().invoke(known_failure_app({"check_default_params": "once summed"}), ["check"])
    assert fixed.exit_code == 1
    assert "declared a known failure (once summed) but passed" in fixed.stdout
    typo = CliRunner().invoke(
        known_failure_app({"check_loss_direction": "flipped", "check_loss_directoin": "typo"}),
        ["check", "known-dist", "--json"],
    )
    assert typo.exit_code == 1
    import json

    [unknown] = [r for r in json.loads(typo.stdout)["results"] if r["check"] == "check_loss_directoin"]
    assert unknown["status"] == "failed" and "not a check of losses" in unknown["message"]


def test_known_failures_become_strict_xfail_marks_and_bad_declarations_are_refused():
    from ganforge.plugins import PluginSource

    component = plugin(Kind.LOSS, WrongSignLoss)
    declared = dataclasses.replace(component, known_failures={"check_loss_direction": "declared"})
    [marked] = [p for p in parametrize_with_checks([declared]).args[1] if p.id.endswith("check_loss_direction")]
    assert marked.marks[0].kwargs == {"reason": "declared", "strict": True, "raises": ContractError}
    with pytest.raises(ContractError):  # the xfail mark expects exactly this
        assert_check(declared, check_loss_direction)

    module = types.ModuleType("bad_declaration")
    module.register_losses = hookimpl(lambda register: register("bad", WrongSignLoss, known_failures={"x": ""}))
    with pytest.raises(PluginError, match="known_failures must map check names"):
        load_plugins([PluginSource.from_object(module, "b", "bad-dist")], disabled=[], strict=True)
