"""Memory estimated before it is taken: models, datasets and evaluation samples too large for this
machine are refused before training, `validate` warns of them, and third-party architectures are
weighed on the meta device."""

import re
import time

import pytest
import torch
from torch import nn

from ganforge import GANModels, Params
from ganforge.config import validate_config
from ganforge.config.resolve import check_with_built_components
from ganforge.errors import UsageError
from ganforge.guards.machine import check_memory, machine_warnings
from ganforge.registry import Component, Kind, Provider, Registry
from tests.small_configs import GOOD, refused, validate, write

HUGE_MODEL = "model.params.hidden=[" + ", ".join(["65536"] * 16) + "]"  # 69 billion weights: over 1 TiB to train


def test_a_model_too_large_for_this_machine_is_refused_with_its_estimate_before_training(app, workdir):
    started = time.perf_counter()
    stderr = refused(app, write(workdir, GOOD), HUGE_MODEL, command="run")
    assert time.perf_counter() - started < 30
    assert "not enough memory: this run needs at least " in stderr and " TiB of host memory" in stderr
    assert re.search(r"the models \([\d,]+ parameters, with gradients and Adam's state\): [\d.]+ TiB", stderr)
    assert "make it smaller (model.params)" in stderr
    assert not (workdir / "runs").exists()


def test_a_synthetic_dataset_too_large_for_this_machine_is_refused_before_it_is_generated(app, workdir):
    started = time.perf_counter()
    stderr = refused(
        app, write(workdir, GOOD), "data.params.size=8192", "data.params.num_samples=1000000", command="run"
    )
    assert time.perf_counter() - started < 30
    assert re.search(r"the dataset synthetic while it loads: [\d.]+ TiB", stderr)
    assert "make it smaller (data.params)" in stderr
    assert not (workdir / "runs").exists()


def test_evaluation_samples_too_many_for_this_machine_are_refused_before_training(app, workdir):
    overrides = ["eval.every=1", "eval.samples=1000000", "model.params.latent_dim=65536", "data.params.size=512"]
    stderr = refused(app, write(workdir, GOOD), *overrides, command="run")
    assert re.search(r"evaluation's 1,000,000 generated images: [\d.]+ TiB", stderr) and "eval.samples)" in stderr


def test_validate_warns_of_what_run_would_refuse_for_memory(app, workdir):
    result = validate(app, write(workdir, GOOD), HUGE_MODEL)
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout
    assert "warning: not enough memory" in result.stderr
    assert "`ganforge run` would refuse this config on this machine" in result.stderr


class HugeParams(Params):
    side: int = 2**20


def build_huge(params, data):
    """A third party's architecture, to the memory check only a factory: 2**40 weights in G."""
    return GANModels(nn.Linear(params.side, params.side), nn.Linear(8, 1), latent_dim=params.side)


def build_refusing_meta(params, data):
    """A factory the meta device cannot build: it reads a weight's value."""
    layer = nn.Linear(4, 4)
    float(layer.weight.detach().sum())
    return GANModels(nn.Sequential(layer), nn.Linear(4, 1), latent_dim=4)


def with_architecture(registry, name, factory, params=Params):
    """A copy of the installed registry with one more architecture, as a plugin would register it."""
    extended = Registry()
    for component in registry.components():
        extended.add(component)
    provider = Provider("thirdparty", "1.0", "thirdparty:plugin")
    extended.add(Component(Kind.ARCHITECTURE, name, factory, params, "test architecture", provider))
    return extended


def resolved(registry, name):
    import yaml

    raw = yaml.safe_load(GOOD)
    raw["model"] = {"name": name, "params": {}}
    return validate_config(raw, registry)


def test_a_third_party_architecture_is_estimated_on_the_meta_device_too(registry):
    run = resolved(with_architecture(registry, "huge", build_huge, HugeParams), "huge")
    with pytest.raises(UsageError, match=r"the models \([\d,]+ parameters.*make it smaller \(model.params\)"):
        check_memory(run, torch.device("cpu"), run.data.build(None))
    assert any("not enough memory" in warning for warning in machine_warnings(run))


def test_an_architecture_the_meta_device_cannot_build_is_left_unestimated(registry):
    run = resolved(with_architecture(registry, "eager", build_refusing_meta), "eager")
    assert machine_warnings(run) == []
    check_memory(run, torch.device("cpu"), run.data.build(None))  # nothing estimated, nothing refused


def test_on_a_gpu_the_models_and_the_dataset_are_weighed_against_its_free_memory(registry, monkeypatch):
    monkeypatch.setattr("ganforge.guards.machine.device_free_bytes", lambda device: 1000)
    run = resolved(registry, "mlp")
    expected = r"needs at least [\d.]+ MiB of cuda:0 memory .*the models .*; the dataset synthetic on cuda:0: "
    with pytest.raises(UsageError, match=expected):
        check_memory(run, torch.device("cuda", 0), run.data.build(None))


def test_the_estimate_draws_no_random_numbers_so_initial_weights_stay_the_same(registry):
    run = resolved(registry, "mlp")
    spec = run.data.params.data_spec()
    torch.manual_seed(0)
    direct = run.model.build(spec).generator.state_dict()
    torch.manual_seed(0)
    check_with_built_components(run)
    machine_warnings(run)
    check_memory(run, torch.device("cpu"), run.data.build(None))
    after_estimates = run.model.build(spec).generator.state_dict()
    assert all(torch.equal(direct[key], after_estimates[key]) for key in direct)
