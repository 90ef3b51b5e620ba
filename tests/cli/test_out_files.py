"""`report`, `sample` and `export --out` through the one safe writer (outputs.py): never a user's file, a run's
own file or lock, a device, a FIFO or a link; a file ganforge made is replaced whole; `--overwrite` keeps the
trackers' folders."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.cli_results import invoke
from tests.runs import SMOKE

# Each command with the --out a case names; RUN is the copy of the smoke run that the command reads.
COMMANDS = {
    "report": lambda run, out: ["report", run, "--out", out],
    "sample": lambda run, out: ["sample", run / "checkpoints" / "last.pt", "--out", out, "--n", 4],
    "export": lambda run, out: ["export", run, "--out", out],
}
SUFFIX = {"report": ".html", "sample": ".png", "export": ""}
# Where a case is refused first for another reason, as true: the user's file is no folder; the report reads the grids.
OTHER_REASONS = {
    ("export", "a user's file"): "is a file; name a new folder",
    ("report", "a run's sample grid"): "the file this command reads",
}
FIFO_SECONDS = 120  # a command that opened the FIFO would block for good: the test fails instead of hanging


@pytest.fixture
def run(smoke_run, tmp_path, monkeypatch):
    """A copy of the smoke run (plot, samples, checkpoints, lock, marker) in a fresh current directory."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(smoke_run, tmp_path / "run")
    return tmp_path / "run"


def users_file(run, command):
    """A file of the user's own where the output would go: a PNG for sample, an HTML page for report."""
    path = Path(f"mine{SUFFIX[command]}")
    if command == "sample":
        Image.new("RGB", (8, 8), "red").save(path)
    else:
        path.write_text("<html><head><title>my notes</title></head></html>\n")
    return path, "is a file ganforge did not make"


def device_node(run, command):
    """A character device (the null device's numbers) made here as root, else /dev/null itself."""
    path = Path(f"device{SUFFIX[command]}")
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        path = Path("/dev/null")
    return path, "is a character device"


def link_to_own_output(run, command):
    """A symbolic link to a file ganforge wrote (the run's plot): never written through."""
    target = run / "plot.png"
    Path(f"link{SUFFIX[command]}").symlink_to(target)
    return Path(f"link{SUFFIX[command]}"), "is a symbolic link"


CASES = {
    "a user's file": users_file,
    "a run's plot": lambda run, command: (run / "plot.png", "is inside run folder"),
    "a run's sample grid": lambda run, command: (run / "samples" / "epoch_0001.png", "is inside run folder"),
    "the run's lock": lambda run, command: (run / ".ganforge-lock", "is inside run folder"),
    "the run's marker": lambda run, command: (run / ".ganforge-run", "is inside run folder"),
    "a device node": device_node,
    "a link": link_to_own_output,
}


def state(path):
    """What must not change: the entry's inode and type (lstat), and a regular file's bytes."""
    status = os.lstat(path)
    content = Path(path).read_bytes() if stat.S_ISREG(status.st_mode) else None
    return status.st_ino, stat.S_IFMT(status.st_mode), content


def leftovers(folder):
    return sorted(path.name for path in Path(folder).iterdir() if path.name.startswith("."))


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", COMMANDS)
def test_out_is_refused_and_nothing_changes(app, run, command, case):
    out, why = CASES[case](run, command)
    why = OTHER_REASONS.get((command, case), why)
    before, hidden_before = state(out), leftovers(out.parent)
    result = invoke(app, *COMMANDS[command](run, out), exit_code=2)
    message = " ".join(result.stderr.split())
    assert f"--out {out}" in message and why in message, message
    assert state(out) == before
    assert leftovers(out.parent) == hidden_before  # no temporary file or folder left beside it


@pytest.mark.parametrize("command", COMMANDS)
def test_out_a_fifo_is_refused_without_hanging(run, command):
    fifo = Path(f"pipe{SUFFIX[command]}").absolute()
    os.mkfifo(fifo)
    before = state(fifo)
    args = [str(arg) for arg in COMMANDS[command](run, fifo)]
    result = subprocess.run(
        [sys.executable, "-m", "ganforge", *args], capture_output=True, text=True, timeout=FIFO_SECONDS
    )
    message = " ".join(result.stderr.split())
    assert result.returncode == 2, result.stderr
    assert f"--out {fifo} is a FIFO (named pipe)" in message and "Traceback" not in result.stderr
    assert state(fifo) == before


def test_report_and_sample_replace_what_they_wrote_and_refuse_a_users_tensor_file(app, run):
    invoke(app, "report", run, "--out", "same.html")
    first = os.stat("same.html").st_ino
    invoke(app, "report", run, "--out", "same.html")
    assert os.stat("same.html").st_ino != first  # written anew, whole, and renamed over it
    assert "<meta name='generator' content='ganforge" in Path("same.html").read_text()
    checkpoint = run / "checkpoints" / "last.pt"
    for out in ("same.png", "same.pt"):
        invoke(app, "sample", checkpoint, "--out", out, "--n", 4, "--seed", 1)
        first = Path(out).read_bytes()
        invoke(app, "sample", checkpoint, "--out", out, "--n", 4, "--seed", 2)
        assert Path(out).read_bytes() != first
    assert torch.load("same.pt", weights_only=True).shape == (4, 1, 28, 28)
    assert Image.open("same.png").info["Software"].startswith("ganforge")
    torch.save(torch.zeros(2), "theirs.pt")
    before = state("theirs.pt")
    result = invoke(app, "sample", checkpoint, "--out", "theirs.pt", exit_code=2)
    assert "--out theirs.pt is a file ganforge did not make (not a tensor file written by ganforge)" in " ".join(
        result.stderr.split()
    )
    assert state("theirs.pt") == before
    assert not leftovers(".")


def test_a_users_file_put_at_out_while_the_report_is_made_is_kept(app, run, monkeypatch):
    """The check is made again just before the rename: what appeared meanwhile is not replaced."""
    import ganforge.report

    render = ganforge.report.render

    def render_while_the_user_writes(*args, **kwargs):
        Path("late.html").write_text("the user's page, written while the report was being made\n")
        return render(*args, **kwargs)

    monkeypatch.setattr(ganforge.report, "render", render_while_the_user_writes)
    result = invoke(app, "report", run, "--out", "late.html", exit_code=2)
    assert "--out late.html is a file ganforge did not make" in " ".join(result.stderr.split())
    assert Path("late.html").read_text().startswith("the user's page")
    assert not leftovers(".")


def test_export_into_a_new_folder_inside_a_run_or_an_export_is_refused(app, run):
    result = invoke(app, "export", run, "--out", run / "shared", exit_code=2)
    assert f"--out {run / 'shared'} is inside run folder {run}" in " ".join(result.stderr.split())
    invoke(app, "export", run, "--out", "exported")
    result = invoke(app, "export", run, "--out", Path("exported") / "again", exit_code=2)
    assert "a ganforge export, which is kept as written" in " ".join(result.stderr.split())
    assert not (run / "shared").exists() and not Path("exported/again").exists()


def test_overwrite_keeps_the_trackers_folders_and_a_users_files_in_them(app, workdir):
    out = workdir / "runs" / "smoke"
    args = ["run", SMOKE, "--quiet", "--set", "train.epochs=1", "--set", f"output.dir={out}"]
    invoke(app, *args)
    for tracker in ("mlruns", "wandb"):
        (out / tracker).mkdir()
        (out / tracker / "notes.txt").write_text(f"my notes on the {tracker} runs\n")
    invoke(app, *args, "--overwrite")
    for tracker in ("mlruns", "wandb"):
        assert (out / tracker / "notes.txt").read_text() == f"my notes on the {tracker} runs\n"
    assert sorted(path.name for path in (out / "checkpoints").iterdir()) == ["epoch_0001.pt", "last.pt"]
