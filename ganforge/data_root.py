"""Where datasets are looked for when a config names no root of its own."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "GANFORGE_DATA"


def default_data_root() -> Path:
    """``$GANFORGE_DATA`` when set, else the per-user cache ``$XDG_CACHE_HOME/ganforge/data``."""
    configured = os.environ.get(DATA_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache"
    return Path(cache) / "ganforge" / "data"
