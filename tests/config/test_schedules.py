"""`schedules:` in a config: the settings a schedule may drive, each schedule checked against its setting's bounds
before anything runs, refused through the command line with the field named (exit 2, no traceback)."""

import pytest
import torch.nn.functional as F
from pydantic import Field

from ganforge import GANLoss, Params, Schedule, hookimpl
from ganforge.components import architectures, datasets, losses, schedules
from ganforge.config import InvalidConfigError, validate_config
from ganforge.config.resolve import check_with_built_components
from ganforge.errors import UsageError
from ganforge.testing import isolated_registry
from tests.small_configs import GOOD, refused, validate, write

COSINE_LR = "schedules={optim.generator.lr: {name: cosine, params: {start: 2.0e-4, end: 5.0e-5, images: 1000}}}"
WITH_SCHEDULES = (
    GOOD
    + """
loss: {name: hinge, params: {r1_gamma: 1.0}}
augment: {pipeline: [translation]}
schedules:
  optim.generator.lr: {name: cosine, params: {start: 2.0e-4, end: 5.0e-5, images: 1000}}
  optim.discriminator.beta2: {name: linear, params: {start: 0.9, end: 0.99, images: 1000}}
  train.ema_half_life: {name: r3gan, params: {base: 0, final: 500, images: 1000}}
  augment.strength: {name: linear, params: {start: 0.0, end: 0.5, images: 1000}}
  loss.params.r1_gamma: {name: r3gan, params: {base: 1.0, final: 0.1, images: 1000, warmup_images: 100}}
"""
)


def test_a_schedule_for_each_kind_of_setting_validates_and_is_resolved_in_full(app, workdir):
    result = validate(app, write(workdir, WITH_SCHEDULES))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "schedules={optim.generator.momentum: {name: constant}}",
            "schedules.optim.generator.momentum: not a setting a schedule can drive; accepted: optim.generator.lr",
        ),
        (
            "schedules={loss.params.nope: {name: constant}}",
            "loss.params.r1_gamma, loss.params.r2_gamma (the float params of loss 'hinge')",
        ),
        (
            "schedules={optim.generator.lr: {name: linear, params: {start: 1.0e-4, end: -1.0e-4}}}",
            "schedules.optim.generator.lr: schedule 'linear' reaches -0.0001, which optim.generator.lr does not take: "
            "input should be greater than 0",
        ),
        (
            "schedules={optim.discriminator.beta2: {name: cosine, params: {start: 0.9, end: 1.0}}}",
            "reaches 1, which optim.discriminator.beta2 does not take: each beta must be in [0, 1)",
        ),
        (
            "schedules={loss.params.r1_gamma: {name: linear, params: {start: 1.0, end: -0.5}}}",
            "reaches -0.5, which loss.params.r1_gamma does not take: input should be greater than or equal to 0",
        ),
        (
            "schedules={train.ema_decay: {name: constant, params: {value: 1.0}}}",
            "reaches 1, which train.ema_decay does not take: input should be less than 1",
        ),
        (
            "schedules={augment.strength: {name: constant, params: {value: 0.5}}}",
            "schedules.augment.strength: augment.pipeline is empty",
        ),
        (
            "schedules={optim.generator.lr: {name: cosines}}",
            "schedules.optim.generator.lr.name: unknown schedule 'cosines'; did you mean 'cosine'?",
        ),
        (
            "schedules={optim.generator.lr: {name: r3gan, params: {images: 10, warmup_images: 10}}}",
            "must be more than warmup_images + hold_images",
        ),
    ],
)
def test_a_schedule_that_cannot_drive_its_setting_is_refused_naming_it(app, workdir, override, expected):
    stderr = refused(app, write(workdir, GOOD), "loss.name=hinge", override)
    assert expected in stderr


def test_a_strength_that_ada_moves_cannot_be_scheduled_too(app, workdir):
    stderr = refused(
        app,
        write(workdir, GOOD),
        "augment={pipeline: [translation], adaptive: {}}",
        "schedules={augment.strength: {name: linear}}",
    )
    assert "schedules.augment.strength: augment.adaptive moves the strength by ADA's heuristic" in stderr


def test_an_ema_is_set_one_way(app, workdir):
    stderr = refused(
        app, write(workdir, GOOD), "train.ema_decay=0.999", "schedules={train.ema_half_life: {name: linear}}"
    )
    assert "schedules.train.ema_half_life: train.ema_decay sets the EMA too" in stderr
    stderr = refused(app, write(workdir, GOOD), "train.ema_decay=0.999", "train.ema_half_life=10000")
    assert "train.ema_half_life: an EMA is set by ema_decay or by it, not both" in stderr


def test_set_edits_an_entry_by_its_dotted_setting_and_adds_one(app, workdir):
    path = write(workdir, WITH_SCHEDULES)
    stderr = refused(app, path, "schedules.optim.generator.lr.params.end=-1.0")
    assert "schedule 'cosine' reaches -1, which optim.generator.lr does not take" in stderr
    added = "schedules.optim.discriminator.lr={name: linear, params: {start: 1.0e-4, end: 0.0}}"
    assert "schedules.optim.discriminator.lr: schedule 'linear' reaches 0" in refused(app, path, added)
    assert validate(app, path, added.replace("end: 0.0", "end: 1.0e-5")).exit_code == 0


class CopyingParams(Params):
    weight: float = Field(1.0, ge=0.0)


class CopyingLoss(GANLoss):
    """A loss that copies its params' values when built: a schedule could not reach them."""

    def __init__(self, params: CopyingParams) -> None:
        self.weight = params.weight

    def discriminator_loss(self, real_scores, fake_scores):
        return self.weight * (F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean())

    def generator_loss(self, fake_scores):
        return F.softplus(-fake_scores).mean()


class CopyingPlugin:
    @hookimpl
    def register_losses(self, register):
        register("copying", CopyingLoss, params=CopyingParams)


def test_a_loss_that_keeps_no_params_cannot_take_a_schedule_and_is_told_so():
    registry = isolated_registry(datasets, architectures, losses, schedules, CopyingPlugin())
    raw = {
        "name": "copying",
        "data": {"name": "synthetic"},
        "model": {"name": "mlp"},
        "loss": {"name": "copying"},
        "schedules": {"loss.params.weight": {"name": "linear"}},
        "eval": {"metrics": []},
    }
    resolved = validate_config(raw, registry)  # a float field of its params: a target, by the registry
    with pytest.raises(UsageError, match="loss 'copying' keeps no params model as `params`"):
        check_with_built_components(resolved)


class UnboundedSchedule(Schedule):
    """A schedule whose extremes() breaks its contract: its bounds cannot be checked."""

    def __init__(self, params):
        pass

    def __call__(self, images):
        return 1.0

    def extremes(self):
        return (0.0, float("inf"))


class UnboundedPlugin:
    @hookimpl
    def register_schedules(self, register):
        register("unbounded", UnboundedSchedule)


def test_a_plugin_schedule_whose_extremes_are_not_two_finite_numbers_is_refused_naming_it():
    registry = isolated_registry(datasets, architectures, losses, UnboundedPlugin(), distribution="ganforge-odd")
    raw = {
        "name": "odd",
        "data": {"name": "synthetic"},
        "model": {"name": "mlp"},
        "schedules": {"optim.generator.lr": {"name": "unbounded"}},
        "eval": {"metrics": []},
    }
    with pytest.raises(InvalidConfigError) as refused_config:
        validate_config(raw, registry)
    message = str(refused_config.value)
    assert "schedules.optim.generator.lr: schedule 'unbounded' of plugin" in message
    assert "its extremes() returned tuple (0.0, inf), not its least and greatest value as two finite numbers" in message
