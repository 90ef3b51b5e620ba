"""The IDX reader (MNIST's file format) against gzip bombs and huge headers: refused without unpacking
the file or taking the memory its header asks for, while real files still read whole."""

import gzip
import time
import tracemalloc

import pytest
import torch
from typer.testing import CliRunner

from ganforge.components.datasets import idx
from ganforge.errors import DataError
from tests.cli_results import refused
from tests.components.idx_files import idx_header


def write_gzip_bomb(path, header, unpacked_bytes):
    """A gzip file that unpacks to ``header`` and ``unpacked_bytes`` zeros: about 1,000 times smaller than that."""
    zeros = bytes(2**20)
    with gzip.open(path, "wb", compresslevel=9) as stream:
        stream.write(header)
        for _ in range(unpacked_bytes // len(zeros)):
            stream.write(zeros)


def read_measured(path, magic):
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DataError) as caught:
            idx.read_idx(path, magic)
        return str(caught.value), time.perf_counter() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_gzip_bomb_is_refused_without_unpacking_it(tmp_path):
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    write_gzip_bomb(bomb, idx_header(idx.IDX_IMAGES_MAGIC, 10, 28, 28), unpacked_bytes=400 * 2**20)
    assert bomb.stat().st_size < 2**20  # under 1 MB of gzip, 400 MB unpacked
    message, seconds, peak = read_measured(bomb, idx.IDX_IMAGES_MAGIC)
    assert str(bomb) in message and "longer than its header says" in message
    assert seconds < 2
    assert peak < 16 * 2**20, f"{peak / 2**20:.1f} MiB"


@pytest.mark.parametrize(
    ("dims", "expected"),
    [
        ((2**32 - 1, 2**32 - 1, 2**32 - 1), "more than the 2,147,483,648 bytes"),
        ((1_500_000, 28, 28), "file is truncated"),  # 1.2 GB promised, a few bytes there
    ],
    ids=["beyond the limit", "within the limit, absent"],
)
@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gz"])
def test_a_huge_idx_header_is_refused_without_taking_the_memory_it_asks_for(tmp_path, dims, expected, gzipped):
    content = idx_header(idx.IDX_IMAGES_MAGIC, *dims) + bytes(100)
    path = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gzipped else ""))
    path.write_bytes(gzip.compress(content) if gzipped else content)
    message, seconds, peak = read_measured(path, idx.IDX_IMAGES_MAGIC)
    assert str(path) in message and expected in message
    assert seconds < 2 and peak < 16 * 2**20


def test_a_gzip_bomb_in_a_dataset_is_a_clear_cli_error(app, tmp_path):
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    write_gzip_bomb(mnist / "t10k-images-idx3-ubyte.gz", idx_header(idx.IDX_IMAGES_MAGIC, 2, 28, 28), 64 * 2**20)
    (mnist / "t10k-labels-idx1-ubyte").write_bytes(idx_header(idx.IDX_LABELS_MAGIC, 2) + bytes(2))
    result = CliRunner().invoke(app, ["data", "mnist", "--param", f"root={tmp_path}", "--param", "split=test"])
    output = refused(result)
    assert "t10k-images-idx3-ubyte.gz: file is longer than its header says" in output


def test_real_idx_files_still_read_whole(tmp_path):
    images = torch.randint(0, 256, (300, 28, 28), dtype=torch.uint8).numpy()
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(idx_header(idx.IDX_IMAGES_MAGIC, 300, 28, 28) + images.tobytes()))
    read = idx.read_idx(path, idx.IDX_IMAGES_MAGIC)
    assert read.shape == (300, 28, 28) and (read == images).all() and read.flags.writeable
