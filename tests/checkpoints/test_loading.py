"""Reading checkpoints: code in a checkpoint never runs, damaged or malformed files are named with the
field that is wrong, and weights that do not fit their config are refused.

Malformed checkpoints are crafted with ganforge's own save_checkpoint, so that their checksum holds and
only the check of their fields can catch them.
"""

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ganforge.checkpoints.format import load_checkpoint
from tests.cli_results import invoke, refused
from tests.runs import SMOKE, craft, metrics, run, train

ROOT = Path(__file__).parents[2]


def test_the_torch_floor_is_the_release_that_fixed_weights_only_loading():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch>=2.6" in dependencies  # CVE-2025-32434: torch.load(weights_only=True) could run code before 2.6
    assert "torchvision>=0.21" in dependencies  # the torchvision released with torch 2.6
    assert tuple(int(part) for part in torch.__version__.split(".")[:2]) >= (2, 6)


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


def ganforge_process(*args, **kwargs):
    command = [sys.executable, "-m", "ganforge", *(str(arg) for arg in args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)


def without(key):
    return lambda state: state.pop(key)


def setting(*keys_and_value):
    *keys, value = keys_and_value

    def change(state):
        for key in keys[:-1]:
            state = state[key]
        state[keys[-1]] = value

    return change


MALFORMED = {
    "no config": (without("config"), "config: missing"),
    "no data_spec": (without("data_spec"), "data_spec: missing"),
    "config not a mapping": (setting("config", "mlp"), "config: input should be a valid dictionary"),
    "no model params": (lambda s: s["config"]["model"].pop("params"), "config.model.params: missing"),
    "a shape of two dims": (setting("data_spec", "shape", [1, 28]), "data_spec.shape: list should have at least 3"),
    "a huge image": (setting("data_spec", "shape", [1, 10**6, 10**6]), "data_spec.shape: an image of [1, 1000000"),
    "classes as text": (setting("data_spec", "num_classes", "4"), "data_spec.num_classes: input should be a valid int"),
    "no data rng": (lambda s: s["rng"].pop("data"), "rng.data: missing"),
    "rng of floats": (setting("rng", "torch", torch.zeros(3)), "rng.torch: expected a random generator's state"),
    "epoch as text": (setting("epoch", "1"), "epoch: input should be a valid integer (given: '1')"),
    "epoch as a bool": (setting("epoch", True), "epoch: input should be a valid integer (given: True)"),
    "negative step": (setting("step", -8), "step: input should be greater than or equal to 0"),
    "weights as a list": (setting("generator", [1, 2]), "generator: input should be a valid dictionary"),
    "optimizer groups of text": (
        setting("optimizer_generator", "param_groups", "x"),
        "optimizer_generator.param_groups: input should be a valid list",
    ),
    "best value as text": (
        setting("best", {"metric": "fid", "value": "low", "epoch": 1, "step": 8}),
        "best.value: input should be a valid number",
    ),
    "unknown counts": (
        lambda s: s["processes"][0]["running_statistics"]["counts"][1].update(epochs=1),
        "processes.0.running_statistics.counts.1: unknown counts ['epochs']",
    ),
    "an augmentation strength above 1": (
        setting("adaptive_augmentation", {"strength": 1.5, "last_r_t": None, "totals": [0.0, 0.0], "steps_since": 0}),
        "adaptive_augmentation.strength: expected a strength in [0, 1] (given: 1.5)",
    ),
    "ADA's sums cut short": (
        setting("adaptive_augmentation", {"strength": 0.5, "last_r_t": 0.7, "totals": [3.0], "steps_since": 1}),
        "adaptive_augmentation.totals: list should have at least 2 items",
    ),
    "statistics of integers": (
        lambda s: s["processes"][0]["running_statistics"].update(sums=torch.zeros(2, 5, dtype=torch.int64)),
        "processes.0.running_statistics.sums: expected floating point values, got torch.int64",
    ),
    "a step below its epochs": (setting("step", 0), "step: 0 is fewer steps than its epoch 1 and epoch_step 0 take"),
    "an epoch_step beyond its step": (
        setting("epoch_step", 9),
        "step: 8 is fewer steps than its epoch 1 and epoch_step 9 take",
    ),
    "an epoch beyond its own train.epochs": (
        setting("epoch", 4),
        "epoch: 4 epochs finished, beyond its own config's train.epochs 1",
    ),
    "a finished run's epoch under way": (
        setting("epoch_step", 2),
        "epoch_step: 2 steps into epoch 2, beyond its own config's train.epochs 1",
    ),
    "a best from a later epoch": (
        setting("best", {"metric": "fid", "value": 3.0, "epoch": 2, "step": 8}),
        "best.epoch: 2, after the checkpoint's own epoch 1",
    ),
    "a latent_dim of text": (setting("latent_dim", "16"), "latent_dim: input should be a valid integer"),
    "class statistics of another shape": (
        lambda s: s["processes"][0]["running_statistics"].update(class_sums=torch.zeros(2, 2)),
        "processes.0.running_statistics.class_sums: expected shape [2, 3], got [2, 2]",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_sample_and_eval_name_the_file_and_field_of_a_malformed_checkpoint(app, checkpoint, case):
    change, problem = MALFORMED[case]
    bad = craft(checkpoint, Path("bad.pt"), change)
    for command in (["sample", bad, "--out", "grid.png", "--n", 4], ["eval", bad, "--n", 10]):
        result = invoke(app, *command, exit_code=1)
        assert f"error: bad.pt is not a usable ganforge checkpoint: {problem}" in result.stderr
    assert not Path("grid.png").exists()


def test_resume_passes_over_a_malformed_last_checkpoint_and_names_all_when_none_fits(app, smoke_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    last, first = run / "checkpoints" / "last.pt", run / "checkpoints" / "epoch_0001.pt"
    craft(last, last, setting("epoch", "1"))
    resumed = invoke(app, "run", "--resume", run, "--quiet", "--set", "train.epochs=2")
    assert f"{last} is not a usable ganforge checkpoint: epoch: input should be a valid integer" in resumed.output
    assert f"resuming from {first}" in resumed.output
    assert load_checkpoint(last)["epoch"] == 2
    every = sorted((run / "checkpoints").glob("*.pt"))  # last.pt, epoch_0001.pt, epoch_0002.pt
    for path in every:
        craft(path, path, lambda state: state["rng"].pop("torch"))
    result = invoke(app, "run", "--resume", run, "--quiet", "--set", "train.epochs=3", exit_code=1)
    assert "no checkpoint to resume from" in result.output
    for path in every:
        assert f"{path} is not a usable ganforge checkpoint: rng.torch: missing" in result.output


def test_weights_that_do_not_fit_their_own_config_are_named(app, checkpoint):
    bad = craft(checkpoint, Path("bad.pt"), lambda state: state["config"]["model"]["params"].update(hidden=[32, 32]))
    for command in (["sample", bad, "--out", "grid.png"], ["eval", bad, "--n", 10]):
        result = invoke(app, *command, exit_code=1)
        assert "bad.pt: its generator weights do not fit the mlp architecture that its own config describes: " in (
            result.stderr
        )
        assert "size mismatch for net.0.weight" in result.stderr
    unknown = craft(checkpoint, Path("unknown.pt"), lambda state: state["config"]["data"].update(name="nowhere"))
    result = invoke(app, "eval", unknown, "--n", 10, exit_code=1)
    assert "unknown.pt was trained on dataset 'nowhere': unknown dataset 'nowhere'" in result.stderr


@pytest.mark.slow
def test_resume_refuses_optimizer_moments_of_another_shape_instead_of_corrupting_memory(smoke_run, tmp_path):
    # Fused Adam stepping with them wrote past their memory: the process died of heap corruption.
    run = tmp_path / "run"
    shutil.copytree(smoke_run, run)
    for path in (run / "checkpoints").glob("*.pt"):
        craft(path, path, lambda state: state["optimizer_generator"]["state"][0].update(exp_avg=torch.zeros(3)))
    result = ganforge_process("run", "--resume", run, "--quiet", "--set", "train.epochs=2")
    assert result.returncode == 2, result.stderr
    assert "generator optimizer state 'exp_avg' of parameter 0 has shape [3], the parameter [64, 16]" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_latent_dim_that_contradicts_the_architecture_is_named(app, checkpoint):
    bad = craft(checkpoint, Path("bad.pt"), setting("latent_dim", 99))
    for command in (["sample", bad, "--out", "grid.png"], ["eval", bad, "--n", 10], ["export", bad, "--out", "ex"]):
        result = invoke(app, *command, exit_code=1)
        assert "bad.pt: latent_dim 99 contradicts its own config, whose mlp architecture draws noise of dimension" in (
            result.stderr
        )
    assert not Path("grid.png").exists() and not Path("ex").exists()


@pytest.mark.parametrize("content", [b"ok", b"hi", b"c\n", b"{}", b"", b"\x80\x02"], ids=repr)
def test_a_file_that_is_no_checkpoint_is_named_so_not_called_code_running(app, workdir, content):
    notes = workdir / "notes.txt"
    notes.write_bytes(content)
    for command in (["sample", notes, "--out", "x.png"], ["eval", notes, "--n", 10], ["export", notes, "--out", "ex"]):
        output = refused(CliRunner().invoke(app, [str(part) for part in command]))
        assert f"{notes} is not a ganforge checkpoint: a checkpoint is the zip archive torch.save writes" in output
        assert "give a checkpoint a run saved (runs/NAME/checkpoints/*.pt) or a folder ganforge export wrote" in output
        assert "run code" not in output
    assert not Path("x.png").exists() and not Path("ex").exists()


def test_a_folder_given_as_a_checkpoint_is_named_as_a_folder(app, workdir):
    (workdir / "folder.pt").mkdir()
    output = refused(CliRunner().invoke(app, ["sample", "folder.pt", "--out", "x.png"]))
    assert "folder.pt is a folder, not a checkpoint file nor an export; give a checkpoint a run saved" in output
