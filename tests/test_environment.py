"""The environment variables ganforge reads: a value a variable does not take is named with the variable, the
value (shortened) and what it accepts; exit 2, no traceback. Downloads are tried against a local server."""

import os
import subprocess
import sys

import pytest

from ganforge.environment import EnvironmentVariableError
from ganforge.plugins import load_plugins
from ganforge.registry import Kind
from tests.cli_results import invoke, refused
from tests.components.mirror import serving
from tests.runs import SMOKE

URL = "expected an http:// or https:// URL with a host"


@pytest.mark.parametrize(
    "value", ["not a url", "file:///etc/", "ftp://mirror.example/", "http://", "http://host:port/", "http://a b/"]
)
def test_a_mirror_that_is_not_a_web_address_is_named(registry, monkeypatch, tmp_path, value):
    monkeypatch.setenv("GANFORGE_DOWNLOAD_MIRROR", value)
    with pytest.raises(EnvironmentVariableError) as caught:
        registry.get(Kind.DATASET, "mnist").build({"split": "test"}, tmp_path)
    assert str(caught.value).startswith(f"$GANFORGE_DOWNLOAD_MIRROR is {value!r}: {URL}")
    assert not any(path.is_file() for path in tmp_path.rglob("*"))  # nothing downloaded or half-written


def test_the_cli_names_a_bad_mirror_and_a_huge_value_is_shortened(app, monkeypatch, tmp_path):
    monkeypatch.setenv("GANFORGE_DATA", str(tmp_path))
    monkeypatch.setenv("GANFORGE_DOWNLOAD_MIRROR", "not a url " + "x" * 10_000)
    output = refused(invoke(app, "data", "show", "mnist", "--param", "split=test", exit_code=2), code=2)
    assert "error: $GANFORGE_DOWNLOAD_MIRROR is 'not a url xxx" in output and URL in output
    assert len(output) < 1000


def test_a_mirror_that_is_a_web_address_is_used(registry, monkeypatch, tmp_path):
    with serving(tmp_path / "served") as mirror:
        monkeypatch.setenv("GANFORGE_DOWNLOAD_MIRROR", f"  {mirror.url}  ")  # blanks around it are let go
        with pytest.raises(Exception, match="no mirror gave"):  # the mirror is empty: asked, and it said 404
            registry.get(Kind.DATASET, "mnist").build({"split": "test"}, tmp_path / "data")
        assert mirror.requests == ["/t10k-images-idx3-ubyte.gz"]


def test_strict_plugins_takes_yes_or_no_and_names_anything_else(monkeypatch):
    for value, strict in (("1", True), ("ON", True), ("no", False), ("", False)):
        monkeypatch.setenv("GANFORGE_STRICT_PLUGINS", value)
        assert load_plugins([], disabled=[]).strict is strict
    monkeypatch.setenv("GANFORGE_STRICT_PLUGINS", "maybe")
    with pytest.raises(EnvironmentVariableError, match=r"\$GANFORGE_STRICT_PLUGINS is 'maybe': expected 1/true/yes/on"):
        load_plugins([], disabled=[])
    environment = {**os.environ, "GANFORGE_STRICT_PLUGINS": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "ganforge", "list"], capture_output=True, text=True, env=environment, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert "error: $GANFORGE_STRICT_PLUGINS is '2': expected 1/true/yes/on or 0/false/no/off" in result.stderr
    assert "Traceback" not in result.stderr


INCEPTION_CHECK = ["validate", SMOKE, "--set", "eval.every=1", "--set", "eval.metrics=[fid, inception_kid]"]
PATH_USES = {
    "GANFORGE_DATA": ["data", "show", "synthetic"],
    "GANFORGE_CACHE": INCEPTION_CHECK,
    "GANFORGE_INCEPTION_WEIGHTS": INCEPTION_CHECK,  # what validate lacks for the metric: a warning
}


@pytest.mark.parametrize("variable", PATH_USES)
def test_a_path_of_an_unknown_user_is_named(app, monkeypatch, variable):
    monkeypatch.setenv(variable, "~no_such_user_of_ganforge/data")
    result = invoke(app, *PATH_USES[variable], exit_code=0 if variable == "GANFORGE_INCEPTION_WEIGHTS" else 2)
    output = " ".join(result.output.split())
    assert f"${variable} is '~no_such_user_of_ganforge/data': expected a path; a leading ~ must name a user" in output


LAUNCH = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}


@pytest.mark.parametrize(
    ("variable", "value", "accepted"),
    [
        ("RANK", "²", "expected a whole number in the digits 0-9"),
        ("WORLD_SIZE", "two", "expected a whole number in the digits 0-9"),
        ("WORLD_SIZE", "0", "expected 1 or more processes"),
        ("RANK", "2", "expected a rank from 0 to 1 of $WORLD_SIZE 2"),
        ("LOCAL_RANK", "-1", "expected a whole number in the digits 0-9"),
        ("MASTER_PORT", "99999", "expected a port, 1 to 65535"),
    ],
)
def test_launch_variables_that_are_no_launch_are_named(app, monkeypatch, workdir, variable, value, accepted):
    for name, setting in {**LAUNCH, variable: value}.items():
        monkeypatch.setenv(name, setting)
    output = refused(invoke(app, "run", SMOKE, "--quiet", exit_code=2), code=2)
    assert f"error: ${variable} is {value!r}: {accepted}" in output
    assert not (workdir / "runs").exists()
