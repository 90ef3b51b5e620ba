"""`ganforge export`: a run's generator as safetensors, JSON, a grid and a card; `sample` and `eval` read the
export as they read the checkpoint, in a fresh process too."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tests.runs import SMOKE  # synthetic data: 4 classes, no names

PROJECTION = ["model.params.generator_conditioning=batch_norm", "model.params.discriminator_conditioning=projection"]
EVALUATED = ["eval.every=2", "eval.samples=64", "eval.metrics=[fid, class_accuracy]"]
EXPORT_FILES = {"README.md", "ganforge.json", "generator.safetensors", "samples.png"}


def invoke(app, *args, exit_code=0):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == exit_code, result.output
    return result


def train(app, out, *overrides):
    args = ["run", SMOKE, "--quiet", "--set", f"output.dir={out}", "--set", "train.epochs=2"]
    for override in overrides:
        args += ["--set", override]
    invoke(app, *args)
    return out


@pytest.fixture(scope="module")
def conditional_run(app, tmp_path_factory):
    """A conditional smoke run with an EMA generator, evaluated after its last epoch."""
    out = tmp_path_factory.mktemp("export") / "run"
    return train(app, out, *PROJECTION, "train.ema_decay=0.9", *EVALUATED)


@pytest.fixture(scope="module")
def exported(app, conditional_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported") / "mnist-like"
    invoke(app, "export", conditional_run, "--out", out)
    return out


def test_a_fresh_process_samples_the_same_images_from_the_export_as_from_the_checkpoint(
    app, conditional_run, exported, tmp_path
):
    from_export = subprocess.run(
        [sys.executable, "-m", "ganforge", "sample", str(exported), "--n", "16", "--out", "export.pt"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert from_export.returncode == 0, from_export.stdout + from_export.stderr
    checkpoint = conditional_run / "checkpoints" / "last.pt"
    invoke(app, "sample", checkpoint, "--n", "16", "--out", tmp_path / "checkpoint.pt")
    images = torch.load(tmp_path / "export.pt", weights_only=True)
    assert images.shape == (16, 1, 28, 28)
    assert torch.equal(images, torch.load(tmp_path / "checkpoint.pt", weights_only=True))
    result = invoke(app, "sample", exported, "--out", exported / "samples.png", exit_code=2)
    assert "a ganforge export, which is kept as written" in " ".join(result.output.split())
    for option in (["--class", "2"], ["--no-ema"]):  # classes work; the export holds only the EMA generator
        expected = 0 if option[0] == "--class" else 2
        invoke(app, "sample", exported, "--n", "4", "--out", tmp_path / "more.pt", *option, exit_code=expected)


def test_eval_scores_the_export_as_it_scores_the_checkpoint_and_as_the_run_did(app, conditional_run, exported):
    def scores(target):
        result = invoke(app, "eval", target, "--n", 64, "--metrics", "fid,class_accuracy", "--json")
        return json.loads(result.stdout)["scores"]

    from_export = scores(exported)
    assert from_export == scores(conditional_run)
    manifest = json.loads((exported / "ganforge.json").read_text())
    logged = [json.loads(line) for line in (conditional_run / "metrics.jsonl").read_text().splitlines()]
    evaluation = [record for record in logged if record["event"] == "eval"][-1]
    assert manifest["scores"]["values"]["fid"] == evaluation["fid"]
    assert manifest["scores"]["floor"] == evaluation["floor"]
    cached = Path(evaluation["protocol"]["feature_network"]["file"])
    assert cached.is_absolute()  # the run's own record says where this machine keeps it; the export does not
    assert manifest["scores"]["protocol"] == {
        **evaluation["protocol"],
        "feature_network": {**evaluation["protocol"]["feature_network"], "file": cached.name},
    }
    assert from_export["fid"] == pytest.approx(evaluation["fid"], rel=1e-4)  # the same 64 images, the same seed


def test_an_export_holds_nothing_that_unpickles(exported):
    from safetensors import safe_open

    assert {path.name for path in exported.iterdir()} == EXPORT_FILES
    for path in exported.iterdir():
        data = path.read_bytes()
        assert not data.startswith(b"\x80"), f"{path.name} starts as a pickle does"
        assert not data.startswith(b"PK"), f"{path.name} is a zip archive, as torch.save writes"
    assert (exported / "samples.png").read_bytes().startswith(b"\x89PNG")
    manifest = json.loads((exported / "ganforge.json").read_text(encoding="utf-8"))
    assert manifest["format"] == "ganforge-export" and manifest["generator"] == "ema"
    assert manifest["num_classes"] == 4 and manifest["data_spec"]["shape"] == [1, 28, 28]
    with safe_open(exported / "generator.safetensors", framework="pt") as weights:
        names = set(weights.keys())
        assert names and all(weights.get_tensor(name).numel() > 0 for name in names)
    (exported / "README.md").read_text(encoding="utf-8")


def test_the_model_card_says_what_the_generator_is_how_it_scored_and_how_to_use_it(exported):
    card = (exported / "README.md").read_text(encoding="utf-8")
    manifest = json.loads((exported / "ganforge.json").read_text())
    assert "Architecture `mlp` from `ganforge==" in card
    assert "trained on `synthetic` for 2 epochs" in card and "its EMA copy" in card
    assert "Class-conditional, 4 classes" in card
    fid, floor = manifest["scores"]["values"]["fid"], manifest["scores"]["floor"]["fid"]
    assert f"| fid | {fid:.4g} | {floor:.4g} |" in card
    assert "ganforge sample . --n 16 --out grid.png --class 0" in card
    assert manifest["files"]["generator.safetensors"] in card
    assert "![samples](samples.png)" in card and "generator_conditioning: batch_norm" in card


def test_the_card_and_manifest_name_the_feature_network_not_where_this_machine_keeps_it(exported, conditional_run):
    logged = [json.loads(line) for line in (conditional_run / "metrics.jsonl").read_text().splitlines()]
    network = [record for record in logged if record["event"] == "eval"][-1]
    cached = Path(network["protocol"]["feature_network"]["file"])
    card = (exported / "README.md").read_text(encoding="utf-8")
    manifest_text = (exported / "ganforge.json").read_text(encoding="utf-8")
    for text in (card, manifest_text):
        assert str(cached.parent) not in text and str(conditional_run) not in text
    digest = network["protocol"]["feature_network"]["weights_sha256"]
    assert "ganforge-cnn-v1 trained on" in card and f"({cached.name}, weights SHA-256 {digest})" in card
    assert "dir" not in json.loads(manifest_text)["config"]["output"]  # the run folder's path stays here


def test_altered_weights_are_refused_naming_the_file(app, exported, tmp_path):
    altered = tmp_path / "altered"
    altered.mkdir()
    for path in exported.iterdir():
        (altered / path.name).write_bytes(path.read_bytes())
    weights = bytearray((altered / "generator.safetensors").read_bytes())
    weights[-1] ^= 0xFF
    (altered / "generator.safetensors").write_bytes(bytes(weights))
    result = invoke(app, "sample", altered, "--n", "4", "--out", tmp_path / "x.pt", exit_code=1)
    message = " ".join(result.output.split())
    assert "generator.safetensors has SHA-256" in message and "the weights were altered or damaged" in message
    assert not (tmp_path / "x.pt").exists()


def test_an_unevaluated_unconditional_run_exports_and_its_card_says_so(app, tmp_path):
    run = train(app, tmp_path / "plain")
    invoke(app, "export", run / "checkpoints" / "last.pt", "--out", tmp_path / "plain-export")
    card = (tmp_path / "plain-export" / "README.md").read_text()
    assert "Not evaluated" in card and "Class-conditional" not in card
    assert "--class" not in card
    invoke(app, "sample", tmp_path / "plain-export", "--n", "4", "--out", tmp_path / "plain.png")


@pytest.mark.parametrize("existing", ["a folder with a file", "a file"])
def test_export_never_writes_over_what_is_there(app, conditional_run, tmp_path, existing):
    out = tmp_path / "out"
    if existing == "a file":
        out.write_text("mine")
        expected = "is a file; name a new folder"
        kept = out
    else:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        expected = "is a folder that is not empty"
        kept = out / "notes.txt"
    result = invoke(app, "export", conditional_run, "--out", out, exit_code=2)
    assert expected in " ".join(result.output.split())
    assert kept.read_text() == "mine"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]  # no staging folder left behind


def test_export_stays_out_of_a_run_s_checkpoints_folder(app, conditional_run):
    checkpoints = conditional_run / "checkpoints"
    before = sorted(path.name for path in checkpoints.iterdir())
    result = invoke(app, "export", conditional_run, "--out", checkpoints / "shared", exit_code=2)
    assert "is in the checkpoints folder of run" in " ".join(result.output.split())
    assert sorted(path.name for path in checkpoints.iterdir()) == before


def test_an_export_is_not_exported_again(app, exported, tmp_path):
    result = invoke(app, "export", exported, "--out", tmp_path / "again", exit_code=2)
    assert "is an export already" in result.output
