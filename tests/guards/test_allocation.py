"""A batch that does not fit after all (the memory estimate leaves out activations): the allocator's failure
is named like the estimate's refusal, with what failed and the setting to lower; exit 1, no traceback, and
the last checkpoint kept.

The failures are faked, never provoked: a third-party architecture, registered in-process as the
distribution ganforge-oom 1.0, whose networks raise what torch's allocators raise (the CPU's RuntimeError,
CUDA's torch.OutOfMemoryError) at a chosen moment.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from ganforge import GANMetric, GANModels, Goal
from ganforge.cli import create_app
from ganforge.plugins import PluginSource, load_plugins
from tests.cli_results import refused
from tests.plugin_fixtures import plugin_module
from tests.runs import SMOKE  # synthetic 1x28x28 images, batch 32, 8 steps per epoch

LATENT = 8
STEP_CALLS = 3  # D's forward passes per training step: real, generated, and generated again for G's step
EVAL_SAMPLES = 40  # a batch of this size, in eval mode, is evaluation's
CPU_FAILURE = (
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to "
    "allocate 2147483648 bytes. Error code 12 (Cannot allocate memory)"
)
CUDA_FAILURE = "CUDA out of memory. Tried to allocate 3.00 GiB. GPU 0 has a total capacity of 79.19 GiB"


def allocation_failure(kind: str) -> Exception:
    return RuntimeError(CPU_FAILURE) if kind == "cpu" else torch.OutOfMemoryError(CUDA_FAILURE)


class Generator(nn.Module):
    def __init__(self, shape, fail_on_evaluation: str | None) -> None:
        super().__init__()
        self.shape, self.fail_on_evaluation = shape, fail_on_evaluation
        self.layer = nn.Linear(LATENT, int(torch.tensor(shape).prod()))

    def forward(self, z):
        if self.fail_on_evaluation and not self.training and z.shape[0] == EVAL_SAMPLES:
            raise allocation_failure(self.fail_on_evaluation)
        return torch.tanh(self.layer(z)).view(z.shape[0], *self.shape)


class Discriminator(nn.Module):
    """Raises an allocator's failure in its forward pass of training step ``fail_step``, counting its calls."""

    def __init__(self, pixels: int, fail_step: int | None, kind: str) -> None:
        super().__init__()
        self.layer = nn.Linear(pixels, 1)
        self.calls, self.kind = 0, kind
        self.fail_call = (fail_step - 1) * STEP_CALLS + 1 if fail_step else None

    def forward(self, images):
        if self.training:
            self.calls += 1
            if self.calls == self.fail_call:
                raise allocation_failure(self.kind)
        return self.layer(images.flatten(1)).squeeze(1)


def architecture(fail_step=None, kind="cpu", fail_on_evaluation=None):
    def factory(params, data):
        pixels = data.channels * data.height * data.width
        return GANModels(Generator(data.shape, fail_on_evaluation), Discriminator(pixels, fail_step, kind), LATENT)

    return factory


def register_architectures(register):
    register("cpu_oom_at_step_3", architecture(3, "cpu"))
    register("cuda_oom_at_step_12", architecture(12, "cuda"))  # in epoch 2, after epoch 1's checkpoint
    register("oom_in_evaluation", architecture(fail_on_evaluation="cpu"))


class GreedyMetric(GANMetric):
    """A metric whose computation asks for more memory than there is."""

    goals: ClassVar = {"greedy": Goal("lower")}

    def __init__(self, params):
        pass

    def compute(self, generated, real):
        raise allocation_failure("cpu")


def register_metrics(register):
    register("greedy", GreedyMetric)


@pytest.fixture(scope="module")
def app():
    oom = plugin_module("oom", register_architectures=register_architectures, register_metrics=register_metrics)
    sources = [PluginSource.from_entry_point(ep) for ep in entry_points(group="ganforge")]
    sources.append(PluginSource.from_object(oom, "oom", "ganforge-oom", "1.0"))
    return create_app(load_plugins(sources, disabled=[], strict=True))


def train(app, name, *overrides):
    args = ["run", str(SMOKE), "--quiet", "--set", "train.epochs=2", "--set", f"model.name={name}"]
    for override in ("model.params={}", *overrides):
        args += ["--set", override]
    return CliRunner().invoke(app, args)


def test_a_training_step_that_does_not_fit_is_named_with_the_batch_size(app, workdir):
    output = refused(train(app, "cpu_oom_at_step_3"), code=1)
    assert (
        "error: not enough memory: a training step at epoch 1, step 3 failed to allocate 2.0 GiB on cpu with "
        "train.batch_size 32 (the estimate before the run leaves out activations); no checkpoint was saved before "
        "it: start again with a smaller train.batch_size (--overwrite --set train.batch_size=N), or a smaller model"
        in output
    )
    assert "DefaultCPUAllocator" not in output  # the allocator's own words are the message's, not repeated raw


def test_a_cuda_allocation_failure_after_a_checkpoint_keeps_it_and_says_how_to_resume(app, workdir):
    output = refused(train(app, "cuda_oom_at_step_12"), code=1)
    run_dir = Path("runs") / "smoke"  # as the config names it, relative to where ganforge runs
    assert "error: not enough memory: a training step at epoch 2, step 12 failed to allocate 3.00 GiB" in output
    assert f"the last good checkpoint is {run_dir / 'checkpoints' / 'last.pt'} (after epoch 1)" in output
    assert f"resume with a smaller train.batch_size, ganforge run --resume {run_dir} --set train.batch_size=N" in (
        output
    )
    assert torch.load(workdir / run_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1


def test_an_evaluation_that_does_not_fit_names_eval_samples(app, workdir):
    settings = ("eval.every=1", f"eval.samples={EVAL_SAMPLES}", "eval.metrics=[fid]", "eval.best=null")
    output = refused(train(app, "oom_in_evaluation", *settings), code=1)
    assert (
        f"error: not enough memory: evaluating {EVAL_SAMPLES} generated images after epoch 1 failed to allocate "
        f"2.0 GiB on cpu with train.batch_size 32, eval.samples {EVAL_SAMPLES}" in output
    )
    assert "start again with a smaller eval.samples (--overwrite --set eval.samples=N)" in output


def test_offline_scoring_that_does_not_fit_says_to_score_fewer(app):
    args = ["eval", "--real", "synthetic", "--data-param", "num_samples=120", "--n", "20", "--metrics", "greedy"]
    output = refused(CliRunner().invoke(app, args), code=1)
    assert (
        "error: not enough memory: scoring 20 images (--n) on cpu failed to allocate 2.0 GiB (the estimate before "
        "it leaves out activations); score fewer with --n" in output
    )
    assert "metric" not in output.split("error:")[1]  # not called the metric's own failure
