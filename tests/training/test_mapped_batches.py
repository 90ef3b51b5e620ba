"""Training from a memory-mapped dataset: the same batches, weights, resume and two-process run as from the
same images held in memory, a background thread that never outlives its epoch, and no copy on the GPU.

The images come from a third party's dataset, ``raw_pixels``: it writes its pixels once to a raw
uint8 file and gives them back mapped, or read into memory, as its ``mapped`` param says.
"""

import importlib
import json
import os
import signal
import subprocess
import sys
import threading

import pytest
import torch
from typer.testing import CliRunner

from ganforge.cli import create_app
from ganforge.config.resolve import load_config
from ganforge.errors import DataError, UsageError
from ganforge.evaluation.domain_classifier import ClassifierRecipe, domain_classifier
from ganforge.evaluation.domain_split import load_domain
from ganforge.guards.machine import dataset_copy_need
from ganforge.plugins import load_plugins
from ganforge.registry import Kind
from ganforge.training.batches import InMemoryBatches, MappedBatches, ShardedOrder, make_batches
from ganforge.training.distributed import Processes
from ganforge.training.interruption import RunInterrupted
from ganforge.training.progress import SilentReporter
from ganforge.training.runs import start_run
from tests.plugin_fixtures import install_distribution
from tests.runs import assert_same_weights, metrics, without_timing

RAW_PIXELS_PLUGIN = """
import os
from pathlib import Path

import numpy as np
import torch
from pydantic import Field

from ganforge import DataSpec, ImageTensorDataset, LoadedDataset, Params, hookimpl
from ganforge.contracts import map_images

SHAPE = (3, 16, 16)
CLASSES = 4


class RawParams(Params):
    directory: str
    count: int = Field(96, ge=2, le=4096)
    mapped: bool = True


def raw_file(params):
    path = Path(params.directory) / f"images-{params.count}.u8"
    if not path.exists():  # the processes of a launch may all get here: each writes its own part, renamed in place
        generator = torch.Generator().manual_seed(params.count)
        pixels = torch.randint(0, 256, (params.count, *SHAPE), generator=generator, dtype=torch.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f"{path.name}.{os.getpid()}")
        pixels.numpy().tofile(part)
        os.replace(part, path)
    return path


def load_raw(params, root):
    path = raw_file(params)
    shape = (params.count, *SHAPE)
    labels = torch.arange(params.count, dtype=torch.int64).mul(7).remainder(CLASSES)
    if params.mapped:
        dataset = map_images(path, shape, labels)
    else:
        dataset = ImageTensorDataset(torch.from_numpy(np.fromfile(path, dtype=np.uint8).reshape(shape)), labels)
    return LoadedDataset(dataset, DataSpec(SHAPE, CLASSES))


@hookimpl
def register_datasets(register):
    register("raw_pixels", load_raw, params=RawParams)
"""

CPU = torch.device("cpu")
CONDITIONAL = {"generator_conditioning": "concat", "discriminator_conditioning": "concat"}


@pytest.fixture(scope="module")
def raw_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    install_distribution(site, "ganforge-raw-pixels", "0.1.0", {"raw_pixels": "ganforge_raw_pixels"}, RAW_PIXELS_PLUGIN)
    return site


@pytest.fixture(scope="module")
def plugins(raw_site):
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(raw_site))
        importlib.invalidate_caches()
        yield load_plugins(strict=True)
    sys.modules.pop("ganforge_raw_pixels", None)


@pytest.fixture(scope="module")
def raw_app(plugins):
    return create_app(plugins)


def loaded(plugins, directory, mapped, count=96):
    params = {"directory": str(directory), "count": count, "mapped": mapped}
    return plugins.registry.get(Kind.DATASET, "raw_pixels").build(params, directory)


def raw_config(tmp_path, name, mapped, count=96, **train):
    config = {
        "name": name,
        "seed": 3,
        "data": {
            "name": "raw_pixels",
            "params": {"directory": str(tmp_path / "data"), "mapped": mapped, "count": count},
        },
        "model": {"name": "mlp", "params": {"latent_dim": 8, "hidden": [16], **CONDITIONAL}},
        "loss": {"name": "non_saturating"},
        "train": {"epochs": 2, "batch_size": 12, "device": "cpu", "log_every": 2, "sample_every": 0, **train},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(config))
    return path


def run(app, *args):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result


# -- the batches themselves ------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "batch_size"), [(96, 12), (100, 16), (99, 16)])
@pytest.mark.parametrize("world_size", [1, 2])
def test_mapped_batches_are_those_of_the_same_images_in_memory_epoch_after_epoch(
    plugins, tmp_path, count, batch_size, world_size
):
    mapped, in_memory = loaded(plugins, tmp_path, True, count), loaded(plugins, tmp_path, False, count)
    for rank in range(world_size):
        processes = Processes(CPU, rank, world_size)
        from_map = make_batches(mapped, batch_size, 0, 5, processes, num_classes=4)
        from_memory = make_batches(in_memory, batch_size, 0, 5, processes, num_classes=4)
        assert isinstance(from_map, MappedBatches) and isinstance(from_memory, InMemoryBatches)
        assert len(from_map) == len(from_memory)
        for _epoch in range(3):
            pairs = list(zip(from_map, from_memory, strict=True))
            assert len(pairs) == len(from_memory)
            for (images, labels), (expected_images, expected_labels) in pairs:
                assert images.dtype == torch.float32 and labels.dtype == torch.int64
                assert torch.equal(images, expected_images) and torch.equal(labels, expected_labels)


def test_a_mapped_dataset_s_labels_are_checked_against_the_classes_before_training(plugins, tmp_path):
    with pytest.raises(UsageError, match=r"the dataset's labels.*a conditional model reads them as class indices"):
        make_batches(loaded(plugins, tmp_path, True), 12, 0, 5, Processes(CPU), num_classes=3)


def test_leaving_an_epoch_early_stops_the_thread_that_reads_ahead(plugins, tmp_path):
    batches = make_batches(loaded(plugins, tmp_path, True), 12, 0, 5, Processes(CPU))
    before = threading.active_count()
    epoch = iter(batches)
    next(epoch)
    assert threading.active_count() == before + 1
    epoch.close()
    assert threading.active_count() == before
    assert len(list(batches)) == len(batches)  # the next epoch starts a thread of its own
    assert threading.active_count() == before


def test_an_error_in_the_thread_that_reads_ahead_is_raised_in_the_training_loop(plugins, tmp_path):
    dataset = loaded(plugins, tmp_path, True).dataset
    before = threading.active_count()
    past_the_end = ShardedOrder(len(dataset) + 24, 12, torch.Generator().manual_seed(0))
    with pytest.raises(IndexError, match="out of range"):
        list(MappedBatches(dataset, past_the_end, CPU))
    assert threading.active_count() == before


def test_a_file_cut_short_during_the_run_stops_it_with_an_error_not_a_crash(plugins, tmp_path):
    data = loaded(plugins, tmp_path, True)
    batches = make_batches(data, 12, 0, 5, Processes(CPU))
    assert len(list(batches)) == 8
    os.truncate(data.dataset.path, 1000)  # no image of it may be read now: past the end of the file is SIGBUS
    with pytest.raises(DataError, match=rf"{data.dataset.path.name} is 1,000 bytes now, 73,728 when training began"):
        next(iter(batches))


def test_a_mapped_dataset_is_not_counted_as_a_copy_on_the_gpu(plugins, tmp_path):
    run = load_config(raw_config(tmp_path, "gpu", mapped=True), plugins.registry)
    gpu = torch.device("cuda", 0)
    in_memory = dataset_copy_need(run, loaded(plugins, tmp_path / "data", False), gpu)
    assert in_memory is not None and in_memory.gpu == 96 * 3 * 16 * 16 + 96 * 8
    assert dataset_copy_need(run, loaded(plugins, tmp_path / "data", True), gpu) is None


def test_the_evaluation_domain_of_a_mapped_set_takes_its_rows_from_the_map_and_is_that_of_the_set_in_memory(
    plugins, tmp_path
):
    component = plugins.registry.get(Kind.DATASET, "raw_pixels")
    domains = {
        mapped: load_domain(component, {"directory": str(tmp_path), "mapped": mapped}, tmp_path)
        for mapped in (True, False)
    }
    mapped, in_memory = domains[True], domains[False]
    for side in ("train", "held_out"):
        rows, copied = getattr(mapped, side), getattr(in_memory, side)
        assert rows.rows is not None and rows.source.shape[0] == 96  # rows of the whole map, not a copy of them
        assert len(rows) == len(copied) and torch.equal(rows.images, copied.images)
        assert torch.equal(rows.labels, copied.labels)
        assert torch.equal(rows.subset(10, seed=1).images, copied.subset(10, seed=1).images)
    recipe = ClassifierRecipe(epochs=1, batch_size=32)
    networks = [domain_classifier(domain, CPU, tmp_path / f"cache-{m}", recipe) for m, domain in domains.items()]
    weights = [network.module.state_dict() for network in networks]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


# -- runs ------------------------------------------------------------------------------------------


def test_a_run_from_the_mapped_file_trains_the_weights_of_one_from_memory(raw_app, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, mapped in (("mapped", True), ("in_memory", False)):
        run(raw_app, "run", raw_config(tmp_path, name, mapped), "--quiet")
    runs = tmp_path / "runs"
    assert_same_weights(runs / "mapped" / "checkpoints" / "last.pt", runs / "in_memory" / "checkpoints" / "last.pt")
    assert without_timing(metrics(runs / "mapped")) == without_timing(metrics(runs / "in_memory"))


class StopAt(SilentReporter):
    """Leaves the run's epoch early at a logged step: as Ctrl-C would, or with an exception of its own."""

    def __init__(self, step, how):
        self.step, self.how = step, how

    def log(self, record):
        if record["event"] == "step" and record["step"] == self.step:
            if self.how == "interrupted":
                signal.raise_signal(signal.SIGINT)  # the run's own handler takes it: save, then stop
            else:
                raise RuntimeError("a failure mid-epoch")


@pytest.mark.parametrize("how", ["interrupted", "failed"])
def test_a_run_that_leaves_its_epoch_early_leaves_no_thread_behind(plugins, tmp_path, monkeypatch, how):
    monkeypatch.chdir(tmp_path)
    # An epoch of 40 steps, left at its 10th: far more batches are still to come than the thread reads ahead.
    run = load_config(raw_config(tmp_path, how, mapped=True, count=480), plugins.registry)
    before = threading.active_count()
    with pytest.raises(RunInterrupted if how == "interrupted" else RuntimeError):
        start_run(run, reporter=StopAt(10, how))
    assert threading.active_count() == before


def test_a_mapped_run_stopped_mid_epoch_resumes_to_the_weights_of_an_unstopped_one(
    plugins, raw_app, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    run(raw_app, "run", raw_config(tmp_path, "straight", mapped=True), "--quiet")
    with pytest.raises(RunInterrupted):
        start_run(
            load_config(raw_config(tmp_path, "stopped", mapped=True), plugins.registry),
            reporter=StopAt(10, "interrupted"),
        )
    stopped = tmp_path / "runs" / "stopped"
    state = torch.load(stopped / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and state["epoch_step"] == 2  # saved mid-epoch
    run(raw_app, "run", "--resume", stopped, "--quiet")
    straight = tmp_path / "runs" / "straight"
    assert_same_weights(straight / "checkpoints" / "last.pt", stopped / "checkpoints" / "last.pt")
    assert without_timing(metrics(stopped)) == without_timing(metrics(straight))


@pytest.mark.slow
def test_a_two_process_run_from_the_mapped_file_trains_the_weights_of_one_from_memory(raw_site, tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(raw_site)}
    for name, mapped in (("mapped", True), ("in_memory", False)):
        command = [sys.executable, "-m", "ganforge", "run", str(raw_config(tmp_path, name, mapped)), "--quiet"]
        result = subprocess.run(
            [*command, "--nproc", "2"], cwd=tmp_path, capture_output=True, text=True, env=environment, timeout=240
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "distributed: 2 processes" in result.stdout
    runs = tmp_path / "runs"
    assert_same_weights(runs / "mapped" / "checkpoints" / "last.pt", runs / "in_memory" / "checkpoints" / "last.pt")
    assert without_timing(metrics(runs / "mapped")) == without_timing(metrics(runs / "in_memory"))
