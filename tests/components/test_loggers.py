"""Loggers: the registry kind, the built-ins read back with their own tools, a third party's, and failures.

One run logged to every built-in logger is read back with each tracker's own reader (TensorBoard's
EventAccumulator, MLflow's client, W&B's protobuf records from its offline run file) and must give
the final losses metrics.jsonl holds.
"""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
from typer.testing import CliRunner

from tests.plugin_fixtures import install_distribution
from tests.runs import SMOKE

EVERY_LOGGER = "output.loggers=[tensorboard, mlflow, wandb]"


def invoke(app, *args, exit_code=0):
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == exit_code, result.output
    return result


def train_smoke(app, *overrides, exit_code=0):
    args = ["run", SMOKE, "--quiet"]
    for override in overrides:
        args += ["--set", override]
    return invoke(app, *args, exit_code=exit_code)


def last_epoch_record(run_dir: Path) -> dict:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [record for record in records if record["event"] == "epoch"][-1]


def tensorboard_last(run_dir: Path, key: str) -> float:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    return events.Scalars(key)[-1].value


def mlflow_run(run_dir: Path):
    from mlflow.tracking import MlflowClient

    with mock.patch.dict(os.environ, {"MLFLOW_ALLOW_FILE_STORE": "true"}):  # as a user reading it back must
        client = MlflowClient(tracking_uri=(run_dir / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("ganforge")
    [run] = client.search_runs([experiment.experiment_id])
    return client, run


def wandb_history(run_dir: Path) -> dict[str, float]:
    """The last value of each key W&B recorded in its offline run file (a LevelDB-style log of protobuf records)."""
    from wandb.proto import wandb_internal_pb2

    [path] = (run_dir / "wandb").glob("offline-run-*/run-*.wandb")
    data, block, position, pending, chunks = path.read_bytes(), 32768, 7, b"", []  # 7: the ":W&B" header
    while position + 7 <= len(data):
        left = block - position % block
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if left < 7 or (length == 0 and kind == 0):  # the padding at a block's end
            position += left
            continue
        chunk = data[position + 7 : position + 7 + length]
        position += 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk  # full, first; middle, last
        if kind in (1, 4):
            chunks.append(pending)
    history: dict[str, float] = {}
    for chunk in chunks:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(chunk)
        if record.WhichOneof("record_type") == "history":
            # A key with slashes is kept as its parts.
            history.update(
                {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            )
    return history


def test_one_run_read_back_from_every_logger_gives_the_same_final_losses(app, workdir):
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    train_smoke(app, "train.epochs=2", EVERY_LOGGER)
    run_dir = workdir / "runs" / "smoke"
    last = last_epoch_record(run_dir)
    client, run = mlflow_run(run_dir)
    history = wandb_history(run_dir)
    for key, mlflow_key in (("d_loss", "d_loss"), ("g_loss", "g_loss"), ("D(x)", "D_x")):
        expected = last[key]
        assert tensorboard_last(run_dir, f"epoch/{key}") == pytest.approx(expected, rel=1e-6)  # float32 events
        assert client.get_metric_history(run.info.run_id, f"epoch/{mlflow_key}")[-1].value == expected
        assert history[f"epoch/{key}"] == expected
    assert run.info.status == "FINISHED" and run.data.params["train.epochs"] == "2"
    assert run.data.tags["ganforge.run_dir"] == str(run_dir.resolve())
    samples = [artifact.path for artifact in client.list_artifacts(run.info.run_id, "samples")]
    assert "samples/real_step00000000.png" in samples and len(samples) == 3  # real, epochs 1 and 2
    assert history["_step"] == last["step"]


def test_a_resumed_run_goes_on_in_the_same_tracker_runs(app, workdir):
    pytest.importorskip("mlflow")
    train_smoke(app, "train.epochs=1", "output.loggers=[mlflow]")
    run_dir = workdir / "runs" / "smoke"
    invoke(app, "run", "--resume", run_dir, "--set", "train.epochs=2", "--quiet")
    client, run = mlflow_run(run_dir)  # one MLflow run, not two
    steps = [metric.step for metric in client.get_metric_history(run.info.run_id, "epoch/d_loss")]
    assert steps == [8, 16] and run.info.status == "FINISHED"


def test_trackers_chart_every_number_a_record_has(app, workdir):
    """What a run with adaptive augmentation adds to its lines (strength, ADA's r_t) is charted like the losses."""
    adaptive = ["augment.pipeline=[translation]", "augment.adaptive={target: 0.6, interval: 1, ramp_images: 2000}"]
    train_smoke(app, "train.epochs=1", "output.loggers=[tensorboard]", *adaptive)
    run_dir = workdir / "runs" / "smoke"
    last = last_epoch_record(run_dir)
    for key in ("augment_strength", "ada_r_t", "d_loss", "images/s"):
        assert tensorboard_last(run_dir, f"epoch/{key}") == pytest.approx(last[key], rel=1e-6), key


def test_no_loggers_means_metrics_jsonl_alone(app, workdir):
    train_smoke(app, "train.epochs=1")
    run_dir = workdir / "runs" / "smoke"
    assert not any((run_dir / name).exists() for name in ("tensorboard", "mlruns", "wandb"))
    assert last_epoch_record(run_dir)["epoch"] == 1


def test_a_logger_whose_package_is_missing_fails_before_the_run_folder(app, workdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what importing a missing package does
    result = train_smoke(app, "output.loggers=[tensorboard, mlflow]", exit_code=2)
    assert (
        "logger mlflow needs the mlflow package" in result.stderr and "pip install 'ganforge[mlflow]'" in result.stderr
    )
    assert "Traceback" not in result.output
    assert not (workdir / "runs").exists()


def test_an_unknown_logger_is_a_config_error_naming_the_field(app, workdir):
    result = train_smoke(app, "output.loggers=[tensorbored]", exit_code=2)
    assert "output.loggers.0" in result.stderr and "tensorboard" in result.stderr


FLAKY_LOGGER = """
    from pathlib import Path

    import ganforge
    from ganforge import NoParams, RunLogger


    class FlakyLogger(RunLogger):
        '''Fails at its second record.'''

        def __init__(self, params: NoParams):
            self.seen = 0

        def log(self, record):
            self.seen += 1
            if self.seen == 2:
                raise ConnectionError("tracking server went away")


    class LinesLogger(RunLogger):
        '''Each record's event and step, one line each, in RUN_DIR/lines.txt.'''

        def __init__(self, params: NoParams):
            self.path = None

        def start(self, config, run_dir, resumed):
            self.path = Path(run_dir) / "lines.txt"
            self.path.write_text(f"start {config['name']} resumed={resumed}\\n")

        def log(self, record):
            with self.path.open("a") as lines:
                lines.write(f"{record['event']} {record['step']}\\n")

        def images(self, name, images, step):
            with self.path.open("a") as lines:
                lines.write(f"images {name} {tuple(images.shape)} {step}\\n")

        def finish(self, outcome):
            with self.path.open("a") as lines:
                lines.write(f"finish {outcome}\\n")


    class RedirectingLogger(RunLogger):
        '''Turns RUN_DIR/metrics.jsonl into a link to a file outside the run at its first record.'''

        def __init__(self, params: NoParams):
            self.run_dir = None

        def start(self, config, run_dir, resumed):
            self.run_dir = Path(run_dir)

        def log(self, record):
            metrics = self.run_dir / "metrics.jsonl"
            if not metrics.is_symlink():
                outside = self.run_dir.parent / "outside.jsonl"
                outside.write_text("someone else's\\n")
                metrics.unlink()
                metrics.symlink_to(outside)


    @ganforge.hookimpl
    def register_loggers(register):
        register("flaky", FlakyLogger, summary="Fails at its second record.")
        register("lines", LinesLogger, summary="Records as lines in RUN_DIR/lines.txt.")
        register("redirecting", RedirectingLogger, summary="Links metrics.jsonl elsewhere at its first record.")
"""


@pytest.fixture(scope="module")
def logger_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    install_distribution(site, "ganforge-lines", "0.2.0", {"lines": "ganforge_lines"}, FLAKY_LOGGER)
    return site


def ganforge(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "ganforge", *args], cwd=cwd, capture_output=True, text=True, env=environment, timeout=300
    )


@pytest.mark.slow
def test_a_third_party_logger_is_listed_checked_and_used(logger_site, tmp_path):
    listed = ganforge(logger_site, tmp_path, "list", "loggers")
    assert listed.returncode == 0 and "lines" in listed.stdout and "ganforge-lines" in listed.stdout
    checked = ganforge(logger_site, tmp_path, "check", "logger:lines")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "4 passed, 0 failed" in checked.stdout
    ran = ganforge(logger_site, tmp_path, "run", str(SMOKE), "--quiet", "--set", "output.loggers=[lines]")
    assert ran.returncode == 0, ran.stderr
    lines = (tmp_path / "runs" / "smoke" / "lines.txt").read_text().splitlines()
    assert lines[0] == "start smoke resumed=False" and lines[1] == "images real (100, 1, 28, 28) 0"
    assert "epoch 16" in lines and "images generated (100, 1, 28, 28) 16" in lines and lines[-1] == "finish finished"


def test_a_failing_logger_warns_once_and_the_run_goes_on(logger_site, tmp_path):
    ran = ganforge(logger_site, tmp_path, "run", str(SMOKE), "--quiet", "--set", "output.loggers=[flaky, lines]")
    assert ran.returncode == 0, ran.stderr
    output = ran.stdout + ran.stderr  # the run's notes, warnings among them, go where its progress goes
    named = "warning: logger 'flaky' of plugin 'ganforge-lines:lines' (ganforge-lines==0.2.0) failed in log()"
    assert output.count(named) == 1
    assert "ConnectionError: tracking server went away" in output
    run_dir = tmp_path / "runs" / "smoke"
    logged = [line for line in (run_dir / "lines.txt").read_text().splitlines() if line.startswith("epoch")]
    assert logged == ["epoch 8", "epoch 16"]  # the other logger saw everything
    assert last_epoch_record(run_dir)["step"] == 16


def test_a_metrics_file_that_cannot_be_written_stops_the_run(logger_site, tmp_path):
    """metrics.jsonl is the run folder's own (resume, plot and report read it): its failure is the run's, where a
    logger's is one warning."""
    overrides = ["output.loggers=[redirecting, lines]", "train.log_every=1"]
    ran = ganforge(logger_site, tmp_path, "run", str(SMOKE), "--quiet", *[f"--set={item}" for item in overrides])
    assert ran.returncode != 0
    assert "metrics.jsonl is a symbolic link" in ran.stderr and "Traceback" not in ran.stderr
    assert (tmp_path / "runs" / "outside.jsonl").read_text() == "someone else's\n"  # never written through the link
    lines = (tmp_path / "runs" / "smoke" / "lines.txt").read_text().splitlines()
    # Loggers run on threads of their own: the link is made at the first record, a few records later at most the
    # run's next write is refused, and no logger is given the record the run folder could not keep.
    assert lines[2] == "step 1" and lines[-1] == "finish failed"
    assert lines[2:-1] == [f"step {step}" for step in range(1, len(lines) - 2)]


def test_metrics_file_is_no_logger_and_a_config_listing_it_is_told_every_run_has_it(app, workdir):
    listed = invoke(app, "list", "loggers")
    assert "tensorboard" in listed.stdout and "metrics_file" not in listed.stdout
    result = train_smoke(app, "output.loggers=[tensorboard, metrics_file]", exit_code=2)
    assert "output.loggers.1: metrics_file is not listed: every run writes metrics.jsonl" in result.stderr
    assert "Traceback" not in result.output and not (workdir / "runs").exists()


def test_validate_warns_of_a_logger_whose_package_is_missing(app, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    result = invoke(app, "validate", SMOKE, "--set", "output.loggers=[wandb]")
    assert "warning: output.loggers: logger wandb needs the wandb package" in " ".join(result.stderr.split())
