"""A loss that turns NaN: the run stops naming the step and the last good checkpoint, or in skip mode
leaves the step out and counts it, and stops when a whole window is skipped."""

from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from pydantic import Field
from typer.testing import CliRunner

from ganforge import GANLoss, Params
from ganforge.cli import create_app
from ganforge.plugins import PluginSource, load_plugins
from tests.plugin_fixtures import plugin_module
from tests.runs import SMOKE, metrics


class NanParams(Params):
    first_bad_step: int = Field(..., ge=1, description="The first step whose discriminator loss is NaN.")
    bad_steps: int = Field(10**9, ge=1, description="How many steps in a row have a NaN loss.")


class NanAfter(GANLoss):
    """The non-saturating loss, except that chosen steps' discriminator loss is NaN."""

    def __init__(self, params):
        self.params = params
        self.calls = 0

    def discriminator_loss(self, real_scores, fake_scores):
        self.calls += 1
        loss = F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
        first = self.params.first_bad_step
        return loss * float("nan") if first <= self.calls < first + self.params.bad_steps else loss

    def generator_loss(self, fake_scores):
        return F.softplus(-fake_scores).mean()

    def probability(self, scores):
        return torch.sigmoid(scores)


@pytest.fixture(scope="module")
def faulty_app():
    """The CLI over the installed plugins and one more, whose loss turns NaN on chosen steps."""

    def register_losses(register):
        register("nan_after", NanAfter, params=NanParams)

    sources = [PluginSource.from_entry_point(ep) for ep in entry_points(group="ganforge")]
    sources.append(PluginSource.from_object(plugin_module("faults", register_losses=register_losses), "faults"))
    return create_app(load_plugins(sources, disabled=[], strict=True))


def test_a_nan_loss_stops_the_run_naming_the_step_and_the_last_good_checkpoint(faulty_app, workdir):
    args = ["run", str(SMOKE), "--quiet", "--set", "train.epochs=4", "--set", "loss.name=nan_after"]
    result = CliRunner().invoke(faulty_app, [*args, "--set", "loss.params.first_bad_step=21"])
    assert result.exit_code == 1, result.output
    last = Path("runs") / "smoke" / "checkpoints" / "last.pt"
    assert (
        "training diverged: non-finite losses in the steps up to step 24 (epoch 3); the last good checkpoint is "
        f"{last} (after epoch 2)" in result.output
    )
    assert "Traceback" not in result.output
    state = torch.load(workdir / last, weights_only=True)
    assert state["epoch"] == 2 and all(torch.isfinite(w).all() for w in state["generator"].values())
    lines = metrics(workdir / "runs" / "smoke")
    assert lines[-1]["step"] == 24 and lines[-1]["d_loss"] is None  # the bad window is logged, then the stop


def test_skip_mode_leaves_out_nan_steps_and_counts_them(faulty_app, workdir):
    overrides = ["train.epochs=3", "loss.name=nan_after", "loss.params.first_bad_step=10", "loss.params.bad_steps=3"]
    args = ["run", str(SMOKE), "--quiet", "--set", "train.on_nonfinite=skip"]
    for override in overrides:
        args += ["--set", override]
    result = CliRunner().invoke(faulty_app, args)
    assert result.exit_code == 0, result.output
    lines = [r for r in metrics(workdir / "runs" / "smoke") if r["event"] == "step"]
    assert [r["skipped"] for r in lines] == [0, 0, 3, 0, 0, 0]  # steps 10-12 are in the window ending at 12
    assert all(r["d_loss"] is not None for r in lines)
    state = torch.load(workdir / "runs" / "smoke" / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 3 and all(torch.isfinite(w).all() for w in state["discriminator"].values())


def test_skip_mode_stops_when_every_step_of_a_window_is_skipped(faulty_app, workdir):
    args = ["run", str(SMOKE), "--quiet", "--set", "train.on_nonfinite=skip", "--set", "loss.name=nan_after"]
    result = CliRunner().invoke(faulty_app, [*args, "--set", "loss.params.first_bad_step=5"])
    assert result.exit_code == 1, result.output
    assert "training diverged: every step was skipped for non-finite losses in the steps up to step 8" in result.output
    assert "no checkpoint was saved before it" in result.output
