"""sha256 digests of tensors, for cache keys and checksums: equal digests, equal bits."""

from __future__ import annotations

import hashlib
from typing import Any

import torch


def add_tensor(digest: Any, tensor: torch.Tensor | None) -> None:
    """Feed ``tensor``'s dtype, shape and bits (or that there is none) into a hashlib ``digest``."""
    if tensor is None:
        digest.update(b"none;")
        return
    contiguous = tensor.detach().cpu().contiguous()
    digest.update(f"{contiguous.dtype} {tuple(contiguous.shape)};".encode())
    digest.update(contiguous.reshape(-1).view(torch.uint8).numpy())


def tensor_digest(*tensors: torch.Tensor | None, prefix: str = "") -> str:
    """The sha256 of ``prefix`` and each of ``tensors``, in order, as hex."""
    digest = hashlib.sha256(prefix.encode())
    for tensor in tensors:
        add_tensor(digest, tensor)
    return digest.hexdigest()
