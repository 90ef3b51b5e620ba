"""What the pixels become: crop, pad and stretch of an asymmetric image, the background colour, EXIF rotation."""

import numpy as np
import pytest
from PIL import Image

from ganforge.imagesets.prepared import open_prepared
from tests.cli_results import invoke
from tests.imagesets.images import (
    BLUE,
    GREEN,
    RED,
    WHITE,
    columns,
    encoded,
    rotated_jpeg,
    write,
)

YELLOW = (255, 255, 0)
# Four columns of four colours, two rows: wider than high, and no column like another.
FOUR_COLUMNS = [RED, GREEN, BLUE, YELLOW]


def prepared_pixels(app, tmp_path, image_bytes, *options, name="image.png"):
    """The one image of a source holding ``image_bytes``, prepared with ``options``, as [H, W, C] uint8."""
    source = tmp_path / "source"
    write(source / name, image_bytes)
    out = tmp_path / "out"
    invoke(app, "data", "prepare", source, "--out", out, "--quiet", *options)
    images = open_prepared(out, "memory").dataset.images
    assert images.shape[0] == 1
    return images[0].permute(1, 2, 0).numpy()


def picture(rows):
    return np.array(rows, dtype=np.uint8)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # The shorter side (2) at the size; the middle two columns kept.
        (["--size", "2", "--resize", "crop"], picture([[GREEN, BLUE], [GREEN, BLUE]])),
        # The longer side (4) at the size, centred; the rows above and below are the background.
        (
            ["--size", "4", "--resize", "pad", "--background", "0,0,0"],
            picture([[(0, 0, 0)] * 4, FOUR_COLUMNS, FOUR_COLUMNS, [(0, 0, 0)] * 4]),
        ),
        (
            ["--size", "4", "--resize", "pad", "--background", "#808080"],
            picture([[(128, 128, 128)] * 4, FOUR_COLUMNS, FOUR_COLUMNS, [(128, 128, 128)] * 4]),
        ),
        (["--size", "4", "--resize", "pad"], picture([[WHITE] * 4, FOUR_COLUMNS, FOUR_COLUMNS, [WHITE] * 4])),
        # Both sides at the size: each column drawn twice as high.
        (["--size", "4", "--resize", "stretch"], picture([FOUR_COLUMNS] * 4)),
    ],
    ids=["crop", "pad-black", "pad-grey", "pad-white-default", "stretch"],
)
def test_each_resize_policy_gives_the_pixels_it_promises(app, tmp_path, options, expected):
    pixels = prepared_pixels(app, tmp_path, encoded(columns(FOUR_COLUMNS, height=2)), *options)
    np.testing.assert_array_equal(pixels, expected)


def test_pad_of_a_greyscale_dataset_fills_with_the_background_s_grey(app, tmp_path):
    greyscale_pad = ["--size", "4", "--resize", "pad", "--channels", "1", "--background", "black"]
    pixels = prepared_pixels(app, tmp_path, encoded(columns([WHITE] * 4, height=2)), *greyscale_pad)
    np.testing.assert_array_equal(pixels[..., 0], [[0] * 4, [255] * 4, [255] * 4, [0] * 4])


@pytest.mark.parametrize(("background", "colour"), [("white", WHITE), ("red", RED), ("0,0,255", BLUE)])
def test_transparent_pixels_become_the_background(app, tmp_path, background, colour):
    rgba = np.array([[(0, 255, 0, 255), (0, 0, 0, 0)], [(0, 0, 0, 0), (0, 255, 0, 255)]], dtype=np.uint8)
    image = encoded(Image.fromarray(rgba, mode="RGBA"))
    pixels = prepared_pixels(app, tmp_path, image, "--size", "2", "--background", background)
    np.testing.assert_array_equal(pixels, picture([[GREEN, colour], [colour, GREEN]]))


def test_a_photo_whose_exif_says_rotated_comes_out_upright(app, tmp_path):
    pixels = prepared_pixels(app, tmp_path, rotated_jpeg(16), "--size", "16", name="photo.jpg").astype(int)

    # Stored left red and right blue; turned a quarter clockwise, red is on top and blue below.
    top, bottom = pixels[:6].reshape(-1, 3).mean(axis=0), pixels[10:].reshape(-1, 3).mean(axis=0)
    assert np.abs(top - RED).max() < 40, top
    assert np.abs(bottom - BLUE).max() < 40, bottom


@pytest.mark.parametrize("value", ["nope", "1,2", "0,0,256", "#12345", "#11223344", "-1,0,0", "٣,0,0", "²,0,0"])
def test_a_background_that_is_not_a_colour_is_refused_by_name(app, tmp_path, value):
    write(tmp_path / "source" / "image.png", encoded(columns(FOUR_COLUMNS, height=2)))

    prepare = ["data", "prepare", tmp_path / "source", "--size", 2, "--out", tmp_path / "out"]
    result = invoke(app, *prepare, "--background", value, exit_code=2)

    assert f"--background {value!r}" in result.stderr and "R,G,B (each 0-255 in the digits 0-9)" in result.stderr
    assert not (tmp_path / "out").exists()
