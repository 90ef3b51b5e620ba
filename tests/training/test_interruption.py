"""Faults a long run meets: signals, hard kills, damaged or hostile checkpoints, divergence, bad input."""

import errno
import gc
import json
import os
import signal
import subprocess
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from pydantic import Field
from typer.testing import CliRunner

from ganforge import GANLoss, Params
from ganforge.cli import create_app
from ganforge.config import load_config
from ganforge.plugins import PluginSource, load_plugins
from ganforge.training.progress import SilentReporter
from ganforge.training.runs import start_run
from tests.plugin_fixtures import plugin_module
from tests.training.test_trainer import SMOKE, assert_same_weights, metrics, run, train, without_timing

# One long epoch of small steps: a signal sent after a few logged lines lands mid-epoch.
LONG_EPOCH = ["data.params.num_samples=4096", "model.params.hidden=[256, 256]", "train.epochs=2", "train.log_every=4"]


def start(workdir, name, *overrides):
    command = [sys.executable, "-m", "ganforge", "run", str(SMOKE), "--quiet", "--set", f"name={name}"]
    for override in overrides:
        command += ["--set", override]
    return subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, process, seconds=120):
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def logged_steps(run_dir):
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    return max((line["step"] for line in lines), default=0)


@pytest.mark.slow
@pytest.mark.parametrize(("sent", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_mid_epoch_saves_and_resume_reaches_the_uninterrupted_weights(app, workdir, sent, exit_code):
    train(app, "name=straight", *LONG_EPOCH)
    process = start(workdir, "stopped", *LONG_EPOCH)
    stopped = workdir / "runs" / "stopped"
    wait_for(lambda: logged_steps(stopped) >= 20, process)  # epoch 1 has 128 steps
    process.send_signal(sent)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == exit_code, stderr
    assert f"stopped by {sent.name} at epoch 1, step" in stderr
    assert f"Continue with: ganforge run --resume {Path('runs') / 'stopped'}" in stderr
    state = torch.load(stopped / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == 0 and 20 <= state["epoch_step"] < 128  # saved mid-epoch

    run(app, "run", "--resume", str(stopped), "--quiet")
    straight = workdir / "runs" / "straight"
    assert_same_weights(straight / "checkpoints" / "last.pt", stopped / "checkpoints" / "last.pt")
    assert without_timing(metrics(stopped)) == without_timing(metrics(straight))


@pytest.mark.slow
def test_a_second_sigint_stops_at_once_and_keeps_the_last_whole_checkpoint(workdir):
    # Steps of a second or so: the second signal comes while the first one waits for the step to end.
    slow_steps = [*LONG_EPOCH, "model.params.hidden=[2048, 2048]", "train.batch_size=1024", "train.log_every=1"]
    process = start(workdir, "twice", *slow_steps)
    run_dir = workdir / "runs" / "twice"
    wait_for(lambda: logged_steps(run_dir) >= 1, process)
    process.send_signal(signal.SIGINT)
    time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    # Nothing was saved: the advice is to start over, not a --resume that would find no checkpoint.
    assert "holds no checkpoint yet; to start over, run the same command with --overwrite" in stderr
    assert "--resume" not in stderr and "Traceback" not in stderr
    assert not (run_dir / "checkpoints").exists() or not list((run_dir / "checkpoints").iterdir())


def test_a_ctrl_c_during_a_checkpoint_write_stays_an_interrupt_and_keeps_the_old_file(tmp_path):
    """A second Ctrl-C can land inside torch.save, whose archive writer then raises a RuntimeError of its own
    while closing: the run must still stop as interrupted (exit 130, no traceback), the old checkpoint whole."""
    from ganforge.files import write_atomically

    path = tmp_path / "last.pt"
    path.write_bytes(b"the last whole checkpoint")

    def interrupted_torch_save(stream):
        try:
            stream.write(b"half a record")
            raise KeyboardInterrupt  # what the signal handler raises, here inside the write
        finally:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 29789632 vs 29789584")

    with pytest.raises(KeyboardInterrupt):
        write_atomically(path, interrupted_torch_save)
    assert path.read_bytes() == b"the last whole checkpoint"
    assert [entry.name for entry in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


@pytest.mark.slow
def test_sigkill_while_a_checkpoint_is_written_leaves_a_loadable_last_pt(app, workdir):
    # Big networks make each write take a while; checkpoint_minutes makes one after nearly every step.
    overrides = [*LONG_EPOCH, "model.params.hidden=[2048, 2048]", "train.checkpoint_minutes=0.0001"]
    process = start(workdir, "killed", *overrides)
    checkpoints = workdir / "runs" / "killed" / "checkpoints"
    wait_for(lambda: (checkpoints / "last.pt").exists(), process)
    wait_for(lambda: any(checkpoints.glob(".last.pt.*.tmp")), process)  # a write under way
    process.kill()
    process.communicate(timeout=60)
    state = torch.load(checkpoints / "last.pt", weights_only=True)  # the previous one, whole
    assert state["epoch_step"] > 0
    run(app, "run", "--resume", str(workdir / "runs" / "killed"), "--quiet", "--set", "train.checkpoint_minutes=null")
    assert torch.load(checkpoints / "last.pt", weights_only=True)["epoch"] == 2
    assert not list(checkpoints.glob(".*.tmp"))  # the dead write's leftover is cleared on resume


EVIL = """
import os, torch
class Payload:
    def __reduce__(self):
        return (os.system, ("touch {marker}",))
torch.save({{"format": "ganforge-checkpoint", "version": 1, "generator": Payload()}}, {path!r})
"""


def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_never_runs(app, workdir):
    marker = workdir / "code_ran"
    evil = workdir / "evil.pt"
    subprocess.run([sys.executable, "-c", EVIL.format(marker=marker, path=str(evil))], check=True)
    run_dir = workdir / "runs" / "victim"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(SMOKE.read_text())
    (run_dir / "checkpoints" / "last.pt").write_bytes(evil.read_bytes())
    for args in (["sample", str(evil), "--out", "x.png"], ["eval", str(evil)], ["run", "--resume", str(run_dir)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code != 0, result.output
        assert "holds Python objects beyond tensors and plain data (Trying to load unsupported GLOBAL" in result.output
        assert "Traceback" not in result.output
    assert not marker.exists()


def damage(path, how):
    data = bytearray(path.read_bytes())
    if how == "cut off":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:  # one byte flipped in the middle of the weights
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["cut off", "flipped byte"])
def test_a_damaged_checkpoint_is_reported_and_resume_falls_back_to_the_newest_good_one(app, workdir, how):
    train(app, "train.epochs=3", "train.checkpoint_every=1", "model.params.hidden=[256, 256]")
    run_dir = workdir / "runs" / "smoke"
    last = run_dir / "checkpoints" / "last.pt"
    damage(last, how)
    sampled = CliRunner().invoke(app, ["sample", str(last), "--out", "x.png"])
    assert sampled.exit_code != 0 and f"{last}" in sampled.output and "damaged" in sampled.output
    assert "Traceback" not in sampled.output

    result = run(app, "run", "--resume", str(run_dir), "--quiet", "--set", "train.epochs=4")
    assert f"warning: {last} is damaged" in result.output
    assert f"warning: resuming from {run_dir / 'checkpoints' / 'epoch_0003.pt'}" in result.output
    assert [r["step"] for r in metrics(run_dir) if r["event"] == "epoch"] == [8, 16, 24, 32]
    assert torch.load(last, weights_only=True)["epoch"] == 4


# -- divergence ----------------------------------------------------------------------------------


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


# -- memory --------------------------------------------------------------------------------------


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


# -- pre-flight ----------------------------------------------------------------------------------


def refused_before_training(app, workdir, *overrides):
    args = ["run", str(SMOKE), "--quiet"]
    for override in overrides:
        args += ["--set", override]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "epoch 1" not in result.output
    return result.output


def test_an_output_folder_that_cannot_be_made_is_refused_before_training(app, workdir):
    (workdir / "occupied").write_text("a file, not a folder")
    output = refused_before_training(app, workdir, "output.dir=occupied/run")
    assert f"cannot create run folder {Path('occupied') / 'run'}: occupied is a file" in output


def test_too_little_disk_for_a_checkpoint_is_refused_before_training(app, workdir, monkeypatch):
    no_space = SimpleNamespace(total=1, used=1, free=0)
    monkeypatch.setattr("ganforge.training.run_folder.shutil.disk_usage", lambda path: no_space)
    output = refused_before_training(app, workdir)
    assert "not enough disk space for run folder runs/smoke: 0.0 MiB free" in output
    assert not (workdir / "runs").exists()


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(app, workdir, monkeypatch):
    train(app, "train.epochs=1")
    last = workdir / "runs" / "smoke" / "checkpoints" / "last.pt"
    before = last.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("ganforge.training.run_folder.torch.save", disk_full)
    resume = ["run", "--resume", "runs/smoke", "--set", "train.epochs=2", "--set", "train.checkpoint_every=0"]
    result = CliRunner().invoke(app, resume)
    assert result.exit_code == 1
    assert "cannot save checkpoint runs/smoke/checkpoints/last.pt: No space left on device" in result.output
    assert "the previous last.pt is kept" in result.output
    assert last.read_bytes() == before and not list(last.parent.glob(".*.tmp"))


def test_a_batch_larger_than_the_dataset_is_refused_before_training(app, workdir):
    output = refused_before_training(app, workdir, "train.batch_size=1000")
    assert "train.batch_size: 1000 is larger than the dataset (256 images)" in output


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_device_this_machine_lacks_is_refused_before_training(app, workdir):
    output = refused_before_training(app, workdir, "train.device=cuda")
    assert "train.device: 'cuda' asked for, but this machine has no usable CUDA GPU" in output


@pytest.mark.parametrize("name", ["os:system", "subprocess.run", "ganforge.training.trainer:Trainer"])
def test_a_config_names_registered_components_only_never_import_paths(app, workdir, name):
    result = CliRunner().invoke(app, ["validate", str(SMOKE), "--set", f"model.name={name}"])
    assert result.exit_code == 2
    assert f"model.name: unknown architecture '{name}'\n    known architectures: dcgan, mlp" in result.output
