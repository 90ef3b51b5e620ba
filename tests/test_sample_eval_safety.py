"""`ganforge sample` and `ganforge eval` against hostile input: what they read, what they write, what they refuse.

Every refusal is a one-line error naming the file or option and what is wrong, an exit code, no
traceback, and no file lost. Malformed checkpoints are crafted with ganforge's own save_checkpoint,
so that their checksum holds and only the check of their fields can catch them.
"""

import copy
import os
import shlex
import shutil
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ganforge import GANMetric, Goal, SampleNeeds
from ganforge.checkpoints.format import load_checkpoint, save_checkpoint
from ganforge.cli import create_app
from ganforge.errors import UsageError
from ganforge.generation import generate, load_generator
from ganforge.guards.memory import check_request_fits
from ganforge.plugins import PluginSource, load_plugins
from tests.plugin_fixtures import plugin_module

SMOKE = Path(__file__).parent.parent / "examples" / "smoke.yaml"
DATA = ["--data", "synthetic", "--data-param", "num_samples=600", "--data-param", "num_classes=4"]
REAL = ["--real", *DATA[1:]]


def invoke(app, *args, exit_code=0):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    return result


def ganforge_process(*args, **kwargs):
    command = [sys.executable, "-m", "ganforge", *(str(arg) for arg in args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def smoke_run(app, tmp_path_factory):
    """A one-epoch run of the smoke config: its last.pt and epoch_0001.pt."""
    folder = tmp_path_factory.mktemp("smoke") / "run"
    invoke(app, "run", SMOKE, "--quiet", "--set", "train.epochs=1", "--set", f"output.dir={folder}")
    return folder


@pytest.fixture
def checkpoint(smoke_run, tmp_path, monkeypatch):
    """A copy of the smoke run's last.pt as ck.pt in a fresh current directory."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(smoke_run / "checkpoints" / "last.pt", tmp_path / "ck.pt")
    return Path("ck.pt")


def private_mount(setup, *command):
    """Run ``command`` after ``setup`` (mount commands) in a mount namespace of its own, which needs root."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to mount a read-only or a tiny filesystem")
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("this machine does not allow a private mount namespace (unshare -m)")
    script = f"{setup} && exec {shlex.join(str(part) for part in command)}"
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)


def fake_memory(monkeypatch, tmp_path, kilobytes):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal: {10 * kilobytes} kB\nMemAvailable: {kilobytes} kB\n")
    monkeypatch.setattr("ganforge.guards.memory.MEMINFO", meminfo)


# -- 1. what sample writes: never an input, never a checkpoint, whole or not at all --------------


@pytest.mark.parametrize("spelling", ["same", "absolute", "symlink", "hard_link", "missing_folder_then_dotdot"])
def test_sample_never_writes_over_the_checkpoint_it_reads(app, checkpoint, tmp_path, spelling):
    before = checkpoint.read_bytes()
    out = {
        "same": "ck.pt",
        "absolute": str(tmp_path / "ck.pt"),
        "symlink": "link.pt",
        "hard_link": "hard.pt",
        "missing_folder_then_dotdot": "new/../ck.pt",  # once new/ is made, new/.. is here
    }[spelling]
    if spelling == "symlink":
        Path("link.pt").symlink_to("ck.pt")
    if spelling == "hard_link":
        os.link("ck.pt", "hard.pt")
    result = invoke(app, "sample", "ck.pt", "--out", out, "--n", 4, exit_code=2)
    assert f"error: --out {out} is ck.pt, the file this command reads; write to another file" in result.stderr
    assert checkpoint.read_bytes() == before
    assert not Path("new").exists()


def test_sample_never_overwrites_a_checkpoint_of_any_run(app, checkpoint, smoke_run, tmp_path):
    run = tmp_path / "other_run"
    shutil.copytree(smoke_run, run)
    shutil.copy(run / "checkpoints" / "epoch_0001.pt", tmp_path / "renamed.pt")
    kept = {path: path.read_bytes() for path in [tmp_path / "renamed.pt", *run.rglob("*.pt")]}
    result = invoke(app, "sample", "ck.pt", "--out", "renamed.pt", exit_code=2)
    assert "--out renamed.pt is a ganforge checkpoint; it is never overwritten" in result.stderr
    result = invoke(app, "sample", "ck.pt", "--out", run / "checkpoints" / "epoch_0001.pt", exit_code=2)
    assert "is a ganforge checkpoint" in result.stderr
    result = invoke(app, "sample", "ck.pt", "--out", run / "checkpoints" / "new.pt", exit_code=2)
    assert f"is in the checkpoints folder of run {run}" in result.stderr
    assert not (run / "checkpoints" / "new.pt").exists()
    assert {path: path.read_bytes() for path in kept} == kept


def test_sample_replaces_its_own_earlier_output_whole(app, checkpoint):
    invoke(app, "sample", "ck.pt", "--out", "grid.png", "--n", 9, "--seed", 1)
    first = Path("grid.png").read_bytes()
    invoke(app, "sample", "ck.pt", "--out", "grid.png", "--n", 9, "--seed", 2)
    assert Path("grid.png").read_bytes() != first and first.startswith(b"\x89PNG")
    invoke(app, "sample", "ck.pt", "--out", "deep/er/images.pt", "--n", 3)
    assert torch.load("deep/er/images.pt", weights_only=True).shape == (3, 1, 28, 28)
    assert not [path for path in Path().rglob("*") if path.name.endswith(".tmp")]


def test_sample_out_that_cannot_be_a_file_is_refused_by_name(app, checkpoint, tmp_path):
    Path("grid.png").mkdir()
    result = invoke(app, "sample", "ck.pt", "--out", "grid.png", exit_code=2)
    assert "--out grid.png is a folder; name a file, such as grid.png/output.png" in result.stderr
    result = invoke(app, "sample", "ck.pt", "--out", "ck.pt/grid.png", exit_code=2)
    assert f"--out ck.pt/grid.png: {os.path.realpath('ck.pt')} is a file, not a folder" in result.stderr
    result = invoke(app, "sample", "ck.pt", "--out", "grid.jpg", exit_code=2)
    assert "--out grid.jpg: use a .png (a grid) or a .pt" in result.stderr
    # /proc takes no new files, whoever asks (root included): refused before or when writing, by name.
    result = CliRunner().invoke(app, ["sample", "ck.pt", "--out", "/proc/ganforge-grid.png", "--n", 4])
    assert result.exit_code in (1, 2) and "--out /proc/ganforge-grid.png" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_sample_out_on_a_read_only_filesystem_is_refused_and_the_old_file_kept(checkpoint, tmp_path):
    folder = tmp_path / "read_only"
    folder.mkdir()
    (folder / "grid.png").write_bytes(b"an earlier grid")
    result = private_mount(
        f"mount --bind {shlex.quote(str(folder))} {shlex.quote(str(folder))} && "
        f"mount -o remount,bind,ro {shlex.quote(str(folder))}",
        sys.executable, "-m", "ganforge", "sample", "ck.pt", "--out", folder / "grid.png", "--n", 4,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"error: --out {folder / 'grid.png'}: {folder} is not writable" in result.stderr
    assert "Traceback" not in result.stderr
    assert (folder / "grid.png").read_bytes() == b"an earlier grid"


KEEPS_OLD_FILE = """
import pathlib, subprocess, sys
out, folder = sys.argv[1:]
done = subprocess.run([sys.executable, "-m", "ganforge", "sample", "ck.pt", "--out", out, "--n", "1000"])
print("kept:", pathlib.Path(out).read_text(), sorted(path.name for path in pathlib.Path(folder).iterdir()))
sys.exit(done.returncode)
"""


@pytest.mark.slow
def test_sample_on_a_full_disk_says_so_and_keeps_the_old_file(checkpoint, tmp_path):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    out = tiny / "images.pt"
    result = private_mount(
        f"mount -t tmpfs -o size=64k tmpfs {shlex.quote(str(tiny))} && printf earlier > {shlex.quote(str(out))}",
        sys.executable, "-c", KEEPS_OLD_FILE, out, tiny,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"cannot write --out {out}: No space left on device: the disk is full" in result.stderr
    assert "the existing file is unchanged" in result.stderr and "Traceback" not in result.stderr
    assert "kept: earlier ['images.pt']" in result.stdout  # the old contents, and no temporary file left


# -- 2. sizes and seeds: estimated before allocating -----------------------------------------------


def test_sample_of_a_huge_n_is_refused_with_the_memory_estimate(app, checkpoint):
    result = invoke(app, "sample", "ck.pt", "--out", "grid.png", "--n", 10**12, exit_code=2)
    assert "error: --n 1000000000000: 1,000,000,000,000 images in one grid needs about" in result.stderr
    assert "PiB of memory and this machine has" in result.stderr and "ask for fewer with --n" in result.stderr
    assert not Path("grid.png").exists()


def test_sample_beyond_the_memory_available_is_refused_and_within_it_runs(app, checkpoint, tmp_path, monkeypatch):
    fake_memory(monkeypatch, tmp_path, kilobytes=1024)
    # 1000 images of 28x28 and their 16-d noise take 3.2 MB as float32.
    result = invoke(app, "sample", "ck.pt", "--out", "images.pt", "--n", 1000, exit_code=2)
    assert "--n 1000: 1,000 images needs about 3.1 MiB of memory and this machine has 1.0 MiB free" in result.stderr
    invoke(app, "sample", "ck.pt", "--out", "images.pt", "--n", 100)
    assert torch.load("images.pt", weights_only=True).shape == (100, 1, 28, 28)


def test_a_cuda_device_too_small_for_the_sampling_is_named(monkeypatch):
    # No GPU is needed to check the arithmetic: the free memory a CUDA device reports is faked.
    monkeypatch.setattr("ganforge.guards.memory.device_free_bytes", lambda device: 2**20)
    with pytest.raises(UsageError, match=r"^sampling needs about 2\.0 MiB of memory and cuda:0 has 1\.0 MiB free; "):
        check_request_fits("sampling", 1, advice="ask for fewer", device=torch.device("cuda:0"), device_bytes=2**21)
    check_request_fits("sampling", 1, advice="ask for fewer", device=torch.device("cuda:0"), device_bytes=2**19)


@pytest.mark.parametrize("seed", [2**63, -1, "1e20"])
def test_seeds_torch_cannot_take_are_refused_by_sample_and_eval(app, checkpoint, seed):
    for command in (["sample", "ck.pt", "--out", "grid.png"], ["eval", "ck.pt", "--n", 10]):
        result = invoke(app, *command, "--seed", seed, exit_code=2)
        assert "--seed" in result.output
    invoke(app, "sample", "ck.pt", "--out", "grid.png", "--n", 2, "--seed", 2**63 - 1)


def test_sampling_in_chunks_gives_the_images_of_one_pass_and_of_the_training_loop(registry, checkpoint):
    loaded = load_generator(checkpoint, registry)
    noise = torch.randn(1234, loaded.latent_dim, generator=torch.Generator().manual_seed(5))
    sampled = loaded.sample(1234, seed=5, device="cpu")
    # The training loop's samples and evaluations go through the same generate().
    assert torch.equal(sampled, generate(loaded.generator, noise, torch.device("cpu"), loaded.spec.shape))
    with torch.no_grad():
        in_one_pass = loaded.generator.eval()(noise)
    assert sampled.shape == in_one_pass.shape == (1234, *loaded.spec.shape)
    torch.testing.assert_close(sampled, in_one_pass, rtol=0, atol=1e-6)


# -- 3. --device is named as --device --------------------------------------------------------------


def test_device_errors_name_the_option_not_the_config_field(app, checkpoint):
    for command in (["sample", "ck.pt", "--out", "grid.png"], ["eval", "ck.pt", "--n", 10]):
        result = invoke(app, *command, "--device", "tpu", exit_code=2)
        assert "error: --device: 'tpu' is not a device; use auto" in result.stderr
        assert "train.device" not in result.stderr


# -- 4. checkpoints with missing or wrong fields ---------------------------------------------------


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
    "class statistics of another shape": (
        lambda s: s["processes"][0]["running_statistics"].update(class_sums=torch.zeros(2, 2)),
        "processes.0.running_statistics.class_sums: expected shape [2, 3], got [2, 2]",
    ),
}


def craft(source, path, change):
    state = copy.deepcopy(load_checkpoint(source))
    change(state)
    save_checkpoint(state, path)  # a valid checksum: only the field check can tell
    return path


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


# -- 5. eval --samples: finite values, usable dtypes, only --n images read -------------------------


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
    assert "20 samples (noise seed 0) from nan.pt" in result.stderr
    assert "15,680 values in 20 of the 20 images are NaN or infinite, so they cannot be scored" in result.stderr


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


# -- 6. every metric says what it needs, and it is checked before any work -------------------------


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


# -- 7. the cached domain classifier ---------------------------------------------------------------


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
