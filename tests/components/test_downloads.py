"""Datasets download when missing: from a local HTTP server standing in for the official mirrors.

The downloader is tested with fabricated files and their checksums; the datasets through the
registry, with their tables of published files pointed at fabricated ones; the command line with
the real MNIST files served from 127.0.0.1, as a new user with an empty home folder meets it.
"""

from __future__ import annotations

import dataclasses
import gzip
import http.server
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from ganforge import downloads
from ganforge.components.datasets import cifar10, idx, mnist
from ganforge.data_root import default_data_root
from ganforge.downloads import DownloadError, RemoteFile, download
from ganforge.errors import DataError, DatasetNotFoundError
from ganforge.registry import Kind
from tests.components.idx_files import TINY_COUNT, idx_bytes, tiny_images, tiny_labels
from tests.components.mirror import Mirror, md5, serving

REPO = Path(__file__).resolve().parents[2]
MNIST_MLP = REPO / "examples" / "mnist_mlp.yaml"
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def everything_in(folder: Path) -> list[str]:
    """Every file and folder under ``folder``, hidden ones (temporary files) included."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*")) if folder.exists() else []


# -- a local mirror ------------------------------------------------------------------------------


@pytest.fixture
def mirror(tmp_path) -> Iterator[Mirror]:
    with serving(tmp_path / "served") as served:
        yield served


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: the port was free a moment ago, and is closed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def cut_short(handler: http.server.BaseHTTPRequestHandler) -> None:
    """Promise 100,000 bytes, send 10, hang up: a transfer that breaks off."""
    handler.send_response(200)
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    handler.wfile.write(b"0123456789")
    handler.wfile.flush()
    handler.close_connection = True


# -- the downloader ------------------------------------------------------------------------------


def test_a_file_is_downloaded_verified_and_written_whole(mirror, tmp_path, capfd):
    data = os.urandom(300_000)
    published = mirror.put("data.bin", data)
    destination = tmp_path / "data"

    path = download(published, [mirror.url], destination)

    assert path == destination / "data.bin" and path.read_bytes() == data
    assert everything_in(destination) == ["data.bin"]  # no temporary file left beside it
    assert mirror.requests == ["/data.bin"]
    err = capfd.readouterr().err
    assert f"downloading data.bin from {mirror.url}data.bin into {destination}" in err
    assert "data.bin: 300,000 bytes, MD5 verified" in err


def test_a_corrupted_download_is_refused_by_its_checksum_and_nothing_stays(mirror, tmp_path):
    published = mirror.put("data.bin", b"the published content")
    mirror.put("data.bin", b"the published content, damaged")
    destination = tmp_path / "data"

    with pytest.raises(DownloadError) as caught:
        download(published, [mirror.url], destination)

    message = str(caught.value)
    assert f"{mirror.url}data.bin: checksum mismatch: expected MD5 {published.md5}" in message
    assert f"got {md5(b'the published content, damaged')}" in message
    assert everything_in(destination) == []


def test_a_file_gzipped_again_is_accepted_by_the_checksum_of_its_content(mirror, tmp_path, capfd):
    content = os.urandom(5000) * 4
    as_published = gzip.compress(content, compresslevel=6, mtime=1)
    published = RemoteFile("x.gz", md5(as_published), len(as_published), md5(content), len(content))
    mirror.put("x.gz", gzip.compress(content, compresslevel=9, mtime=0))  # another file, the same content

    path = download(published, [mirror.url], tmp_path)

    assert gzip.decompress(path.read_bytes()) == content
    assert "MD5 of the unpacked content verified" in capfd.readouterr().err


def test_other_content_gzipped_is_refused_naming_both_checksums(mirror, tmp_path):
    content = b"digits" * 1000
    as_published = gzip.compress(content, mtime=1)
    published = RemoteFile("x.gz", md5(as_published), len(as_published), md5(content), len(content))
    mirror.put("x.gz", gzip.compress(b"fashion" * 1000, mtime=1))

    with pytest.raises(DownloadError) as caught:
        download(published, [mirror.url], tmp_path / "data")

    assert f"expected MD5 {published.md5} (or {md5(content)} of its unpacked content)" in str(caught.value)
    assert "(unpacked: more than 6,000 bytes)" in str(caught.value)
    assert everything_in(tmp_path / "data") == []


def test_a_server_that_is_gone_is_a_clear_error(closed_port_url, tmp_path):
    with pytest.raises(DownloadError) as caught:
        download(RemoteFile("x.bin", md5(b"x"), 1), [closed_port_url], tmp_path / "data")
    assert str(caught.value) == f"no mirror gave x.bin:\n  {closed_port_url}x.bin: Connection refused"
    assert everything_in(tmp_path / "data") == []


def test_mirrors_are_tried_in_order_until_one_gives_the_file(tmp_path):
    data = b"the published content"
    with serving(tmp_path / "a") as empty, serving(tmp_path / "b") as wrong, serving(tmp_path / "c") as good:
        wrong.put("x.bin", b"something else")
        published = good.put("x.bin", data)
        spare = good.url

        path = download(published, [empty.url, wrong.url, good.url, spare], tmp_path / "data")

        assert path.read_bytes() == data
        assert (empty.requests, wrong.requests, good.requests) == (["/x.bin"], ["/x.bin"], ["/x.bin"])


def test_every_mirror_tried_is_named_with_its_reason(tmp_path, closed_port_url):
    with serving(tmp_path / "a") as empty, serving(tmp_path / "b") as wrong:
        published = wrong.put("x.bin", b"published")
        wrong.put("x.bin", b"damaged")
        with pytest.raises(DownloadError) as caught:
            download(published, [closed_port_url, empty.url, wrong.url], tmp_path / "data")
    attempts = caught.value.attempts
    assert [attempt.url for attempt in attempts] == [f"{url}x.bin" for url in (closed_port_url, empty.url, wrong.url)]
    assert [attempt.problem.split(":")[0] for attempt in attempts] == [
        "Connection refused",
        "HTTP 404 File not found",
        "checksum mismatch",
    ]


def test_a_transfer_that_breaks_off_leaves_nothing(tmp_path):
    with (
        serving(tmp_path / "served", special={"x.bin": cut_short}) as mirror,
        pytest.raises(DownloadError, match="the transfer broke off after 10 of 100,000 bytes"),
    ):
        download(RemoteFile("x.bin", md5(b"x" * 100_000), 100_000), [mirror.url], tmp_path / "data")
    assert everything_in(tmp_path / "data") == []


def test_a_server_that_stops_answering_times_out(tmp_path, monkeypatch):
    release = threading.Event()

    def stall(handler):
        release.wait(30)

    monkeypatch.setattr(downloads, "TIMEOUT_SECONDS", 0.3)
    with serving(tmp_path / "served", special={"x.bin": stall}) as mirror:
        try:
            with pytest.raises(DownloadError, match="timed out"):
                download(RemoteFile("x.bin", md5(b"x"), 1), [mirror.url], tmp_path / "data")
        finally:
            release.set()
    assert everything_in(tmp_path / "data") == []


@pytest.mark.parametrize("length", ["²", "+7", "1_0"])
def test_a_content_length_that_is_not_ascii_digits_is_taken_as_unknown(tmp_path, length):
    def odd_length(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", length)  # str.isdigit() accepts '²', int() does not
        handler.end_headers()
        handler.wfile.write(b"content")
        handler.close_connection = True

    with serving(tmp_path / "served", special={"x.bin": odd_length}) as mirror:
        path = download(RemoteFile("x.bin", md5(b"content"), 7), [mirror.url], tmp_path / "data")
    assert path.read_bytes() == b"content"


def test_ctrl_c_during_a_download_leaves_nothing(tmp_path):
    started, release = threading.Event(), threading.Event()

    def half_then_wait(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(2**20))
        handler.end_headers()
        handler.wfile.write(bytes(2**16))
        handler.wfile.flush()
        started.set()
        release.wait(30)

    def press_ctrl_c():
        # A real SIGINT to the main thread, as a terminal sends it: it breaks the blocked read at once, where
        # _thread.interrupt_main() would wait for the read to end (the server holds it open).
        if started.wait(30):
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    # Python's own handler, whatever an earlier test in this process left installed (ganforge's command
    # guard swallows a Ctrl-C once its command has ended).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    with serving(tmp_path / "served", special={"x.bin": half_then_wait}) as mirror:
        threading.Thread(target=press_ctrl_c, daemon=True).start()
        try:
            with pytest.raises(KeyboardInterrupt):
                download(RemoteFile("x.bin", md5(bytes(2**20)), 2**20), [mirror.url], tmp_path / "data")
        finally:
            release.set()
            signal.signal(signal.SIGINT, previous)
    assert everything_in(tmp_path / "data") == []


def test_a_server_sending_far_more_than_published_is_cut_off(mirror, tmp_path):
    mirror.put("x.bin", bytes(10_000))
    with pytest.raises(DownloadError, match=r"more than 2,000 bytes, 2x the published size"):
        download(RemoteFile("x.bin", md5(b"x"), 1000), [mirror.url], tmp_path / "data")
    assert everything_in(tmp_path / "data") == []


def test_a_folder_that_cannot_be_written_is_not_blamed_on_the_mirror(mirror, tmp_path):
    published = mirror.put("x.bin", b"content")
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(DownloadError, match=r"cannot write .*a-file/data/x\.bin: ") as caught:
        download(published, [mirror.url, mirror.url], tmp_path / "a-file" / "data")
    assert caught.value.attempts == ()
    assert mirror.requests == []


def test_the_mirror_variable_replaces_the_official_mirrors(monkeypatch):
    monkeypatch.setenv("GANFORGE_DOWNLOAD_MIRROR", "http://mirror.example/datasets/")
    assert downloads.mirrors(("https://official.example/a/", "https://b.example/")) == (
        "http://mirror.example/datasets/",
    )
    monkeypatch.delenv("GANFORGE_DOWNLOAD_MIRROR")
    assert downloads.mirrors(("https://official.example/a/",)) == ("https://official.example/a/",)


# -- the datasets --------------------------------------------------------------------------------


def fabricated_idx_files(served: Path) -> dict[str, RemoteFile]:
    """Tiny gzipped IDX files of both splits in ``served``, described as if they were the published ones."""
    files = {}
    for split in ("train", "test"):
        images_stem, labels_stem = mnist.IDX_FILE_STEMS[split]
        for stem, content in (
            (images_stem, idx_bytes(tiny_images(), idx.IDX_IMAGES_MAGIC)),
            (labels_stem, idx_bytes(tiny_labels(), idx.IDX_LABELS_MAGIC)),
        ):
            data = gzip.compress(content, mtime=0)
            (served / f"{stem}.gz").write_bytes(data)
            files[stem] = RemoteFile(f"{stem}.gz", md5(data), len(data), md5(content), len(content))
    return files


@pytest.fixture
def fabricated_mnist(mirror, monkeypatch) -> Mirror:
    """MNIST's table of published files describing tiny fabricated ones, served by ``mirror``."""
    files = fabricated_idx_files(mirror.folder)
    monkeypatch.setattr(mnist, "MNIST", dataclasses.replace(mnist.MNIST, files=files))
    monkeypatch.setenv("GANFORGE_DOWNLOAD_MIRROR", mirror.url)
    return mirror


def build(registry, name, params, root):
    return registry.get(Kind.DATASET, name).build(params, root)


def test_missing_mnist_is_downloaded_into_the_first_folder_once(registry, fabricated_mnist, tmp_path):
    root = tmp_path / "root"
    loaded = build(registry, "mnist", {}, root)
    assert len(loaded.dataset) == TINY_COUNT
    assert everything_in(root) == ["mnist", "mnist/train-images-idx3-ubyte.gz", "mnist/train-labels-idx1-ubyte.gz"]
    assert fabricated_mnist.requests == ["/train-images-idx3-ubyte.gz", "/train-labels-idx1-ubyte.gz"]

    again = build(registry, "mnist", {}, root)

    assert len(again.dataset) == TINY_COUNT
    assert len(fabricated_mnist.requests) == 2  # the data root is the cache


def test_only_the_split_asked_for_is_downloaded(registry, fabricated_mnist, tmp_path):
    build(registry, "mnist", {"split": "test"}, tmp_path)
    assert fabricated_mnist.requests == ["/t10k-images-idx3-ubyte.gz", "/t10k-labels-idx1-ubyte.gz"]


def test_download_false_asks_no_server_and_says_how_to_download(registry, fabricated_mnist, tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"set data\.params\.download: true to download them"):
        build(registry, "mnist", {"download": False}, tmp_path)
    assert fabricated_mnist.requests == []


def test_files_found_in_any_folder_looked_in_are_not_downloaded(registry, fabricated_mnist, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        shutil.copy(fabricated_mnist.folder / name, raw / name)
    assert len(build(registry, "mnist", {}, tmp_path).dataset) == TINY_COUNT
    assert fabricated_mnist.requests == []


def test_a_damaged_file_of_the_user_is_named_not_replaced(registry, fabricated_mnist, tmp_path):
    damaged = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    damaged.parent.mkdir()
    damaged.write_bytes(gzip.compress(b"\x00\x00\x08\x03 is not much of an IDX file"))
    before = damaged.read_bytes()

    with pytest.raises(DataError) as caught:
        build(registry, "mnist", {}, tmp_path)

    assert str(damaged) in str(caught.value)
    assert damaged.read_bytes() == before
    assert fabricated_mnist.requests == ["/train-labels-idx1-ubyte.gz"]  # only the missing file


def test_offline_the_error_names_what_failed_what_to_put_where_and_how_to_point_at_it(
    registry, monkeypatch, tmp_path, closed_port_url
):
    monkeypatch.setenv("GANFORGE_DOWNLOAD_MIRROR", closed_port_url)
    with pytest.raises(DatasetNotFoundError) as caught:
        build(registry, "mnist", {"split": "test"}, tmp_path)
    message = str(caught.value)
    assert message.startswith("MNIST (test split) is not here and downloading it failed")
    assert f"  {closed_port_url}t10k-images-idx3-ubyte.gz: Connection refused" in message
    assert "need the files t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte" in message
    assert f"put the files in {tmp_path / 'mnist'}/" in message
    for way in ("$GANFORGE_DATA", "data.params.root", "$GANFORGE_DOWNLOAD_MIRROR=URL"):
        assert way in message
    assert everything_in(tmp_path / "mnist") == []


def test_fashion_mnist_downloads_from_its_own_mirror(registry, mirror, monkeypatch, tmp_path):
    files = fabricated_idx_files(mirror.folder)
    monkeypatch.setattr(mnist, "FASHION_MNIST", dataclasses.replace(mnist.FASHION_MNIST, files=files, system_dirs=()))
    monkeypatch.setenv("GANFORGE_DOWNLOAD_MIRROR", mirror.url)
    assert len(build(registry, "fashion_mnist", {"split": "test"}, tmp_path).dataset) == TINY_COUNT
    assert (tmp_path / "fashion_mnist" / "t10k-images-idx3-ubyte.gz").is_file()


def cifar_archive(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def fake_torchvision_cifar(monkeypatch):
    """torchvision's CIFAR10 reader, replaced by one that records where it reads and what the folder holds."""
    import torchvision.datasets

    reads = []

    class FakeCIFAR10:
        def __init__(self, root, train, download):
            reads.append((root, download, everything_in(Path(root))))
            self.data = np.zeros((2, 32, 32, 3), dtype=np.uint8)
            self.targets = [0, 1]

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    return reads


def test_missing_cifar10_is_downloaded_and_unpacked_once(
    registry, mirror, monkeypatch, tmp_path, fake_torchvision_cifar
):
    archive = mirror.put("cifar-10-python.tar.gz", cifar_archive({"cifar-10-batches-py/data_batch_1": b"batch"}))
    monkeypatch.setattr(cifar10, "CIFAR10_ARCHIVE", archive)
    monkeypatch.setenv("GANFORGE_DOWNLOAD_MIRROR", mirror.url)

    assert len(build(registry, "cifar10", {}, tmp_path).dataset) == 2
    build(registry, "cifar10", {"split": "test"}, tmp_path)

    unpacked = ["cifar-10-batches-py", "cifar-10-batches-py/data_batch_1"]
    assert fake_torchvision_cifar == [(str(tmp_path / "cifar10"), False, unpacked)] * 2
    assert everything_in(tmp_path / "cifar10") == unpacked  # neither the archive nor a staging folder stays
    assert mirror.requests == ["/cifar-10-python.tar.gz"]


def test_an_archive_reaching_out_of_its_folder_is_refused(registry, mirror, monkeypatch, tmp_path):
    hostile = cifar_archive({"cifar-10-batches-py/data_batch_1": b"batch", "../escaped": b"x"})
    monkeypatch.setattr(cifar10, "CIFAR10_ARCHIVE", mirror.put("cifar-10-python.tar.gz", hostile))
    monkeypatch.setenv("GANFORGE_DOWNLOAD_MIRROR", mirror.url)
    root = tmp_path / "root"

    with pytest.raises(DatasetNotFoundError, match=r"cannot unpack cifar-10-python\.tar\.gz"):
        build(registry, "cifar10", {}, root)

    assert everything_in(root) == ["cifar10"]
    assert not (tmp_path / "escaped").exists() and not (root / "escaped").exists()


# -- the command line, as a new user meets it ----------------------------------------------------


def real_mnist_folder() -> Path:
    source = default_data_root() / "mnist"
    missing = [name for name in MNIST_FILES if not (source / name).is_file()]
    if missing:
        pytest.skip(f"the real MNIST .gz files are not here ({source} lacks {', '.join(missing)})")
    return source


@pytest.fixture
def real_mnist_mirror(tmp_path) -> Iterator[Mirror]:
    """The four real MNIST .gz files, served from 127.0.0.1."""
    source = real_mnist_folder()
    with serving(tmp_path / "served") as served:
        for name in MNIST_FILES:
            shutil.copy(source / name, served.folder / name)
        yield served


def new_user(tmp_path: Path, mirror_url: str, shared_classifiers: bool = False) -> tuple[dict[str, str], Path]:
    """The environment of a new user: an empty home, no data or cache settings; and the folder to work in.

    With ``shared_classifiers``, $GANFORGE_CACHE stays that of the test session (tests/conftest.py):
    the domain classifier an evaluation needs is trained once per session, not once per test. It
    holds feature networks only; the data root still falls back to the empty home.
    """
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    dropped = ("GANFORGE_DATA", "XDG_CACHE_HOME") + (() if shared_classifiers else ("GANFORGE_CACHE",))
    environment = {name: value for name, value in os.environ.items() if name not in dropped}
    environment.update(HOME=str(home), GANFORGE_DOWNLOAD_MIRROR=mirror_url)
    return environment, work


def ganforge(work: Path, environment: dict[str, str], *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ganforge", *args],
        capture_output=True,
        text=True,
        cwd=work,
        env=environment,
        timeout=timeout,
    )


QUICK = ("--set", "train.epochs=1", "--set", "data.params.limit=2000", "--set", "eval.every=0", "--quiet")


@pytest.mark.slow
def test_a_new_user_run_downloads_mnist_once(real_mnist_mirror, tmp_path):
    environment, work = new_user(tmp_path, real_mnist_mirror.url)
    data = tmp_path / "home" / ".cache" / "ganforge" / "data" / "mnist"

    first = ganforge(work, environment, "run", str(MNIST_MLP), *QUICK)

    assert first.returncode == 0, first.stderr
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        assert f"downloading {name} from {real_mnist_mirror.url}{name} into {data}\n" in first.stderr
        assert f"  {name}: " in first.stderr
    assert "verified" in first.stderr
    assert everything_in(data) == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert (work / "runs" / "mnist_mlp" / "checkpoints" / "last.pt").is_file()
    assert len(real_mnist_mirror.requests) == 2

    second = ganforge(work, environment, "run", str(MNIST_MLP), *QUICK, "--overwrite")

    assert second.returncode == 0, second.stderr
    assert "downloading" not in second.stderr
    assert len(real_mnist_mirror.requests) == 2


def test_a_corrupted_download_stops_the_run_before_its_folder(real_mnist_mirror, tmp_path):
    images = real_mnist_mirror.folder / "train-images-idx3-ubyte.gz"
    damaged = bytearray(images.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    images.write_bytes(bytes(damaged))
    environment, work = new_user(tmp_path, real_mnist_mirror.url)

    result = ganforge(work, environment, "run", str(MNIST_MLP), *QUICK)

    assert result.returncode == 1, result.stderr
    assert "checksum mismatch: expected MD5 f68b3c2dcbeaaa9fbdd348bbdeb94873" in result.stderr
    assert f"got {md5(bytes(damaged))}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not [path for path in (tmp_path / "home").rglob("*") if path.is_file()]  # nothing half-written
    assert not (work / "runs").exists()


def test_offline_a_run_says_what_failed_and_leaves_no_run_folder(tmp_path, closed_port_url):
    environment, work = new_user(tmp_path, closed_port_url)

    result = ganforge(work, environment, "run", str(MNIST_MLP), *QUICK)

    assert result.returncode == 1
    assert "MNIST (train split) is not here and downloading it failed" in result.stderr
    assert f"{closed_port_url}train-images-idx3-ubyte.gz: Connection refused" in result.stderr
    assert "$GANFORGE_DATA" in result.stderr and "$GANFORGE_DOWNLOAD_MIRROR" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (work / "runs").exists()


@pytest.mark.slow
def test_the_readme_run_for_one_epoch_downloads_verifies_and_trains(real_mnist_mirror, tmp_path):
    """Must show 1 as the issue words it: `ganforge run examples/mnist_mlp.yaml --set train.epochs=1`.

    Its evaluation needs the MNIST domain classifier: a new user's first run trains it (6 epochs over
    MNIST on the CPU, most of this test's time where no other test of the session trained it first).
    """
    environment, work = new_user(tmp_path, real_mnist_mirror.url, shared_classifiers=True)
    home = tmp_path / "home"

    first = ganforge(work, environment, "run", str(MNIST_MLP), "--set", "train.epochs=1", timeout=3600)

    assert first.returncode == 0, first.stderr
    assert sorted(real_mnist_mirror.requests) == sorted(f"/{name}" for name in MNIST_FILES)  # both splits: eval
    assert first.stderr.count("verified") == 4
    ganforge_cache = home / ".cache" / "ganforge"  # the classifier went to the session's $GANFORGE_CACHE
    assert everything_in(ganforge_cache) == [
        "data",
        "data/mnist",
        *(f"data/mnist/{name}" for name in sorted(MNIST_FILES)),
    ]
    assert '"event": "eval"' in (work / "runs" / "mnist_mlp" / "metrics.jsonl").read_text()

    # What the second run must show is that nothing is downloaded: its evaluation would only repeat the first's.
    again_without_eval = ("--set", "eval.every=0", "--overwrite")
    second = ganforge(
        work, environment, "run", str(MNIST_MLP), "--set", "train.epochs=1", *again_without_eval, timeout=3600
    )

    assert second.returncode == 0, second.stderr
    assert "downloading" not in second.stderr
    assert len(real_mnist_mirror.requests) == 4
