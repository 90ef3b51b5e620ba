"""`ganforge sample --truncation` and `--interpolate`, on a checkpoint of the smoke run, and slerp by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ganforge.generation import great_circle_walks, slerp
from tests.runs import SMOKE


@pytest.fixture(scope="module")
def checkpoint(app, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("run")
    result = CliRunner().invoke(
        app, ["run", str(SMOKE), "--quiet", "--set", f"output.dir={folder / 'smoke'}", "--set", "train.epochs=3"]
    )
    assert result.exit_code == 0, result.output
    return folder / "smoke" / "checkpoints" / "last.pt"


def sample(app, checkpoint, out: Path, *options: str) -> torch.Tensor:
    result = CliRunner().invoke(app, ["sample", str(checkpoint), "--out", str(out), *options])
    assert result.exit_code == 0, result.output
    return torch.load(out, weights_only=True)


def test_slerp_keeps_the_angle_even_and_the_ends_exact():
    start, end = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    t = torch.tensor([[0.0], [0.25], [0.5], [1.0]])
    points = slerp(start, end, t)
    assert torch.allclose(points[0], start[0]) and torch.allclose(points[-1], end[0])
    angles = [math.degrees(math.atan2(y, x)) for x, y in points.tolist()]
    assert angles[1:3] == [pytest.approx(22.5), pytest.approx(45.0)]  # equal steps in angle
    assert torch.allclose(points.norm(dim=1), torch.ones(4))  # on the circle, not the chord
    longer = slerp(start, 2 * end, torch.tensor([[1.0]]))
    assert torch.allclose(longer, 2 * end)
    parallel = slerp(torch.tensor([[1.0, 1.0]]), torch.tensor([[2.0, 2.0]]), torch.tensor([[0.5]]))
    assert torch.allclose(parallel, torch.tensor([[1.5, 1.5]]))  # no angle: the straight line
    walks = great_circle_walks(torch.randn(3, 8), torch.randn(3, 8), 5)
    assert walks.shape == (15, 8)


def test_truncation_trades_variety_for_typical_images(app, checkpoint, tmp_path):
    plain = sample(app, checkpoint, tmp_path / "plain.pt", "--n", "64")
    untouched = sample(app, checkpoint, tmp_path / "one.pt", "--n", "64", "--truncation", "1")
    assert torch.equal(plain, untouched)
    spreads = [
        sample(app, checkpoint, tmp_path / f"{psi}.pt", "--n", "64", "--truncation", psi).std(dim=0).mean().item()
        for psi in ("1", "0.5", "0.01")
    ]
    assert spreads[0] > spreads[1] > spreads[2]  # less variety across the images as psi falls
    assert spreads[2] < 0.05 * spreads[0]  # psi near 0: nearly one image, the generator's at z = 0


def test_interpolation_walks_smoothly_between_its_ends(app, checkpoint, tmp_path):
    images = sample(app, checkpoint, tmp_path / "walks.pt", "--n", "40", "--interpolate", "10")
    walks = images.view(4, 10, -1)
    neighbours = (walks[:, 1:] - walks[:, :-1]).abs().mean(dim=2)
    ends = (walks[:, -1] - walks[:, 0]).abs().mean(dim=1)
    assert (neighbours.max(dim=1).values < ends).all()  # each step a small part of the way
    grid = tmp_path / "walks.png"
    result = CliRunner().invoke(app, ["sample", str(checkpoint), "--out", str(grid), "--interpolate", "10"])
    assert result.exit_code == 0 and grid.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--truncation", "0"], "--truncation 0.0: psi must be in (0, 1]"),
        (["--truncation", "1.5"], "--truncation 1.5: psi must be in (0, 1]"),
        (["--truncation", "nan"], "--truncation nan: psi must be in (0, 1]"),
        (["--interpolate", "1"], "--interpolate 1 with --n 100: a walk has at least 2 images"),
        (["--interpolate", "7"], "--interpolate 7 with --n 100"),
    ],
)
def test_bad_sampling_options_are_refused_before_anything_is_written(app, checkpoint, tmp_path, options, message):
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(app, ["sample", str(checkpoint), "--out", str(out), *options])
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output
    assert not out.exists()
