"""Where datasets are looked for when a config names no root of its own, and where caches go."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "GANFORGE_DATA"
CACHE_ENV = "GANFORGE_CACHE"


def default_data_root() -> Path:
    """``$GANFORGE_DATA`` when set, else the per-user cache ``$XDG_CACHE_HOME/ganforge/data``."""
    configured = os.environ.get(DATA_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    return _user_cache() / "data"


def default_cache_dir() -> Path:
    """``$GANFORGE_CACHE`` when set, else ``$XDG_CACHE_HOME/ganforge``: trained feature networks live here."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    return _user_cache()


def _user_cache() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(cache) / "ganforge"
