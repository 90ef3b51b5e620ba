"""`ganforge report`: one self-contained HTML page of a run or of runs compared, opened in a real browser.

The browser tests need a headless Chromium (`.ci/run` installs Debian's); where there is none they
skip and say so.
"""

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.runs import SMOKE

QUICK = ["train.epochs=3", "eval.every=1", "eval.samples=100", "eval.metrics=[fid, precision_recall]"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def invoke(app, *args, exit_code=0):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == exit_code, result.output
    return result


def train(app, *overrides):
    args = ["run", SMOKE, "--quiet"]
    for override in (*QUICK, *overrides):
        args += ["--set", override]
    invoke(app, *args)


@pytest.fixture(scope="module")
def two_runs(app, tmp_path_factory):
    """Two short runs that differ in G's learning rate, in one folder."""
    folder = tmp_path_factory.mktemp("runs")
    for name, lr in (("slow", "2e-4"), ("fast", "1e-3")):
        train(app, f"name={name}", f"optim.generator.lr={lr}", f"output.dir={folder / name}")
    return folder / "slow", folder / "fast"


def embedded_sources(page: str) -> list[str]:
    return re.findall(r"""(?:src|href)=['"]([^'"]*)['"]""", page)


def test_a_report_holds_the_whole_run_in_one_file(app, two_runs, tmp_path):
    slow, _ = two_runs
    out = tmp_path / "report.html"
    invoke(app, "report", slow, "--out", out)
    page = out.read_text()
    sources = embedded_sources(page)
    assert sources and all(source.startswith("data:image/png;base64,") for source in sources)  # nothing outside it
    assert "http://" not in page and "https://" not in page
    assert "finished: 3 of 3 epochs" in page
    assert page.count("<img class='grid'") == 2 and "data-epochs='[1, 2, 3]'" in page  # real, and a slider
    assert json.loads(re.search(r"var GRIDS = (.*);", page).group(1))[0][2].startswith("data:image/png")
    assert "real floor" in page and "Best by <code>fid</code>" in page
    assert "alt='training curves'" in page and "alt='evaluations'" in page
    assert "optim:" in page and "lr: 0.0002" in page  # the config


def test_runs_compared_show_where_their_configs_differ(app, two_runs, tmp_path):
    out = tmp_path / "compare.html"
    invoke(app, "report", *two_runs, "--out", out)
    page = out.read_text()
    differing = re.findall(r"<tr><td>([^<]+)</td><td>", page.split("Where the configs differ")[1].split("</table>")[0])
    assert differing == ["name", "optim.generator.lr", "output.dir"]
    assert "slow vs fast" in page and page.count("<input type='range'") == 2


def test_a_run_in_progress_is_reported_as_far_as_it_went(app, two_runs, tmp_path):
    slow, _ = two_runs
    partial = tmp_path / "partial"
    shutil.copytree(slow, partial)
    lines = (partial / "metrics.jsonl").read_text().splitlines()
    first_epoch_end = next(i for i, line in enumerate(lines) if json.loads(line)["event"] == "epoch")
    # The run was at epoch 2 when the report was asked for, a line half written.
    (partial / "metrics.jsonl").write_text("\n".join(lines[: first_epoch_end + 1]) + "\n" + lines[-1][:20])
    for grid in ("epoch_0002.png", "epoch_0003.png"):
        (partial / "samples" / grid).unlink()
    out = tmp_path / "partial.html"
    invoke(app, "report", partial, "--out", out)
    page = out.read_text()
    assert "in progress: 1 of 3 epochs" in page and "data-epochs='[1]'" in page


def curves_width(app, run: Path, out: Path) -> int:
    from PIL import Image

    invoke(app, "report", run, "--out", out)
    uri = re.search(r"alt='training curves' src='data:image/png;base64,([^']+)'", out.read_text()).group(1)
    return Image.open(io.BytesIO(base64.b64decode(uri))).width


def test_an_acgan_run_gets_a_third_panel_for_its_class_head(app, two_runs, tmp_path):
    slow, _ = two_runs
    acgan = tmp_path / "acgan"
    shutil.copytree(slow, acgan)
    records = [json.loads(line) for line in (acgan / "metrics.jsonl").read_text().splitlines()]
    for record in records:
        if record["event"] != "eval":
            record.update(class_loss=1.2, class_acc_real=0.9, class_acc_fake=0.6)  # what an ACGAN run logs
    (acgan / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    plain = curves_width(app, slow, tmp_path / "plain.html")
    three_panels = curves_width(app, acgan, tmp_path / "acgan.html")
    assert three_panels == pytest.approx(1.5 * plain, rel=0.05)  # three panels of the same size, not two


def test_bad_input_is_refused_naming_it_and_nothing_is_harmed(app, two_runs, tmp_path):
    slow, _ = two_runs
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    result = invoke(app, "report", not_a_run, "--out", tmp_path / "r.html", exit_code=2)
    assert f"{not_a_run}: not a ganforge run folder" in result.stderr and "Traceback" not in result.output
    metrics = (slow / "metrics.jsonl").read_bytes()
    result = invoke(app, "report", slow, "--out", slow / "metrics.jsonl", exit_code=2)
    assert "the file this command reads" in result.stderr and (slow / "metrics.jsonl").read_bytes() == metrics
    grid = slow / "samples" / "epoch_0001.png"
    drawn = grid.read_bytes()
    assert "the file this command reads" in invoke(app, "report", slow, "--out", grid, exit_code=2).stderr
    assert grid.read_bytes() == drawn
    last = slow / "checkpoints" / "last.pt"
    kept = last.read_bytes()
    invoke(app, "report", slow, "--out", last, exit_code=2)
    assert last.read_bytes() == kept
    assert not (tmp_path / "r.html").exists()


def open_in_chromium(page: Path, screenshot: Path) -> tuple[str, str]:
    """The DOM after the page's scripts ran, and what the browser said on stderr; a screenshot of the page."""
    if CHROMIUM is None:
        pytest.skip("no headless Chromium here (Debian: apt-get install chromium)")
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr"]
    url = page.resolve().as_uri()
    shot = subprocess.run(
        [*flags, "--window-size=1280,2400", f"--screenshot={screenshot}", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.returncode == 0, shot.stderr
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr
    return dom.stdout, shot.stderr + dom.stderr


def assert_rendered(dom: str, said: str, screenshot: Path) -> None:
    from PIL import Image, ImageStat

    body = re.search(r"<body[^>]*>", dom).group(0)
    assert 'data-ready="1"' in body and "data-errors" not in body, body  # the scripts ran, and nothing failed
    assert "Uncaught" not in said and "CONSOLE" not in said, said
    image = Image.open(screenshot).convert("L")
    assert image.size == (1280, 2400)
    assert ImageStat.Stat(image).stddev[0] > 20  # not a blank page: text, charts and grids
    dark = sum(image.histogram()[:64]) / (image.size[0] * image.size[1])
    assert dark > 0.02  # the black sample grids and the chart lines are there


def test_a_report_renders_in_a_real_browser(app, two_runs, tmp_path):
    slow, _ = two_runs
    out = tmp_path / "report.html"
    invoke(app, "report", slow, "--out", out)
    dom, said = open_in_chromium(out, tmp_path / "report.png")
    assert_rendered(dom, said, tmp_path / "report.png")
    assert dom.count('class="grid"') == 2 and 'alt="training curves"' in dom


def test_a_comparison_renders_in_a_real_browser(app, two_runs, tmp_path):
    out = tmp_path / "compare.html"
    invoke(app, "report", *two_runs, "--out", out)
    dom, said = open_in_chromium(out, tmp_path / "compare.png")
    assert_rendered(dom, said, tmp_path / "compare.png")
    assert dom.count('type="range"') == 2
