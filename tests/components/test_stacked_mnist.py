"""Stacked MNIST from tiny MNIST IDX files the tests write: labels are the digits stacked, the seed decides the
images, the contract kit passes, and evaluation reads each channel with the very classifier `mnist` is scored with."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ganforge.contracts import DataSpec, ImageTensorDataset
from ganforge.data_root import DATA_ENV
from ganforge.errors import DatasetNotFoundError, ParamsError, UsageError
from ganforge.evaluation.channels import ChannelwiseFeatures, centred, domain_features
from ganforge.evaluation.domain_classifier import domain_classifier
from ganforge.evaluation.domain_split import ImageSet, load_domain
from ganforge.evaluation.protocol import describe_feature_networks, evaluate_domain
from ganforge.registry import Chosen, Kind
from ganforge.testing import check_component
from tests.components.idx_files import tiny_images, write_idx_split

DIGITS_PER_SPLIT = {"train": 20, "test": 12}


def digit_labels(count: int) -> torch.Tensor:
    return torch.arange(count) * 7 % 10  # every digit, in no simple order


@pytest.fixture
def mnist_root(tmp_path):
    """A data root whose MNIST has a few distinct images per split (row i white in image i)."""
    for split, count in DIGITS_PER_SPLIT.items():
        write_idx_split(tmp_path / "mnist", split, images=tiny_images(count), labels=digit_labels(count).numpy())
    return tmp_path


def build(registry, params, root):
    return registry.get(Kind.DATASET, "stacked_mnist").build(params, root)


def source_index(channel: torch.Tensor) -> int:
    """Which tiny MNIST image a channel is: image i is the one whose row i is white."""
    return int((channel[:, 0] == 255).nonzero()[0])


def test_each_label_is_the_three_digits_stacked(registry, mnist_root):
    loaded = build(registry, {"count": 300, "seed": 3}, mnist_root)
    dataset = loaded.dataset
    assert isinstance(dataset, ImageTensorDataset) and dataset.images.dtype == torch.uint8
    assert dataset.images.shape == (300, 3, 28, 28)
    labels = digit_labels(DIGITS_PER_SPLIT["train"])
    for image, label in zip(dataset.images[:50], dataset.labels[:50].tolist(), strict=True):
        sources = [source_index(channel) for channel in image]
        assert torch.equal(image, torch.from_numpy(tiny_images(20))[sources])
        assert label == 100 * labels[sources[0]] + 10 * labels[sources[1]] + labels[sources[2]]
        assert loaded.spec.class_names[label] == "-".join(str(int(labels[s])) for s in sources)
    assert loaded.spec == DataSpec((3, 28, 28), 1000, loaded.spec.class_names)
    assert loaded.spec.class_names[371] == "3-7-1"
    assert len(dataset.labels.unique()) > 150  # 300 draws reach many of the 1,000 triples


def test_the_seed_decides_the_images_and_the_split_the_digits(registry, mnist_root):
    first, again = (build(registry, {"count": 64, "seed": 1}, mnist_root).dataset for _ in range(2))
    other = build(registry, {"count": 64, "seed": 2}, mnist_root).dataset
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert not torch.equal(first.images, other.images)
    test = build(registry, {"count": 64, "split": "test"}, mnist_root).dataset
    assert max(source_index(channel) for image in test.images for channel in image) < DIGITS_PER_SPLIT["test"]


def test_size_32_pads_each_digit_with_black(registry, mnist_root):
    small = build(registry, {"count": 16}, mnist_root)
    padded = build(registry, {"count": 16, "size": 32}, mnist_root)
    assert padded.spec.shape == (3, 32, 32)
    assert torch.equal(padded.dataset.images[:, :, 2:30, 2:30], small.dataset.images)
    border = padded.dataset.images.clone()
    border[:, :, 2:30, 2:30] = 0
    assert border.max() == 0
    assert torch.equal(padded.dataset.labels, small.dataset.labels)


def test_params_estimate_what_loading_gives(registry, mnist_root):
    component = registry.get(Kind.DATASET, "stacked_mnist")
    params = component.parse_params({"count": 100, "size": 32})
    assert params.data_spec() == build(registry, {"count": 100, "size": 32}, mnist_root).spec
    assert params.loading_bytes() >= 100 * 3 * 32 * 32 + 60_000 * 28 * 28
    with pytest.raises(ParamsError, match="size"):
        component.parse_params({"size": 30})
    with pytest.raises(ParamsError, match="count"):
        component.parse_params({"count": 0})


def test_missing_mnist_says_which_files_and_where(registry, tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"MNIST \(train split\) not found(.|\n)*train-images-idx3-ubyte"):
        build(registry, {"download": False}, tmp_path)


def test_the_contract_kit_passes(registry, mnist_root, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(mnist_root))
    results = check_component(registry.get(Kind.DATASET, "stacked_mnist"))
    assert results and all(result.status == "passed" for result in results), results


# --- scored channel by channel with the MNIST classifier --------------------------------------------------------


def test_its_domain_reads_channels_with_the_mnist_domain(registry, mnist_root):
    stacked = load_domain(registry.get(Kind.DATASET, "stacked_mnist"), {"count": 60}, mnist_root, registry)
    mnist = load_domain(registry.get(Kind.DATASET, "mnist"), {}, mnist_root, registry)
    inner = stacked.channel_domain
    assert inner is not None and mnist.channel_domain is None
    # The same identity is the same cache entry: a mnist run's classifier is the one stacked_mnist uses.
    assert (inner.dataset, inner.params) == (mnist.dataset, mnist.params)
    assert (len(stacked.train), len(stacked.held_out)) == (60, 60)


def test_channel_features_are_the_channels_side_by_side_and_classes_their_product(registry, mnist_root, tmp_path):
    stacked = load_domain(registry.get(Kind.DATASET, "stacked_mnist"), {"count": 40}, mnist_root, registry)
    assert stacked.channel_domain is not None
    classifier = domain_classifier(stacked.channel_domain, torch.device("cpu"), tmp_path / "cache")
    network = domain_features(stacked, torch.device("cpu"), tmp_path / "cache")
    assert isinstance(network, ChannelwiseFeatures)
    seen = network.extract(stacked.held_out)
    channels = [classifier.extract(channel_set(stacked.held_out, c)) for c in range(3)]
    assert torch.equal(seen.features, torch.cat([c.features for c in channels], dim=1))
    red, green, blue = (c.probabilities for c in channels)
    assert seen.probabilities.shape == (40, 1000)
    assert torch.allclose(seen.probabilities[:, 371], red[:, 3] * green[:, 7] * blue[:, 1])
    assert torch.allclose(seen.probabilities.sum(dim=1), torch.ones(40, dtype=torch.float64))
    assert network.protocol["file"] == classifier.protocol["file"]
    assert network.protocol["per_channel"]["channels"] == 3
    assert network.fingerprint()["weights"] == classifier.fingerprint()["weights"]
    assert network.fingerprint() != classifier.fingerprint()


def test_a_32_pixel_stack_is_read_as_the_28_pixel_digits_it_pads(registry, mnist_root, tmp_path):
    component = registry.get(Kind.DATASET, "stacked_mnist")
    small = load_domain(component, {"count": 30}, mnist_root, registry)
    padded = load_domain(component, {"count": 30, "size": 32}, mnist_root, registry)
    assert padded.channel_domain is not None and padded.channel_domain.spec.shape == (1, 28, 28)
    seen_small = domain_features(small, torch.device("cpu"), tmp_path).extract(small.held_out)
    seen_padded = domain_features(padded, torch.device("cpu"), tmp_path).extract(padded.held_out)
    assert torch.equal(seen_small.features, seen_padded.features)
    assert torch.equal(seen_small.probabilities, seen_padded.probabilities)


def channel_set(images: ImageSet, channel: int) -> ImageSet:
    return ImageSet(images.images[:, channel : channel + 1].clone(), None, f"channel {channel}")


def test_a_stacked_evaluation_uses_the_classifier_a_mnist_evaluation_trained(registry, mnist_root, tmp_path):
    metrics = [Chosen(c, c.parse_params({})) for c in (registry.get(Kind.METRIC, n) for n in ("modes", "fid"))]
    notes = []
    mnist = load_domain(registry.get(Kind.DATASET, "mnist"), {}, mnist_root, registry)
    first = evaluate_domain(mnist, metrics, samples=10, device=torch.device("cpu"), cache_dir=tmp_path)
    stacked = load_domain(registry.get(Kind.DATASET, "stacked_mnist"), {"count": 50}, mnist_root, registry)
    second = evaluate_domain(
        stacked, metrics, samples=50, device=torch.device("cpu"), cache_dir=tmp_path, log=notes.append
    )
    assert not any("training the domain classifier" in note for note in notes)
    protocol = second.protocol("test")["feature_network"]
    assert protocol["file"] == first.protocol("test")["feature_network"]["file"]
    assert "reading each of the 3 channels" in describe_feature_networks(second.protocol("test"))[0]
    floor = second.floor()
    assert 1 <= floor["modes"] <= 50 and floor["modes_kl"] >= 0
    assert second.floor_cache is not None and second.floor_cache.read().floor == floor  # the floor is cached


def test_centred_crops_and_pads_about_the_centre():
    images = torch.arange(4 * 32 * 32, dtype=torch.float32).reshape(4, 1, 32, 32)
    assert torch.equal(centred(images, (28, 28)), images[:, :, 2:30, 2:30])
    assert torch.equal(centred(centred(images, (28, 28)), (32, 32))[:, :, 2:30, 2:30], images[:, :, 2:30, 2:30])


def test_a_dataset_whose_classes_are_not_its_channels_combinations_is_refused(registry, mnist_root, tmp_path):
    stacked = load_domain(registry.get(Kind.DATASET, "stacked_mnist"), {"count": 20}, mnist_root, registry)
    wrong = dataclasses.replace(stacked, spec=DataSpec((3, 28, 28), 10))
    with pytest.raises(UsageError, match="3 channels of ganforge:mnist's 10 classes make 1000"):
        domain_features(wrong, torch.device("cpu"), tmp_path)
