"""Inception metrics through torch-fidelity: the same numbers as torch-fidelity's own, on weights that are
checked before use and read without running code, with clear messages when they are missing or wrong.

The real weights cannot be downloaded here: the tests build torch-fidelity's Inception-v3 with random
weights, save them to a file, and point ganforge at it (with its SHA-256, as one would for weights of
one's own). Inception-v3 at 299x299 is slow on a CPU, so the image sets are small.
"""

import dataclasses
import hashlib
import json
import re
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ganforge.downloads import MIRROR_ENV
from ganforge.evaluation import inception
from ganforge.registry import Kind
from tests.components.idx_files import write_idx_split
from tests.components.mirror import serving

COMPARED = "inception_fid,inception_kid,inception_score,inception_precision_recall"  # with torch-fidelity's own

torch_fidelity = pytest.importorskip("torch_fidelity")

COUNT = 24  # images of each set: enough for the Inception Score's 10 splits and KID's subsets


def invoke(app, *args, exit_code=0):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == exit_code, result.output
    return result


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> Path:
    """torch-fidelity's Inception-v3 with random weights (scaled so that features differ between images), saved."""
    from torch_fidelity import feature_extractor_inceptionv3 as module

    cls = module.FeatureExtractorInceptionV3
    with (
        mock.patch.object(module, "load_state_dict_from_url", lambda *args, **kwargs: None),
        mock.patch.object(cls, "load_state_dict", lambda self, state: None),
    ):
        network = cls("inception-v3-compat", ["2048"])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for layer in network.modules():
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.normal_(0, (2 / layer.weight[0].numel()) ** 0.5, generator=generator)
            elif isinstance(layer, torch.nn.BatchNorm2d):
                layer.running_var.uniform_(0.5, 2.0, generator=generator)
                layer.bias.normal_(0, 0.1, generator=generator)
            elif isinstance(layer, torch.nn.Linear):
                layer.weight.normal_(0, 3 * layer.in_features**-0.5, generator=generator)
        # Batch statistics of some images as running statistics: features then vary between images as much as
        # between channels, as with trained weights.
        for layer in network.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):
                layer.reset_running_stats()
                layer.momentum = None  # a plain average over the batches seen
        network.train()
        network(torch.from_numpy(np.concatenate([pixels(5, 1.0), pixels(6, 0.5)]))[:, None].expand(-1, 3, -1, -1))
        network.eval()
    path = tmp_path_factory.mktemp("inception") / "random-inception.pth"
    torch.save(network.state_dict(), path)
    return path


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty ganforge cache and torch hub folder: no weights anywhere unless a test puts them there."""
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    monkeypatch.delenv(inception.SHA256_ENV, raising=False)
    return tmp_path


@pytest.fixture
def our_weights(isolated, random_weights, monkeypatch) -> Path:
    """ganforge pointed at the random weights, with their SHA-256."""
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(random_weights))
    monkeypatch.setenv(inception.SHA256_ENV, sha256(random_weights))
    return random_weights


def pixels(seed: int, brightness: float) -> np.ndarray:
    """``COUNT`` 28x28 grayscale images: noise at ``brightness``, with a bright square somewhere in each."""
    generator = np.random.default_rng(seed)
    images = generator.uniform(0, 255 * brightness, size=(COUNT, 28, 28))
    for index, (row, column) in enumerate(generator.integers(0, 20, size=(COUNT, 2))):
        images[index, row : row + 8, column : column + 8] = 255
    return images.astype(np.uint8)


def as_rgb_dataset(images: np.ndarray) -> torch.utils.data.Dataset:
    """What torch-fidelity reads: uint8 [3, H, W] items (the gray channel three times, as ganforge gives it)."""
    tensor = torch.from_numpy(images)[:, None].expand(-1, 3, -1, -1).contiguous()

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return len(tensor)

        def __getitem__(self, index):
            return tensor[index]

    return Images()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # torch-fidelity's own loader, on 2 cores
def test_scores_equal_torch_fidelitys_own_on_the_same_images_and_weights(app, our_weights, tmp_path):
    """Generated images from a file, scored against a dataset's test split (all of it, in order: --n covers it)."""
    real_test, real_train = pixels(1, 1.0), pixels(2, 1.0)
    generated = np.concatenate([pixels(3, 1.0)[: COUNT // 2], pixels(3, 0.4)[COUNT // 2 :]])  # half of them off
    labels = np.arange(COUNT, dtype=np.uint8) % 10
    write_idx_split(tmp_path / "data", "train", images=real_train, labels=labels)
    write_idx_split(tmp_path / "data", "test", images=real_test, labels=labels)
    np.save(tmp_path / "generated.npy", generated[:, None])
    data = ["--data", "mnist", "--data-param", f"root={tmp_path / 'data'}", "--data-param", "download=false"]
    command = ["eval", "--samples", tmp_path / "generated.npy", *data, "--n", COUNT, "--metrics", COMPARED]
    ours = json.loads(invoke(app, *command, "--json").stdout)
    theirs = torch_fidelity.calculate_metrics(
        input1=as_rgb_dataset(generated),
        input2=as_rgb_dataset(real_test),
        cuda=False,
        isc=True,
        fid=True,
        kid=True,
        prc=True,
        kid_subset_size=COUNT,
        feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=str(our_weights),
        cache=False,
        verbose=False,
    )
    pairs = {
        "inception_fid": "frechet_inception_distance",
        "inception_kid": "kernel_inception_distance_mean",
        "inception_kid_std": "kernel_inception_distance_std",
        "inception_score": "inception_score_mean",
        "inception_score_std": "inception_score_std",
        "inception_precision": "precision",
        "inception_recall": "recall",
    }
    scores = ours["scores"]
    print("\nganforge vs torch-fidelity, random Inception weights, 24 generated vs 24 real images:")
    for key, their_key in pairs.items():
        print(f"  {key}: {scores[key]!r} vs {theirs[their_key]!r}, difference {scores[key] - theirs[their_key]:.3g}")
        assert scores[key] == pytest.approx(theirs[their_key], rel=1e-5, abs=1e-9), key
    assert scores["inception_fid"] > 1e-3  # the sets differ, and these weights see it: the check has teeth
    protocol = ours["protocol"]["inception_network"]
    assert protocol["weights_sha256"] == sha256(our_weights) and protocol["standard_weights"] is False
    assert "299x299" in protocol["input"] and protocol["implementation"].startswith("torch-fidelity 0.")
    assert ours["protocol"]["reference_count"] == COUNT and "feature_network" not in ours["protocol"]
    assert set(ours["floor"]) == set(scores)


def synthetic_eval(app, *extra, exit_code=0):
    return invoke(
        app, "eval", "--real", "synthetic", "--data-param", "num_samples=60", "--n", 12, "--metrics",
        "inception_fid", *extra, exit_code=exit_code,
    )  # fmt: skip


def test_weights_with_another_hash_are_refused_wherever_they_are(app, isolated, random_weights, monkeypatch):
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(random_weights))
    message = synthetic_eval(app, exit_code=2).stderr
    assert f"refusing the Inception weights {random_weights}" in message
    assert f"its SHA-256 is {sha256(random_weights)}, expected {inception.STANDARD_WEIGHTS.sha256}" in message
    assert "Traceback" not in message
    monkeypatch.delenv(inception.WEIGHTS_ENV)
    cached = isolated / "cache" / "inception" / inception.STANDARD_WEIGHTS.name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(random_weights.read_bytes())
    message = synthetic_eval(app, exit_code=2).stderr
    assert f"refusing the Inception weights {cached}" in message and "replace or delete the file" in message
    assert cached.read_bytes() == random_weights.read_bytes()  # the user's file is left as it was


def test_missing_weights_offline_say_which_file_to_get_and_where_to_put_it(app, isolated):
    message = " ".join(synthetic_eval(app, exit_code=2).stderr.split())
    target = isolated / "cache" / "inception" / inception.STANDARD_WEIGHTS.name
    assert "the Inception-v3 weights are not here and could not be downloaded" in message
    assert f"{inception.WEIGHTS_BASE_URL}/{inception.STANDARD_WEIGHTS.name}" in message
    assert f"SHA-256 {inception.STANDARD_WEIGHTS.sha256}" in message
    assert f"put it at {target}" in message and inception.WEIGHTS_ENV in message
    assert "Traceback" not in message
    assert not target.parent.exists() or not any(target.parent.iterdir())  # no partial download left behind


@pytest.mark.slow
def test_a_download_is_checked_kept_and_then_used_offline(app, isolated, random_weights, monkeypatch):
    """The weights as a mirror serves them (here: the random ones, made the standard file for this test)."""
    standard = dataclasses.replace(
        inception.STANDARD_WEIGHTS, sha256=sha256(random_weights), published_bytes=random_weights.stat().st_size
    )
    with serving(isolated / "served") as mirror:
        (mirror.folder / standard.name).write_bytes(random_weights.read_bytes())
        monkeypatch.setenv(MIRROR_ENV, mirror.url)
        monkeypatch.setattr(inception, "STANDARD_WEIGHTS", standard)
        first = json.loads(synthetic_eval(app, "--json").stdout)
    assert mirror.requests == [f"/{standard.name}"]
    kept = isolated / "cache" / "inception" / standard.name
    assert sha256(kept) == standard.sha256
    assert first["protocol"]["inception_network"]["standard_weights"] is True
    again = json.loads(synthetic_eval(app, "--json").stdout)  # the mirror is gone: the kept file is used
    assert again["floor"] == first["floor"]


def test_a_served_file_with_another_hash_is_discarded(app, isolated, random_weights, monkeypatch):
    with serving(isolated / "served") as mirror:
        (mirror.folder / inception.STANDARD_WEIGHTS.name).write_bytes(random_weights.read_bytes())
        monkeypatch.setenv(MIRROR_ENV, mirror.url)
        message = " ".join(synthetic_eval(app, exit_code=2).stderr.split())
    assert "checksum mismatch: expected SHA-256" in message and "the download was discarded" in message
    assert not (isolated / "cache" / "inception" / inception.STANDARD_WEIGHTS.name).exists()


class RunsCode:
    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_weights_are_read_without_running_code(app, isolated, monkeypatch):
    marker = isolated / "code-ran"
    payload = RunsCode()
    payload.marker = str(marker)
    weights = isolated / "hostile.pth"
    torch.save({"conv.weight": torch.zeros(1), "trap": payload}, weights)
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(weights))
    monkeypatch.setenv(inception.SHA256_ENV, sha256(weights))
    message = synthetic_eval(app, exit_code=2).stderr
    assert f"cannot read the Inception weights {weights} as tensors alone" in " ".join(message.split())
    assert not marker.exists()


def test_weights_of_another_network_are_refused_clearly(app, isolated, monkeypatch):
    weights = isolated / "small.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, weights)
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(weights))
    monkeypatch.setenv(inception.SHA256_ENV, sha256(weights))
    message = " ".join(synthetic_eval(app, exit_code=2).stderr.split())
    assert f"{weights} does not fit torch-fidelity's Inception-v3" in message


def test_without_torch_fidelity_the_inception_metrics_say_how_to_install_it(app, our_weights, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # what an import of a missing package does
    message = synthetic_eval(app, exit_code=2).stderr
    assert "needs torch-fidelity, which is not installed: pip install 'ganforge[inception]'" in message
    assert "inception_fid" in invoke(app, "list", "metrics").stdout  # still listed, for configs to name


def write_unlabelled_folder(folder: Path) -> None:
    from PIL import Image

    folder.mkdir()
    for index, image in enumerate(pixels(4, 1.0)):
        Image.fromarray(image).save(folder / f"{index}.png")


@pytest.mark.slow
def test_an_unlabelled_image_folder_is_scored_with_inception_metrics(app, registry, our_weights, tmp_path):
    write_unlabelled_folder(tmp_path / "images")
    folder = ["--real", "image_folder", "--data-param", f"path={tmp_path / 'images'}", "--data-param", "size=28"]
    default = " ".join(invoke(app, "eval", *folder, "--n", 12, exit_code=2).stderr.split())
    on_inception = {
        metric.name for metric in registry.components(Kind.METRIC) if metric.build({}).feature_network == "inception"
    }
    suggested = re.search(r"--metrics (\S+)", default)
    assert "has no labels" in default and suggested and set(suggested[1].split(",")) == on_inception  # each, named
    report = json.loads(
        invoke(app, "eval", *folder, "--n", 12, "--metrics", "inception_fid,inception_kid", "--json").stdout
    )
    assert set(report["floor"]) == {"inception_fid", "inception_kid", "inception_kid_std"}
    assert report["floor"]["inception_fid"] > 0
    assert len(list((tmp_path / "cache" / "floors").iterdir())) == 1  # the reference features, cached
    again = json.loads(
        invoke(app, "eval", *folder, "--n", 12, "--metrics", "inception_fid,inception_kid", "--json").stdout
    )
    assert again["floor"] == report["floor"]
    table = invoke(app, "eval", *folder, "--n", 12, "--metrics", "inception_fid").stdout
    assert "inception_fid" in table and "Inception-v3 (torch-fidelity" in " ".join(table.split())
    mixed = " ".join(invoke(app, "eval", *folder, "--metrics", "fid,inception_fid", exit_code=2).stderr.split())
    assert "metrics fid compare with" in mixed  # names the metric that cannot be scored here


@pytest.mark.slow
def test_training_reports_inception_scores_beside_the_domain_scores(app, our_weights, workdir):
    """Evaluation during a run, with a domain metric and an Inception one: both in the record, with both protocols."""
    smoke = Path(__file__).parents[2] / "examples" / "smoke.yaml"
    settings = ["train.epochs=1", "eval.every=1", "eval.samples=16", "eval.metrics=[fid, inception_fid]"]
    invoke(app, "run", smoke, "--quiet", *(part for setting in settings for part in ("--set", setting)))
    [record] = [
        line
        for line in map(json.loads, (workdir / "runs" / "smoke" / "metrics.jsonl").read_text().splitlines())
        if line["event"] == "eval"
    ]
    assert set(record["floor"]) == {"fid", "inception_fid"} and record["inception_fid"] > 0
    assert record["protocol"]["feature_network"]["architecture"] == "ganforge-cnn-v1"
    assert record["protocol"]["inception_network"]["weights_sha256"] == sha256(our_weights)


def test_validate_warns_of_what_the_inception_metrics_lack_here(app, isolated, monkeypatch):
    smoke = Path(__file__).parents[2] / "examples" / "smoke.yaml"
    command = ["validate", smoke, "--set", "eval.every=1", "--set", "eval.metrics=[fid, inception_kid]"]
    missing = " ".join(invoke(app, *command).stderr.split())
    assert "warning: eval.metrics inception_kid: the Inception-v3 weights are not here" in missing
    assert f"{inception.WEIGHTS_BASE_URL}/{inception.STANDARD_WEIGHTS.name}" in missing
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    assert "needs torch-fidelity, which is not installed" in invoke(app, *command).stderr
    assert "warning" not in invoke(app, "validate", smoke, "--set", "eval.metrics=[inception_kid]").stderr
