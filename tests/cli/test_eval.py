"""`ganforge eval` against hostile input: samples with NaN or too many to hold, sets that cannot be scored,
sample counts below a metric's need, a plugin metric's failure, a damaged classifier cache. Each refusal
is a one-line error naming the file or option and what is wrong, an exit code, no traceback."""

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from ganforge import GANMetric, Goal, SampleNeeds
from ganforge.cli import create_app
from ganforge.plugins import PluginSource, load_plugins
from tests.cli_results import invoke
from tests.fake_machine import fake_memory
from tests.plugin_fixtures import plugin_module
from tests.runs import SMOKE, craft

DATA = ["--data", "synthetic", "--data-param", "num_samples=600", "--data-param", "num_classes=4"]
REAL = ["--real", *DATA[1:]]


def test_samples_with_nan_or_infinity_are_refused_naming_the_file_and_the_count(app, tmp_path):
    torch.save(torch.full((50, 1, 28, 28), float("nan")), tmp_path / "nan.pt")
    result = invoke(app, "eval", "--samples", tmp_path / "nan.pt", *DATA, "--n", 50, exit_code=2)
    assert f"--samples {tmp_path / 'nan.pt'}: 39,200 values in 50 of the 50 images read are NaN or infinite" in (
        result.stderr
    )
    images = torch.rand(50, 1, 28, 28)
    images[3, 0, 0, 0], images[7, 0, 5, 5] = float("inf"), float("-inf")
    np.save(tmp_path / "inf.npy", images.numpy())
    result = invoke(app, "eval", "--samples", tmp_path / "inf.npy", *DATA, "--n", 50, exit_code=2)
    assert "inf.npy: 2 values in 2 of the 50 images read are NaN or infinite" in result.stderr


def test_a_generator_that_makes_nan_is_not_scored(app, checkpoint):
    def poison(state):
        for weights in state["generator"].values():
            weights.fill_(float("nan"))

    bad = craft(checkpoint, Path("nan.pt"), poison)
    result = invoke(app, "eval", bad, "--n", 20, "--metrics", "fid", exit_code=1)
    # Refused as it is loaded, before any image is made or classifier trained: its weights are not finite.
    assert "nan.pt: its generator tensor 'net.0.weight' holds NaN or infinite values" in result.stderr


UNUSABLE = {
    "empty.pt": (torch.zeros(0, 1, 28, 28), "holds no images (an array of shape [0, 1, 28, 28])"),
    "scalar.pt": (torch.tensor(0.5), "holds no images (an array of shape [])"),
    "one.pt": (torch.rand(1, 1, 28, 28), "metric fid needs at least 2 generated images, got 1"),
    "sparse.pt": (torch.rand(4, 1, 28, 28).to_sparse(), "holds a torch.sparse_coo tensor; expected a dense tensor"),
    "int64.pt": (torch.zeros(8, 1, 28, 28, dtype=torch.int64), "dtype torch.int64; expected uint8 pixels, or float"),
    "bool.pt": (torch.zeros(8, 1, 28, 28, dtype=torch.bool), "dtype torch.bool; expected uint8"),
    "complex.pt": (torch.zeros(8, 1, 28, 28, dtype=torch.complex64), "dtype torch.complex64; expected uint8"),
    "uint16.npy": (np.zeros((8, 28, 28), dtype=np.uint16), "dtype uint16; expected uint8"),
    "objects.npy": (np.array([1, "a"], dtype=object), "cannot read it: ValueError"),
}


@pytest.mark.parametrize("name", UNUSABLE)
def test_sample_sets_that_cannot_be_scored_are_refused_by_name(app, tmp_path, name):
    value, problem = UNUSABLE[name]
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, value, allow_pickle=True)
    else:
        torch.save(value, path)
    result = invoke(app, "eval", "--samples", path, *DATA, "--n", 50, "--metrics", "fid,kid", exit_code=2)
    assert f"error: --samples {path}: {problem}" in result.stderr


@pytest.mark.slow
def test_n_limits_the_samples_read(app, tmp_path):
    images = torch.rand(300, 1, 28, 28)
    torch.save(images, tmp_path / "many.pt")
    torch.save(images[:40].clone(), tmp_path / "first.pt")
    args = [*DATA, "--n", 40, "--metrics", "fid", "--json"]
    many = invoke(app, "eval", "--samples", tmp_path / "many.pt", *args).stdout
    first = invoke(app, "eval", "--samples", tmp_path / "first.pt", *args).stdout
    assert f"the first 40 of 300 images in {tmp_path / 'many.pt'}, read as [0, 1]" in many
    assert many.split('"scores"')[1].split("}")[0] == first.split('"scores"')[1].split("}")[0]


def test_a_samples_file_too_large_for_memory_is_refused_before_it_is_read(app, tmp_path, monkeypatch):
    torch.save(torch.rand(300, 1, 28, 28), tmp_path / "many.pt")
    fake_memory(monkeypatch, tmp_path, kilobytes=512)
    result = invoke(app, "eval", "--samples", tmp_path / "many.pt", *DATA, "--n", 300, exit_code=2)
    assert f"--samples {tmp_path / 'many.pt'}: reading 300 images needs about" in result.stderr
    assert "this machine has 512.0 KiB free; read fewer with --n" in result.stderr


@pytest.mark.slow
def test_only_n_images_of_a_large_samples_file_enter_memory(tmp_path):
    """A 250 MB file of which --n takes 100 images costs the process no more memory than a 1 MB one."""
    torch.save(torch.rand(80_000, 1, 28, 28), tmp_path / "large.pt")
    torch.save(torch.rand(300, 1, 28, 28), tmp_path / "small.pt")
    measure = (
        "import resource, subprocess, sys; "
        "subprocess.run([sys.executable, '-m', 'ganforge', *sys.argv[1:]], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    peaks = {}
    # The first evaluation may train and cache the domain classifier, which costs memory of its own: a warm-up.
    for name in ("small", "large", "small"):
        args = ["eval", "--samples", tmp_path / f"{name}.pt", *DATA, "--n", 100, "--metrics", "fid"]
        done = subprocess.run([sys.executable, "-c", measure, *map(str, args)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        peaks[name] = int(done.stdout) * 1024
    print(f"peak resident memory: large file {peaks['large'] / 2**20:.0f} MiB, small {peaks['small'] / 2**20:.0f} MiB")
    assert peaks["large"] - peaks["small"] < 64 * 2**20  # the file holds 250 MB


def test_validate_and_run_refuse_eval_samples_below_a_metrics_need(app, workdir):
    evaluated = ["--set", "eval.every=1", "--set", "eval.samples=3"]
    result = invoke(app, "validate", SMOKE, *evaluated, exit_code=2)
    assert (
        "eval.samples: 3 is too few for eval.metrics.3 (precision_recall), which needs at least 4 generated images, "
        "got 3 and at least 4 real images, got 3 (each image's radius is the distance to its k-th nearest other "
        "image, k=3)" in result.stderr
    )
    result = invoke(app, "run", SMOKE, "--quiet", *evaluated, exit_code=2)
    assert "eval.samples: 3 is too few" in result.stderr and not (workdir / "runs").exists()
    invoke(app, "validate", SMOKE, "--set", "eval.samples=3")  # never evaluated: nothing to check
    with_k = ["--set", "eval.every=1", "--set", "eval.samples=10", "--set", "eval.best=precision",
              "--set", "eval.metrics=[{name: precision_recall, params: {k: 10}}]"]  # fmt: skip
    result = invoke(app, "validate", SMOKE, *with_k, exit_code=2)
    assert "eval.samples: 10 is too few for eval.metrics.0 (precision_recall), which needs at least 11" in result.stderr


def test_eval_n_below_a_metrics_need_is_refused_before_any_work(app, tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    result = invoke(app, "eval", *REAL, "--n", 3, exit_code=2)
    assert "error: --n 3: metric precision_recall needs at least 4 generated images, got 3" in result.stderr
    result = invoke(app, "eval", *REAL, "--n", 1, "--metrics", "fid", exit_code=2)
    assert "error: --n 1: metric fid needs at least 2 generated images, got 1 and at least 2 real images" in (
        result.stderr
    )
    assert not (tmp_path / "cache").exists()  # refused before a classifier was trained
    few = ["--real", "synthetic", "--data-param", "num_samples=12", "--data-param", "num_classes=2"]
    result = invoke(app, "eval", *few, "--n", 100, exit_code=2)
    assert (
        "ganforge:synthetic gives 2 held-out and 10 training images: metric precision_recall needs at least 4 real "
        "images, got 2" in result.stderr
    )


class NeedyMetric(GANMetric):
    goals: ClassVar = {"needy": Goal("lower")}

    def __init__(self, params):
        pass

    def sample_needs(self):
        return SampleNeeds(generated=50, real=2, reason="its own estimate needs 50")

    def compute(self, generated, real):
        return {"needy": 0.0}


class BrokenMetric(GANMetric):
    goals: ClassVar = {"broken": Goal("lower")}

    def __init__(self, params):
        pass

    def compute(self, generated, real):
        raise ValueError("boom")


@pytest.fixture(scope="module")
def metrics_app():
    def register_metrics(register):
        register("needy", NeedyMetric)
        register("broken", BrokenMetric)

    sources = [PluginSource.from_entry_point(ep) for ep in entry_points(group="ganforge")]
    sources.append(PluginSource.from_object(plugin_module("metrics", register_metrics=register_metrics), "metrics"))
    return create_app(load_plugins(sources, disabled=[], strict=True))


def test_a_plugin_metric_states_its_needs_and_its_failure_is_named(metrics_app):
    result = invoke(metrics_app, "eval", *REAL, "--n", 20, "--metrics", "needy", exit_code=2)
    assert "--n 20: metric needy needs at least 50 generated images, got 20 (its own estimate needs 50)" in (
        result.stderr
    )
    invoke(metrics_app, "eval", *REAL, "--n", 50, "--metrics", "needy")
    result = invoke(metrics_app, "eval", *REAL, "--n", 20, "--metrics", "broken", exit_code=1)
    assert ":broken (" in result.stderr
    assert "failed on 20 generated and 20 real images: ValueError: boom" in result.stderr


def test_a_cached_classifier_without_its_record_or_with_a_damaged_one_is_named(app, tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    args = ["eval", "--real", "synthetic", "--data-param", "num_samples=120", "--n", 20, "--metrics", "fid"]
    invoke(app, *args)
    [cached] = (tmp_path / "cache" / "feature_networks").glob("*.pt")
    original = torch.load(cached, weights_only=True)
    damages = {
        "it has no record of how it was trained": {k: v for k, v in original.items() if k != "record"},
        "its record is damaged: record: Input should be a valid dictionary": {**original, "record": [1]},
        "its record is damaged: no feature_network, architecture": {**original, "record": {"test_accuracy": 0.5}},
        "its record is damaged: test_accuracy: Input should be less than or equal to 1": {
            **original, "record": {**original["record"], "test_accuracy": 7.0}
        },
        "its record names dataset 'ganforge:mnist', where 'ganforge:synthetic' is evaluated": {
            **original, "record": {**original["record"], "dataset": "ganforge:mnist"}
        },
        "TypeError: it holds a list, not a classifier's weights and record": [1, 2],
    }  # fmt: skip
    for problem, payload in damages.items():
        torch.save(payload, cached)
        result = invoke(app, *args, exit_code=1)
        assert f"cannot use the cached domain classifier {cached}: {problem}" in result.stderr
        assert "Delete the file and ganforge trains it again." in result.stderr
    torch.save(original, cached)
    invoke(app, *args)


def test_a_cache_that_cannot_be_written_only_warns(app, tmp_path, monkeypatch):
    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "a_file" / "cache"))
    result = invoke(
        app, "eval", "--real", "synthetic", "--data-param", "num_samples=120", "--n", 20, "--metrics", "fid"
    )
    assert "warning: cannot cache the domain classifier as" in result.stderr
    assert "fid" in result.stdout
