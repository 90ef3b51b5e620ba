"""The same images, whichever way they come: a folder, a .zip or a .tar.gz of it, decoded in one process or several."""

import pytest

from ganforge.imagesets.decode import DecodeOptions
from ganforge.imagesets.prepare import CHUNK, prepare_dataset
from ganforge.imagesets.prepared import IMAGES_FILE, LABELS_FILE, read_manifest
from tests.cli_results import invoke
from tests.imagesets.images import many_images, planted_source, tarred, zipped


def prepared_bytes(folder):
    return (folder / IMAGES_FILE).read_bytes(), (folder / LABELS_FILE).read_bytes()


def what_was_prepared(folder):
    """The manifest's account of the images, without what depends on where and when they were prepared."""
    return read_manifest(folder).model_dump(exclude={"source", "seconds"})


def test_a_zip_and_a_tar_gz_of_a_folder_give_the_images_the_folder_gives(app, tmp_path):
    folder = planted_source(tmp_path / "photos")
    archives = [zipped(folder, tmp_path / "photos.zip"), tarred(folder, tmp_path / "photos.tar.gz")]

    invoke(app, "data", "prepare", folder, "--size", 8, "--out", tmp_path / "from-folder", "--quiet")
    for archive in archives:
        invoke(app, "data", "prepare", archive, "--size", 8, "--out", tmp_path / f"from-{archive.name}", "--quiet")

    expected = prepared_bytes(tmp_path / "from-folder")
    for archive in archives:
        assert prepared_bytes(tmp_path / f"from-{archive.name}") == expected, archive.name
        assert what_was_prepared(tmp_path / f"from-{archive.name}") == what_was_prepared(tmp_path / "from-folder")
    assert read_manifest(tmp_path / "from-photos.zip").source.kind == "zip"
    assert read_manifest(tmp_path / "from-photos.tar.gz").source.kind == "tar"


@pytest.mark.parametrize("archive", [None, "zip", "tar.gz"])
def test_two_decoding_processes_write_the_bytes_one_writes(tmp_path, archive):
    folder = many_images(tmp_path / "images", 2 * CHUNK + 13, classes=3)
    source = {None: folder, "zip": zipped(folder, tmp_path / "images.zip")}.get(archive)
    source = source or tarred(folder, tmp_path / "images.tar.gz")
    options = DecodeOptions(size=6, resize="pad", background=(10, 20, 30))

    prepare_dataset(source, tmp_path / "one", options, workers=1)
    prepare_dataset(source, tmp_path / "two", options, workers=2)

    assert prepared_bytes(tmp_path / "two") == prepared_bytes(tmp_path / "one")
    assert what_was_prepared(tmp_path / "two") == what_was_prepared(tmp_path / "one")
    assert read_manifest(tmp_path / "two").count == 2 * CHUNK + 13
