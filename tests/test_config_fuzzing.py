"""Random and malformed YAML configs thrown at `ganforge validate` (hypothesis).

Every config is either accepted (exit 0) or rejected with a message and exit code 2: never a
traceback, never another exit code.
"""

import copy

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.test_training import SMOKE

BASE = yaml.safe_load(SMOKE.read_text())
FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["mlp", "dcgan", "mnist", "synthetic", "hinge", "auto", "cpu", "cuda:7", "fp16", "1e-4", ""]),
)
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
# Paths into a config: real section and field names, mixed with made-up ones.
keys = st.sampled_from(
    [
        "name",
        "seed",
        "data",
        "model",
        "loss",
        "optim",
        "train",
        "eval",
        "output",
        "params",
        "generator",
        "lr",
        "betas",
        "epochs",
        "batch_size",
        "device",
        "hidden",
        "latent_dim",
        "num_samples",
        "metrics",
        "best",
        "every",
        "precision",
        "compile",
        "limit",
        "size",
        "dir",
        "n_critic",
        "ema_decay",
    ]
) | st.text(min_size=1, max_size=8)


@st.composite
def mutated_configs(draw):
    """The smoke config with a few values replaced, added or removed anywhere in it."""
    config = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        node = config
        path = draw(st.lists(keys, min_size=1, max_size=3))
        for key in path[:-1]:
            child = node.get(key) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                break
            node = child
        if not isinstance(node, dict):
            continue
        if draw(st.booleans()) and path[-1] in node:
            del node[path[-1]]
        else:
            node[path[-1]] = draw(values)
    return yaml.safe_dump(config, allow_unicode=True)


NASTY_YAML = [
    "",
    "---\n...\n",
    "[1, 2, 3]\n",
    "just a string\n",
    "name: [unclosed\n",
    "a: &a [*a]\n",
    "!!python/object/apply:os.system ['echo pwned']\n",
    "name: !!python/name:os.system\n",
    "train: {epochs: 1e400}\n",
    "\x00\x01\x02",
    "\ufeffname: bom\n",
    "a: " + "[" * 200 + "]" * 200 + "\n",
]


def assert_accepted_or_clearly_rejected(app, tmp_path, text: str | bytes):
    path = tmp_path / "fuzz.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 2), result.output
    if result.exit_code == 2:
        assert result.output.startswith("error: ") and str(path) in result.output, result.output
    else:
        assert f"{path}: valid" in result.output


@FUZZ
@given(text=mutated_configs())
def test_mutated_configs_are_accepted_or_rejected_with_a_message(app, tmp_path_factory, text):
    assert_accepted_or_clearly_rejected(app, tmp_path_factory.mktemp("fuzz"), text)


@FUZZ
@given(text=st.text(max_size=200))
def test_arbitrary_text_is_accepted_or_rejected_with_a_message(app, tmp_path_factory, text):
    assert_accepted_or_clearly_rejected(app, tmp_path_factory.mktemp("fuzz"), text)


@FUZZ
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_are_accepted_or_rejected_with_a_message(app, tmp_path_factory, data):
    assert_accepted_or_clearly_rejected(app, tmp_path_factory.mktemp("fuzz"), data)


@pytest.mark.parametrize("text", NASTY_YAML)
def test_hostile_and_broken_yaml_is_rejected_with_a_message(app, tmp_path, text):
    assert_accepted_or_clearly_rejected(app, tmp_path, text)
