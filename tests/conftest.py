import pytest
import typer

from ganforge.cli import create_app
from ganforge.plugins import load_plugins
from ganforge.registry import Registry


@pytest.fixture(scope="session")
def registry() -> Registry:
    """The registry filled by the installed entry points (ganforge's own built-ins among them)."""
    return load_plugins(strict=True).registry


@pytest.fixture(scope="session")
def app() -> typer.Typer:
    """The CLI over the installed plugins, for typer's CliRunner."""
    return create_app(load_plugins(strict=True))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh current directory, so that runs/ lands in it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session", autouse=True)
def feature_network_cache(tmp_path_factory):
    """Domain classifiers the tests train go to a cache of their own, shared by the session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GANFORGE_CACHE", str(tmp_path_factory.mktemp("ganforge-cache")))
        yield
