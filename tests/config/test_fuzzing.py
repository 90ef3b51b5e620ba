"""Random and malformed YAML configs thrown at `ganforge validate` (hypothesis).

Every config is either accepted (exit 0) or rejected with a message and exit code 2: never a
traceback, never another exit code.
"""

import copy
import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.runs import SMOKE

BASE = yaml.safe_load(SMOKE.read_text())
FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "mlp",
            "dcgan",
            "mnist",
            "synthetic",
            "hinge",
            "auto",
            "cpu",
            "cuda:7",
            "fp16",
            "1e-4",
            "",
            "concat",
            "projection",
        ]
    ),
    # At and past the bounds of what can run: int64 and seed limits, sizes beyond any machine.
    st.sampled_from(
        [2**63 - 1, 2**63, 2**64, -(2**63), 2**70, 65_536, 65_537, 10**9, 10**12, 1.0e12, 1.0e300, ".", "tpu"]
    ),
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
        "num_workers",
        "samples",
        "channels",
        "generator_width",
        "checkpoint_minutes",
        "generator_conditioning",
        "discriminator_conditioning",
        "generated_labels",
        "class_loss_weight",
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
    "!!python/object/apply:os.system ['echo pwned']\n",
    "name: !!python/name:os.system\n",
    "train: {epochs: 1e400}\n",
    "\x00\x01\x02",
    "\ufeffname: bom\n",
    "a: " + "[" * 200 + "]" * 200 + "\n",
    # Bounded reading: endless aliases, values Python cannot make. The alias bomb, duplicate keys, huge numbers,
    # long values and a file over 1 MiB are each tested once, more strictly, in test_yaml_reader.py.
    "a: &a {b: *a}\n",
    "seed: 2001-13-45\n",
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


def nested_aliases(levels: int, fan_out: int, leaf: str) -> str:
    """A flow value of ``levels`` nested lists, each holding the level below once and ``fan_out - 1``
    aliases of it: ``fan_out ** levels`` leaves once expanded, in a few hundred bytes."""
    value = f"&x0 [{', '.join([leaf] * fan_out)}]"
    for level in range(1, levels):
        value = f"&x{level} [{', '.join([value] + [f'*x{level - 1}'] * (fan_out - 1))}]"
    return value


@st.composite
def aliased_configs(draw):
    """The smoke config with one value made of nested anchors and aliases: from a plain list to a bomb."""
    levels = draw(st.integers(min_value=1, max_value=12))
    fan_out = draw(st.integers(min_value=1, max_value=12))
    leaf = draw(st.sampled_from(["1", "64", "lol", "{a: 1}", "[]"]))
    path = draw(
        st.sampled_from([("model", "params", "hidden"), ("model",), ("eval", "metrics"), ("train",), ("seed",)])
    )
    config = copy.deepcopy(BASE)
    node = config
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = "ALIASED"
    text = yaml.safe_dump(config, allow_unicode=True, width=10**6)
    return text.replace("ALIASED", nested_aliases(levels, fan_out, leaf), 1)


@FUZZ
@given(text=aliased_configs())
def test_anchors_and_aliases_of_any_size_are_handled_quickly(app, tmp_path_factory, text):
    started = time.perf_counter()
    assert_accepted_or_clearly_rejected(app, tmp_path_factory.mktemp("fuzz"), text)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("text", NASTY_YAML)
def test_hostile_and_broken_yaml_is_rejected_with_a_message(app, tmp_path, text):
    assert_accepted_or_clearly_rejected(app, tmp_path, text)
