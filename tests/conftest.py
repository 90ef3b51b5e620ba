import os
import shutil
import signal
from pathlib import Path

import pytest
import typer

from ganforge.cli import create_app
from ganforge.data_root import default_data_root
from ganforge.downloads import MIRROR_ENV
from ganforge.errors import DatasetNotFoundError
from ganforge.plugins import load_plugins
from ganforge.registry import Kind, Registry
from tests.cli_results import invoke
from tests.runs import SMOKE

USER_MIRROR = os.environ.get(MIRROR_ENV)  # the mirror of a user behind one, for the fixtures that fetch real data
UNREACHABLE_MIRROR = "http://127.0.0.1:9"  # the discard port: nothing listens, a connection is refused at once


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


@pytest.fixture(scope="session", autouse=True)
def no_download_unless_asked():
    """Only real_mnist_root downloads: any other test reaching for the network fails at once, not after a timeout."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(MIRROR_ENV, UNREACHABLE_MIRROR)
        yield


@pytest.fixture(scope="session")
def real_mnist_root(registry, no_download_unless_asked) -> Path:
    """The data root ganforge resolves ($GANFORGE_DATA, else the user cache) holding the real MNIST.

    Missing there, it is downloaded once, as `ganforge run` would; offline, the tests that need it skip and say why.
    """
    root = default_data_root().resolve()  # absolute: runs started in other folders find it too
    with pytest.MonkeyPatch.context() as patch:
        if USER_MIRROR is None:
            patch.delenv(MIRROR_ENV)
        else:
            patch.setenv(MIRROR_ENV, USER_MIRROR)
        try:
            for split in ("train", "test"):
                registry.get(Kind.DATASET, "mnist").build({"split": split}, root)
        except DatasetNotFoundError as error:
            pytest.skip(f"the real MNIST is not here and could not be downloaded: {str(error).splitlines()[0]}")
    return root


@pytest.fixture
def sigint_reaches_children():
    """A shell that starts pytest in the background ignores SIGINT for it, and children inherit that: undo it."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(scope="module")
def smoke_run(app, tmp_path_factory):
    """A one-epoch run of the smoke config: its last.pt and epoch_0001.pt."""
    folder = tmp_path_factory.mktemp("smoke") / "run"
    invoke(app, "run", SMOKE, "--quiet", "--set", "train.epochs=1", "--set", f"output.dir={folder}")
    return folder


@pytest.fixture
def checkpoint(smoke_run, tmp_path, monkeypatch):
    """A copy of the smoke run's last.pt as ck.pt in a fresh current directory."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(smoke_run / "checkpoints" / "last.pt", tmp_path / "ck.pt")
    return Path("ck.pt")
