"""The real floor, cached with the reference features: the same numbers as computing it, invalidated by
everything it depends on, written whole, and a damaged file recomputed.

The domain classifier comes from the session's cache (trained once); each test keeps its floors in a
folder of its own, so that what it finds there is what it wrote.
"""

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ganforge.data_root import default_cache_dir, default_data_root
from ganforge.evaluation import protocol
from ganforge.evaluation.domain_classifier import FeatureNetwork, domain_classifier
from ganforge.evaluation.domain_split import ImageSet, load_domain
from ganforge.evaluation.protocol import Evaluation, choose_metrics, generated_images
from ganforge.registry import Chosen, Kind

SYNTHETIC = {"num_samples": 600, "num_classes": 4}
EVERY_METRIC = ["fid", "kid", "classifier_score", "precision_recall", "mode_coverage"]
METRICS = ["fid", "precision_recall", "mode_coverage"]  # quick ones, for the tests of when the cache is used
COUNT = 80


@pytest.fixture(scope="module")
def domain(registry):
    component = registry.get(Kind.DATASET, "synthetic")
    return load_domain(component, component.parse_params(SYNTHETIC), default_data_root())


@pytest.fixture(scope="module")
def network(domain):
    return domain_classifier(domain, torch.device("cpu"), default_cache_dir())


def evaluation(domain, network, registry, cache_dir, *, metrics=METRICS, count=COUNT, notes=None):
    log = notes.append if notes is not None else None
    return Evaluation(
        domain, {"domain": network}, choose_metrics(registry, metrics), count, cache_dir=cache_dir, log=log
    )


def floor_files(cache_dir: Path) -> list[Path]:
    return sorted((cache_dir / "floors").glob("*"))


def test_the_cached_floor_is_the_computed_floor(domain, network, registry, tmp_path):
    computed = evaluation(domain, network, registry, None, metrics=EVERY_METRIC)  # no cache: computed here
    first = evaluation(domain, network, registry, tmp_path, metrics=EVERY_METRIC)
    assert first.floor() == computed.floor()
    [path] = floor_files(tmp_path)
    stamp = path.stat().st_mtime_ns
    cached = evaluation(domain, network, registry, tmp_path, metrics=EVERY_METRIC)
    assert cached.floor() == computed.floor()
    assert list(cached.floor()) == list(computed.floor())  # the same values, listed in the same order
    assert torch.equal(cached.reference_features["domain"].features, computed.reference_features["domain"].features)
    assert torch.equal(
        cached.reference_features["domain"].probabilities, computed.reference_features["domain"].probabilities
    )
    assert path.stat().st_mtime_ns == stamp  # read, not written again
    generated = generated_images(torch.rand(COUNT, 1, 28, 28) * 2 - 1, "noise")
    assert cached.score(generated) == computed.score(generated)


def test_a_cached_floor_is_not_computed_again(domain, network, registry, tmp_path, monkeypatch):
    evaluation(domain, network, registry, tmp_path).floor()
    cached = evaluation(domain, network, registry, tmp_path)

    def refuse(*args):
        raise AssertionError("the floor was computed, not read")

    monkeypatch.setattr(cached, "score", refuse)
    assert cached.floor()["modes_covered"] == 4


def changed_dataset_content(domain):
    """The same dataset name and params, other training images: one pixel of the first one changed."""
    images = domain.train.images.clone()
    images[0, 0, 0, 0] = 255 - images[0, 0, 0, 0]
    return dataclasses.replace(domain, train=ImageSet(images, domain.train.labels, domain.train.description))


@pytest.mark.parametrize(
    "change",
    ["count", "metric set", "metric params", "dataset content", "classifier weights", "floor seed", "reference seed"],
)
def test_anything_the_floor_depends_on_changes_its_file(domain, network, registry, tmp_path, monkeypatch, change):
    evaluation(domain, network, registry, tmp_path).floor()
    metrics = choose_metrics(registry, METRICS)
    count = COUNT
    if change == "count":
        count = COUNT + 1
    elif change == "metric set":
        metrics = metrics[:2]
    elif change == "metric params":
        precision_recall = metrics[1]
        metrics[1] = Chosen(precision_recall.component, precision_recall.component.parse_params({"k": 2}))
    elif change == "dataset content":
        domain = changed_dataset_content(domain)
    elif change == "classifier weights":
        network = FeatureNetwork(_copy_with_one_weight_changed(network.module), network.protocol, network.device)
    elif change == "floor seed":
        monkeypatch.setattr(protocol, "FLOOR_SEED", 2)
    else:
        monkeypatch.setattr(protocol, "REFERENCE_SEED", 5)
    notes = []
    changed = Evaluation(domain, {"domain": network}, metrics, count, cache_dir=tmp_path, log=notes.append)
    recomputed = Evaluation(domain, {"domain": network}, metrics, count, cache_dir=None)
    assert changed.floor() == recomputed.floor()
    assert len(floor_files(tmp_path)) == 2  # a file of its own; the first one is still there
    assert notes == []


def _copy_with_one_weight_changed(module):
    changed = copy.deepcopy(module)
    with torch.no_grad():
        next(changed.parameters()).view(-1)[0] += 1.0
    return changed


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("garbage", "cannot be read"),
        ("truncated", "cannot be read"),
        ("flipped byte", "its checksum does not match its contents"),
        ("empty", "cannot be read"),
        ("another key", "it records another protocol than its name says"),
    ],
)
def test_a_damaged_cache_file_is_ignored_and_computed_again(domain, network, registry, tmp_path, damage, reason):
    good = evaluation(domain, network, registry, tmp_path).floor()
    [path] = floor_files(tmp_path)
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"not a torch file at all")
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flipped byte":
        # A byte of the reference features, in the middle of the file: torch reads it without noticing.
        features = torch.load(path, weights_only=True)["reference"]["domain"]["features"]
        pattern = features.reshape(-1)[100:104].numpy().tobytes()
        at = data.index(pattern)
        path.write_bytes(data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1 :])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        payload = torch.load(path, weights_only=True)
        payload["key"]["samples"] = 7
        torch.save(payload, path)
    notes = []
    again = evaluation(domain, network, registry, tmp_path, notes=notes)
    assert again.floor() == good
    assert len(notes) == 1 and f"ignoring the cached real floor {path}" in notes[0], notes
    assert f"({reason}" in notes[0] and "computing it again" in notes[0]
    later = []
    assert evaluation(domain, network, registry, tmp_path, notes=later).floor() == good
    assert later == []  # the file was written again, whole
    assert floor_files(tmp_path) == [path]  # and no temporary file is left beside it


def test_a_cache_that_cannot_be_written_costs_only_time(domain, network, registry, tmp_path):
    (tmp_path / "floors").write_text("a file where the folder would be")
    notes = []
    computed = evaluation(domain, network, registry, tmp_path, notes=notes).floor()
    assert computed == evaluation(domain, network, registry, None).floor()
    assert len(notes) == 1 and "warning: cannot cache the real floor" in notes[0], notes


def test_eval_real_gives_the_same_floor_from_its_cache(app, tmp_path, monkeypatch):
    """Through the command line: the second `ganforge eval --real` reads the floor the first one wrote."""
    session_networks = default_cache_dir() / "feature_networks"
    args = ["eval", "--real", "synthetic", "--n", "61", "--json"]  # a count no other test scores
    args += [item for key, value in SYNTHETIC.items() for item in ("--data-param", f"{key}={value}")]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert any(session_networks.glob("*.pt"))
    [path] = [p for p in floor_files(default_cache_dir()) if "-n61-" in p.name]
    stamp = path.stat().st_mtime_ns
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["floor"] == json.loads(first.stdout)["floor"]
    assert path.stat().st_mtime_ns == stamp
