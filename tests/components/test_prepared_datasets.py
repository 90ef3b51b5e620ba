"""image_folder's preparation on first use, and the prepared dataset: through the registry, as a config names them."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.contracts import DataSpec, ImageTensorDataset, MappedImageDataset
from ganforge.errors import DataError, DatasetNotFoundError
from ganforge.imagesets import prepare
from ganforge.imagesets.decode import DecodeOptions
from ganforge.imagesets.prepare import prepare_dataset
from ganforge.registry import Kind, Registry


def build(registry: Registry, name: str, params: dict, root: Path = Path("/unused")):
    return registry.get(Kind.DATASET, name).build(params, root)


@pytest.fixture
def photos(tmp_path) -> Path:
    """Two classes of small random photos of different sizes."""
    folder = tmp_path / "photos"
    generator = np.random.default_rng(0)
    for label in ("ant", "bee"):
        (folder / label).mkdir(parents=True)
        for index in range(6):
            height, width = generator.integers(10, 40, size=2)
            pixels = generator.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / label / f"{index}.png")
    return folder


def test_a_second_use_opens_the_prepared_copy_without_decoding_again(registry, photos, monkeypatch):
    first = build(registry, "image_folder", {"path": str(photos), "size": 8})
    assert first.spec == DataSpec((3, 8, 8), 2, ("ant", "bee"))

    def no_decoding(*_args, **_kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(prepare, "decode_image", no_decoding)
    second = build(registry, "image_folder", {"path": str(photos), "size": 8})
    assert torch.equal(second.dataset.images, first.dataset.images)
    assert torch.equal(second.dataset.labels, first.dataset.labels)


def test_a_changed_folder_is_prepared_again_into_the_same_slot(registry, photos, tmp_path):
    before = build(registry, "image_folder", {"path": str(photos), "size": 8}).dataset
    shutil.copy(photos / "ant" / "0.png", photos / "bee" / "copy.png")
    after = build(registry, "image_folder", {"path": str(photos), "size": 8}).dataset
    assert len(after) == len(before) + 1
    slots = list((Path(__import__("os").environ["GANFORGE_CACHE"]) / "prepared").iterdir())
    assert len([slot for slot in slots if not slot.name.startswith(".")]) >= 1
    # One slot per source and options, however often the source changes.
    names = {slot.name for slot in slots if not slot.name.startswith(".")}
    build(registry, "image_folder", {"path": str(photos), "size": 8})
    assert {slot.name for slot in slots[0].parent.iterdir() if not slot.name.startswith(".")} == names


def test_mapped_and_in_memory_storage_give_the_same_images(registry, photos):
    in_memory = build(registry, "image_folder", {"path": str(photos), "size": 8, "storage": "memory"}).dataset
    mapped = build(registry, "image_folder", {"path": str(photos), "size": 8, "storage": "mapped"}).dataset
    assert type(in_memory) is ImageTensorDataset and isinstance(mapped, MappedImageDataset)
    assert torch.equal(in_memory.images, mapped.images) and torch.equal(in_memory.labels, mapped.labels)
    image, label = mapped[3]
    assert image.dtype == torch.float32 and image.min() >= -1 and image.max() <= 1 and label == 0


def test_a_zip_of_the_folder_gives_the_same_dataset(registry, photos, tmp_path):
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as writer:
        for file in sorted(photos.rglob("*.png")):
            writer.write(file, file.relative_to(photos).as_posix())
    from_folder = build(registry, "image_folder", {"path": str(photos), "size": 8})
    from_zip = build(registry, "image_folder", {"path": str(archive), "size": 8})
    assert from_zip.spec == from_folder.spec
    assert torch.equal(from_zip.dataset.images, from_folder.dataset.images)


def test_a_damaged_cache_slot_is_prepared_again(registry, photos):
    first = build(registry, "image_folder", {"path": str(photos), "size": 8}).dataset
    cache = Path(__import__("os").environ["GANFORGE_CACHE"]) / "prepared"
    for manifest in cache.glob("*/manifest.json"):
        manifest.write_text("{not json")
    again = build(registry, "image_folder", {"path": str(photos), "size": 8}).dataset
    assert torch.equal(again.images, first.images)


def test_the_prepared_dataset_opens_what_prepare_made(registry, photos, tmp_path):
    out = tmp_path / "prepared"
    manifest = prepare_dataset(photos, out, DecodeOptions(16, channels=1, resize="pad"), workers=1)
    loaded = build(registry, "prepared", {"path": str(out)})
    assert loaded.spec == DataSpec((1, 16, 16), 2, ("ant", "bee")) and len(loaded.dataset) == manifest.count == 12
    assert torch.equal(loaded.dataset.labels, torch.tensor([0] * 6 + [1] * 6))


def test_the_prepared_dataset_refuses_what_is_not_one(registry, tmp_path):
    with pytest.raises(DatasetNotFoundError, match="data prepare"):
        build(registry, "prepared", {"path": str(tmp_path / "missing")})
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match=r"plain is not a prepared dataset: it has no manifest\.json"):
        build(registry, "prepared", {"path": str(tmp_path / "plain")})


def test_auto_storage_maps_the_images_and_a_cpu_run_gathers_its_batches_from_the_map(registry, photos):
    from ganforge.training.batches import MappedBatches, make_batches
    from ganforge.training.distributed import Processes

    loaded = build(registry, "image_folder", {"path": str(photos), "size": 8})  # storage: auto
    assert isinstance(loaded.dataset, MappedImageDataset) and loaded.dataset.copy_to_gpu
    batches = make_batches(loaded, 4, 0, 0, Processes(torch.device("cpu")))
    assert isinstance(batches, MappedBatches)


@pytest.mark.parametrize(
    ("storage", "free", "copied"), [("auto", 10**9, True), ("auto", 100, False), ("mapped", 10**9, False)]
)
def test_a_mapped_set_goes_whole_to_a_gpu_only_where_allowed_and_it_fits(
    registry, photos, monkeypatch, storage, free, copied
):
    from ganforge.training import batches

    monkeypatch.setattr(batches, "device_free_bytes", lambda device: free)
    loaded = build(registry, "image_folder", {"path": str(photos), "size": 8, "storage": storage})
    assert batches.copied_to_gpu(loaded.dataset, torch.device("cuda")) is copied
    assert batches.copied_to_gpu(loaded.dataset, torch.device("cpu")) is False
