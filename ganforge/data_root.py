"""Where datasets are looked for when a config names no root of its own, and where caches go."""

from __future__ import annotations

from pathlib import Path

from ganforge.environment import EnvironmentVariableError, path_setting

DATA_ENV = "GANFORGE_DATA"
CACHE_ENV = "GANFORGE_CACHE"


def default_data_root() -> Path:
    """``$GANFORGE_DATA`` when set, else the per-user cache ``$XDG_CACHE_HOME/ganforge/data``."""
    return path_setting(DATA_ENV) or _user_cache() / "data"


def default_cache_dir() -> Path:
    """``$GANFORGE_CACHE`` when set, else ``$XDG_CACHE_HOME/ganforge``: trained feature networks live here."""
    return path_setting(CACHE_ENV) or _user_cache()


def _user_cache() -> Path:
    # The XDG spec: a relative path in its variables is invalid, and ignored.
    configured = path_setting("XDG_CACHE_HOME")
    if configured is not None and configured.is_absolute():
        return configured / "ganforge"
    try:
        return Path.home() / ".cache" / "ganforge"
    except RuntimeError:  # no $HOME and no home folder in the user database
        raise EnvironmentVariableError(
            "HOME", "", f"ganforge needs a home folder for its cache, or ${DATA_ENV} and ${CACHE_ENV} set"
        ) from None
