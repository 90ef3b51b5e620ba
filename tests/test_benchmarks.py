"""The benchmark scripts run end to end on a few steps of the real MNIST (figures in docs/benchmarks.md)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ganforge.data_root import default_data_root

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"
EXAMPLES = Path(__file__).parent.parent / "examples"

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def needs_real_mnist(real_mnist_root):
    """Every benchmark here reads the real MNIST."""


def script(name, *args):
    env = {**os.environ, "GANFORGE_DATA": str(default_data_root().resolve())}
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / name), *map(str, args)], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_throughput_races_ganforge_against_both_plain_loops():
    output = script("throughput.py", "--recipe", "seed001", "--steps", 5, "--rounds", 2, "--warmup", 1)
    assert "round 1 (warm-up)" in output and "round 3:" in output
    medians = dict(re.findall(r"^(ganforge|seeds_loader|plain_tensor) +([\d,]+) ", output, flags=re.MULTILINE))
    assert medians.keys() == {"ganforge", "seeds_loader", "plain_tensor"}
    assert all(float(median.replace(",", "")) > 0 for median in medians.values())
    assert "ganforge / plain_tensor (b):" in output and "ganforge / seeds_loader (a):" in output
    assert "torch 2." in output and "training step on cpu" in output


def test_throughput_refuses_a_recipe_its_plain_loops_cannot_copy():
    env = {**os.environ, "GANFORGE_DATA": str(default_data_root().resolve())}
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "throughput.py"), "--steps", "2", "--set", "loss.name=hinge"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode != 0
    assert "the plain loops cannot do the same maths: loss must be plain non_saturating" in result.stderr


def test_time_to_quality_trains_and_prints_the_fid_curve():
    output = script(
        "time_to_quality.py",
        EXAMPLES / "mnist_fast.yaml",
        "--set",
        "data.params.limit=640",
        "--set",
        "train.epochs=2",
        "--set",
        "eval.samples=500",
        "--target",
        1e9,
    )
    curve = [line.split() for line in output.splitlines() if line.split() and line.split()[0] in ("1", "2")]
    assert [row[0] for row in curve] == ["1", "2"]
    assert all(float(row[3]) > 0 for row in curve)
    assert "<= target 1000000000.0 at epoch 1" in output


def test_time_to_quality_reads_a_finished_run(tmp_path):
    records = [
        {"event": "epoch", "epoch": 1, "step": 10, "seconds": 2.0},
        {"event": "eval", "epoch": 1, "step": 10, "fid": 30.0, "seconds": 1.0},
        {"event": "epoch", "epoch": 2, "step": 20, "seconds": 2.5},
        {"event": "eval", "epoch": 2, "step": 20, "fid": 12.0, "seconds": 1.0},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    output = script("time_to_quality.py", "--run-dir", tmp_path, "--target", 20)
    assert "fid 12.00 <= target 20.0 at epoch 2: 4.5 s in the training loop" in output


def test_time_to_quality_names_a_folder_that_is_not_a_run(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "time_to_quality.py"), "--run-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert f"{tmp_path} is not a run folder: {tmp_path / 'metrics.jsonl'} does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_processes_compares_one_process_with_two():
    output = script("processes.py", "--recipe", "seed001", "--steps", 4, "--epochs", 2, "--rounds", 1)
    assert re.search(r"^round 1: images/s 1 process\(es\) [\d,]+, 2 process\(es\) [\d,]+$", output, re.MULTILINE)
    medians = dict(re.findall(r"^([12]) +([\d,]+) ", output, flags=re.MULTILINE))
    assert medians.keys() == {"1", "2"} and all(float(m.replace(",", "")) > 0 for m in medians.values())
    assert "2 / 1 process(es):" in output and "torch 2." in output


def test_startup_times_a_command_against_importing_torch():
    output = script("startup.py", "--rounds", 2, "--only", "ganforge list")
    assert re.search(r"^round 2: s import torch [\d.]+, ganforge list [\d.]+$", output, re.MULTILINE)
    medians = dict(re.findall(r"^(import torch|ganforge list) +([\d.]+) ", output, flags=re.MULTILINE))
    assert medians.keys() == {"import torch", "ganforge list"} and all(float(m) > 0 for m in medians.values())
    assert re.search(r"^ganforge list - import torch: [+-][\d.]+ s median of rounds", output, re.MULTILINE)
    assert "ganforge --help" not in output and "torch 2." in output


def test_seed000_parity_prints_the_trajectory_beside_the_programs_and_saves_samples(tmp_path):
    program_log = tmp_path / "program.log"
    program_log.write_text("step 1: d=0.696 g=0.734 G mean pixel 0.5025\n")
    output = script("seed000_parity.py", "--steps", 3, "--out", tmp_path, "--program-log", program_log)
    rows = [line.split() for line in output.splitlines() if line.split() and line.split()[0] in ("1", "3")]
    assert [row[0] for row in rows] == ["1", "3"]
    assert rows[0][1] == "0.696" and rows[0][3] == "0.5025"  # the program's step 1, beside ganforge's
    assert rows[1][1] == "-"  # no program line for step 3
    assert 0.4 < float(rows[0][4]) < 0.6  # a fresh generator's sigmoid output is about 0.5
    samples = np.load(tmp_path / "ganforge.npy")
    assert samples.shape == (10_000, 28, 28) and samples.min() >= 0.0 and samples.max() <= 1.0
    assert (tmp_path / "ganforge.png").is_file()


def test_small_data_trains_without_and_with_augmentation_for_the_same_steps(tmp_path):
    output = script(
        "small_data.py",
        EXAMPLES / "mnist_fast.yaml",
        "--images",
        128,
        "--steps",
        4,
        "--set",
        "eval.samples=500",
        "--out",
        tmp_path,
    )
    rows = dict(re.findall(r"^(none|diffaugment \+ ADA|diffaugment) +(\d+) ", output, flags=re.MULTILINE))
    assert rows == {"none": "4", "diffaugment": "4", "diffaugment + ADA": "4"}, output  # 2 epochs of 2 batches
    assert "x better than without augmentation" in output
    ada = [json.loads(line) for line in (tmp_path / "diffaugment_ADA" / "metrics.jsonl").read_text().splitlines()]
    assert any("ada_r_t" in record for record in ada)
    plain = (tmp_path / "none" / "metrics.jsonl").read_text()
    assert "augment_strength" not in plain
