"""A hostile export: its manifest is checked field by field and its weights are bounded and finite, or `sample`,
`eval` and `export` refuse, naming the file and the field (issue 35)."""

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from ganforge.export_manifest import MANIFEST_LIMIT
from tests.cli_results import invoke, refused
from tests.exports import MANIFEST, WEIGHTS, copy_with, make_export, poisoned, with_weights
from tests.runs import train


@pytest.fixture(scope="module")
def export(app, tmp_path_factory):
    return make_export(app, tmp_path_factory.mktemp("manifest"))


def manifest_of(export):
    return json.loads((export / MANIFEST).read_text(encoding="utf-8"))


def edited(export, **changes):
    """The manifest's bytes with each ``a__b=value`` change made at a.b (a value of ... removes the field)."""
    manifest = manifest_of(export)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        place = manifest
        for key in parents:
            place = place[key]
        if value is ...:
            del place[last]
        else:
            place[last] = value
    return json.dumps(manifest).encode()


def sample_refused(app, folder, tmp_path):
    result = invoke(app, "sample", folder, "--n", "4", "--out", tmp_path / "out.png", exit_code=1)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "out.png").exists()
    return refused(result)


CASES = {
    "config a list": ({"config": [1, 2]}, "config: Input should be a valid dictionary"),
    "config a string": ({"config": "mlp"}, "config: Input should be a valid dictionary"),
    "model missing": ({"config__model": ...}, "config.model: Field required"),
    "params missing": ({"config__model__params": ...}, "config.model.params: Field required"),
    "model name a number": ({"config__model__name": 5}, "config.model.name: Input should be a valid string"),
    "data spec a list": ({"data_spec": [1, 28, 28]}, "data_spec: Input should be a valid dictionary"),
    "data spec a string": ({"data_spec": "1x28x28"}, "data_spec: Input should be a valid dictionary"),
    "data spec negative": ({"data_spec__shape": [1, -28, 28]}, "data_spec.shape.1: Input should be greater than 0"),
    "data spec too short": ({"data_spec__shape": [28, 28]}, "data_spec.shape: List should have at least 3 items"),
    "data spec 2.5 TB": ({"data_spec__shape": [3, 500_000, 500_000]}, "data_spec.shape: Value error, an image of"),
    "a billion classes": ({"data_spec__num_classes": 10**9}, "data_spec.num_classes: Input should be less than"),
    "more class names than classes": (
        {"data_spec__class_names": ["a", "b", "c", "d", "e"]},
        "class_names names 5 classes, but num_classes is 4",
    ),
    "latent_dim a float": ({"latent_dim": 64.0}, "latent_dim: Input should be a valid integer"),
    "epoch a string": ({"epoch": "3"}, "epoch: Input should be a valid integer"),
    "scores values a string": ({"scores__values__fid": "low"}, "scores.values.fid: Input should be a valid number"),
    "scores floor a list": ({"scores__floor": [1, 2]}, "scores.floor: Input should be a valid dictionary"),
    "weights hash not hex": ({"files": {WEIGHTS: "abc"}}, "files.generator.safetensors: String should match"),
    "an unknown field": ({"shadow": 1}, "shadow: Extra inputs are not permitted"),
    "another version": ({"version": 2}, "version: Input should be 1"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_manifest_with_a_wrong_field_is_refused_naming_the_file_and_field(app, export, tmp_path, case):
    changes, expected = CASES[case]
    folder = copy_with(export, tmp_path / "export", edited(export, **changes))
    output = sample_refused(app, folder, tmp_path)
    assert f"export manifest {folder / MANIFEST} is not valid" in output
    assert expected in output


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("nested 100,000 deep", "nests arrays or objects more than 64 deep"),
        ("not UTF-8", "is not UTF-8 text"),
        ("cut off", "is not JSON"),
        ("a list", "is not a mapping of fields"),
        ("over the size bound", f"is larger than {MANIFEST_LIMIT // 2**20} MiB"),
    ],
)
def test_a_manifest_that_is_not_a_json_mapping_is_refused_before_it_is_parsed(app, export, tmp_path, case, expected):
    good = (export / MANIFEST).read_bytes()
    text = {
        "nested 100,000 deep": good.replace(b'"scores": {', b'"scores": ' + b"[" * 100_000 + b"]" * 100_000 + b", "),
        "not UTF-8": good[:40] + b"\xff\xfe" + good[40:],
        "cut off": good[: len(good) // 2],
        "a list": b"[1, 2, 3]",
        "over the size bound": good[:-1] + b', "pad": "' + b"x" * MANIFEST_LIMIT + b'"}',
    }[case]
    folder = copy_with(export, tmp_path / "export", text)
    output = sample_refused(app, folder, tmp_path)
    assert f"export manifest {folder / MANIFEST}" in output and expected in output


@pytest.mark.parametrize("what", ["a folder", "a link to a good manifest", "a FIFO"])
def test_a_manifest_that_is_no_regular_file_is_named_as_such(app, export, tmp_path, what):
    folder = copy_with(export, tmp_path / "export")
    manifest = folder / MANIFEST
    manifest.unlink()
    if what == "a folder":
        manifest.mkdir()
        expected = "is a folder, not a file"
    elif what == "a FIFO":
        os.mkfifo(manifest)
        expected = "is not a regular file"
    else:
        manifest.symlink_to(export / MANIFEST)
        expected = "is a symbolic link"
    output = sample_refused(app, folder, tmp_path)
    assert f"export manifest {manifest} {expected}" in output and "does not exist" not in output


def test_weights_reached_through_a_link_are_refused(app, export, tmp_path):
    folder = copy_with(export, tmp_path / "export")
    (folder / WEIGHTS).unlink()
    (folder / WEIGHTS).symlink_to(export / WEIGHTS)
    output = sample_refused(app, folder, tmp_path)
    assert f"export weights {folder / WEIGHTS} is a symbolic link" in output


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_or_infinite_weights_of_an_export_are_refused_by_sample_and_eval(app, export, tmp_path, value):
    folder = with_weights(export, tmp_path / "export", lambda weights: poisoned(weights, value))
    output = sample_refused(app, folder, tmp_path)
    assert f"{folder / WEIGHTS}: tensor" in output and "holds NaN or infinite values" in output
    result = invoke(app, "eval", folder, "--n", "16", "--metrics", "class_accuracy", exit_code=1)
    assert "holds NaN or infinite values" in refused(result)


def test_weights_that_do_not_fit_the_manifest_s_config_are_refused_before_the_networks_are_built(app, export, tmp_path):
    # hidden [65536, 65536] would take about 40 GB to build; the weights' shapes are compared on the meta device first.
    changes = {"config__model__params__hidden": [65536, 65536]}
    folder = copy_with(export, tmp_path / "export", edited(export, **changes))
    output = sample_refused(app, folder, tmp_path)
    assert f"{folder}: its {folder / WEIGHTS} weights do not fit the mlp architecture" in output


@pytest.fixture(scope="module")
def plain_run(app, tmp_path_factory):
    """An unconditional smoke run of one epoch, not evaluated."""
    run = tmp_path_factory.mktemp("plain") / "run"
    train(app, f"output.dir={run}", "train.epochs=1")
    return run


def test_a_checkpoint_with_nan_weights_is_not_sampled_nor_exported(app, plain_run, tmp_path):
    from ganforge.checkpoints.format import load_checkpoint, save_checkpoint

    run = Path(shutil.copytree(plain_run, tmp_path / "run"))
    checkpoint = run / "checkpoints" / "last.pt"
    state = load_checkpoint(checkpoint)
    state["generator"] = poisoned(state["generator"], float("nan"))
    save_checkpoint(state, checkpoint)
    output = sample_refused(app, checkpoint, tmp_path)
    assert f"{checkpoint}: its generator tensor" in output and "holds NaN or infinite values" in output
    result = invoke(app, "export", run, "--out", tmp_path / "shared", exit_code=1)
    assert "holds NaN or infinite values" in refused(result)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]  # no export, no staging folder


def test_an_evaluation_line_the_manifest_cannot_hold_is_named_before_anything_is_written(app, plain_run, tmp_path):
    from ganforge.checkpoints.format import load_checkpoint

    run = Path(shutil.copytree(plain_run, tmp_path / "run"))
    step = load_checkpoint(run / "checkpoints" / "last.pt")["step"]
    line = {"event": "eval", "epoch": 1, "step": step, "fid": "low", "floor": {"fid": 1.5}, "protocol": {}}
    with (run / "metrics.jsonl").open("a", encoding="utf-8") as metrics:
        metrics.write(json.dumps(line) + "\n")
    result = invoke(app, "export", run, "--out", tmp_path / "shared", exit_code=1)
    output = refused(result)
    assert f"{run / 'metrics.jsonl'}, line 4, is not valid" in output  # metrics.jsonl's own reader refuses it
    assert "fid: Input should be a valid number" in output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]


def test_a_manifest_still_valid_after_an_edit_is_accepted(app, export, tmp_path):
    folder = copy_with(export, tmp_path / "export", edited(export, epoch=7, config__notes="kept", scores=None))
    invoke(app, "sample", folder, "--n", "4", "--out", tmp_path / "ok.pt")
    assert torch.load(tmp_path / "ok.pt", weights_only=True).shape == (4, 1, 28, 28)
