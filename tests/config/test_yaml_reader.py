"""The hardened YAML reader: an alias bomb, endless or deep aliases, a file over 1 MiB, duplicate keys, and
messages that quote hostile input. Each is refused quickly, naming the file and line; never a traceback."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ganforge.config import MAX_CONFIG_BYTES, MAX_CONFIG_VALUES
from tests.small_configs import GOOD, LONGEST_MESSAGE, refused, validate, write


def alias_bomb(levels: int, fan_out: int = 9) -> str:
    """The "billion laughs": each level a list of ``fan_out`` aliases of the level below."""
    lines = [f"level0: &level0 [{', '.join(['lol'] * fan_out)}]"]
    for level in range(1, levels + 1):
        lines.append(f"level{level}: &level{level} [{', '.join([f'*level{level - 1}'] * fan_out)}]")
    return "\n".join(lines) + "\n"


def flow_alias_bomb(levels: int, fan_out: int = 9) -> str:
    """The same bomb as one flow sequence, for a --set value."""
    parts = [f"&a0 [{', '.join(['1'] * fan_out)}]"]
    parts += [f"&a{level} [{', '.join([f'*a{level - 1}'] * fan_out)}]" for level in range(1, levels + 1)]
    return "[" + ", ".join(parts) + "]"


MEASURE_VALIDATE = """
import json, re, resource, sys, time
from pathlib import Path
from ganforge.cli import create_app
from ganforge.plugins import load_plugins

def status_bytes(key):
    return int(re.search(key + r":\\s+(\\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024

app = create_app(load_plugins(strict=True))
resident_before = status_bytes("VmRSS")
Path("/proc/self/clear_refs").write_text("5")  # the peak so far (the imports') forgotten: the call's own is measured
started = time.perf_counter()
try:
    app(["validate", sys.argv[1]], prog_name="ganforge")
except SystemExit as stop:
    code = stop.code
seconds = time.perf_counter() - started
call_growth = status_bytes("VmHWM") - resident_before
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"code": code, "seconds": seconds, "call_growth": call_growth, "peak_bytes": peak}))
"""


def measured_validate(path):
    """``ganforge validate PATH`` in a process of its own: exit code, seconds, how far its resident
    memory rose during the command, and the process's peak."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURE_VALIDATE, str(path)], capture_output=True, text=True)
    assert done.stdout, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures | {"stderr": done.stderr, "process_seconds": time.perf_counter() - started}


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures memory through Linux's /proc")
def test_a_ten_level_alias_bomb_is_refused_in_under_2_s_and_200_mb(workdir):
    bomb = write(workdir, alias_bomb(10) + GOOD, "bomb.yaml")  # 9**10 = 3.5 billion values once expanded
    baseline = measured_validate(write(workdir, GOOD))
    attacked = measured_validate(bomb)
    extra = attacked["peak_bytes"] - baseline["peak_bytes"]
    print(
        f"\n10-level alias bomb ({bomb.stat().st_size} bytes): refused in {attacked['seconds'] * 1000:.1f} ms "
        f"(whole process {attacked['process_seconds']:.1f} s, the small config's {baseline['process_seconds']:.1f} s); "
        f"resident memory rose {attacked['call_growth'] / 2**20:.1f} MiB during the command "
        f"(validating the small config: {baseline['call_growth'] / 2**20:.1f} MiB); process peak "
        f"{attacked['peak_bytes'] / 2**20:.1f} MiB, {extra / 2**20:+.1f} MiB against the small config's"
    )
    assert baseline["code"] == 0, baseline["stderr"]
    assert attacked["code"] == 2
    assert f"config {bomb}: line " in attacked["stderr"] and "alias" in attacked["stderr"]
    assert "Traceback" not in attacked["stderr"] and len(attacked["stderr"]) < LONGEST_MESSAGE
    assert attacked["seconds"] < 2.0
    assert attacked["call_growth"] < 200 * 2**20
    assert extra < 200 * 2**20


def test_an_alias_bomb_in_a_set_value_is_refused_quickly(app, workdir):
    started = time.perf_counter()
    stderr = refused(app, write(workdir, GOOD), f"model.params.hidden={flow_alias_bomb(10)}")
    assert time.perf_counter() - started < 2.0
    assert "--set 'model.params.hidden=[&a0" in stderr and f"more than {MAX_CONFIG_VALUES:,} values" in stderr
    assert len(stderr) < LONGEST_MESSAGE


def test_ordinary_anchors_aliases_and_merge_keys_still_work(app, workdir):
    shared_optimizer = """
        optim:
          generator: &adam {lr: 1.0e-4, betas: [0.5, 0.999]}
          discriminator:
            <<: *adam
            lr: 4.0e-4
        """
    path = write(workdir, GOOD + textwrap.dedent(shared_optimizer))
    result = validate(app, path)
    assert result.exit_code == 0, result.output
    assert f"{path}: valid" in " ".join(result.stdout.split())  # rich wraps long lines


def test_an_override_through_an_alias_changes_only_the_place_it_names(app, registry, workdir):
    from ganforge.config import load_config

    path = write(workdir, GOOD + "optim: {generator: &adam {lr: 1.0e-4}, discriminator: *adam}\n")
    run = load_config(path, registry, ["optim.generator.lr=0.5"])
    assert run.config.optim.generator.lr == 0.5
    assert run.config.optim.discriminator.lr == 1.0e-4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: &a [*a]\n", "line 1, column 8: alias *a is used inside the value it names"),
        ("a: &a {b: {c: *a}}\n", "line 1, column 15: alias *a is used inside the value it names"),
        ("a: " + "[" * 60 + "]" * 60 + "\n", "values nested more than 50 deep"),
        (
            "x0: &x0 [1]\n" + "".join(f"x{i}: &x{i} [*x{i - 1}]\n" for i in range(1, 60)),
            "line 50, column 6: the value here is nested more than 50 deep, counting what its aliases stand for",
        ),
        ("a: [" + ", ".join(["1"] * (MAX_CONFIG_VALUES + 10)) + "]\n", f"more than {MAX_CONFIG_VALUES:,} values"),
        ("seed: " + "7" * 5000 + "\n", "line 1, column 7: cannot read this value: Exceeds the limit (4300 digits)"),
        ("when: 2001-13-45\n", "line 1, column 7: cannot read this value: month must be in 1..12"),
    ],
    ids=["recursive-list", "recursive-map", "nested", "nested-through-aliases", "too-many-values", "huge-int", "date"],
)
def test_endless_deep_or_oversized_yaml_is_refused_naming_the_file_and_line(app, workdir, text, expected):
    path = write(workdir, text)
    started = time.perf_counter()
    stderr = refused(app, path)
    assert time.perf_counter() - started < 2.0
    assert f"config {path}: " in stderr and expected in stderr
    assert len(stderr) < LONGEST_MESSAGE


def test_a_config_file_over_1_mib_is_refused_before_it_is_read_as_yaml(app, workdir):
    path = workdir / "config.yaml"
    path.write_text(GOOD + "#" * MAX_CONFIG_BYTES + "\n")
    stderr = refused(app, path)
    assert f"config {path} is larger than 1 MiB" in stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD + "seed: 1\nseed: 2\n",
            "line 7, column 1: key 'seed' appears twice in the same mapping (first on line 6)",
        ),
        (
            GOOD.replace("epochs: 1,", "epochs: 1, epochs: 3,"),
            "line 5, column 20: key 'epochs' appears twice in the same mapping (first on line 5)",
        ),
        (
            GOOD + "train: {epochs: 2}\n",
            "line 6, column 1: key 'train' appears twice in the same mapping (first on line 5)",
        ),
    ],
)
def test_a_duplicate_key_is_an_error_naming_the_key_and_its_line(app, workdir, text, expected):
    path = write(workdir, text)
    stderr = refused(app, path)
    assert f"config {path}: {expected}" in stderr


HUGE = 100_000


@pytest.mark.parametrize(
    ("text", "overrides", "expected"),
    [
        (GOOD.replace("name: tiny", "name: " + "x" * HUGE), [], "name: Value error, a run name"),
        (GOOD + "optim: {generator: {" + ", ".join(f"k{i}: 1" for i in range(4000)) + "}}\n", [], "and 3980 more"),
        (GOOD + "optim:\n  generator:\n    ? " + "k" * HUGE + "\n    : 1\n", [], "Extra inputs are not permitted"),
        (GOOD, ["seed=" + "s" * HUGE], "seed: Input should be a valid integer"),
        (GOOD, ["model.name=" + "m" * HUGE], "model.name: String should have at most 100 characters"),
        (GOOD, ["name." + "k" * HUGE + "=1"], "name is not a section"),
        (GOOD, ["train.device=" + "d" * HUGE], "train.device"),
        (GOOD + "x: *" + "y" * HUGE + "\n", [], "found undefined alias"),
        (GOOD, ["eval.metrics=[" + ", ".join(["n" * 99] * 50) + "]", "eval.every=1"], "unknown metric"),
    ],
    ids=["name", "many-problems", "key", "set-value", "component", "set-key", "device", "yaml-error", "metrics"],
)
def test_every_message_that_quotes_the_input_stays_short(app, workdir, text, overrides, expected):
    stderr = refused(app, write(workdir, text), *overrides)
    assert expected in stderr
    assert len(stderr) < LONGEST_MESSAGE, len(stderr)


def test_a_fifo_or_device_named_as_a_config_is_refused_without_reading_it(app, workdir):
    fifo = workdir / "config.yaml"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero")):
        stderr = refused(app, path)
        assert f"config {path} is not a regular file" in stderr
