import pytest

from ganforge.plugins import load_plugins
from ganforge.registry import Registry


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The registry filled by the installed entry points (ganforge's own built-ins among them)."""
    return load_plugins(strict=True).registry
