"""Must-show 4 of issue 35, for export manifests: 600 seeded mutations of a real export's ganforge.json (a wrong
type at every field, fields removed, huge and negative numbers, deep nesting, bytes that are not UTF-8, a cut-off
file, unknown keys), each read as `ganforge sample EXPORT` reads it. None is a traceback: each is refused naming
the manifest (and the field, where the manifest's own check refused it), or accepted and sampled from."""

import json
import random
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ganforge.errors import GanforgeError
from ganforge.generation import load_generator
from tests.exports import MANIFEST, copy_with, make_export

SEED = 35
CASES = 600
WRONG_VALUES = [None, True, 0, -1, 1, 2.5, -2.5, 10**30, -(10**30), 2**63, 1e308, float("nan"), float("inf")]
WRONG_VALUES += ["", "text", "x" * 10_000, [], [1, 2, 3], ["a", 7], {}, {"name": 1}, {"params": []}]
HUGE_NUMBERS = [10**18, -(10**18), 2**64, -1, 0, 1e300, -1e300, 4_294_967_297]


@pytest.fixture(scope="module")
def export(app, tmp_path_factory):
    made = make_export(app, tmp_path_factory.mktemp("fuzz"))
    return copy_with(made, tmp_path_factory.mktemp("fuzzed") / "export")


def paths(value, path=()):
    """Every place in ``value``: each key of each mapping and each index of each list, at every depth."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        yield (*path, key)
        yield from paths(inner, (*path, key))


def placed(manifest, path, change):
    """A copy of ``manifest`` with ``change(parent, key)`` applied at ``path``."""
    copy = json.loads(json.dumps(manifest))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    change(parent, path[-1])
    return copy


def mutation(manifest, text: bytes, rng: random.Random, path=None, kind=None):
    """One hostile manifest: its bytes, and the place whose name a refusal must give (None where there is none).

    Without a ``path``, a top-level field is drawn first, then a place inside it: the config's many sections,
    which sampling does not read, would otherwise draw most mutations."""
    kind = kind or rng.choice(["wrong type", "wrong type", "missing", "huge", "extra key", "deep", "not utf-8", "cut"])
    everywhere = list(paths(manifest))
    if path is None:
        top = rng.choice(list(manifest))
        path = rng.choice([place for place in everywhere if place[0] == top])
    if kind == "wrong type":
        value = rng.choice(WRONG_VALUES)
        changed = placed(manifest, path, lambda parent, key: parent.__setitem__(key, value))
    elif kind == "missing":
        changed = placed(manifest, path, lambda parent, key: parent.pop(key))
    elif kind == "huge":
        value = rng.choice(HUGE_NUMBERS)
        changed = placed(manifest, path, lambda parent, key: parent.__setitem__(key, value))
    elif kind == "extra key":
        where = rng.choice([(), *(place for place in everywhere if isinstance(_at(manifest, place), dict))])
        key = f"extra_{rng.randrange(1000)}"
        changed = json.loads(json.dumps(manifest))
        _at(changed, where)[key] = 1
        return json.dumps(changed).encode(), (*where, key)
    elif kind == "deep":
        depth = rng.choice([65, 1000, 100_000])
        changed = placed(manifest, path, lambda parent, key: parent.__setitem__(key, "@DEEP@"))
        return json.dumps(changed).replace('"@DEEP@"', "[" * depth + "]" * depth).encode(), None
    elif kind == "not utf-8":
        at = rng.randrange(len(text))
        return text[:at] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"]) + text[at:], None
    else:
        return text[: rng.randrange(len(text))], None
    return json.dumps(changed).encode(), path


def _at(value, path):
    for key in path:
        value = value[key]
    return value


def mutations(export, count):
    """A wrong type at every place of the manifest, in turn, then mutations of every kind at places drawn."""
    text = (export / MANIFEST).read_bytes()
    manifest, rng = json.loads(text), random.Random(SEED)
    sweep = [mutation(manifest, text, rng, path, "wrong type") for path in paths(manifest)]
    return (sweep + [mutation(manifest, text, rng) for _ in range(count)])[:count]


def named(message: str, place) -> bool:
    """Whether a refusal by the manifest's own check names the place mutated (or a field above it)."""
    keys = [str(key) for key in place if isinstance(key, str)]
    return any(key in message for key in keys)


def test_600_hostile_manifests_are_each_refused_by_name_or_sampled(registry, export):
    manifest_path = export / MANIFEST
    good = manifest_path.read_bytes()
    outcomes = {"refused by field": 0, "refused": 0, "accepted": 0}
    try:
        for index, (text, place) in enumerate(mutations(export, CASES)):
            manifest_path.write_bytes(text)
            try:
                load_generator(export, registry).sample(2, device="cpu")
            except GanforgeError as error:
                message = str(error)
                assert str(export) in message, f"case {index} ({place}): {message}"
                if f"{manifest_path} is not valid" in message and place is not None:
                    assert named(message, place), f"case {index} ({place}) is not named: {message}"
                    outcomes["refused by field"] += 1
                else:
                    outcomes["refused"] += 1
            else:
                outcomes["accepted"] += 1
    finally:
        manifest_path.write_bytes(good)
    assert sum(outcomes.values()) == CASES
    # Many mutations land in parts of the config that sampling does not read (train, optim, ...): those are accepted.
    assert min(outcomes.values()) >= CASES // 20, outcomes


def test_hostile_manifests_through_the_command_line_exit_1_with_one_line(app, export, tmp_path):
    manifest_path = export / MANIFEST
    good = manifest_path.read_bytes()
    try:
        for index, (text, _) in enumerate(mutations(export, 12)):
            manifest_path.write_bytes(text)
            out = tmp_path / f"{index}.png"
            result = CliRunner().invoke(app, ["sample", str(export), "--n", "4", "--out", str(out)])
            assert result.exception is None or isinstance(result.exception, SystemExit), result.output
            assert "Traceback" not in result.output
            assert result.exit_code == 0 or ("error:" in result.output and not out.exists()), result.output
        manifest_path.write_bytes(good.replace(b'"config": {', b'"config": [' + b"[" * 100_000 + b"]" * 100_000))
        ran = subprocess.run(
            [sys.executable, "-m", "ganforge", "sample", str(export), "--n", "4", "--out", str(tmp_path / "x.png")],
            capture_output=True,
            text=True,
        )
        assert ran.returncode == 1 and "Traceback" not in ran.stderr
        assert f"export manifest {manifest_path} nests arrays or objects more than 64 deep" in " ".join(
            ran.stderr.split()
        )
    finally:
        manifest_path.write_bytes(good)
