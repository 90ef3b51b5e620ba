"""`ganforge report` of run folders edited by hand, damaged or made by someone hostile (issue 35).

The run folders are made here, file by file (no training): a config, metrics.jsonl and PNG grids.
Every refusal names the file and the field or line, exits non-zero, and shows no traceback; a
sample grid that is not the run's own PNG file is left out with one warning naming it.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ganforge.cli.export import evaluation_at
from ganforge.errors import DataError

SECRET = b"\x89PNG\r\n\x1a\n" + b"TOP-SECRET-" * 100  # dressed as a PNG: only the link keeps it out
CONFIG = {
    "name": "tiny",
    "seed": 0,
    "train": {"epochs": 3},
    "eval": {"every": 1, "best": "fid", "metrics": ["fid"]},
    "schedules": {"optim.generator.lr": {"name": "cosine", "params": {}}},
}


def png(shade: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (20, 20), shade).save(buffer, format="PNG")
    return buffer.getvalue()


def metrics_lines(epochs: int = 3) -> list[dict]:
    lines = []
    for epoch in range(1, epochs + 1):
        step = 10 * epoch
        values = {
            "d_loss": 1.0 / epoch,
            "g_loss": 0.7,
            "D(x)": 0.6,
            "D(G(z))": 0.4,
            "schedule/optim.generator.lr": 1e-4,
        }
        lines.append({"event": "step", "epoch": epoch, "step": step - 5, **values})
        lines.append({"event": "epoch", "epoch": epoch, "step": step, **values})
        lines.append({"event": "eval", "epoch": epoch, "step": step, "fid": 50.0 / epoch, "floor": {"fid": 1.5}})
    return lines


def make_run(folder: Path, config: dict | str = CONFIG, lines: list[dict] | None = None) -> Path:
    """A run folder of three epochs: its config, metrics.jsonl, the real grid and a grid per epoch."""
    (folder / "samples").mkdir(parents=True)
    text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
    (folder / "config.yaml").write_text(text)
    records = metrics_lines() if lines is None else lines
    (folder / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    (folder / "samples" / "real.png").write_bytes(png(255))
    for epoch in (1, 2, 3):
        (folder / "samples" / f"epoch_{epoch:04d}.png").write_bytes(png(40 * epoch))
    return folder


def report(app, *runs: Path, out: Path, exit_code: int = 0):
    result = CliRunner().invoke(app, ["report", *map(str, runs), "--out", str(out)])
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def embedded_bytes(page: str) -> list[bytes]:
    """Every data: URI of the page, decoded."""
    uris = re.findall(r"data:[\w/+.-]*;base64,([A-Za-z0-9+/=]*)", page)
    assert len(uris) == page.count("data:")  # none left undecoded
    return [base64.b64decode(uri) for uri in uris]


# -- sample grids that are not the run's own PNG files ---------------------------------------------


@pytest.mark.parametrize("target", ["secret", "/dev/zero"])
def test_a_grid_linked_outside_the_run_is_left_out_with_a_warning_and_nothing_of_it_is_on_the_page(
    app, tmp_path, target
):
    run = make_run(tmp_path / "run")
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    linked = run / "samples" / "epoch_0003.png"
    linked.unlink()
    linked.symlink_to(secret if target == "secret" else target)
    out = tmp_path / "report.html"
    result = report(app, run, out=out)
    assert result.stderr.count("warning:") == 1 and f"{linked} is a symbolic link" in result.stderr
    page = out.read_text()
    assert "data-epochs='[1, 2]'" in page  # the two grids of the run's own
    decoded = embedded_bytes(page)
    assert len(decoded) >= 5 and all(b"TOP-SECRET" not in data for data in decoded)
    assert "TOP-SECRET" not in page


def test_a_samples_folder_or_real_grid_that_is_a_link_is_left_out(app, tmp_path):
    run = make_run(tmp_path / "run")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "epoch_0001.png").write_bytes(SECRET)
    (outside / "real.png").write_bytes(SECRET)
    (tmp_path / "secret").write_bytes(SECRET)
    (run / "samples").rename(tmp_path / "moved")
    (run / "samples").symlink_to(outside)
    other = make_run(tmp_path / "other")
    (other / "samples" / "real.png").unlink()
    (other / "samples" / "real.png").symlink_to(tmp_path / "secret")
    out = tmp_path / "report.html"
    result = report(app, run, other, out=out)
    assert f"{run / 'samples'} is a symbolic link" in result.stderr
    assert f"{other / 'samples' / 'real.png'} is a symbolic link" in result.stderr
    assert result.stderr.count("warning:") == 2
    assert all(b"TOP-SECRET" not in data for data in embedded_bytes(out.read_text()))


def test_a_grid_that_is_a_folder_or_not_a_png_is_left_out_with_a_warning(app, tmp_path):
    run = make_run(tmp_path / "run")
    folder = run / "samples" / "epoch_0002.png"
    folder.unlink()
    folder.mkdir()
    not_png = run / "samples" / "epoch_0003.png"
    not_png.write_text("not an image")
    out = tmp_path / "report.html"
    result = report(app, run, out=out)
    assert f"sample grid {folder} is a folder, not a file" in result.stderr
    assert f"sample grid {not_png} is not a PNG image" in result.stderr
    assert result.stderr.count("warning:") == 2 and "data-epochs='[1]'" in out.read_text()


# -- config.yaml ---------------------------------------------------------------------------------

ALIAS_BOMB = "name: bomb\n" + "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else ', '.join(['x'] * 9)}]\n" for i in range(10)
)


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ("name: deep\ntrain: " + "[" * 50_000 + "]" * 50_000 + "\n", "maximum nesting depth"),
        (ALIAS_BOMB, "alias"),
        ("name: x\ntrain: 5\n", "train: Input should be"),
        ("name: x\neval: 5\n", "eval: Input should be"),
        ("name: x\ntrain: {epochs: '10'}\n", "train.epochs: Input should be a valid integer (given: '10')"),
        ("name: x\ntrain: {epochs: -1}\n", "train.epochs"),
        ("name: x\neval: {best: [1, 2]}\n", "eval.best: Input should be a valid string (given: [1, 2])"),
        ("name: [x]\n", "name: Input should be a valid string"),
        ("name: x\nschedules: {optim.generator.lr: 5}\n", "schedules.optim.generator.lr"),
        ("- a list\n", "is not a mapping of fields"),
        ("name: x\n\xff: 1\n", "not UTF-8"),
    ],
)
def test_a_config_the_report_cannot_use_is_refused_naming_the_file_and_field(app, tmp_path, config, named):
    first = make_run(tmp_path / "first", config=config)
    second = make_run(tmp_path / "second", config=config)
    if config.startswith("name: x\n\xff"):
        (first / "config.yaml").write_bytes(config.encode("latin-1"))
    out = tmp_path / "report.html"
    result = report(app, first, second, out=out, exit_code=1)
    assert f"run config {first / 'config.yaml'}" in result.stderr and named in result.stderr
    assert not out.exists()


def test_a_config_that_is_a_link_is_refused(app, tmp_path):
    run = make_run(tmp_path / "run")
    (tmp_path / "secret.yaml").write_text("name: secret\n")
    (run / "config.yaml").unlink()
    (run / "config.yaml").symlink_to(tmp_path / "secret.yaml")
    result = report(app, run, out=tmp_path / "report.html", exit_code=1)
    assert f"run config {run / 'config.yaml'} is a symbolic link" in result.stderr


def test_names_and_keys_with_dollars_are_drawn_as_written_not_as_mathtext(app, tmp_path):
    runs = []
    for index, name in enumerate([r"$\undefinedcommand{x}$", r"a $\frac{$ b $"]):
        lines = metrics_lines()
        for line in lines:
            if line["event"] == "step":
                line[r"schedule/$\undefinedcommand{y}$"] = 0.5
        runs.append(make_run(tmp_path / f"run{index}", config=dict(CONFIG, name=name), lines=lines))
    out = tmp_path / "report.html"
    report(app, *runs, out=out)
    page = out.read_text()
    assert r"$\undefinedcommand{x}$ vs a $\frac{$ b $" in page
    assert "alt='training curves'" in page and "alt='evaluations'" in page and "alt='scheduled settings'" in page


# -- metrics.jsonl, in the report and in export ------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"floor": 5}, "floor: Input should be a valid dictionary (given: 5)"),
        ({"floor": [1.5]}, "floor: Input should be a valid dictionary (given: [1.5])"),
        ({"floor": {"fid": "low"}}, "floor.fid: Input should be a valid number (given: 'low')"),
        ({"fid": "12.5"}, "fid: Input should be a valid number (given: '12.5')"),
        ({"protocol": "fid"}, "protocol: Input should be a valid dictionary"),
    ],
)
def test_an_eval_line_of_the_wrong_shape_is_named_by_report_and_export_alike(app, tmp_path, change, named):
    lines = metrics_lines()
    lines[5].update(change)  # the second evaluation, line 6
    run = make_run(tmp_path / "run", lines=lines)
    where = f"{run / 'metrics.jsonl'}, line 6,"
    result = report(app, run, out=tmp_path / "report.html", exit_code=1)
    assert where in result.stderr and named in result.stderr
    with pytest.raises(DataError) as refused:  # what `ganforge export` reads the run's evaluation with
        evaluation_at(run / "checkpoints" / "last.pt", 20)
    assert where in str(refused.value) and named in str(refused.value)


def test_metrics_that_are_a_link_or_a_fifo_are_refused(app, tmp_path):
    run = make_run(tmp_path / "run")
    metrics = run / "metrics.jsonl"
    metrics.unlink()
    os.mkfifo(metrics)
    result = report(app, run, out=tmp_path / "report.html", exit_code=1)
    assert f"metrics file {metrics} is not a regular file" in result.stderr
    metrics.unlink()
    metrics.symlink_to("/dev/zero")
    result = report(app, run, out=tmp_path / "report.html", exit_code=1)
    assert f"metrics file {metrics} is a symbolic link" in result.stderr


def test_values_at_a_floats_limits_are_left_off_the_charts_and_kept_in_the_tables(app, tmp_path):
    lines = metrics_lines()
    lines[0]["d_loss"], lines[3]["d_loss"], lines[1]["g_loss"] = 1e308, -1e308, 2**70  # matplotlib fails on 1e308
    lines[2]["fid"], lines[5]["fid"], lines[8]["floor"]["fid"] = 1e308, -1e308, math.inf
    lines[3]["schedule/optim.generator.lr"] = -1e308
    run = make_run(tmp_path / "run", lines=lines)
    out = tmp_path / "report.html"
    report(app, run, out=out)
    page = out.read_text()
    assert "<td>1e+308</td>" in page and "<td>-1e+308</td>" in page and "<td>inf</td>" in page
    assert "alt='training curves'" in page and "alt='evaluations'" in page and "alt='scheduled settings'" in page
