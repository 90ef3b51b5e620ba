"""Hostile and oversized configs: an alias bomb, duplicate keys, huge values and numbers, models and
datasets larger than the machine, run folders and devices that cannot be. Each is refused quickly,
with a short message naming the file or the field and what is accepted; never a traceback."""

import json
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from ganforge import GANModels, Params
from ganforge.config import MAX_CONFIG_BYTES, MAX_CONFIG_VALUES, validate_config
from ganforge.config.resolve import check_with_built_components
from ganforge.devices import resolve_device
from ganforge.errors import UsageError
from ganforge.guards.machine import check_memory, machine_warnings
from ganforge.registry import Component, Kind, Provider, Registry

GOOD = """
name: tiny
data: {name: synthetic, params: {num_samples: 64, num_classes: 2}}
model: {name: mlp, params: {latent_dim: 8, hidden: [16]}}
train: {epochs: 1, batch_size: 16, device: cpu}
"""
LONGEST_MESSAGE = 2500  # characters: a few lines, whatever the size of the input


def write(directory, text, name="config.yaml"):
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def invoke(app, *args):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def validate(app, path, *overrides):
    return invoke(app, "validate", path, *[item for override in overrides for item in ("--set", override)])


def refused(app, path, *overrides, command="validate", options=()):
    args = [command, path, *(["--quiet"] if command == "run" else []), *options]
    result = invoke(app, *args, *[item for override in overrides for item in ("--set", override)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") or "\nerror: " in result.output, result.output
    return result.stderr


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


# -- 1. reading a config: size, aliases, duplicate keys, message length -----------------------------

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


# -- 2. huge numbers: bounded fields, and memory estimated before it is taken -----------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (f"seed={2**70}", "seed: Input should be less than or equal to 9223372036854775807"),
        ("seed=-1", "seed: Input should be greater than or equal to 0"),
        (f"model.params.hidden=[{2**62}]", "model.params.hidden.0: Input should be less than or equal to 65536"),
        ("model.params.hidden=[" + ", ".join(["8"] * 65) + "]", "model.params.hidden: List should have at most 64"),
        ("model.params.latent_dim=1.0e+11", "model.params.latent_dim: Input should be less than or equal to 65536"),
        (
            "data.params.num_samples=1.0e+12",
            "data.params.num_samples: Input should be less than or equal to 1000000000",
        ),
        ("data.params.size=100000", "data.params.size: Input should be less than or equal to 8192"),
        (f"data.params.seed={2**64}", "data.params.seed: Input should be less than or equal to 9223372036854775807"),
        ("eval.samples=1.0e+12", "eval.samples: Input should be less than or equal to 1000000"),
        ("train.batch_size=1.0e+9", "train.batch_size: Input should be less than or equal to 1048576"),
        ("train.batch_size=1.0e+30", "train.batch_size: Unable to parse input string as an integer, exceeded maximum"),
        (f"train.epochs={10**20}", "train.epochs: Input should be less than or equal to 1000000"),
        ("train.num_workers=1000000", "train.num_workers: Input should be less than or equal to 256"),
        ("train.n_critic=1.0e+9", "train.n_critic: Input should be less than or equal to 1000"),
        ("optim.generator.lr=.inf", "optim.generator.lr: Input should be a finite number"),
        ("train.checkpoint_minutes=.nan", "train.checkpoint_minutes: Input should be a finite number"),
    ],
)
def test_a_number_beyond_what_can_run_is_refused_saying_what_is_accepted(app, workdir, override, expected):
    stderr = refused(app, write(workdir, GOOD), override)
    assert expected in stderr


def test_a_dcgan_beyond_its_bounds_is_refused(app, workdir):
    stderr = refused(app, write(workdir, GOOD), "model.name=dcgan", "model.params={generator_width: 100000}")
    assert "model.params.generator_width: Input should be less than or equal to 65536" in stderr


HUGE_MODEL = "model.params.hidden=[" + ", ".join(["65536"] * 16) + "]"  # 69 billion weights: over 1 TiB to train


def test_a_model_too_large_for_this_machine_is_refused_with_its_estimate_before_training(app, workdir):
    started = time.perf_counter()
    stderr = refused(app, write(workdir, GOOD), HUGE_MODEL, command="run")
    assert time.perf_counter() - started < 30
    assert "not enough memory: this run needs at least " in stderr and " TiB of host memory" in stderr
    assert re.search(r"the models \([\d,]+ parameters, with gradients and Adam's state\): [\d.]+ TiB", stderr)
    assert "make it smaller (model.params)" in stderr
    assert not (workdir / "runs").exists()


def test_a_synthetic_dataset_too_large_for_this_machine_is_refused_before_it_is_generated(app, workdir):
    started = time.perf_counter()
    stderr = refused(
        app, write(workdir, GOOD), "data.params.size=8192", "data.params.num_samples=1000000", command="run"
    )
    assert time.perf_counter() - started < 30
    assert re.search(r"the dataset synthetic while it loads: [\d.]+ TiB", stderr)
    assert "make it smaller (data.params)" in stderr
    assert not (workdir / "runs").exists()


def test_evaluation_samples_too_many_for_this_machine_are_refused_before_training(app, workdir):
    overrides = ["eval.every=1", "eval.samples=1000000", "model.params.latent_dim=65536", "data.params.size=512"]
    stderr = refused(app, write(workdir, GOOD), *overrides, command="run")
    assert re.search(r"evaluation's 1,000,000 generated images: [\d.]+ TiB", stderr) and "eval.samples)" in stderr


def test_validate_warns_of_what_run_would_refuse_for_memory(app, workdir):
    result = validate(app, write(workdir, GOOD), HUGE_MODEL)
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout
    assert "warning: not enough memory" in result.stderr
    assert "`ganforge run` would refuse this config on this machine" in result.stderr


def test_validate_finds_an_architecture_that_cannot_take_the_images(app, workdir):
    path = write(workdir, GOOD)
    stderr = refused(app, path, "model.name=dcgan", "model.params={}", "data.params.size=9")
    assert f"{path} is invalid: architecture 'dcgan' cannot handle the data shape 1x9x9" in stderr


class HugeParams(Params):
    side: int = 2**20


def build_huge(params, data):
    """A third party's architecture, to the memory check only a factory: 2**40 weights in G."""
    return GANModels(nn.Linear(params.side, params.side), nn.Linear(8, 1), latent_dim=params.side)


def build_refusing_meta(params, data):
    """A factory the meta device cannot build: it reads a weight's value."""
    layer = nn.Linear(4, 4)
    float(layer.weight.detach().sum())
    return GANModels(nn.Sequential(layer), nn.Linear(4, 1), latent_dim=4)


def with_architecture(registry, name, factory, params=Params):
    """A copy of the installed registry with one more architecture, as a plugin would register it."""
    extended = Registry()
    for component in registry.components():
        extended.add(component)
    provider = Provider("thirdparty", "1.0", "thirdparty:plugin")
    extended.add(Component(Kind.ARCHITECTURE, name, factory, params, "test architecture", provider))
    return extended


def resolved(registry, name):
    import yaml

    raw = yaml.safe_load(GOOD)
    raw["model"] = {"name": name, "params": {}}
    return validate_config(raw, registry)


def test_a_third_party_architecture_is_estimated_on_the_meta_device_too(registry):
    run = resolved(with_architecture(registry, "huge", build_huge, HugeParams), "huge")
    with pytest.raises(UsageError, match=r"the models \([\d,]+ parameters.*make it smaller \(model.params\)"):
        check_memory(run, torch.device("cpu"), run.data.build(None))
    assert any("not enough memory" in warning for warning in machine_warnings(run))


def test_an_architecture_the_meta_device_cannot_build_is_left_unestimated(registry):
    run = resolved(with_architecture(registry, "eager", build_refusing_meta), "eager")
    assert machine_warnings(run) == []
    check_memory(run, torch.device("cpu"), run.data.build(None))  # nothing estimated, nothing refused


def test_on_a_gpu_the_models_and_the_dataset_are_weighed_against_its_free_memory(registry, monkeypatch):
    monkeypatch.setattr("ganforge.guards.machine.device_free_bytes", lambda device: 1000)
    run = resolved(registry, "mlp")
    expected = r"needs at least [\d.]+ MiB of cuda:0 memory .*the models .*; the dataset synthetic on cuda:0: "
    with pytest.raises(UsageError, match=expected):
        check_memory(run, torch.device("cuda", 0), run.data.build(None))


def test_the_estimate_draws_no_random_numbers_so_initial_weights_stay_the_same(registry):
    run = resolved(registry, "mlp")
    spec = run.data.params.data_spec()
    torch.manual_seed(0)
    direct = run.model.build(spec).generator.state_dict()
    torch.manual_seed(0)
    check_with_built_components(run)
    machine_warnings(run)
    check_memory(run, torch.device("cpu"), run.data.build(None))
    after_estimates = run.model.build(spec).generator.state_dict()
    assert all(torch.equal(direct[key], after_estimates[key]) for key in direct)


# -- 3. run folder and run name -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("''", "the current directory cannot be a run folder"),
        (".", "the current directory cannot be a run folder"),
        ("./", "the current directory cannot be a run folder"),
        ("runs/..", "the current directory cannot be a run folder"),
        ('"a\\0b"', "a path cannot hold a NUL character"),
    ],
)
def test_an_empty_or_dot_output_dir_is_refused_and_nothing_is_touched(app, workdir, folder, expected):
    (workdir / "precious.txt").write_text("keep me")
    path = write(workdir, GOOD)
    for options in ([], ["--overwrite"]):
        stderr = refused(app, path, f"output.dir={folder}", command="run", options=options)
        assert f"output.dir: Value error, {expected}" in stderr
    assert sorted(p.name for p in workdir.iterdir()) == ["config.yaml", "precious.txt"]
    assert (workdir / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize("name", ["''", ".", "..", "a/b", "'a\\b'", "/etc", "-rf", "x" * 101])
def test_a_run_name_that_is_not_a_folder_name_is_refused(app, workdir, name):
    stderr = refused(app, write(workdir, GOOD), f"name={name}")
    assert "name: Value error, a run name is the name of its folder: 1 to 100 letters, digits" in stderr


def test_any_other_output_dir_is_accepted(app, workdir):
    result = validate(app, write(workdir, GOOD), "output.dir=elsewhere/../somewhere/run")
    assert result.exit_code == 0, result.output


# -- 4. devices -----------------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["tpu", "gpu", "CPU", "cuda:", "cuda:-1", "cuda:x", "meta", "cpu "])
def test_a_device_ganforge_never_trains_on_is_refused_by_validate(app, workdir, device):
    stderr = refused(app, write(workdir, GOOD), f"train.device='{device}'")
    assert (
        "train.device: Value error, not a device ganforge trains on; accepted: auto, cpu, cuda, cuda:N or mps" in stderr
    )


def test_validate_warns_of_a_device_this_machine_lacks_and_run_refuses_it(app, workdir):
    path = write(workdir, GOOD)
    result = validate(app, path, "train.device=cuda:999")
    assert result.exit_code == 0, result.output
    lacking = "train.device: 'cuda:999' asked for, but this machine has"
    assert f"warning: {lacking}" in result.stderr
    assert "`ganforge run` would refuse this config on this machine" in result.stderr
    assert lacking in refused(app, path, "train.device=cuda:999", command="run")


@pytest.mark.parametrize("device", ["tpu", "cuda:999", "x" * 10_000])
def test_device_errors_name_the_setting_they_came_from(device):
    with pytest.raises(UsageError) as caught:
        resolve_device(device, option="--device")
    message = str(caught.value)
    assert message.startswith("--device: ") and "train.device" not in message and len(message) < 200
    with pytest.raises(UsageError, match=r"^train\.device: "):
        resolve_device(device)
