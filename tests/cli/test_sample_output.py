"""What `ganforge sample` writes and refuses: never over the checkpoint it reads or any run's checkpoint,
its output whole or not at all (a read-only filesystem, a full disk), within the memory there is, and
seeds or devices torch cannot take named by their option."""

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ganforge.errors import UsageError
from ganforge.generation import generate, load_generator
from ganforge.guards.memory import check_request_fits
from tests.cli_results import invoke
from tests.fake_machine import fake_memory


def private_mount(setup, *command):
    """Run ``command`` after ``setup`` (mount commands) in a mount namespace of its own, which needs root."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to mount a read-only or a tiny filesystem")
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("this machine does not allow a private mount namespace (unshare -m)")
    script = f"{setup} && exec {shlex.join(str(part) for part in command)}"
    return subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300)


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
def test_sample_out_on_a_read_only_filesystem_is_refused_and_the_old_file_kept(app, checkpoint, tmp_path):
    folder = tmp_path / "read_only"
    folder.mkdir()
    invoke(app, "sample", "ck.pt", "--out", folder / "grid.png", "--n", 4)  # an earlier grid, which sample may replace
    earlier = (folder / "grid.png").read_bytes()
    result = private_mount(
        f"mount --bind {shlex.quote(str(folder))} {shlex.quote(str(folder))} && "
        f"mount -o remount,bind,ro {shlex.quote(str(folder))}",
        sys.executable, "-m", "ganforge", "sample", "ck.pt", "--out", folder / "grid.png", "--n", 4,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"error: --out {folder / 'grid.png'}: {folder} is not writable" in result.stderr
    assert "Traceback" not in result.stderr
    assert (folder / "grid.png").read_bytes() == earlier


KEEPS_OLD_FILE = """
import pathlib, subprocess, sys
out, folder = sys.argv[1:]
command = [sys.executable, "-m", "ganforge", "sample", "ck.pt", "--out", out, "--n"]
subprocess.run([*command, "1"], check=True)  # an earlier output of sample's own, which fits
earlier = pathlib.Path(out).read_bytes()
done = subprocess.run([*command, "1000"])
kept = pathlib.Path(out).read_bytes() == earlier
print("kept:", kept, sorted(path.name for path in pathlib.Path(folder).iterdir()))
sys.exit(done.returncode)
"""


@pytest.mark.slow
def test_sample_on_a_full_disk_says_so_and_keeps_the_old_file(checkpoint, tmp_path):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    out = tiny / "images.pt"
    result = private_mount(
        f"mount -t tmpfs -o size=64k tmpfs {shlex.quote(str(tiny))}",
        sys.executable, "-c", KEEPS_OLD_FILE, out, tiny,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"cannot write --out {out}: No space left on device: the disk is full" in result.stderr
    assert "the existing file is unchanged" in result.stderr and "Traceback" not in result.stderr
    assert "kept: True ['images.pt']" in result.stdout  # the old contents, and no temporary file left


def test_sample_of_a_huge_n_is_refused_with_the_memory_estimate(app, checkpoint):
    result = invoke(app, "sample", "ck.pt", "--out", "grid.png", "--n", 10**12, exit_code=2)
    assert "error: --n 1000000000000: 1,000,000,000,000 images in one grid needs about" in result.stderr
    assert "PiB of memory and this machine has" in result.stderr and "ask for fewer with --n" in result.stderr
    assert not Path("grid.png").exists()


def test_sample_beyond_the_memory_available_is_refused_and_within_it_runs(app, checkpoint, tmp_path, monkeypatch):
    fake_memory(monkeypatch, tmp_path, kilobytes=1024)
    # 1000 images of 28x28 and their 16-d noise take 3.2 MB as float32, and the tensor file held before it is
    # written 3.1 MB more.
    result = invoke(app, "sample", "ck.pt", "--out", "images.pt", "--n", 1000, exit_code=2)
    assert "--n 1000: 1,000 images needs about 6.0 MiB of memory and this machine has 1.0 MiB free" in result.stderr
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


def test_device_errors_name_the_option_not_the_config_field(app, checkpoint):
    for command in (["sample", "ck.pt", "--out", "grid.png"], ["eval", "ck.pt", "--n", 10]):
        result = invoke(app, *command, "--device", "tpu", exit_code=2)
        assert "error: --device: 'tpu' is not a device; use auto" in result.stderr
        assert "train.device" not in result.stderr
