"""The built-in datasets, built through the registry as ganforge's core builds them."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.components.datasets import cifar10, mnist
from ganforge.contracts import DataSpec, ImageTensorDataset, LoadedDataset
from ganforge.data_root import default_data_root
from ganforge.errors import DataError, DatasetNotFoundError, ParamsError
from ganforge.evaluation.domain_split import load_domain
from ganforge.imagesets.decode import DecodeOptions
from ganforge.imagesets.prepare import prepare_dataset
from ganforge.registry import Kind, Registry
from tests.components.idx_files import TINY_COUNT, tiny_images, tiny_labels, write_idx_split


def build(registry: Registry, name: str, params: dict, root: Path) -> LoadedDataset:
    return registry.get(Kind.DATASET, name).build(params, root)


# --- data root ----------------------------------------------------------------------------------


def test_default_data_root_prefers_ganforge_data(monkeypatch, tmp_path):
    monkeypatch.setenv("GANFORGE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_data_root() == tmp_path / "data"


def test_default_data_root_falls_back_to_the_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("GANFORGE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_data_root() == tmp_path / "cache" / "ganforge" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_data_root() == Path.home() / ".cache" / "ganforge" / "data"


# --- registration -------------------------------------------------------------------------------

ALL_DATASETS = ("mnist", "fashion_mnist", "stacked_mnist", "cifar10", "image_folder", "prepared", "synthetic")


@pytest.mark.parametrize("name", ALL_DATASETS)
def test_every_dataset_is_registered_with_a_summary_and_described_params(registry, name):
    component = registry.get(Kind.DATASET, name)
    assert component.summary
    for field_name, field in component.params_model.model_fields.items():
        assert field.description, f"{name}.{field_name} has no description"


def test_unknown_params_are_rejected(registry, tmp_path):
    with pytest.raises(ParamsError, match="splt"):
        build(registry, "mnist", {"splt": "test"}, tmp_path)
    with pytest.raises(ParamsError, match="split"):
        build(registry, "mnist", {"split": "validation"}, tmp_path)


# --- MNIST from IDX files -----------------------------------------------------------------------


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("layout", ["mnist", "MNIST/raw", ""], ids=["mnist", "torchvision", "root"])
def test_mnist_reads_idx_files(registry, tmp_path, gzipped, layout):
    write_idx_split(tmp_path / layout, "test", gzipped)

    loaded = build(registry, "mnist", {"split": "test"}, tmp_path)

    assert loaded.spec == DataSpec((1, 28, 28), 10, tuple("0123456789"))
    dataset = loaded.dataset
    assert isinstance(dataset, ImageTensorDataset)
    assert len(dataset) == TINY_COUNT
    assert dataset.images.dtype == torch.uint8
    assert dataset.images.shape == (TINY_COUNT, 1, 28, 28)
    assert torch.equal(dataset.images[:, 0], torch.from_numpy(tiny_images()))
    assert dataset.labels.tolist() == tiny_labels().tolist()
    image, label = dataset[1]
    assert image.dtype == torch.float32 and image.shape == (1, 28, 28)
    assert image.min() == -1.0 and image.max() == 1.0
    assert label == 3 and isinstance(label, int)


def test_mnist_picks_the_split_asked_for(registry, tmp_path):
    write_idx_split(tmp_path / "mnist", "train", images=tiny_images(7), labels=tiny_labels(7))
    write_idx_split(tmp_path / "mnist", "test")
    assert len(build(registry, "mnist", {}, tmp_path).dataset) == 7
    assert len(build(registry, "mnist", {"split": "test"}, tmp_path).dataset) == TINY_COUNT


def test_limit_keeps_the_first_images_of_the_split_and_evaluation_keeps_them_all(registry, tmp_path):
    write_idx_split(tmp_path / "mnist", "train", images=tiny_images(7), labels=tiny_labels(7))
    write_idx_split(tmp_path / "mnist", "test")
    limited = build(registry, "mnist", {"limit": 3}, tmp_path).dataset
    assert torch.equal(limited.images[:, 0], torch.from_numpy(tiny_images(7)[:3]))
    assert limited.labels.tolist() == tiny_labels(7)[:3].tolist()
    assert len(build(registry, "mnist", {"limit": 100}, tmp_path).dataset) == 7
    domain = load_domain(registry.get(Kind.DATASET, "mnist"), {"limit": 3}, tmp_path)
    assert (len(domain.train), len(domain.held_out)) == (7, TINY_COUNT)


def test_mnist_root_param_overrides_the_root_ganforge_passes(registry, tmp_path):
    write_idx_split(tmp_path / "elsewhere" / "mnist", "train")
    loaded = build(registry, "mnist", {"root": str(tmp_path / "elsewhere")}, tmp_path / "empty")
    assert len(loaded.dataset) == TINY_COUNT


def test_truncated_idx_file_is_a_data_error_naming_the_file(registry, tmp_path):
    images_path, _ = write_idx_split(tmp_path / "mnist")
    images_path.write_bytes(images_path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated") as caught:
        build(registry, "mnist", {}, tmp_path)
    assert str(images_path) in str(caught.value)


def test_truncated_gzip_file_is_a_data_error_naming_the_file(registry, tmp_path):
    _, labels_path = write_idx_split(tmp_path / "mnist", gzipped=True)
    labels_path.write_bytes(labels_path.read_bytes()[:-8])
    with pytest.raises(DataError) as caught:
        build(registry, "mnist", {}, tmp_path)
    assert str(labels_path) in str(caught.value)


def test_wrong_magic_number_is_a_data_error_naming_the_file(registry, tmp_path):
    images_path, labels_path = write_idx_split(tmp_path / "mnist")
    # Labels where images should be: a valid IDX file of the wrong kind.
    images_path.write_bytes(labels_path.read_bytes())
    with pytest.raises(DataError, match="magic number 0x00000801, expected 0x00000803") as caught:
        build(registry, "mnist", {}, tmp_path)
    assert str(images_path) in str(caught.value)


def test_image_and_label_counts_must_agree(registry, tmp_path):
    write_idx_split(tmp_path / "mnist", labels=tiny_labels(TINY_COUNT - 1))
    with pytest.raises(DataError, match=f"{TINY_COUNT} images but .* {TINY_COUNT - 1} labels"):
        build(registry, "mnist", {}, tmp_path)


def test_missing_mnist_names_the_files_the_directories_and_the_fixes(registry, tmp_path):
    with pytest.raises(DatasetNotFoundError) as caught:
        build(registry, "mnist", {"download": False}, tmp_path)
    message = str(caught.value)
    assert "train-images-idx3-ubyte" in message and "train-labels-idx1-ubyte" in message
    for directory in (tmp_path / "mnist", tmp_path / "MNIST" / "raw", tmp_path):
        assert f"  {directory}\n" in message
    assert "$GANFORGE_DATA" in message and "data.params.root" in message and "download: true" in message


@pytest.mark.parametrize(("split", "count"), [("train", 60_000), ("test", 10_000)])
def test_real_mnist(registry, real_mnist_root, split, count):
    loaded = build(registry, "mnist", {"split": split}, real_mnist_root)
    dataset = loaded.dataset
    assert len(dataset) == count
    assert dataset.images.dtype == torch.uint8 and dataset.images.shape == (count, 1, 28, 28)
    assert sorted(dataset.labels.unique().tolist()) == list(range(10))
    image, _ = dataset[0]
    assert image.min() == -1.0 and image.max() == 1.0
    assert loaded.spec == DataSpec((1, 28, 28), 10, tuple("0123456789"))


def test_fashion_mnist_falls_back_to_the_debian_package(registry, tmp_path):
    if not mnist.DEBIAN_FASHION_MNIST_DIR.is_dir():
        pytest.skip(f"package dataset-fashion-mnist is not installed ({mnist.DEBIAN_FASHION_MNIST_DIR} is absent)")
    loaded = build(registry, "fashion_mnist", {"split": "test"}, tmp_path)
    assert len(loaded.dataset) == 10_000
    assert loaded.spec.num_classes == 10 and loaded.spec.class_names[7] == "Sneaker"
    assert loaded.spec.class_names == mnist.FASHION_MNIST_CLASSES


def test_fashion_mnist_prefers_the_data_root(registry, tmp_path):
    write_idx_split(tmp_path / "fashion-mnist", "test")
    assert len(build(registry, "fashion_mnist", {"split": "test"}, tmp_path).dataset) == TINY_COUNT


def test_missing_fashion_mnist_lists_the_system_directory(registry, tmp_path, monkeypatch):
    without_system_dir = dataclasses.replace(mnist.FASHION_MNIST, system_dirs=(tmp_path / "no-such-system-dir",))
    monkeypatch.setattr(mnist, "FASHION_MNIST", without_system_dir)
    with pytest.raises(DatasetNotFoundError) as caught:
        build(registry, "fashion_mnist", {"download": False}, tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "fashion_mnist") in message
    assert str(tmp_path / "no-such-system-dir") in message


# --- CIFAR-10 -----------------------------------------------------------------------------------


def test_missing_cifar10_is_dataset_not_found(registry, tmp_path):
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py") as caught:
        build(registry, "cifar10", {"download": False}, tmp_path)
    assert str(tmp_path / "cifar10") in str(caught.value)


def test_cifar10_images_become_one_uint8_tensor_channels_first(registry, tmp_path, monkeypatch):
    import torchvision.datasets

    (tmp_path / "cifar10" / "cifar-10-batches-py").mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)

    class FakeCIFAR10:
        def __init__(self, root, train, download):
            assert root == str(tmp_path / "cifar10") and download is False  # ganforge downloads, torchvision reads
            self.data = pixels
            self.targets = [3, 1, 4, 1]

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    loaded = build(registry, "cifar10", {"split": "test"}, tmp_path)
    assert loaded.spec == DataSpec((3, 32, 32), 10, cifar10.CIFAR10_CLASSES)
    assert loaded.dataset.images.shape == (4, 3, 32, 32)
    assert torch.equal(loaded.dataset.images[2], torch.from_numpy(pixels[2]).permute(2, 0, 1))
    assert loaded.dataset.labels.tolist() == [3, 1, 4, 1]


# --- image folder -------------------------------------------------------------------------------


def write_png(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.fixture
def class_folders(tmp_path) -> Path:
    folder = tmp_path / "images"
    write_png(folder / "dogs" / "a.png", (40, 30), (255, 0, 0))
    write_png(folder / "dogs" / "b.PNG", (16, 16), (255, 0, 0))
    write_png(folder / "cats" / "c.jpg", (20, 50), (0, 0, 255))
    (folder / "cats" / "notes.txt").write_text("not an image")
    return folder


def test_image_folder_classes_from_subfolders(registry, class_folders):
    loaded = build(registry, "image_folder", {"path": str(class_folders), "size": 12}, Path("/unused"))
    assert loaded.spec == DataSpec((3, 12, 12), 2, ("cats", "dogs"))  # classes named after their subfolders
    dataset = loaded.dataset
    assert dataset.images.shape == (3, 3, 12, 12) and dataset.images.dtype == torch.uint8
    # Sorted order: cats/c.jpg, dogs/a.png, dogs/b.PNG; classes sorted: cats=0, dogs=1.
    assert dataset.labels.tolist() == [0, 1, 1]
    cat, _ = dataset[0]
    dog, _ = dataset[1]
    assert cat[2].mean() > 0.9 and cat[0].mean() < -0.9
    assert dog[0].mean() > 0.9 and dog[2].mean() < -0.9


def test_image_folder_grayscale(registry, class_folders):
    loaded = build(registry, "image_folder", {"path": str(class_folders), "size": 8, "channels": 1}, Path("/unused"))
    assert loaded.spec.shape == (1, 8, 8)
    assert loaded.dataset[0][0].shape == (1, 8, 8)


def test_image_folder_without_subfolders_has_no_classes(registry, tmp_path):
    write_png(tmp_path / "top.png", (10, 10), (1, 2, 3))
    write_png(tmp_path / "deep" / "er" / "x.png", (10, 10), (1, 2, 3))
    loaded = build(registry, "image_folder", {"path": str(tmp_path), "size": 4}, Path("/unused"))
    assert loaded.spec.num_classes is None
    assert loaded.dataset.labels.tolist() == [0, 0]


def test_image_folder_labels_can_be_switched_off(registry, class_folders):
    params = {"path": str(class_folders), "size": 4, "labels_from_subfolders": False}
    loaded = build(registry, "image_folder", params, Path("/unused"))
    assert loaded.spec.num_classes is None


def test_image_folder_resizes_the_short_side_then_crops_the_centre(registry, tmp_path):
    image = Image.new("L", (30, 10), 0)
    image.paste(255, (10, 0, 20, 10))  # a white middle third between black ones: only the white is kept
    image.save(tmp_path / "wide.png")
    loaded = build(registry, "image_folder", {"path": str(tmp_path), "size": 5, "channels": 1}, Path("/unused"))
    assert loaded.dataset.images.shape == (1, 1, 5, 5)
    # The resampling filter blends a little of the cut-off black into the border columns.
    assert loaded.dataset.images[..., 1:-1].min() == 255 and loaded.dataset.images.min() > 200


def test_image_folder_relative_path_is_relative_to_the_current_directory(registry, class_folders, monkeypatch):
    monkeypatch.chdir(class_folders.parent)
    loaded = build(registry, "image_folder", {"path": "images", "size": 4}, Path("/unused"))
    assert len(loaded.dataset) == 3


def test_image_folder_missing_path(registry, tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        build(registry, "image_folder", {"path": str(tmp_path / "nope")}, Path("/unused"))
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(DataError, match="neither a folder nor an archive"):
        build(registry, "image_folder", {"path": str(tmp_path / "file.png")}, Path("/unused"))


def test_image_folder_empty_folder_names_the_extensions(registry, tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"no images found .*\.png.*\.jpg"):
        build(registry, "image_folder", {"path": str(tmp_path)}, Path("/unused"))


def test_image_folder_leaves_out_an_unreadable_image_and_names_it(registry, class_folders, capsys):
    good = build(registry, "image_folder", {"path": str(class_folders), "size": 4}, Path("/unused")).dataset
    broken = class_folders / "cats" / "broken.png"
    broken.write_bytes(b"this is not a png")
    loaded = build(registry, "image_folder", {"path": str(class_folders), "size": 4}, Path("/unused"))
    assert torch.equal(loaded.dataset.images, good.images)  # the changed folder was prepared again, without it
    told = capsys.readouterr().err
    assert "2 not an image: left out (e.g. cats/broken.png, cats/notes.txt)" in told


# --- synthetic ----------------------------------------------------------------------------------


def test_synthetic_is_deterministic_for_a_seed(registry):
    first = build(registry, "synthetic", {"num_samples": 64, "seed": 3}, Path("/unused")).dataset
    again = build(registry, "synthetic", {"num_samples": 64, "seed": 3}, Path("/unused")).dataset
    other = build(registry, "synthetic", {"num_samples": 64, "seed": 4}, Path("/unused")).dataset
    assert torch.equal(first.images, again.images)
    assert not torch.equal(first.images, other.images)


def test_synthetic_shape_labels_and_range(registry):
    params = {"num_samples": 100, "num_classes": 4, "channels": 3, "size": 16}
    loaded = build(registry, "synthetic", params, Path("/unused"))
    assert loaded.spec == DataSpec((3, 16, 16), 4)
    dataset = loaded.dataset
    assert dataset.images.shape == (100, 3, 16, 16) and dataset.images.dtype == torch.uint8
    assert torch.bincount(dataset.labels).tolist() == [25, 25, 25, 25]
    image, label = dataset[5]
    assert image.min() >= -1.0 and image.max() <= 1.0
    assert label == 1


@pytest.mark.parametrize("channels", [1, 3])
def test_synthetic_classes_look_different(registry, channels):
    params = {"num_samples": 200, "num_classes": 10, "channels": channels}
    dataset = build(registry, "synthetic", params, Path("/unused")).dataset
    images = dataset.images.float() / 255
    class_means = torch.stack([images[dataset.labels == k].mean(0) for k in range(10)]).flatten(1)
    distances = torch.cdist(class_means, class_means)
    off_diagonal = distances[~torch.eye(10, dtype=torch.bool)]
    within_class_spread = (images[dataset.labels == 0] - class_means[0].view(images.shape[1:])).flatten(1).norm(dim=1)
    assert off_diagonal.min() > within_class_spread.mean()


def test_synthetic_params_are_validated(registry):
    with pytest.raises(ParamsError, match="num_samples"):
        build(registry, "synthetic", {"num_samples": 0}, Path("/unused"))
    with pytest.raises(ParamsError, match="num_classes"):
        build(registry, "synthetic", {"num_classes": 0}, Path("/unused"))


# --- workers need to pickle the dataset ---------------------------------------------------------


def test_every_dataset_pickles(registry, tmp_path, class_folders, monkeypatch):
    import torchvision.datasets

    class FakeCIFAR10:
        def __init__(self, root, train, download):
            self.data = np.zeros((2, 32, 32, 3), dtype=np.uint8)
            self.targets = [0, 1]

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    write_idx_split(tmp_path / "mnist")
    write_idx_split(tmp_path / "fashion_mnist")
    (tmp_path / "cifar-10-batches-py").mkdir()
    prepared = tmp_path / "prepared"
    prepare_dataset(class_folders, prepared, DecodeOptions(4), workers=1)
    loaded = {
        "mnist": build(registry, "mnist", {}, tmp_path),
        "fashion_mnist": build(registry, "fashion_mnist", {}, tmp_path),
        "stacked_mnist": build(registry, "stacked_mnist", {"count": 10}, tmp_path),
        "cifar10": build(registry, "cifar10", {}, tmp_path),
        "image_folder": build(registry, "image_folder", {"path": str(class_folders), "size": 4}, tmp_path),
        # Memory-mapped: a worker maps the file again rather than receive the images.
        "prepared": build(registry, "prepared", {"path": str(prepared), "storage": "mapped"}, tmp_path),
        "synthetic": build(registry, "synthetic", {"num_samples": 8}, tmp_path),
    }
    assert set(loaded) == set(ALL_DATASETS)
    for name, dataset in loaded.items():
        copy = pickle.loads(pickle.dumps(dataset.dataset))
        image, label = copy[0]
        original_image, original_label = dataset.dataset[0]
        assert torch.equal(image, original_image) and label == original_label, name


def test_image_folder_defaults_to_images_under_the_data_root(registry, tmp_path):
    write_png(tmp_path / "images" / "a.png", (20, 20), (255, 0, 0))
    loaded = registry.get(Kind.DATASET, "image_folder").build({"size": 8}, tmp_path)
    assert len(loaded.dataset) == 1 and loaded.spec.shape == (3, 8, 8)
    with pytest.raises(DatasetNotFoundError, match=r"data\.params\.path"):
        registry.get(Kind.DATASET, "image_folder").build({}, tmp_path / "elsewhere")
