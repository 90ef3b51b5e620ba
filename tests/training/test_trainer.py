"""The trainer end to end through the CLI, on the smoke example's synthetic data."""

import gc
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ganforge.config import load_config
from ganforge.training.progress import SilentReporter
from ganforge.training.runs import start_run
from tests.runs import METRIC_KEYS, SMOKE, assert_same_weights, metrics, run, train, without_timing


def test_smoke_run_writes_the_whole_run_folder(app, workdir):
    train(app)
    run_dir = workdir / "runs" / "smoke"
    assert (run_dir / "config.yaml").exists() and (run_dir / "plot.png").exists()
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["epoch_0001.png", "epoch_0002.png", "real.png"]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["epoch_0001.pt", "epoch_0002.pt", "last.pt"]
    records = metrics(run_dir)
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [1, 2]
    for record in records:
        assert record.keys() >= METRIC_KEYS
        assert 0 <= record["D(x)"] <= 1 and 0 <= record["d_acc_fake"] <= 1
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert (state["epoch"], state["step"]) == (2, 16)
    assert {"optimizer_generator", "optimizer_discriminator", "rng", "config"} <= state.keys()
    assert state["config"]["model"]["params"]["hidden"] == [64, 64]  # the resolved config travels along


def test_the_resolved_config_has_every_default_filled_in(app, workdir):
    train(app, "loss.name=hinge")
    import yaml

    resolved = yaml.safe_load((workdir / "runs" / "smoke" / "config.yaml").read_text())
    assert resolved["loss"] == {"name": "hinge", "params": {"r1_gamma": 0.0, "r2_gamma": 0.0}}
    assert resolved["train"]["n_critic"] == 1
    assert resolved["train"]["generator_batch"] == "reuse" and resolved["train"]["penalty_every"] == 1
    assert resolved["augment"] == {"pipeline": [], "strength": 1.0, "adaptive": None}


def test_same_seed_same_metrics(app, workdir):
    train(app, "name=first")
    train(app, "name=second")
    assert without_timing(metrics(workdir / "runs" / "first")) == without_timing(metrics(workdir / "runs" / "second"))
    train(app, "name=third", "seed=1")
    assert without_timing(metrics(workdir / "runs" / "third")) != without_timing(metrics(workdir / "runs" / "first"))


def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(app, workdir):
    train(app, "name=straight", "train.epochs=3")
    train(app, "name=stopped", "train.epochs=1")
    stopped = workdir / "runs" / "stopped"
    run(app, "run", "--resume", str(stopped), "--set", "train.epochs=3", "--quiet")
    assert_same_weights(workdir / "runs" / "straight" / "checkpoints" / "last.pt", stopped / "checkpoints" / "last.pt")
    straight = without_timing(metrics(workdir / "runs" / "straight"))
    assert without_timing(metrics(stopped)) == straight


def test_an_existing_run_folder_is_never_overwritten_silently(app, workdir):
    train(app)
    last = workdir / "runs" / "smoke" / "checkpoints" / "last.pt"
    before = last.read_bytes()
    result = CliRunner().invoke(app, ["run", str(SMOKE), "--quiet"])
    assert result.exit_code == 2
    assert "already exists" in result.stderr and "--overwrite" in result.stderr
    assert last.read_bytes() == before
    train_result = CliRunner().invoke(app, ["run", str(SMOKE), "--quiet", "--overwrite", "--set", "train.epochs=1"])
    assert train_result.exit_code == 0
    assert not (workdir / "runs" / "smoke" / "checkpoints" / "epoch_0002.pt").exists()


@pytest.mark.parametrize(
    "overrides",
    [
        ["loss.name=wasserstein", "train.n_critic=2"],
        ["loss.name=least_squares", "train.ema_decay=0.9"],
        ["model.name=dcgan", "model.params={}", "train.epochs=1"],
        ["loss.name=hinge", "loss.params.r1_gamma=1.0", "train.epochs=1"],
        ["loss.name=rpgan", "loss.params={r1_gamma: 0.1, r2_gamma: 0.1}", "train.epochs=1"],  # R3GAN's objective
    ],
)
def test_other_components_and_options_train(app, workdir, overrides):
    train(app, *overrides)
    records = metrics(workdir / "runs" / "smoke")
    assert all(r["d_loss"] is not None and r["g_loss"] is not None for r in records)


def test_sample_makes_a_grid_and_a_tensor_from_a_checkpoint_alone(app, workdir, tmp_path_factory):
    train(app)
    checkpoint = workdir / "runs" / "smoke" / "checkpoints" / "last.pt"
    elsewhere = tmp_path_factory.mktemp("fresh")
    os.chdir(elsewhere)
    run(app, "sample", str(checkpoint), "--n", "16", "--out", "grid.png")
    assert (elsewhere / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run(app, "sample", str(checkpoint), "--n", "7", "--out", "samples.pt")
    images = torch.load(elsewhere / "samples.pt", weights_only=True)
    assert images.shape == (7, 1, 28, 28)
    assert images.min() >= -1 and images.max() <= 1


def test_sample_refuses_what_is_not_a_checkpoint(app, workdir):
    (workdir / "junk.pt").write_bytes(b"not a checkpoint")
    result = CliRunner().invoke(app, ["sample", "junk.pt", "--out", "x.png"])
    assert result.exit_code != 0
    assert "junk.pt" in result.stderr and "Traceback" not in result.output


def test_tensorboard_events_when_installed(app, workdir):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(app, "output.loggers=[tensorboard]")
    events = EventAccumulator(str(workdir / "runs" / "smoke" / "tensorboard"))
    events.Reload()
    assert {"train/d_loss", "train/D(G(z))", "epoch/g_loss"} <= set(events.Tags()["scalars"])
    assert {"samples/real", "samples/generated"} <= set(events.Tags()["images"])
    assert [e.step for e in events.Scalars("epoch/d_loss")] == [8, 16]


def test_resume_refuses_a_config_that_no_longer_fits_the_checkpoint(app, workdir):
    train(app, "train.epochs=1")
    run_dir = workdir / "runs" / "smoke"
    before = (run_dir / "checkpoints" / "last.pt").read_bytes()
    result = CliRunner().invoke(app, ["run", "--resume", str(run_dir), "--set", "model.params.hidden=[32]", "--quiet"])
    assert result.exit_code == 2
    assert "does not fit the config" in result.stderr and "Traceback" not in result.output
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == before


def test_resume_of_a_folder_without_a_run(app, workdir):
    result = CliRunner().invoke(app, ["run", "--resume", "runs/nothing"])
    assert result.exit_code == 2
    assert "runs/nothing/config.yaml" in result.stderr


def resident_bytes():
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class MemoryProbe(SilentReporter):
    """At each logged line: resident memory and the number of live tensors."""

    def __init__(self):
        self.samples = []

    def log(self, record):
        if record["event"] == "step":
            gc.collect()
            tensors = sum(1 for obj in gc.get_objects() if issubclass(type(obj), torch.Tensor))
            self.samples.append((record["step"], resident_bytes(), tensors))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads resident memory from /proc")
def test_memory_stays_flat_over_thousands_of_steps(registry, workdir):
    overrides = ["data.params.num_samples=16384", "train.batch_size=8", "model.params.hidden=[32]"]
    overrides += ["train.epochs=2", "train.log_every=256", "train.sample_every=0"]
    probe = MemoryProbe()
    start_run(load_config(SMOKE, registry, overrides), reporter=probe)
    steps = [step for step, _, _ in probe.samples]
    assert steps[-1] == 4096
    _, settled_rss, settled_tensors = probe.samples[1]  # after 512 steps
    growth = max(rss for _, rss, _ in probe.samples[1:]) - settled_rss
    print(f"resident memory from step 512 to 4096: +{growth / 2**20:.2f} MiB; live tensors {settled_tensors}")
    assert all(tensors == settled_tensors for _, _, tensors in probe.samples[1:])  # no per-step tensors kept
    assert growth < 16 * 2**20
