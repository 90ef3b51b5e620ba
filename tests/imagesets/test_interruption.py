"""A preparation stopped part-way (Ctrl-C, a kill, an exception) leaves no dataset behind, and a half-written one
never loads."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from ganforge.errors import DataError
from ganforge.imagesets.decode import DecodeOptions
from ganforge.imagesets.prepare import CHUNK, PARTIAL_MARK, prepare_dataset
from ganforge.imagesets.prepared import IMAGES_FILE, LABELS_FILE, MANIFEST_FILE, open_prepared, read_manifest
from ganforge.registry import Kind
from tests.cli_results import invoke, refused
from tests.imagesets.images import encoded, many_images, write


def slow_source(folder, count):
    """``count`` copies of a large flat PNG: small files, each a few milliseconds to decode and shrink."""
    data = encoded(Image.new("RGB", (1024, 1024), (30, 140, 200)))
    for index in range(count):
        write(folder / f"{index:04d}.png", data)
    return folder


def partial_folders(out):
    return sorted(out.parent.glob(f".{out.name}.partial-*"))


def start_preparing(source, out, *options):
    """``ganforge data prepare`` in a process group of its own, as a terminal starts a job; back once decoding began."""
    command = [sys.executable, "-m", "ganforge", "data", "prepare", str(source), "--size", "8", "--out", str(out)]
    process = subprocess.Popen(
        [*command, *options], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while not partial_folders(out):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the preparation did not begin"
        time.sleep(0.005)
    return process


def test_ctrl_c_while_preparing_exits_130_with_one_line_and_leaves_nothing(tmp_path, sigint_reaches_children):
    source = slow_source(tmp_path / "photos", 2 * CHUNK)
    out = tmp_path / "prepared"
    process = start_preparing(source, out, "--workers", "2")

    os.killpg(process.pid, signal.SIGINT)  # the terminal's Ctrl-C: to the command and its decoding processes
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 130, stderr
    assert stderr.splitlines() == [f"ganforge: interrupted (Ctrl-C); nothing was written to {out}"]
    assert stdout == ""
    assert not out.exists() and partial_folders(out) == []


def test_a_killed_preparation_leaves_a_hidden_folder_that_never_loads_and_the_next_one_removes(app, tmp_path):
    source = slow_source(tmp_path / "photos", CHUNK)
    out = tmp_path / "prepared"
    process = start_preparing(source, out, "--workers", "1")

    os.killpg(process.pid, signal.SIGKILL)  # no chance to clean up
    process.communicate(timeout=120)

    assert not out.exists()
    [left] = partial_folders(out)
    assert (left / PARTIAL_MARK).is_file()
    with pytest.raises(DataError, match=f"{left} is not a prepared dataset: it has no {MANIFEST_FILE}"):
        open_prepared(left)
    invoke(app, "data", "prepare", source, "--size", 8, "--out", out, "--quiet")
    assert partial_folders(out) == []
    assert read_manifest(out).count == CHUNK


def test_an_interrupted_preparation_in_several_processes_leaves_no_folder_and_no_process(tmp_path):
    source = many_images(tmp_path / "images", 4 * CHUNK)
    out = tmp_path / "prepared"

    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(source, out, DecodeOptions(size=4), workers=2, progress=interrupt)

    assert not out.exists() and partial_folders(out) == []
    assert multiprocessing.active_children() == []


def damage(folder, file_name, how):
    path = folder / file_name
    if how == "missing":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:-1])


@pytest.mark.parametrize(
    ("file_name", "how", "message"),
    [
        (MANIFEST_FILE, "missing", "is not a prepared dataset: it has no manifest.json"),
        (IMAGES_FILE, "missing", "images.u8: No such file or directory"),
        (IMAGES_FILE, "truncated", "images.u8 holds 2303 bytes where its manifest says 2304"),
        (LABELS_FILE, "truncated", "labels.i64 holds 95 bytes where its manifest says 96"),
    ],
)
def test_a_half_written_dataset_never_loads(tmp_path, file_name, how, message):
    out = tmp_path / "prepared"
    prepare_dataset(many_images(tmp_path / "images", 12), out, DecodeOptions(size=8), workers=1)
    damage(out, file_name, how)

    for storage in ("memory", "mapped"):
        with pytest.raises(DataError, match=message):
            open_prepared(out, storage)


def test_data_show_describes_a_prepared_dataset_and_refuses_a_half_written_one_in_one_line(app, registry, tmp_path):
    if "prepared" not in {component.name for component in registry.components(Kind.DATASET)}:
        pytest.skip("the prepared dataset component is not registered in this checkout")
    out = tmp_path / "prepared"
    prepare_dataset(many_images(tmp_path / "images", 12, classes=3), out, DecodeOptions(size=8), workers=1)

    shown = invoke(app, "data", "show", "prepared", "-p", f"path={out}")
    damage(out, IMAGES_FILE, "truncated")
    damaged = refused(invoke(app, "data", "show", "prepared", "-p", f"path={out}", exit_code=1))

    assert "12" in shown.stdout and "3 x 8 x 8" in shown.stdout
    assert f"{out / IMAGES_FILE} holds 2303 bytes where its manifest says 2304" in damaged
