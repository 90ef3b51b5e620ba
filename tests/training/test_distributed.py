"""Distributed data-parallel runs: real CPU processes (gloo) started by torchrun's launcher.

Each launch starts two Python processes that import torch, so these tests take seconds each and
are marked slow. The sharding rule itself is checked in-process first, for many sizes.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ganforge.training.batches import ShardedOrder
from tests.plugin_fixtures import install_distribution
from tests.runs import EXAMPLES, LONG_EPOCH, SMOKE, assert_same_weights, logged_steps, metrics, wait_for, without_timing

# A dataset whose image i has every pixel equal to i, and a discriminator that writes down the
# indices of the real images it is shown (the only constant images it sees) and can fail on purpose.
PROBE_PLUGIN = """
import json
import os
import time

import torch
from pydantic import Field
from torch import nn
from torch.utils.data import Dataset

from ganforge import DataSpec, GANModels, ImageTensorDataset, LoadedDataset, Params, hookimpl


class IndexedParams(Params):
    count: int = Field(100, ge=2, le=256)
    in_memory: bool = True


class ItemDataset(Dataset):
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index].float().div(127.5).sub(1), 0


def load_indexed(params, root):
    images = torch.arange(params.count, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous()
    dataset = ImageTensorDataset(images, torch.zeros(params.count)) if params.in_memory else ItemDataset(images)
    return LoadedDataset(dataset, DataSpec(shape=(1, 4, 4)))


class ProbeParams(Params):
    fail_rank: int = -1
    fail_at_call: int = 0


class Recorder(nn.Module):
    def __init__(self, params):
        super().__init__()
        self.linear = nn.Linear(16, 1)
        self.params = params
        self.calls = 0
        self.rank = int(os.environ.get("RANK", "0"))
        self.out = os.path.join(os.environ["GANFORGE_PROBE_DIR"], f"rank{self.rank}.jsonl")

    def forward(self, x):
        self.calls += 1
        if self.rank == self.params.fail_rank and self.calls == self.params.fail_at_call:
            with open(os.path.join(os.environ["GANFORGE_PROBE_DIR"], "fault"), "w") as stream:
                stream.write(str(time.time()))
            raise RuntimeError(f"probe: injected fault on rank {self.rank} at call {self.calls}")
        flat = x.flatten(1)
        # Training only: the pre-flight check runs a copy of D, in eval mode, on the first real images.
        if self.training and bool((flat.amax(1) == flat.amin(1)).all()):
            indices = flat[:, 0].add(1).mul(127.5).round().long().tolist()
            with open(self.out, "a") as stream:
                stream.write(json.dumps(indices) + "\\n")
        return self.linear(flat).view(-1)


def build_probe(params, data):
    generator = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Unflatten(1, (1, 4, 4)))
    return GANModels(generator, Recorder(params), latent_dim=8)


@hookimpl
def register_datasets(register):
    register("indexed", load_indexed, params=IndexedParams)


@hookimpl
def register_architectures(register):
    register("probe", build_probe, params=ProbeParams)
"""


@pytest.fixture(scope="module")
def probe_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    install_distribution(site, "ganforge-probe", "0.1.0", {"probe": "ganforge_probe"}, PROBE_PLUGIN)
    return site


def probe_config(tmp_path, count=100, in_memory=True, batch_size=10, epochs=2, **model):
    config = {
        "name": "probe",
        "data": {"name": "indexed", "params": {"count": count, "in_memory": in_memory}},
        "model": {"name": "probe", "params": model},
        "loss": {"name": "non_saturating"},
        "train": {"epochs": epochs, "batch_size": batch_size, "device": "cpu", "log_every": 5, "sample_every": 0},
    }
    path = tmp_path / "probe.yaml"
    path.write_text(json.dumps(config))
    return path


def ganforge(cwd, *args, site=None, timeout=240, **env):
    environment = {**os.environ, **env}
    if site is not None:
        environment["PYTHONPATH"] = str(site)
    return subprocess.run(
        [sys.executable, "-m", "ganforge", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=environment,
        timeout=timeout,
    )


def succeeded(result):
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def seen_per_epoch(probe_dir, world_size, steps):
    """The indices each rank was given, cut into epochs of ``steps`` calls."""
    epochs = []
    for rank in range(world_size):
        lines = [json.loads(line) for line in (probe_dir / f"rank{rank}.jsonl").read_text().splitlines()]
        assert len(lines) % steps == 0, (rank, len(lines))
        for epoch in range(len(lines) // steps):
            if len(epochs) <= epoch:
                epochs.append([])
            epochs[epoch].append([i for batch in lines[epoch * steps : (epoch + 1) * steps] for i in batch])
    return epochs


# -- the sharding rule, in one process ---------------------------------------------------------


@pytest.mark.parametrize(
    ("count", "batch_size", "world_size"),
    [(100, 10, 2), (101, 10, 2), (103, 10, 2), (96, 12, 3), (1000, 64, 4), (70, 8, 8), (1025, 64, 1)],
)
def test_every_image_once_per_epoch_across_ranks(count, batch_size, world_size):
    orders = [
        ShardedOrder(count, batch_size, torch.Generator().manual_seed(3), r, world_size) for r in range(world_size)
    ]
    single = ShardedOrder(count, batch_size, torch.Generator().manual_seed(3))
    assert len({len(order) for order in orders}) == 1  # every rank takes the same number of steps
    for _epoch in range(2):
        per_rank = [list(order) for order in orders]
        whole = list(single)
        taken = torch.cat([torch.cat(steps) for steps in per_rank])
        assert len(set(taken.tolist())) == len(taken)  # nothing twice
        remainder = count % batch_size
        trimmed = remainder % world_size if remainder >= 2 * world_size else remainder
        assert len(taken) == count - trimmed  # a trimmed last batch leaves fewer images than processes
        for step, steps in enumerate(zip(*per_rank, strict=True)):
            assert len({len(share) for share in steps}) == 1  # equal shares
            # the ranks' shares of a step are the images one process takes at that step
            assert torch.equal(torch.cat(steps), whole[step][: sum(len(share) for share in steps)])


def test_a_batch_that_does_not_split_evenly_is_refused_before_any_process_starts(app, workdir):
    result = CliRunner().invoke(app, ["run", str(SMOKE), "--nproc", "3"])  # smoke's batch is 32
    assert result.exit_code == 2
    assert "train.batch_size: 32 is the global batch and does not split evenly over 3 processes" in result.output
    assert "starting" not in result.output
    assert not (workdir / "runs").exists()


@pytest.mark.slow
def test_inside_a_launch_each_process_names_itself_in_its_error(probe_site, tmp_path):
    """torchrun itself, with a batch that does not split: every rank refuses it, saying which it is."""
    config = probe_config(tmp_path, batch_size=9)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["-m", "ganforge", "run", str(config), "--quiet"]
    environment = {**os.environ, "PYTHONPATH": str(probe_site), "GANFORGE_PROBE_DIR": str(tmp_path)}
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240, env=environment)
    assert result.returncode != 0
    for rank in (0, 1):
        message = f"error: rank {rank}: train.batch_size: 9 is the global batch and does not split evenly"
        assert message in result.stderr
    assert not (tmp_path / "runs" / "probe").exists()


LAUNCHED = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1"}


@pytest.mark.parametrize(
    ("arguments", "exit_code", "expected"),
    [
        (["--version"], 0, "ganforge "),  # printed to stdout, which must be flushed by hand
        (["run", "missing.yaml"], 2, "missing.yaml"),
        (["no-such-command"], 2, "No such command"),
    ],
)
def test_a_launched_process_ends_with_its_command_s_exit_code_and_all_its_output(
    tmp_path, arguments, exit_code, expected
):
    """A process of a launch that succeeds skips interpreter shutdown (DDP's leaked gloo threads can abort it
    there), one that fails does not: either way its exit code and everything it printed come through."""
    environment = {**os.environ, **LAUNCHED}
    result = subprocess.run(
        [sys.executable, "-m", "ganforge", *arguments], cwd=tmp_path, capture_output=True, text=True, env=environment
    )
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert expected in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("device", "message"),
    [
        ("mps", "train.device: 'mps' cannot be shared by the processes of a distributed run; use auto, cuda"),
        ("cuda:1", "train.device: 'cuda:1' cannot be shared by the processes of a distributed run"),
    ],
)
def test_a_device_the_processes_cannot_share_is_refused_before_any_starts(app, workdir, device, message):
    result = CliRunner().invoke(app, ["run", str(SMOKE), "--nproc", "2", "--set", f"train.device={device}"])
    assert result.exit_code == 2
    assert message in result.output
    assert "starting" not in result.output
    assert not (workdir / "runs").exists()


def test_nproc_inside_a_torchrun_launch_is_refused(app, workdir, monkeypatch):
    for name, value in {
        "RANK": "0",
        "WORLD_SIZE": "2",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "x",
        "MASTER_PORT": "1",
    }.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["run", str(SMOKE), "--nproc", "2"])
    assert result.exit_code == 2
    assert "--nproc starts the processes itself; leave it out inside a torchrun launch" in result.output


# -- real processes ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("in_memory", [True, False], ids=["in_memory", "dataloader"])
def test_two_processes_see_each_image_once_per_epoch(probe_site, tmp_path, in_memory):
    config = probe_config(tmp_path, count=103, in_memory=in_memory, batch_size=10, epochs=3)
    succeeded(
        ganforge(tmp_path, "run", config, "--nproc", "2", "--quiet", site=probe_site, GANFORGE_PROBE_DIR=tmp_path)
    )
    # 10 full steps of 5 images per rank, then a last batch of 3 trimmed to 2: one image per rank
    # would leave batch norm one sample, so that batch is dropped and 3 images sit each epoch out.
    epochs = seen_per_epoch(tmp_path, world_size=2, steps=10)
    assert len(epochs) == 3
    orders = []
    for first, second in epochs:
        assert len(first) == len(second) == 50
        assert not set(first) & set(second)  # the ranks' shares never overlap
        assert len(set(first + second)) == 100
        orders.append(first + second)
    assert orders[0] != orders[1]  # a fresh permutation each epoch

    lines = metrics(tmp_path / "runs" / "probe")
    assert [r["step"] for r in lines if r["event"] == "epoch"] == [10, 20, 30]


@pytest.mark.slow
def test_two_process_smoke_run_writes_one_run_folder_that_samples_in_one_process(tmp_path):
    result = succeeded(ganforge(tmp_path, "run", SMOKE, "--nproc", "2", "--quiet"))
    assert "distributed: 2 processes (gloo on cpu); train.batch_size 32 is the global batch" in result.stdout
    assert result.stdout.count("epoch 2/2") == 1  # rank 0 alone reports
    run_dir = tmp_path / "runs" / "smoke"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["smoke"]
    assert {p.name for p in (run_dir / "checkpoints").iterdir()} == {"epoch_0001.pt", "epoch_0002.pt", "last.pt"}
    lines = metrics(run_dir)
    epochs = [r for r in lines if r["event"] == "epoch"]
    assert [r["step"] for r in epochs] == [8, 16]  # 256 images / 32 global: 8 steps, as in one process
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert not any(key.startswith("module.") for key in state["generator"])  # unwrapped weights
    assert len(state["processes"]) == 2

    succeeded(ganforge(tmp_path, "sample", run_dir / "checkpoints" / "last.pt", "--out", "grid.png", "--device", "cpu"))
    assert (tmp_path / "grid.png").stat().st_size > 0
    # ... and it resumes in one process
    succeeded(ganforge(tmp_path, "run", "--resume", run_dir, "--set", "train.epochs=3", "--quiet"))
    assert [r["step"] for r in metrics(run_dir) if r["event"] == "epoch"] == [8, 16, 24]


@pytest.mark.slow
def test_mlp_recipe_on_an_mnist_subset_with_torchrun(tmp_path, real_mnist_root):
    """The launch a user types: torchrun itself, on seed 001's MLP recipe."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["-m", "ganforge", "run", str(EXAMPLES / "mnist_mlp.yaml"), "--quiet"]
    for override in ("data.params.limit=2000", "train.epochs=2", "train.device=cpu", "eval.every=0", "name=sub"):
        command += ["--set", override]
    environment = {**os.environ, "GANFORGE_DATA": str(real_mnist_root)}
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = tmp_path / "runs" / "sub"
    epochs = [r for r in metrics(run_dir) if r["event"] == "epoch"]
    assert [r["step"] for r in epochs] == [20, 40]  # 2000 images, global batch 100
    assert all(0 < r["D(x)"] < 1 and r["g_loss"] > 0 for r in epochs)
    succeeded(ganforge(tmp_path, "sample", run_dir / "checkpoints" / "last.pt", "--out", "s.pt", "--n", "8"))
    images = torch.load(tmp_path / "s.pt", weights_only=True)
    assert images.shape == (8, 1, 28, 28)


@pytest.mark.slow
def test_a_two_process_run_resumes_to_the_weights_of_an_unstopped_one(tmp_path):
    succeeded(
        ganforge(tmp_path, "run", SMOKE, "--nproc", "2", "--quiet", "--set", "name=straight", "--set", "train.epochs=3")
    )
    succeeded(
        ganforge(tmp_path, "run", SMOKE, "--nproc", "2", "--quiet", "--set", "name=stopped", "--set", "train.epochs=1")
    )
    stopped = tmp_path / "runs" / "stopped"
    succeeded(ganforge(tmp_path, "run", "--resume", stopped, "--nproc", "2", "--quiet", "--set", "train.epochs=3"))
    straight = tmp_path / "runs" / "straight"
    assert_same_weights(straight / "checkpoints" / "last.pt", stopped / "checkpoints" / "last.pt")
    assert without_timing(metrics(stopped)) == without_timing(metrics(straight))


@pytest.mark.slow
def test_a_one_process_checkpoint_resumes_in_two_processes(tmp_path):
    succeeded(ganforge(tmp_path, "run", SMOKE, "--quiet", "--set", "train.epochs=1"))
    run_dir = tmp_path / "runs" / "smoke"
    resume = ["run", "--resume", run_dir, "--nproc", "2", "--quiet", "--set", "train.epochs=2"]
    result = succeeded(ganforge(tmp_path, *resume, "--set", "train.sync_batchnorm=true"))
    assert "saved by 1 process(es), this run has 2: training goes on with new noise streams" in result.stdout
    assert "warning: train.sync_batchnorm: PyTorch's SyncBatchNorm runs on CUDA only" in result.stdout
    assert [r["step"] for r in metrics(run_dir) if r["event"] == "epoch"] == [8, 16]


@pytest.mark.slow
def test_a_failing_rank_stops_the_whole_run_with_its_error(probe_site, tmp_path):
    config = probe_config(tmp_path, count=200, batch_size=20, epochs=100_000, fail_rank=1, fail_at_call=40)
    started = time.time()
    result = ganforge(tmp_path, "run", config, "--nproc", "2", "--quiet", site=probe_site, GANFORGE_PROBE_DIR=tmp_path)
    ended = time.time()
    assert result.returncode == 1, result.stdout + result.stderr
    assert "RuntimeError: probe: injected fault on rank 1 at call 40" in result.stderr
    assert "error: the run stopped: rank 1 of 2 exited with code 1" in result.stderr
    fault = float((tmp_path / "fault").read_text())
    print(f"run exited {ended - fault:.2f} s after rank 1 raised ({ended - started:.1f} s in all)")
    # The one checkpoint a failed run may leave is a whole one.
    last = tmp_path / "runs" / "probe" / "checkpoints" / "last.pt"
    if last.exists():
        torch.load(last, weights_only=True)


@pytest.mark.slow
def test_ctrl_c_on_a_two_process_run_saves_mid_epoch_and_resume_reaches_the_unstopped_weights(tmp_path):
    sets = [argument for override in LONG_EPOCH for argument in ("--set", override)]
    succeeded(ganforge(tmp_path, "run", SMOKE, "--nproc", "2", "--quiet", "--set", "name=straight", *sets))
    command = [sys.executable, "-m", "ganforge", "run", str(SMOKE), "--nproc", "2", "--quiet", "--set", "name=stopped"]
    # Its own process group, as a terminal gives a job: Ctrl-C signals the launcher and both ranks.
    process = subprocess.Popen(
        [*command, *sets],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    stopped = tmp_path / "runs" / "stopped"
    wait_for(lambda: logged_steps(stopped) >= 20, process)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "stopped by SIGINT at epoch 1, step" in stderr
    assert f"Continue with: ganforge run --resume {Path('runs') / 'stopped'} --nproc 2" in stderr
    state = torch.load(stopped / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 0 and state["epoch_step"] >= 20 and state["epoch_step"] % 4 == 0  # at a logged line

    succeeded(ganforge(tmp_path, "run", "--resume", stopped, "--nproc", "2", "--quiet"))
    straight = tmp_path / "runs" / "straight"
    assert_same_weights(straight / "checkpoints" / "last.pt", stopped / "checkpoints" / "last.pt")
    assert without_timing(metrics(stopped)) == without_timing(metrics(straight))
