"""Must show 4 of the issue: the doctor names every fault of a folder with its count, the good images are prepared,
and the source is left exactly as it was."""

import json

import torch

from ganforge.imagesets.prepared import open_prepared, read_manifest
from tests.cli_results import invoke
from tests.imagesets.images import (
    PLANTED_FILES,
    PLANTED_FINDINGS,
    PLANTED_SIZE,
    PLANTED_USABLE,
    planted_source,
    snapshot,
)

# What the text report says of each planted fault, with its count, as the user reads it.
REPORT_WORDS = [
    f"{PLANTED_USABLE} of {PLANTED_FILES} files are usable images",
    "1 unreadable or truncated: left out (e.g. colour/truncated.jpg)",
    "2 not an image: left out (e.g. colour/fake.png, colour/notes.txt)",
    "2 transparent (RGBA, LA or a palette with transparency)",
    "2 palette images",
    "1 16-bit or floating-point pixels",
    "1 CMYK",
    "1 greyscale among colour",
    "1 EXIF orientation: turned upright",
    "1 smaller than the target size: upscaled (e.g. colour/small.png)",
    "1 aspect ratio beyond 2:1",
    "1 exact duplicates of another file: kept (e.g. colour/good00_copy.png = colour/good00.png)",
    "1 classes with fewer than 10 usable images",
    "few (2)",
    "1 nested deeper than class folders: the first folder is the class (e.g. colour/sub/nested.png)",
]

EXAMPLES = {
    "unreadable": ["colour/truncated.jpg"],
    "not_image": ["colour/fake.png", "colour/notes.txt"],
    "transparent": ["colour/palette_transparent.png", "colour/rgba.png"],
    "palette": ["colour/palette.png", "colour/palette_transparent.png"],
    "high_bit_depth": ["colour/grey16.png"],
    "cmyk": ["colour/cmyk.jpg"],
    "greyscale": ["colour/grey.png"],
    "exif_rotated": ["colour/rotated.jpg"],
    "upscaled": ["colour/small.png"],
    "far_from_square": ["colour/wide.png"],
    "duplicate": ["colour/good00_copy.png = colour/good00.png"],
    "few_images_class": ["few (2)"],
    "deep_nesting": ["colour/sub/nested.png"],
}


def test_check_names_every_planted_fault_with_its_count_and_writes_nothing(app, tmp_path):
    source = planted_source(tmp_path / "photos")
    before = snapshot(tmp_path)

    as_json = invoke(app, "data", "check", source, "--size", PLANTED_SIZE, "--json")
    as_text = invoke(app, "data", "check", source, "--size", PLANTED_SIZE)

    report = json.loads(as_json.stdout)
    assert (report["files"], report["usable"]) == (PLANTED_FILES, PLANTED_USABLE)
    assert {kind: finding["count"] for kind, finding in report["findings"].items()} == PLANTED_FINDINGS
    assert {kind: finding["examples"] for kind, finding in report["findings"].items()} == EXAMPLES
    for words in REPORT_WORDS:
        assert words in as_text.stdout
    assert snapshot(tmp_path) == before


def test_prepare_keeps_the_usable_images_reports_every_fault_and_leaves_the_source_as_it_was(app, tmp_path):
    source = planted_source(tmp_path / "photos")
    before = snapshot(source)
    out = tmp_path / "prepared"

    result = invoke(app, "data", "prepare", source, "--size", PLANTED_SIZE, "--out", out)

    for words in REPORT_WORDS:
        assert words in result.stdout
    assert f"prepared {PLANTED_USABLE} images of 3 x 8 x 8 into {out}" in result.stdout
    assert "classes: 2 (colour, few)" in result.stdout
    assert f'data: {{name: prepared, params: {{path: "{out}"}}}}' in result.stdout
    manifest = read_manifest(out)
    assert manifest.count == PLANTED_USABLE and manifest.class_names == ("colour", "few")
    assert {kind: finding.count for kind, finding in manifest.doctor.findings.items()} == PLANTED_FINDINGS
    in_memory, mapped = open_prepared(out, "memory"), open_prepared(out, "mapped")
    assert in_memory.spec.shape == (3, PLANTED_SIZE, PLANTED_SIZE) and in_memory.spec.num_classes == 2
    assert in_memory.dataset.images.shape == (PLANTED_USABLE, 3, PLANTED_SIZE, PLANTED_SIZE)
    assert torch.equal(in_memory.dataset.images, mapped.dataset.images)
    assert torch.bincount(in_memory.dataset.labels).tolist() == [PLANTED_USABLE - 2, 2]
    assert snapshot(source) == before


def test_a_source_with_no_usable_image_is_reported_then_refused(app, tmp_path):
    source = tmp_path / "texts"
    source.mkdir()
    (source / "a.png").write_text("not a picture")
    (source / "b.txt").write_text("nor this")

    checked = invoke(app, "data", "check", source, "--json", exit_code=1)
    prepared = invoke(app, "data", "prepare", source, "--size", 8, "--out", tmp_path / "out", exit_code=1)

    report = json.loads(checked.stdout)
    assert report["usable"] == 0 and report["findings"]["not_image"]["count"] == 2
    assert f"no usable image in {source}" in " ".join(checked.stderr.split())
    assert "no usable image" in prepared.stderr and "2 not an image" in " ".join(prepared.stderr.split())
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial-*"))
