"""The data benchmarks run end to end at toy sizes (their figures are in docs/benchmarks.md)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.imagesets.images import many_images

BENCHMARKS = Path(__file__).parent.parent.parent / "benchmarks"

pytestmark = pytest.mark.slow


def script(*args, cwd=None):
    result = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_prepare_throughput_races_ganforge_against_a_pil_loop_and_torchvision(tmp_path):
    output = script(BENCHMARKS / "prepare_throughput.py", "--count", 40, "--sizes", 16)
    row = re.search(r"^ +16 +([\d,]+) +([\d,]+) +([\d,]+) +([\d.]+)x +([\d.]+)x$", output, flags=re.MULTILINE)
    assert row is not None, output
    assert all(float(value.replace(",", "")) > 0 for value in row.groups())


def test_data_input_measures_both_storages_and_the_mapped_set_s_own_memory(tmp_path):
    output = script(
        BENCHMARKS / "data_input.py",
        "--images", 256, "--size", 16, "--batches", 4, "--rounds", 1, "--train-steps", 1,
        "--large-images", 128, "--large-size", 32, "--large-batches", 4, "--workdir", tmp_path,
    )  # fmt: skip
    assert re.search(r"memory +InMemoryBatches +[\d,]+ images/s", output), output
    assert re.search(r"mapped +MappedBatches +[\d,]+ images/s", output), output
    assert re.search(r"MappedBatches: 4 batches .* RssAnon at most [\d,]+ MB", output), output
    assert list(tmp_path.iterdir()) == []  # it cleans up after itself


def test_first_step_times_a_first_and_a_second_run_of_an_image_folder_config(tmp_path):
    many_images(tmp_path / "pictures", 24, side=20)
    config = tmp_path / "tiny.yaml"
    config.write_text(
        "name: tiny\n"
        "data: {name: image_folder, params: {path: pictures, size: 8}}\n"
        "model: {name: mlp, params: {latent_dim: 8, hidden: [16]}}\n"
        "loss: {name: non_saturating}\n"
        "train: {epochs: 1, batch_size: 8}\n"
    )
    output = script(BENCHMARKS / "first_step.py", config, cwd=tmp_path)
    assert re.search(r"^run 1: first step after [\d.]+ s$", output, flags=re.MULTILINE), output
    assert re.search(r"^run 2: first step after [\d.]+ s$", output, flags=re.MULTILINE), output
    assert re.search(r"preparation: 24 images at 8 px in [\d.]+ s", output), output
