"""The IDX file format (MNIST, Fashion-MNIST): a header of dimensions, then unsigned bytes; gzipped or not.

A file's header is trusted for nothing but the size it promises, and no more than that is ever
read or unpacked: a gzip bomb (a small file that unpacks to far more than its header says) or a
header that declares gigabytes costs a few bytes of reading and a clear error, never the memory
it asks for. Where a dataset's IDX files are found and how they are fetched is the dataset's
business (``mnist.py``); this module only reads one file.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np

from ganforge.errors import DataError

IDX_IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
GZIP_MAGIC = b"\x1f\x8b"
MAX_IDX_BYTES = 2**31  # of data in one IDX file: MNIST's 60,000 training images take 47 MB
IDX_READ_CHUNK = 2**20  # what one read may allocate before it knows how much is there


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (gzipped or not) into an array of the dimensions it declares.

    The header comes first, and no more than it declares is ever read or unpacked, plus one byte to
    see that the file ends there: a gzip bomb (a small file that unpacks to far more than its
    header says) is refused after reading what the header promised, and a header that declares
    more than ``MAX_IDX_BYTES`` is refused before any of the data is read.
    """
    try:
        with _open_possibly_gzipped(path) as stream:
            return _read_idx_stream(stream, path, expected_magic)
    except (OSError, EOFError, zlib.error) as error:  # unreadable, a damaged or truncated gzip stream
        raise DataError(f"{path}: cannot read the file: {error}") from None


def _read_idx_stream(stream: BinaryIO, path: Path, expected_magic: int) -> np.ndarray:
    magic_bytes = stream.read(4)
    if len(magic_bytes) < 4:
        raise DataError(f"{path}: file is truncated ({len(magic_bytes)} bytes, no IDX header)")
    magic = int.from_bytes(magic_bytes, "big")
    if magic != expected_magic:
        raise DataError(
            f"{path}: not an IDX file of the expected kind: magic number 0x{magic:08x}, expected 0x{expected_magic:08x}"
        )
    ndim = expected_magic & 0xFF
    header_size = 4 + 4 * ndim
    dims_bytes = stream.read(4 * ndim)
    if len(dims_bytes) < 4 * ndim:
        raise DataError(f"{path}: file is truncated inside its header ({4 + len(dims_bytes)} of {header_size} bytes)")
    dims = tuple(int.from_bytes(dims_bytes[4 * i : 4 * i + 4], "big") for i in range(ndim))
    data_size = math.prod(dims)
    expected_size = header_size + data_size
    if data_size > MAX_IDX_BYTES:
        raise DataError(
            f"{path}: header declares dimensions {dims}, {data_size:,} bytes of data, more than the "
            f"{MAX_IDX_BYTES:,} bytes ganforge reads from one IDX file: the file is damaged or not such a dataset"
        )
    data = bytearray()  # grows with what actually arrives, not with what the header claims
    while len(data) < data_size:
        chunk = stream.read(min(IDX_READ_CHUNK, data_size - len(data)))
        if not chunk:
            break
        data += chunk
    if len(data) < data_size:
        raise DataError(
            f"{path}: file is truncated: header declares dimensions {dims}, "
            f"which need {expected_size} bytes, but the file has {header_size + len(data)}"
        )
    if stream.read(1):
        raise DataError(
            f"{path}: file is longer than its header says: header declares dimensions {dims}, "
            f"which need {expected_size} bytes, and more follows (not read further)"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def _open_possibly_gzipped(path: Path) -> BinaryIO:
    # Decide by content, not by name: a ".gz" may have been unpacked in place, and vice versa.
    with path.open("rb") as probe:
        gzipped = probe.read(len(GZIP_MAGIC)) == GZIP_MAGIC
    return cast(BinaryIO, gzip.open(path, "rb")) if gzipped else path.open("rb")
