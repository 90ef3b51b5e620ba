"""Built-in loggers: tensorboard, mlflow and wandb, each an optional extra.

Each follows a run into its tracker's own format, in the run folder unless told otherwise: the
run can then be opened with the tracker's own tool (``tensorboard --logdir``, ``mlflow ui``,
``wandb sync``). A logger whose package is missing says how to install it when the config is
checked, before the run folder is made. metrics.jsonl, ganforge's own record of a run, is no
logger's: the run folder writes it (training/metrics_file.py).
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import string
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

from ganforge.config.overrides import flattened
from ganforge.contracts import LoggerOutcome, NoParams, Params, RunLogger
from ganforge.documents import decode_text, read_document_bytes
from ganforge.errors import GanforgeError, UsageError
from ganforge.grids import grid_pixels
from ganforge.hookspecs import hookimpl
from ganforge.registry import Register

# A record's place and time, not values to chart; every other number is charted, whatever records come to hold.
NOT_CHARTED = frozenset({"event", "epoch", "step", "seconds"})
GRID_COLUMNS = 10


def require(module: str, logger: str, extra: str) -> None:
    """An error naming the logger and how to install what it needs, when ``module`` is not installed."""
    try:
        installed = importlib.util.find_spec(module) is not None
    except ValueError:  # a module set to None in sys.modules: an import of it fails, as of a missing one
        installed = False
    if not installed:
        raise UsageError(f"logger {logger} needs the {module} package, which is not installed: pip install '{extra}'")


def charted_values(record: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a metrics record a tracker charts, named ``train/d_loss``, ``epoch/g_loss``, ``eval/fid``:
    every number but its place and time (an evaluation's floor and protocol, which are not numbers, are not)."""
    prefix = {"eval": "eval", "epoch": "epoch"}.get(record.get("event"), "train")
    return {
        f"{prefix}/{key}": float(value)
        for key, value in record.items()
        if key not in NOT_CHARTED and isinstance(value, int | float) and not isinstance(value, bool)
    }


class TensorBoardLogger(RunLogger):
    """TensorBoard events in the run folder's tensorboard/ (``tensorboard --logdir RUN_DIR``)."""

    def __init__(self, params: NoParams) -> None:
        require("tensorboard", "tensorboard", "ganforge[tensorboard]")
        self.params = params
        self.writer: Any = None

    def start(self, config: Mapping[str, Any], run_dir: Path, resumed: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def log(self, record: Mapping[str, Any]) -> None:
        for key, value in charted_values(record).items():
            self.writer.add_scalar(key, value, record["step"])

    def images(self, name: str, images: torch.Tensor, step: int) -> None:
        self.writer.add_image(f"samples/{name}", grid_pixels(images, GRID_COLUMNS).numpy(), step, dataformats="HWC")

    def finish(self, outcome: LoggerOutcome) -> None:
        self.writer.close()


class MLflowParams(Params):
    tracking_uri: str | None = Field(
        None,
        description="Where the run is tracked: default the file store mlruns/ in the run folder "
        "(`MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri RUN_DIR/mlruns`); or a tracking server's URL.",
    )
    experiment: str = Field("ganforge", min_length=1, description="The MLflow experiment the run goes into.")


# MLflow accepts letters, digits, _ - . space : and / in a metric's name.
MLFLOW_REFUSED = re.compile(r"[^\w\-. :/]+")
MLFLOW_STATUS = {"finished": "FINISHED", "interrupted": "KILLED", "failed": "FAILED"}
MLFLOW_BATCH = 100  # params per log_batch call (MLflow's limit)
RUN_DIR_TAG = "ganforge.run_dir"
# MLflow's own defaults (a 120 s timeout, 7 retries backing off) make an unreachable tracking server a failure
# after about 250 s; these make it one after seconds, where the user has not set them.
MLFLOW_HTTP_BOUNDS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2"}


def mlflow_name(key: str) -> str:
    """``D(G(z))`` -> ``D_G_z``: a name MLflow accepts."""
    return MLFLOW_REFUSED.sub("_", key).strip("_")


class MLflowLogger(RunLogger):
    """An MLflow run: the config as params, every value as a metric by step, the sample grids as artifacts."""

    def __init__(self, params: MLflowParams) -> None:
        require("mlflow", "mlflow", "ganforge[mlflow]")
        for name, value in MLFLOW_HTTP_BOUNDS.items():
            os.environ.setdefault(name, value)
        self.params = params
        self.client: Any = None
        self.run_id = ""

    def start(self, config: Mapping[str, Any], run_dir: Path, resumed: bool) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        if self.params.tracking_uri is None:
            # MLflow 3 keeps its file store for those who ask for it (no database to install, a folder to copy):
            # this logger's default asks.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        uri = self.params.tracking_uri or (run_dir / "mlruns").resolve().as_uri()
        self.client = MlflowClient(tracking_uri=uri)
        name = self.params.experiment
        experiment = self.client.get_experiment_by_name(name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
        folder = str(run_dir.resolve())
        earlier = self._run_of(experiment_id, folder) if resumed else None
        if earlier is not None:  # a resumed run goes on in the MLflow run it started
            self.run_id = earlier
            self.client.update_run(self.run_id, status="RUNNING")
            return
        run = self.client.create_run(experiment_id, run_name=str(config.get("name", "")), tags={RUN_DIR_TAG: folder})
        self.run_id = run.info.run_id
        # MLflow's longest param value is 6000 characters.
        params = [Param(key, str(value)[:6000]) for key, value in flattened(config).items()]
        for start in range(0, len(params), MLFLOW_BATCH):
            self.client.log_batch(self.run_id, params=params[start : start + MLFLOW_BATCH])

    def _run_of(self, experiment_id: str, folder: str) -> str | None:
        quoted = folder.replace("'", "\\'")
        runs = self.client.search_runs([experiment_id], filter_string=f"tags.`{RUN_DIR_TAG}` = '{quoted}'")
        return runs[0].info.run_id if runs else None

    def log(self, record: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), record["step"]
        metrics = [Metric(mlflow_name(key), value, now, step) for key, value in charted_values(record).items()]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def images(self, name: str, images: torch.Tensor, step: int) -> None:
        from PIL import Image

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{name}_step{step:08d}.png"
            Image.fromarray(grid_pixels(images, GRID_COLUMNS).numpy()).save(path)
            self.client.log_artifact(self.run_id, str(path), artifact_path="samples")

    def finish(self, outcome: LoggerOutcome) -> None:
        self.client.set_terminated(self.run_id, status=MLFLOW_STATUS[outcome])


WANDB_ID_FILE = "ganforge-run-id"
WANDB_ID_CHARACTERS = string.ascii_lowercase + string.digits
WANDB_ID_BYTES = 256  # an id is 8 characters; W&B accepts up to 128


def new_wandb_id() -> str:
    """A run id as W&B makes them: 8 lowercase letters and digits."""
    return "".join(secrets.choice(WANDB_ID_CHARACTERS) for _ in range(8))


def kept_wandb_id(path: Path) -> str:
    """The W&B run id a resumed run kept; a new one where the file is missing, not a plain file, or not an id."""
    try:
        kept = decode_text(read_document_bytes(path, WANDB_ID_BYTES, "W&B run id"), str(path)).strip()
    except GanforgeError:
        return new_wandb_id()
    return kept if kept and set(kept) <= set(WANDB_ID_CHARACTERS) else new_wandb_id()


class WandbParams(Params):
    project: str = Field("ganforge", min_length=1, description="The W&B project the run goes into.")
    mode: Literal["offline", "online"] = Field(
        "offline",
        description="offline: the run stays in RUN_DIR/wandb until `wandb sync` uploads it; online: it is "
        "uploaded as it goes (needs a W&B login).",
    )


class WandbLogger(RunLogger):
    """A Weights & Biases run in the run folder's wandb/: the config, every value by step, the sample grids."""

    def __init__(self, params: WandbParams) -> None:
        require("wandb", "wandb", "ganforge[wandb]")
        self.params = params
        self.run: Any = None

    def start(self, config: Mapping[str, Any], run_dir: Path, resumed: bool) -> None:
        import wandb

        # A resumed run goes on in the W&B run it started, whose id it kept beside W&B's files.
        kept = run_dir / "wandb" / WANDB_ID_FILE
        run_id = kept_wandb_id(kept) if resumed else new_wandb_id()
        # wandb.init replaces sys.exit and sys.excepthook for the whole process, to learn how it ends; this
        # logger says how the run ended itself (finish), and leaves the process as it was.
        exit_function, exception_hook = sys.exit, sys.excepthook
        try:
            self.run = wandb.init(
                project=self.params.project,
                name=str(config.get("name", "")),
                id=run_id,
                resume="allow",
                config=dict(config),
                dir=str(run_dir.resolve()),  # W&B's service may run in another folder than this process
                mode=self.params.mode,
                settings=wandb.Settings(silent=True, console="off"),
            )
        finally:
            sys.exit, sys.excepthook = exit_function, exception_hook
        kept.write_text(run_id)

    def log(self, record: Mapping[str, Any]) -> None:
        values = charted_values(record)
        if values:
            self.run.log(values, step=record["step"])

    def images(self, name: str, images: torch.Tensor, step: int) -> None:
        import wandb

        self.run.log({f"samples/{name}": wandb.Image(grid_pixels(images, GRID_COLUMNS).numpy())}, step=step)

    def finish(self, outcome: LoggerOutcome) -> None:
        self.run.finish(exit_code=0 if outcome == "finished" else 1)


@hookimpl
def register_loggers(register: Register) -> None:
    register(
        "tensorboard",
        TensorBoardLogger,
        summary="TensorBoard events in RUN_DIR/tensorboard (pip install ganforge[tensorboard]).",
    )
    register(
        "mlflow",
        MLflowLogger,
        params=MLflowParams,
        summary="An MLflow run, by default in the file store RUN_DIR/mlruns (pip install ganforge[mlflow]).",
    )
    register(
        "wandb",
        WandbLogger,
        params=WandbParams,
        summary="A Weights & Biases run, offline in RUN_DIR/wandb by default (pip install ganforge[wandb]).",
    )
