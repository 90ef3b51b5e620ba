"""What is in the way of a preparation, or in place of a prepared dataset's files: refused with one clear line, never
written over, never waited on."""

import json
import os
import subprocess
import sys

import pytest

from ganforge.errors import DataError
from ganforge.imagesets.decode import DecodeOptions
from ganforge.imagesets.prepare import prepare_dataset
from ganforge.imagesets.prepared import MANIFEST_FILE, MAX_MANIFEST_BYTES, open_prepared
from tests.cli_results import invoke, refused
from tests.imagesets.images import many_images, snapshot

NOT_A_MANIFEST = f"{MANIFEST_FILE} is not a prepared dataset's manifest"


@pytest.fixture
def images(tmp_path):
    return many_images(tmp_path / "images", 6)


def prepare(app, source, out, exit_code=0):
    return invoke(app, "data", "prepare", source, "--size", 4, "--out", out, "--quiet", exit_code=exit_code)


def one_line(result):
    return " ".join(result.stderr.split())


def test_an_existing_folder_of_the_user_s_is_refused_and_left_as_it_was(app, tmp_path, images):
    mine = tmp_path / "mine"
    (mine / "notes").mkdir(parents=True)
    (mine / "thesis.txt").write_text("years of work")
    before = snapshot(mine)

    result = prepare(app, images, mine, exit_code=2)

    assert f"{mine} already exists and is not a prepared dataset: choose another output folder" in one_line(result)
    assert snapshot(mine) == before


@pytest.mark.parametrize("target", ["empty folder", "prepared dataset", "nothing"])
def test_an_out_that_is_a_symbolic_link_is_refused(app, tmp_path, images, target):
    elsewhere = tmp_path / "elsewhere"
    if target == "empty folder":
        elsewhere.mkdir()
    elif target == "prepared dataset":
        prepare(app, images, elsewhere)
    before = snapshot(tmp_path / "images")
    link = tmp_path / "link"
    link.symlink_to(elsewhere)

    result = prepare(app, images, link, exit_code=2)

    assert f"{link} already exists and is not a prepared dataset" in one_line(result)
    assert link.is_symlink() and snapshot(tmp_path / "images") == before
    if target == "empty folder":
        assert list(elsewhere.iterdir()) == []


def test_out_inside_the_source_is_refused_before_anything_is_written(app, tmp_path, images):
    before = snapshot(images)

    result = prepare(app, images, images / "prepared", exit_code=2)

    assert "is inside the source" in one_line(result) and "a source is never written to" in one_line(result)
    assert snapshot(images) == before


def test_an_out_prepared_from_other_files_or_options_is_refused(app, tmp_path, images):
    out = tmp_path / "prepared"
    prepare(app, images, out)
    before = snapshot(out)

    other_size = invoke(app, "data", "prepare", images, "--size", 5, "--out", out, exit_code=2)

    assert "holds a dataset prepared from other files or with other options" in one_line(other_size)
    assert snapshot(out) == before


@pytest.mark.parametrize("source_kind", ["missing", "a text file", "an empty folder"])
def test_a_source_that_is_no_images_is_named(app, tmp_path, source_kind):
    source = tmp_path / "source"
    if source_kind == "a text file":
        source.write_text("hello")
    elif source_kind == "an empty folder":
        source.mkdir()

    output = refused(invoke(app, "data", "check", source, exit_code=1), code=1)

    expected = {
        "missing": f"{source} does not exist: give a folder of images, a .zip or a .tar",
        "a text file": f"{source} is neither a folder nor an archive ganforge reads",
        "an empty folder": f"no usable image in {source}",
    }[source_kind]
    assert expected in output


def test_a_manifest_replaced_by_a_fifo_is_refused_without_waiting_on_it(tmp_path, images):
    out = tmp_path / "prepared"
    prepare_dataset(images, out, DecodeOptions(size=4), workers=1)
    (out / MANIFEST_FILE).unlink()
    os.mkfifo(out / MANIFEST_FILE)
    command = [sys.executable, "-m", "ganforge", "data", "prepare", str(images), "--size", "4", "--out", str(out)]

    result = subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert result.returncode == 1, result.stderr
    assert f"cannot read {out / MANIFEST_FILE}: is not a regular file" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    with pytest.raises(DataError, match="is not a regular file"):
        open_prepared(out)


def rewrite_manifest(out, change):
    path = out / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda m: m.update(extra_field=1),
            f"{NOT_A_MANIFEST}: extra_field: Extra",
        ),
        (lambda m: m.update(count=0), f"{NOT_A_MANIFEST}: count: Input should be"),
        (lambda m: m.update(count=7), "labels.i64 holds 48 bytes where its manifest says 56"),
        (lambda m: m.update(size=5), "images.u8 holds 288 bytes where its manifest says 450"),
        (lambda m: m.update(format="npy"), f"{NOT_A_MANIFEST}: format"),
        (lambda m: m.pop("doctor"), f"{NOT_A_MANIFEST}: doctor: Field required"),
    ],
    ids=["extra field", "no images", "count", "size", "format", "no report"],
)
def test_a_manifest_that_disagrees_is_refused_naming_the_file(tmp_path, images, change, message):
    out = tmp_path / "prepared"
    prepare_dataset(images, out, DecodeOptions(size=4), workers=1)
    rewrite_manifest(out, change)

    with pytest.raises(DataError, match=message) as raised:
        open_prepared(out)
    assert str(out) in str(raised.value)


@pytest.mark.parametrize("how", ["huge", "link", "not json", "nested too deep"])
def test_a_manifest_too_large_a_link_or_not_json_is_refused(tmp_path, images, how):
    out = tmp_path / "prepared"
    prepare_dataset(images, out, DecodeOptions(size=4), workers=1)
    path = out / MANIFEST_FILE
    if how == "huge":
        path.write_bytes(b" " * (10 * 2**20))
    elif how == "link":
        real = tmp_path / "real-manifest.json"
        path.rename(real)
        path.symlink_to(real)
    elif how == "not json":
        path.write_text("{not json")
    else:
        path.write_text("[" * 100_000 + "]" * 100_000)  # json.loads would overflow Python's stack

    with pytest.raises(DataError) as raised:
        open_prepared(out)

    expected = {
        "huge": f"cannot read {path}: is larger than {MAX_MANIFEST_BYTES} bytes",
        "link": f"cannot read {path}: is a symbolic link",
        "not json": f"{path} is not JSON",
        "nested too deep": f"{path} nests arrays or objects more than 64 deep",
    }[how]
    assert expected in str(raised.value)
