"""The run folder never loses a user's files: --overwrite, the folder lock, links, resume's bookkeeping, a full disk."""

import errno
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from ganforge.checkpoints.format import load_checkpoint, save_checkpoint
from ganforge.errors import DataError, UsageError
from ganforge.training.run_folder import RunFolder
from tests.runs import SMOKE, metrics, run, start, train, wait_for, without_timing
from tests.small_configs import refused_before_training

LOCK = ".ganforge-lock"
# Holds a run folder's lock the way a running ganforge does: an flock on the lock file, with its pid in it.
HOLD_LOCK = """
import fcntl, os, sys, time
handle = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(handle, fcntl.LOCK_EX)
os.ftruncate(handle, 0)  # as ganforge does: a longer pid left by the last holder would show through
os.write(handle, f"{os.getpid()}\\n".encode())
print("held", flush=True)
time.sleep(600)
"""


def invoke(app, *args):
    return CliRunner().invoke(app, list(args))


def refused(result, code=2):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())  # rich wraps long lines


def snapshot(folder):
    """Every file under ``folder`` with its bytes, and every link with its target."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(folder))] = f"-> {os.readlink(path)}"
        elif path.is_file():
            found[str(path.relative_to(folder))] = path.read_bytes()
    return found


def identities(records):
    return [(record["event"], record["epoch"], record["step"]) for record in records]


def assert_each_record_once(run_dir):
    records = metrics(run_dir)
    counts = Counter(identities(records))
    assert all(count == 1 for count in counts.values()), [key for key, count in counts.items() if count > 1]
    steps = [record["step"] for record in records]
    assert steps == sorted(steps)  # no interleaving of two writers
    return records


# -- --overwrite -----------------------------------------------------------------------------------


def test_overwrite_refuses_a_folder_ganforge_did_not_make_and_touches_nothing(app, workdir):
    user = workdir / "my_photos"
    (user / "holiday").mkdir(parents=True)
    (user / "notes.txt").write_text("do not lose me")
    (user / "holiday" / "beach.png").write_bytes(b"\x89PNG not really")
    (user / "config.yaml").write_text("just: my settings\n")  # a config.yaml alone does not make a run folder
    before = snapshot(user)
    output = refused(invoke(app, "run", str(SMOKE), "--quiet", "--overwrite", "--set", "output.dir=my_photos"))
    assert "--overwrite: my_photos is not a ganforge run folder" in output and "Nothing was touched" in output
    assert snapshot(user) == before
    assert not (user / LOCK).exists()


def test_overwrite_reads_a_folders_marker_and_config_bounded_and_never_through_a_fifo(app, workdir):
    """What tells a run folder (its marker, an older one's config.yaml) is read through documents.py: an alias
    bomb as config.yaml, a FIFO as the marker are not a run folder's, refused at once, never a hang."""
    user = workdir / "looks_like_a_run"
    user.mkdir()
    bomb = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    bomb += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    (user / "config.yaml").write_text("\n".join(bomb) + "\n")
    os.mkfifo(user / ".ganforge-run")
    before = snapshot(user)
    output = refused(invoke(app, "run", str(SMOKE), "--quiet", "--overwrite", "--set", "output.dir=looks_like_a_run"))
    assert "is not a ganforge run folder" in output
    assert snapshot(user) == before


def test_overwrite_never_removes_the_current_directory_or_a_folder_above_it(app, workdir, monkeypatch):
    train(app, "train.epochs=1")
    run_dir = workdir / "runs" / "smoke"
    before = snapshot(run_dir)
    for cwd in (run_dir, run_dir / "samples"):
        monkeypatch.chdir(cwd)
        result = invoke(app, "run", str(SMOKE), "--quiet", "--overwrite", "--set", f"output.dir={run_dir}")
        refused(result)
        assert snapshot(run_dir) == before
        # The folder's own check, whatever the config's validation lets through:
        with pytest.raises(UsageError, match="is the current directory or a folder above it"):
            RunFolder(run_dir).create(overwrite=True)
        assert snapshot(run_dir) == before


def test_overwrite_refuses_a_run_folder_holding_other_files_and_names_them(app, workdir):
    train(app, "train.epochs=1")
    run_dir = workdir / "runs" / "smoke"
    (run_dir / "notes.txt").write_text("my notes on this run")
    (run_dir / "samples" / "best_one.png").write_bytes(b"picked by hand")
    (run_dir / "checkpoints" / "keep_this.pt").write_bytes(b"a checkpoint I renamed")
    before = snapshot(run_dir)
    output = refused(invoke(app, "run", str(SMOKE), "--quiet", "--overwrite"))
    assert (
        f"--overwrite: run folder {Path('runs') / 'smoke'} holds files that ganforge did not write: "
        "checkpoints/keep_this.pt, notes.txt, samples/best_one.png. ganforge replaces only its own files; "
        "nothing was touched" in output
    )
    assert snapshot(run_dir) == before


def test_overwrite_refuses_a_link_in_a_run_folder_and_its_target_is_untouched(app, workdir):
    train(app, "train.epochs=1")
    run_dir = workdir / "runs" / "smoke"
    outside = workdir / "outside.png"
    outside.write_bytes(b"someone else's picture")
    (run_dir / "plot.png").unlink()
    (run_dir / "plot.png").symlink_to(outside)
    output = refused(invoke(app, "run", str(SMOKE), "--quiet", "--overwrite"))
    assert "holds files that ganforge did not write: plot.png (a symbolic link)" in output
    assert outside.read_bytes() == b"someone else's picture" and (run_dir / "plot.png").is_symlink()


@pytest.mark.parametrize("made", ["with the marker", "before the marker"])
def test_overwrite_replaces_only_ganforges_files_of_a_run_folder_it_made(app, workdir, made):
    train(app, "train.epochs=3")
    run_dir = workdir / "runs" / "smoke"
    (run_dir / "checkpoints" / ".last.pt.0123abcd.tmp").write_bytes(b"a killed write's leftover")
    if made == "before the marker":  # a run folder from an earlier ganforge: recognised by its config.yaml
        (run_dir / ".ganforge-run").unlink()
    run(app, "run", str(SMOKE), "--quiet", "--overwrite", "--set", "train.epochs=1")
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["epoch_0001.pt", "last.pt"]
    assert sorted(p.name for p in (run_dir / "samples").iterdir()) == ["epoch_0001.png", "real.png"]
    assert [r["epoch"] for r in metrics(run_dir) if r["event"] == "epoch"] == [1]
    assert (run_dir / ".ganforge-run").is_file()


def test_without_overwrite_an_existing_run_folder_is_refused_untouched(app, workdir):
    train(app, "train.epochs=1")
    run_dir = workdir / "runs" / "smoke"
    before = snapshot(run_dir)
    output = refused(invoke(app, "run", str(SMOKE), "--quiet"))
    assert f"run folder {Path('runs') / 'smoke'} already exists; pass --overwrite" in output
    assert snapshot(run_dir) == before


# -- the lock --------------------------------------------------------------------------------------


@pytest.fixture
def lock_holder(workdir):
    """Starts a process that holds a folder's lock (as a running ganforge would); yields (start, processes)."""
    started = []

    def hold(folder):
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, str(folder / LOCK)], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout.readline().strip() == "held"
        started.append(process)
        return process

    yield hold
    for process in started:
        process.kill()
        process.wait()


def test_a_folder_in_use_is_refused_naming_the_holders_pid_and_nothing_is_touched(app, workdir, lock_holder):
    train(app, "train.epochs=1")
    run_dir = workdir / "runs" / "smoke"
    unfinished = run_dir / "checkpoints" / ".last.pt.0123abcd.tmp"  # as if the holder were writing last.pt now
    unfinished.write_bytes(b"the holder's write in progress")
    holder = lock_holder(run_dir)
    before = snapshot(run_dir)
    busy = f"run folder {Path('runs') / 'smoke'} is in use by another ganforge process (pid {holder.pid}, which holds"
    attempts = {
        "resume": ["run", "--resume", str(Path("runs") / "smoke"), "--quiet", "--set", "train.epochs=2"],
        "run": ["run", str(SMOKE), "--quiet"],
        "overwrite": ["run", str(SMOKE), "--quiet", "--overwrite"],
    }
    for args in attempts.values():
        assert busy in refused(invoke(app, *args))
        assert snapshot(run_dir) == before  # the holder's temporary file and metrics.jsonl as they were

    holder.kill()  # a SIGKILLed holder leaves no stale lock: the OS dropped it
    holder.wait()
    run(app, *attempts["resume"])
    assert [r["epoch"] for r in metrics(run_dir) if r["event"] == "epoch"] == [1, 2]
    assert not unfinished.exists()


def test_a_fresh_folder_in_use_is_refused_too(app, workdir, lock_holder):
    run_dir = workdir / "runs" / "smoke"
    run_dir.mkdir(parents=True)
    holder = lock_holder(run_dir)  # another run that has just made the folder and locked it
    output = refused(invoke(app, "run", str(SMOKE), "--quiet"))
    assert f"is in use by another ganforge process (pid {holder.pid}" in output
    assert os.listdir(run_dir) == [LOCK]


def race(commands, cwd, run_dir, started_training):
    """Start two processes at once; return (winner, loser) with their (returncode, stderr) once both ended.

    The winner is stopped with SIGINT once the loser has ended and it has trained a little, so that
    they always overlap.
    """
    processes = [
        subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for command in commands
    ]
    deadline = time.monotonic() + 300
    while all(process.poll() is None for process in processes):
        assert time.monotonic() < deadline, "neither process ended"
        time.sleep(0.05)
    loser = next(process for process in processes if process.poll() is not None)
    winner = next(process for process in processes if process is not loser)
    _, loser_stderr = loser.communicate()
    while winner.poll() is None and not started_training():
        time.sleep(0.05)
    if winner.poll() is None:
        winner.send_signal(signal.SIGINT)
    _, winner_stderr = winner.communicate(timeout=120)
    return (winner, winner.returncode, winner_stderr), (loser, loser.returncode, loser_stderr)


def ganforge_command(*args):
    return [sys.executable, "-m", "ganforge", "run", *args, "--quiet"]


def assert_the_second_was_refused(winner, winner_code, winner_err, loser_code, loser_err, run_dir):
    """The loser of a race exits 2 naming the winner's pid; the winner's metrics hold each record once."""
    assert loser_code == 2, loser_err
    assert f"is in use by another ganforge process (pid {winner.pid}, which holds" in " ".join(loser_err.split())
    assert "Traceback" not in loser_err + winner_err
    assert winner_code in (0, 130), winner_err
    assert_each_record_once(run_dir)


@pytest.mark.slow
def test_two_runs_into_one_fresh_folder_at_once_the_second_is_always_refused(workdir):
    long_run = ["--set", "train.epochs=1000"]
    refusals = 0
    for attempt in range(10):
        run_dir = workdir / "runs" / f"race{attempt}"
        command = ganforge_command(str(SMOKE), "--set", f"name=race{attempt}", *long_run)
        (winner, winner_code, winner_err), (_, loser_code, loser_err) = race(
            [command, command], workdir, run_dir, lambda run_dir=run_dir: logged_lines(run_dir) >= 2
        )
        assert_the_second_was_refused(winner, winner_code, winner_err, loser_code, loser_err, run_dir)
        refusals += 1
    print(f"two runs at once into one fresh folder: second refused {refusals}/10, metrics.jsonl intact 10/10")


@pytest.mark.slow
def test_two_resumes_of_one_folder_at_once_the_second_is_always_refused(app, workdir):
    train(app, "train.epochs=1", "name=origin")
    refusals = 0
    for attempt in range(10):
        run_dir = workdir / "runs" / f"resumed{attempt}"
        shutil.copytree(workdir / "runs" / "origin", run_dir)
        before = logged_lines(run_dir)
        command = ganforge_command("--resume", str(run_dir), "--set", "train.epochs=1000")
        (winner, winner_code, winner_err), (_, loser_code, loser_err) = race(
            [command, command], workdir, run_dir, lambda run_dir=run_dir, before=before: logged_lines(run_dir) > before
        )
        assert_the_second_was_refused(winner, winner_code, winner_err, loser_code, loser_err, run_dir)
        refusals += 1
    print(f"two resumes at once of one folder: second refused {refusals}/10, metrics.jsonl intact 10/10")


def logged_lines(run_dir):
    path = run_dir / "metrics.jsonl"
    return path.read_text().count("\n") if path.exists() else 0


# -- links -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "linked",
    [
        "plot.png",
        "config.yaml",
        "metrics.jsonl",
        "samples",
        "checkpoints",
        "samples/epoch_0001.png",
        "checkpoints/epoch_0001.pt",
        "checkpoints/.last.pt.0123abcd.tmp",
    ],
)
def test_resume_refuses_a_link_in_the_run_folder_and_leaves_its_target_alone(app, workdir, linked):
    train(app, "train.epochs=1")
    run_dir = workdir / "runs" / "smoke"
    inside = run_dir / linked
    target = workdir / "elsewhere" / Path(linked).name
    target.parent.mkdir()
    if inside.is_dir():
        shutil.copytree(inside, target)
        (target / ".last.pt.0123abcd.tmp").write_bytes(b"someone else's file")
        shutil.rmtree(inside)
    else:
        if inside.exists():
            shutil.copyfile(inside, target)
            inside.unlink()
        else:
            target.write_bytes(b"someone else's file")
    inside.symlink_to(target)
    before = snapshot(target.parent)
    result = invoke(app, "run", "--resume", str(run_dir), "--quiet", "--set", "train.epochs=2")
    output = refused(result)
    assert f"{inside} is a symbolic link (to {target}); ganforge never writes or deletes through a link" in output
    assert snapshot(target.parent) == before


# -- resume's bookkeeping --------------------------------------------------------------------------


def test_resume_falls_back_to_the_newest_epoch_by_number_not_by_text(app, workdir):
    train(app, "train.epochs=2", "train.checkpoint_every=1")
    checkpoints = workdir / "runs" / "smoke" / "checkpoints"
    (checkpoints / "epoch_0001.pt").rename(checkpoints / "epoch_9999.pt")
    (checkpoints / "epoch_0002.pt").rename(checkpoints / "epoch_10000.pt")
    (checkpoints / "last.pt").write_bytes(b"damaged")
    result = run(app, "run", "--resume", str(workdir / "runs" / "smoke"), "--quiet", "--set", "train.epochs=3")
    assert f"warning: resuming from {checkpoints / 'epoch_10000.pt'}" in result.output
    assert load_checkpoint(checkpoints / "last.pt")["epoch"] == 3


def test_a_kill_during_the_end_of_epoch_save_after_a_timed_checkpoint_leaves_each_record_once(
    app, workdir, monkeypatch
):
    """The timed checkpoint lands on the epoch's last step; the epoch's line is logged; the end-of-epoch save dies."""
    timed = ["train.checkpoint_minutes=1e-9"]  # due at every step
    train(app, "train.epochs=3", "name=straight", *timed)
    real_save = save_checkpoint

    def killed_at_the_end_of_epoch_2(state, path, **kwargs):
        if state["epoch"] == 2 and state["epoch_step"] == 0:
            raise KeyboardInterrupt  # as a SIGKILL would: nothing after this point happens
        real_save(state, path, **kwargs)

    monkeypatch.setattr("ganforge.training.run_folder.save_checkpoint", killed_at_the_end_of_epoch_2)
    killed = ["run", str(SMOKE), "--quiet", "--set", "name=killed", "--set", "train.epochs=3", "--set", timed[0]]
    assert invoke(app, *killed).exit_code == 130
    run_dir = workdir / "runs" / "killed"
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert (state["epoch"], state["epoch_step"], state["step"]) == (1, 8, 16)  # the timed save at epoch 2's last step
    assert ("epoch", 2, 16) in identities(metrics(run_dir))  # logged after it
    monkeypatch.undo()

    run(app, "run", "--resume", str(run_dir), "--quiet")
    assert_each_record_once(run_dir)
    assert without_timing(metrics(run_dir)) == without_timing(metrics(workdir / "runs" / "straight"))


def test_a_checkpoint_from_before_the_record_count_is_cut_at_its_step(app, workdir):
    train(app, "train.epochs=3", "name=straight")
    train(app, "train.epochs=2")
    run_dir = workdir / "runs" / "smoke"
    last = run_dir / "checkpoints" / "last.pt"
    old = load_checkpoint(last)
    del old["metrics_records"]
    save_checkpoint(old, last)
    with (run_dir / "metrics.jsonl").open("a") as stream:  # lines a killed process logged after the checkpoint
        stream.write(json.dumps({"event": "step", "epoch": 3, "step": 20, "d_loss": 1.0}) + "\n")
    run(app, "run", "--resume", str(run_dir), "--quiet", "--set", "train.epochs=3")
    assert without_timing(metrics(run_dir)) == without_timing(metrics(workdir / "runs" / "straight"))


@pytest.mark.slow
def test_sigkill_around_the_end_of_epoch_saves_then_resume_leaves_each_record_once(app, workdir):
    """Random SIGKILLs just after an epoch's line, with a timed checkpoint at every step (big networks: slow saves)."""
    overrides = ["train.epochs=5", "model.params.hidden=[1024, 1024]", "train.checkpoint_minutes=1e-9"]
    randomness = random.Random(15)
    landed = 0
    tries = 5
    for attempt in range(tries):
        name = f"killed{attempt}"
        run_dir = workdir / "runs" / name
        epoch = randomness.randint(1, 4)
        process = start(workdir, name, *overrides)
        wait_for(lambda run_dir=run_dir, epoch=epoch: f'"event": "epoch", "epoch": {epoch},' in text(run_dir), process)
        time.sleep(randomness.uniform(0, 0.3))
        process.kill()
        process.communicate()
        state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
        if state["epoch_step"] == 8 and ("epoch", state["epoch"] + 1, state["step"]) in identities(metrics(run_dir)):
            landed += 1  # the case that used to log the epoch's line twice
        run(app, "run", "--resume", str(run_dir), "--quiet", "--set", "train.checkpoint_minutes=null")
        records = assert_each_record_once(run_dir)
        assert [r["epoch"] for r in records if r["event"] == "epoch"] == [1, 2, 3, 4, 5]
    print(f"SIGKILL after an epoch's line: {landed}/{tries} kills landed between that line and last.pt; 0 duplicates")


def text(run_dir):
    path = run_dir / "metrics.jsonl"
    return path.read_text() if path.exists() else ""


# -- metrics.jsonl that is JSON but not records ------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("[1, 2]", "it is an array, not an object"),
        ("42", "it is a number, not an object"),
        ('{"d_loss": 0.5}', 'it has no "event"'),
        ('{"event": "step", "epoch": 1}', 'it has no "step"'),
        ('{"event": "step", "epoch": 1, "step": "8"}', "its \"step\" is '8', not a whole number >= 0"),
    ],
)
def test_metrics_lines_that_are_not_records_are_a_data_error_naming_the_line(app, workdir, line, problem):
    train(app, "train.epochs=1")
    run_dir = workdir / "runs" / "smoke"
    path = run_dir / "metrics.jsonl"
    lines = path.read_text().splitlines()
    lines.insert(1, line)
    path.write_text("\n".join(lines) + "\n")
    expected = f"{path}, line 2, is not a metrics record: {problem}"
    output = refused(invoke(app, "run", "--resume", str(run_dir), "--quiet", "--set", "train.epochs=2"), code=1)
    assert expected in output
    with pytest.raises(DataError) as error:  # what benchmarks and plots read through
        list(RunFolder(run_dir).metrics.read())
    assert str(error.value) == expected


# -- file modes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_every_file_of_a_run_folder_gets_the_mode_a_plain_open_gives(app, workdir, umask):
    previous = os.umask(umask)
    try:
        train(app, "train.epochs=2")
        run(app, "run", "--resume", str(workdir / "runs" / "smoke"), "--quiet", "--set", "train.epochs=3")
    finally:
        os.umask(previous)
    run_dir = workdir / "runs" / "smoke"
    files = {path: stat.S_IMODE(path.stat().st_mode) for path in run_dir.rglob("*") if path.is_file()}
    assert {path.name for path in files} >= {"last.pt", "config.yaml", "metrics.jsonl", "plot.png", "real.png"}
    assert {oct(mode) for mode in files.values()} == {oct(0o666 & ~umask)}


# -- a real full disk ------------------------------------------------------------------------------


def small_filesystem_command():
    """How to mount a small tmpfs in a mount namespace of our own here, or why it cannot be done."""
    if shutil.which("unshare") is None:
        return None, "no unshare command"
    command = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]
    probe = subprocess.run(
        [*command, "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt || mount -t tmpfs -o size=1m tmpfs /tmp"],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        return None, f"cannot mount a tmpfs in a mount namespace here: {probe.stderr.strip()}"
    return command, ""


FULL_DISK_SCRIPT = """
set -u
mount -t tmpfs -o size={size} tmpfs small || exit 97
{python} -m ganforge run {smoke} --quiet {overrides} > full.out 2> full.err
echo $? > full.rc
ls -a small/run/checkpoints > full.ls
cp small/run/checkpoints/last.pt kept_last.pt
mount -o remount,size=200m small
{python} -m ganforge run --resume small/run --quiet > resume.out 2> resume.err
echo $? > resume.rc
cp small/run/checkpoints/last.pt final_last.pt
cp small/run/metrics.jsonl final_metrics.jsonl
"""


@pytest.mark.slow
def test_a_real_full_disk_is_a_clear_error_the_previous_checkpoint_loads_and_resume_finishes(workdir):
    namespace, reason = small_filesystem_command()
    if namespace is None:
        pytest.skip(reason)
    (workdir / "small").mkdir()
    # Checkpoints of 6.5 MB: epoch 1 leaves two (epoch_0001.pt, last.pt), epoch 2 a third; the fourth,
    # epoch 2's new last.pt, does not fit in 23 MB.
    overrides = ["model.params.hidden=[256,256]", "train.epochs=3", "output.dir=small/run"]
    script = FULL_DISK_SCRIPT.format(
        size="23m",
        python=sys.executable,
        smoke=SMOKE,
        overrides=" ".join(f"--set '{override}'" for override in overrides),
    )
    finished = subprocess.run([*namespace, "sh", "-c", script], cwd=workdir, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr

    error = " ".join((workdir / "full.err").read_text().split())
    assert (workdir / "full.rc").read_text().strip() == "1", error
    assert "Traceback" not in error and "inline_container" not in error
    assert "cannot save checkpoint small/run/checkpoints/last.pt: No space left on device: the disk is full" in error
    assert f"(the filesystem mounted at {workdir / 'small'} has" in error
    assert "the previous last.pt is kept; free some space, then continue with: ganforge run --resume small/run" in error
    assert not [name for name in (workdir / "full.ls").read_text().split() if name.endswith(".tmp")]
    assert load_checkpoint(workdir / "kept_last.pt")["epoch"] == 1
    print(f"a real full disk: {error}")

    resumed = (workdir / "resume.out").read_text() + (workdir / "resume.err").read_text()
    assert (workdir / "resume.rc").read_text().strip() == "0", resumed
    assert load_checkpoint(workdir / "final_last.pt")["epoch"] == 3
    records = [json.loads(line) for line in (workdir / "final_metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["event"] == "epoch"] == [1, 2, 3]
    assert len(set(identities(records))) == len(records)


def test_a_link_made_while_a_run_goes_on_is_refused_at_the_next_write(workdir):
    """Past the checks at the start: every write checks its own path, metrics.jsonl's too."""
    folder = RunFolder(workdir / "run")
    folder.create(overwrite=False)
    try:
        outside = workdir / "outside.jsonl"
        outside.write_text("someone else's\n")
        folder.metrics.path.symlink_to(outside)
        with pytest.raises(UsageError, match=r"metrics\.jsonl is a symbolic link"):
            folder.metrics.append({"event": "step", "epoch": 1, "step": 1})
        assert outside.read_text() == "someone else's\n"
        folder.samples.symlink_to(workdir)
        with pytest.raises(UsageError, match="samples is a symbolic link"):
            folder.save_samples(torch.zeros(4, 1, 8, 8), "real.png")
        assert not (workdir / "real.png").exists()
    finally:
        folder.release()


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
