"""Evaluation end to end: the domain classifier, `ganforge eval`, and evaluation during training.

Synthetic data (no files) keeps these fast; the tests on the real MNIST and Fashion-MNIST are
slow (they train the domain classifier, once per session) and skip where the files are absent.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ganforge.data_root import default_cache_dir, default_data_root
from ganforge.errors import DatasetNotFoundError
from ganforge.registry import Kind
from tests.runs import SMOKE

SYNTHETIC = ["--real", "synthetic", "--data-param", "num_samples=600", "--data-param", "num_classes=4"]


def invoke(app, *args, exit_code=0):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == exit_code, result.output
    return result


def eval_json(app, *args):
    return json.loads(invoke(app, "eval", *args, "--json").stdout)


# -- eval --real and the protocol ------------------------------------------------------------------


def test_real_floor_of_a_dataset_without_a_test_split_uses_a_held_out_sixth(app):
    report = eval_json(app, *SYNTHETIC, "--n", 100)
    protocol = report["protocol"]
    assert "held-out part (100 of 600" in protocol["reference"]
    assert protocol["reference_count"] == 100
    network = protocol["feature_network"]
    assert network["architecture"] == "ganforge-cnn-v1"
    assert "training part (500 of 600" in network["trained_on"]
    assert network["test_accuracy"] >= 0.95  # four blobs at four places are easy to tell apart
    assert Path(network["file"]).is_file()
    floor = report["floor"]
    assert report["scores"] == floor
    assert set(floor) == {
        "fid", "kid", "kid_std", "classifier_score", "classifier_score_std", "precision", "recall",
        "modes", "modes_kl", "mode_coverage", "modes_covered", "mode_kl",
        # Real images have their labels: the class-by-class metrics score them too (each class against its own).
        "class_accuracy", "class_accuracy_min", "intra_fid", "intra_fid_max",
    }  # fmt: skip
    assert floor["modes_covered"] == 4 and floor["mode_coverage"] == 1.0 and floor["modes"] == 4
    assert report["goals"]["fid"] == "lower" and report["goals"]["precision"] == "higher"


def test_the_domain_classifier_is_trained_once_then_read_from_the_cache(app):
    eval_json(app, *SYNTHETIC, "--n", 50, "--metrics", "fid")
    cached = sorted((default_cache_dir() / "feature_networks").glob("*.pt"))
    assert cached
    stamps = {path: path.stat().st_mtime_ns for path in cached}
    second = invoke(app, "eval", *SYNTHETIC, "--n", 50, "--metrics", "fid", "--json")
    assert "training the domain classifier" not in second.stderr
    assert {path: path.stat().st_mtime_ns for path in cached} == stamps


def test_eval_names_metrics_and_rejects_unknown_ones(app):
    report = eval_json(app, *SYNTHETIC, "--n", 50, "--metrics", "fid,precision_recall")
    assert set(report["scores"]) == {"fid", "precision", "recall"}
    assert set(report["protocol"]["metrics"]) == {"ganforge:fid", "ganforge:precision_recall"}
    result = invoke(app, "eval", *SYNTHETIC, "--metrics", "fid,fidd", exit_code=2)
    assert "unknown metric 'fidd'" in result.stderr and "did you mean 'fid'" in result.stderr


def test_eval_wants_exactly_one_thing_to_score(app, tmp_path):
    assert "give one of" in invoke(app, "eval", exit_code=2).stderr
    assert "give one of" in invoke(app, "eval", tmp_path, *SYNTHETIC, exit_code=2).stderr
    result = invoke(app, "eval", "--samples", tmp_path / "x.pt", exit_code=2)
    assert "--samples needs --data" in result.stderr


def test_an_unlabelled_dataset_gets_a_clear_error(app, tmp_path):
    from PIL import Image

    for index in range(12):
        Image.new("L", (28, 28), color=index * 20).save(tmp_path / f"{index}.png")
    result = invoke(
        app, "eval", "--real", "image_folder", "--data-param", f"path={tmp_path}", "--data-param", "channels=1",
        "--data-param", "size=28", exit_code=2,
    )  # fmt: skip
    assert "has no labels" in result.stderr and "Traceback" not in result.output


# -- --samples: images made by any other program --------------------------------------------------


def synthetic_images(registry, count=120):
    loaded = registry.get(Kind.DATASET, "synthetic").build({"num_samples": 600, "num_classes": 4}, default_data_root())
    return loaded.dataset.images[:count]


@pytest.mark.parametrize("layout", ["pt_signed", "pt_unit", "npy_uint8", "npy_channels_last", "npy_no_channel"])
def test_samples_files_in_every_accepted_layout_score_the_same(app, registry, tmp_path, layout):
    pixels = synthetic_images(registry)  # uint8 [N, 1, 28, 28]
    signed = pixels.float() / 127.5 - 1
    if layout == "pt_signed":
        path = tmp_path / "s.pt"
        torch.save(signed, path)
    elif layout == "pt_unit":
        path = tmp_path / "s.pt"
        torch.save(pixels.float() / 255, path)
    else:
        path = tmp_path / "s.npy"
        array = {"npy_uint8": pixels, "npy_channels_last": pixels.permute(0, 2, 3, 1), "npy_no_channel": pixels[:, 0]}
        np.save(path, array[layout].numpy())
    args = ["--samples", path, "--data", "synthetic", *SYNTHETIC[2:], "--n", 100, "--metrics", "fid,mode_coverage"]
    report = eval_json(app, *args)
    assert str(path) in report["protocol"]["generated"]
    assert report["scores"]["modes_covered"] == 4
    # The same pixels in any layout give the same features, hence the same FID.
    torch.save(signed, tmp_path / "canonical.pt")
    canonical = eval_json(app, "--samples", tmp_path / "canonical.pt", *args[2:])
    assert report["scores"]["fid"] == pytest.approx(canonical["scores"]["fid"], rel=1e-5)


def test_samples_of_the_wrong_shape_or_range_are_refused_by_name(app, tmp_path):
    common = ["--data", "synthetic", *SYNTHETIC[2:]]
    torch.save(torch.zeros(10, 3, 32, 32), tmp_path / "wrong.pt")
    result = invoke(app, "eval", "--samples", tmp_path / "wrong.pt", *common, exit_code=2)
    assert "wrong.pt" in result.stderr and "(1, 28, 28)" in result.stderr
    torch.save(torch.full((10, 1, 28, 28), 3.0), tmp_path / "range.pt")
    result = invoke(app, "eval", "--samples", tmp_path / "range.pt", *common, exit_code=2)
    assert "range.pt" in result.stderr and "[0, 1]" in result.stderr
    (tmp_path / "images.txt").write_text("no")
    result = invoke(app, "eval", "--samples", tmp_path / "images.txt", *common, exit_code=2)
    assert "use a .pt" in result.stderr
    torch.save({"images": torch.zeros(2)}, tmp_path / "dict.pt")
    result = invoke(app, "eval", "--samples", tmp_path / "dict.pt", *common, exit_code=2)
    assert "expected one tensor" in result.stderr


def test_noise_and_one_repeated_image_score_far_worse_than_real_images(app, registry, tmp_path):
    common = ["--data", "synthetic", *SYNTHETIC[2:], "--n", 100]
    torch.save(torch.rand(100, 1, 28, 28) * 2 - 1, tmp_path / "noise.pt")
    torch.save(synthetic_images(registry, 1).repeat(100, 1, 1, 1), tmp_path / "one.pt")
    noise = eval_json(app, "--samples", tmp_path / "noise.pt", *common)
    repeated = eval_json(app, "--samples", tmp_path / "one.pt", *common)
    floor = noise["floor"]
    for report in (noise, repeated):
        assert report["scores"]["fid"] > 20 * max(floor["fid"], 1e-3)
        assert report["scores"]["recall"] < floor["recall"]
    assert repeated["scores"]["modes_covered"] == 1 and repeated["scores"]["mode_kl"] > 1.0


# -- a checkpoint, and evaluation during training -------------------------------------------------


def train_smoke(app, *overrides):
    args = ["run", SMOKE, "--quiet"]
    for override in overrides:
        args += ["--set", override]
    return invoke(app, *args)


def records(run_dir, event):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [record for line in lines if (record := json.loads(line))["event"] == event]


def test_eval_scores_a_run_folder_and_a_checkpoint_alone(app, workdir):
    train_smoke(app, "train.epochs=2")
    run_dir = workdir / "runs" / "smoke"
    from_folder = eval_json(app, run_dir, "--n", 60, "--metrics", "fid,kid")
    from_file = eval_json(app, run_dir / "checkpoints" / "last.pt", "--n", 60, "--metrics", "fid,kid")
    assert from_folder["scores"] == from_file["scores"]  # same noise seed, same generator
    assert "epoch 2" in from_folder["protocol"]["generated"]
    assert "ganforge:synthetic" in from_folder["protocol"]["reference"]
    other_seed = eval_json(app, run_dir, "--n", 60, "--metrics", "fid", "--seed", 1)
    assert other_seed["scores"]["fid"] != from_folder["scores"]["fid"]
    table = invoke(app, "eval", run_dir, "--n", 60, "--metrics", "fid").stdout
    assert "real floor" in table and "fid" in table and "test accuracy" in table


def test_training_evaluates_every_n_epochs_and_keeps_the_best_checkpoint(app, workdir):
    train_smoke(app, "train.epochs=3", "eval.every=1", "eval.samples=64", "eval.metrics=[fid, precision_recall]")
    run_dir = workdir / "runs" / "smoke"
    evaluations = records(run_dir, "eval")
    assert [r["epoch"] for r in evaluations] == [1, 2, 3]
    for record in evaluations:
        assert set(record["floor"]) == {"fid", "precision", "recall"}
        assert record["protocol"]["feature_network"]["architecture"] == "ganforge-cnn-v1"
        assert record["fid"] >= 0
    best_record = min(evaluations, key=lambda r: r["fid"])
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert best["epoch"] == best_record["epoch"]
    assert best["best"] == {"metric": "fid", "value": best_record["fid"], "epoch": best_record["epoch"],
                            "step": best_record["step"]}  # fmt: skip
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["best"] == best["best"]


def test_eval_best_must_name_a_value_of_the_chosen_metrics(app, workdir):
    result = invoke(app, "run", SMOKE, "--set", "eval.every=1", "--set", "eval.best=kid_std", exit_code=2)
    assert "eval.best: 'kid_std' is not a value" in result.stderr  # a standard deviation ranks nothing
    assert "accepted: class_accuracy, class_accuracy_min, classifier_score, fid, intra_fid, intra_fid_max, kid" in (
        result.stderr
    )
    result = invoke(
        app,
        "run",
        SMOKE,
        "--set",
        "eval.every=1",
        "--set",
        "eval.metrics=[fid]",
        "--set",
        "eval.best=recall",
        exit_code=2,
    )
    assert "accepted: fid, or null" in result.stderr
    assert not (workdir / "runs").exists()
    result = invoke(app, "validate", SMOKE, "--set", "eval.metrics=[fid, bogus]", exit_code=2)
    assert "eval.metrics.1.name" in result.stderr and "unknown metric 'bogus'" in result.stderr


# -- the real MNIST and Fashion-MNIST ------------------------------------------------------------


def real_data_or_skip(registry, name):
    """Only MNIST is downloaded for the tests (real_mnist_root); other real datasets are used where present."""
    try:
        registry.get(Kind.DATASET, name).build({"split": "test"}, default_data_root())
    except DatasetNotFoundError as error:
        pytest.skip(f"{name} is not here: {str(error).splitlines()[0]}")


@pytest.mark.slow
def test_mnist_classifier_floor_noise_and_a_repeated_digit(app, registry, tmp_path, real_mnist_root):
    floor = eval_json(app, "--real", "mnist", "--n", 10000)
    assert floor["protocol"]["feature_network"]["test_accuracy"] >= 0.99
    assert floor["scores"]["modes_covered"] == 10
    test_digits = registry.get(Kind.DATASET, "mnist").build({"split": "test"}, real_mnist_root).dataset.images
    torch.save(torch.rand(2000, 1, 28, 28), tmp_path / "noise.pt")
    torch.save(test_digits[:1].repeat(2000, 1, 1, 1), tmp_path / "one_digit.pt")
    for name in ("noise.pt", "one_digit.pt"):
        report = eval_json(app, "--samples", tmp_path / name, "--data", "mnist", "--n", 2000)
        assert report["scores"]["fid"] > 50 * floor["scores"]["fid"], name
        assert report["scores"]["modes_covered"] <= 1, name


@pytest.mark.slow
def test_fashion_mnist_classifier_reaches_ninety_percent(app, registry):
    real_data_or_skip(registry, "fashion_mnist")
    report = eval_json(app, "--real", "fashion_mnist", "--n", 2000, "--metrics", "fid")
    assert report["protocol"]["feature_network"]["test_accuracy"] >= 0.90


@pytest.mark.slow
def test_seed_001_recipe_scores_improve_with_training(app, registry, tmp_path, real_mnist_root):
    # No workdir here: a relative GANFORGE_DATA must keep meaning the same place.
    config = Path(__file__).parents[2] / "examples" / "mnist_mlp.yaml"
    run_dir = tmp_path / "mnist_mlp"
    overrides = ["train.epochs=10", "eval.every=2", "eval.samples=2000", "eval.metrics=[fid, kid, precision_recall]"]
    overrides.append(f"output.dir={run_dir}")
    invoke(app, "run", config, "--quiet", *[arg for o in overrides for arg in ("--set", o)])
    evaluations = {r["epoch"]: r for r in records(run_dir, "eval")}
    assert sorted(evaluations) == [2, 4, 6, 8, 10]
    early, late = evaluations[2], evaluations[10]
    assert late["fid"] < early["fid"] and late["kid"] < early["kid"]
    best = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)
    assert best["best"]["value"] == min(r["fid"] for r in evaluations.values())
