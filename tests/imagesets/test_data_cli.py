"""The data commands as a user types them: the group and its old short form, the options of prepare and check, the
progress bar, and a dataset prepared twice."""

import io
import json

from rich.console import Console

from ganforge.cli import data as data_commands
from ganforge.imagesets.prepared import IMAGES_FILE, open_prepared, read_manifest
from tests.cli_results import invoke
from tests.imagesets.images import encoded, many_images, noise, write


def test_data_name_is_still_data_show_name(app):
    short = invoke(app, "data", "synthetic", "-p", "num_samples=12", "-p", "num_classes=3")
    options_first = invoke(app, "data", "-p", "num_samples=12", "-p", "num_classes=3", "synthetic")
    long = invoke(app, "data", "show", "synthetic", "-p", "num_samples=12", "-p", "num_classes=3")

    assert short.stdout == long.stdout == options_first.stdout
    assert "12" in long.stdout and "1 x 28 x 28" in long.stdout


def test_the_help_lists_data_beside_show_and_its_three_subcommands(app):
    commands = [line.split()[1] for line in invoke(app, "--help").stdout.splitlines() if line.startswith("│ ")]
    subcommands = [line.split()[1] for line in invoke(app, "data", "--help").stdout.splitlines() if "│ " in line]

    assert commands[commands.index("show") + 1] == "data"
    assert [name for name in subcommands if name in ("show", "prepare", "check")] == ["show", "prepare", "check"]


def test_prepare_again_says_it_is_prepared_and_writes_nothing(app, tmp_path):
    images = many_images(tmp_path / "images", 5)
    out = tmp_path / "prepared"
    first = invoke(app, "data", "prepare", images, "--size", 4, "--out", out)
    written = (out / IMAGES_FILE).stat().st_mtime_ns

    again = invoke(app, "data", "prepare", images, "--size", 4, "--out", out)

    assert "prepared 5 images of 3 x 4 x 4" in first.stdout and "already holds" not in first.stdout
    assert f"{out} already holds this dataset, prepared from the same files with the same options" in again.stdout
    assert (out / IMAGES_FILE).stat().st_mtime_ns == written


def test_channels_classes_and_extensions_are_the_user_s_to_choose(app, tmp_path):
    source = many_images(tmp_path / "images", 6, classes=2)
    write(source / "class0" / "photo.jpg", encoded(noise(8, 8, 7), "JPEG"))
    out = tmp_path / "prepared"

    choices = ["--channels", "1", "--no-classes", "--extensions", "PNG, .bmp"]
    result = invoke(app, "data", "prepare", source, "--size", 4, "--out", out, *choices)

    manifest = read_manifest(out)
    assert manifest.count == 6 and manifest.class_names is None and manifest.extensions == ("png", "bmp")
    assert manifest.doctor.findings["not_image"].examples == ("class0/photo.jpg",)
    assert open_prepared(out).spec.shape == (1, 4, 4)
    assert "classes: none" in result.stdout


def test_extensions_that_are_none_are_refused(app, tmp_path):
    images = many_images(tmp_path / "images", 2)

    result = invoke(app, "data", "check", images, "--extensions", " , ", exit_code=2)

    assert "--extensions ' , ': give file extensions separated by commas, such as png,jpg" in result.stderr


def test_check_json_is_the_report_alone_on_stdout(app, tmp_path):
    images = many_images(tmp_path / "images", 3, side=2)

    result = invoke(app, "data", "check", images, "--size", 4, "--json")

    assert json.loads(result.stdout) == {
        "files": 3,
        "usable": 3,
        "findings": {
            "upscaled": {"count": 3, "examples": ["00000.png", "00001.png", "00002.png"]},
        },
    }


def test_the_progress_bar_counts_files_and_images_per_second(app, tmp_path, monkeypatch):
    terminal = io.StringIO()
    monkeypatch.setattr(data_commands, "err_console", Console(file=terminal, force_terminal=True, width=160))
    images = many_images(tmp_path / "images", 7)

    invoke(app, "data", "prepare", images, "--size", 4, "--out", tmp_path / "prepared")

    drawn = terminal.getvalue()
    assert "decoding" in drawn and "7/7" in drawn and "images/s" in drawn
