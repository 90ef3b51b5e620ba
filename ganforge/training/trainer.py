"""One generic GAN training loop for any registered architecture, loss and dataset.

Each batch: a discriminator step on real images and a fresh generated batch; every ``n_critic``
discriminator steps, a generator step that reuses that generated batch (step.py). Datasets held
in memory stay on the device as one uint8 tensor and batches are drawn there by index; noise is
drawn on the device; statistics are summed there and read only when a line is logged, so there
is no host sync per step (statistics.py). Precision, torch.compile and memory format follow
``train`` (see speed.py). What a checkpoint holds is state.py's; starting and resuming, runs.py's.

In a distributed run (see distributed.py) every process runs this loop on its share of each
batch, the step's modules wrapped in DistributedDataParallel; statistics are summed over the
processes, and rank 0 alone samples, evaluates and writes the run folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from ganforge import startup
from ganforge.config import ResolvedRun
from ganforge.contracts import Augmentation, GANLoss, GANModels, LoadedDataset, LoggerOutcome
from ganforge.data_root import default_cache_dir, default_data_root
from ganforge.devices import resolve_device
from ganforge.evaluation.protocol import Evaluation, check_best_is_scored, generated_images, prepare_evaluation
from ganforge.generation import classes_described, generate
from ganforge.training.batches import make_batches
from ganforge.training.distributed import Processes, batch_share, rank_seed
from ganforge.training.fixed_inputs import SAMPLE_GRID_SIZE, evaluation_inputs, first_images, sample_grid_inputs
from ganforge.training.interruption import RunInterrupted, StopRequest, stop_signals
from ganforge.training.preflight import check_memory
from ganforge.training.progress import Reporter, SilentReporter
from ganforge.training.run_folder import RunFolder
from ganforge.training.run_loggers import RunLoggers
from ganforge.training.state import gather_checkpoint_state, restore_checkpoint_state
from ganforge.training.statistics import EPOCH, WINDOW, TrainingStatistics, divergence_error, weights_finite
from ganforge.training.step import GANStep

SIGNAL_REPEAT_GRACE = 1.0  # seconds


class Trainer:
    """A run's networks, data and training loop, built from a resolved config.

    In a distributed run every process builds one and calls ``fit``: the loop is the same in each,
    and its logged lines, pauses and checkpoints are collective (every process reaches them together).
    """

    def __init__(
        self, run: ResolvedRun, folder: RunFolder, reporter: Reporter | None = None, processes: Processes | None = None
    ) -> None:
        config = run.config
        train = config.train
        self.config = config
        self.resolved_config = run.as_dict()
        self.folder = folder
        self.processes = processes or Processes(resolve_device(train.device))
        self.device = self.processes.device
        self.is_main = self.processes.is_main
        self.reporter = (reporter or SilentReporter()) if self.is_main else SilentReporter()
        images_per_process = batch_share(train.batch_size, self.processes.world_size)

        torch.manual_seed(config.seed)  # the same initial weights in every process
        parts = build_components(run, self.device)
        self.spec = parts.data.spec
        self.latent_dim = parts.models.latent_dim
        if self.processes.distributed:
            self.reporter.note(
                f"distributed: {self.processes.describe()}; train.batch_size {train.batch_size} is the global "
                f"batch, {images_per_process} images per process per step"
            )
        self.skip_nonfinite = train.on_nonfinite == "skip"
        classifies = parts.models.class_logits and train.class_loss_weight > 0  # ACGAN's head is trained
        self.statistics = TrainingStatistics(parts.loss, self.processes, self.skip_nonfinite, classifies)
        self.gan_step = GANStep(
            parts.models, parts.loss, config, self.processes, self.statistics, self.reporter, parts.augmentations
        )
        self.num_classes = parts.models.num_classes
        self.batches = make_batches(
            parts.data, train.batch_size, train.num_workers, config.seed, self.processes, self.num_classes
        )
        self.data_generator = self.batches.order.generator
        self.fixed_noise, self.fixed_labels = sample_grid_inputs(self.latent_dim, self.num_classes, config.seed)
        self.evaluation = self._prepare_evaluation(run) if config.eval.every and self.is_main else None
        self.real_grid, self.real_grid_labels = first_images(parts.data.dataset, SAMPLE_GRID_SIZE, self.num_classes)
        self.best: dict[str, Any] | None = None
        self.epoch = 0  # epochs finished
        self.step = 0
        self.epoch_step = 0  # steps taken in the current epoch; a checkpoint may be saved mid-epoch
        self.epoch_data_state = self.data_generator.get_state()
        self.stop = StopRequest()  # fit() installs the signal handlers that fill it
        self._last_saved = time.monotonic()
        self._last_good: str | None = None  # the last checkpoint saved and where it stands, for a divergence message
        self.loggers = RunLoggers(run if self.is_main else None, self.reporter.note)
        if self.processes.distributed:  # each process draws its own noise and dropout
            torch.manual_seed(rank_seed(config.seed, self.processes.rank))

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint saved by any number of processes (or mid-epoch)."""
        restore_checkpoint_state(self, state)
        self._saved()  # what was loaded is the last good checkpoint

    @property
    def epoch_in_progress(self) -> int:
        """The epoch being trained, counted from 1 (``epoch`` counts those finished): what records and messages name."""
        return self.epoch + 1

    # -- the loop ----------------------------------------------------------------------------

    def fit(self) -> None:
        train = self.config.train
        self.loggers.start(self.resolved_config, self.folder.path, resumed=self.step > 0)
        if self.epoch == 0 and self.is_main:
            self.folder.save_samples(self.real_grid, "real.png")
            self.loggers.images("real", self.real_grid, 0)
        # A Ctrl-C during set-up that some code caught and dropped: stop before training, not after it.
        startup.stop_if_interrupted()
        self.reporter.start(self.epoch, train.epochs, len(self.batches), self.epoch_step)
        outcome: LoggerOutcome = "failed"
        try:
            # In a launch, Ctrl-C comes from the terminal and again from torchrun: one request.
            with stop_signals(repeat_grace=SIGNAL_REPEAT_GRACE if self.processes.distributed else 0.0) as self.stop:
                while self.epoch < train.epochs:
                    self.run_epoch()
                    self.epoch += 1
                    self._end_of_epoch()
                    self._pause_if_asked(at_logged_line=True)  # last.pt was just saved: a stop only
            outcome = "finished"
        except RunInterrupted:
            outcome = "interrupted"
            raise
        finally:
            self.reporter.finish()
            self.loggers.finish(outcome)
        if self.is_main:
            self.folder.plot()

    def run_epoch(self) -> None:
        """One pass over the data, logging its step and epoch lines; ``fit`` adds samples, evaluation, checkpoints."""
        self.gan_step.generator.train()
        self.gan_step.discriminator.train()
        log_every = self.config.train.log_every
        if self.epoch_step == 0:  # a fresh epoch; one resumed mid-way goes on with its saved statistics
            self.epoch_data_state = self.data_generator.get_state()
            for row in (WINDOW, EPOCH):
                self.statistics.reset(row)
        epoch_start = window_start = time.perf_counter()
        for real, labels in self.batches:
            self.gan_step.train_on(real, labels, self.step)
            self.step += 1
            self.epoch_step += 1
            self.reporter.advance()
            logged = self.step % log_every == 0
            if logged:
                now = time.perf_counter()
                self._log_line("step", WINDOW, now - window_start)
                self.statistics.reset(WINDOW)
                window_start = now
            self._pause_if_asked(at_logged_line=logged)
        self.epoch_step = 0
        self._log_line("epoch", EPOCH, time.perf_counter() - epoch_start)

    def _end_of_epoch(self) -> None:
        train = self.config.train
        last = self.epoch == train.epochs
        self._check_weights_finite()
        if not self.is_main:
            gather_checkpoint_state(self)  # rank 0 gathers every process's noise generators and statistics
            self._saved()
            return
        if last or (train.sample_every and self.epoch % train.sample_every == 0):
            samples = self.sample(self.fixed_noise, self.fixed_labels)
            self.folder.save_samples(samples, f"epoch_{self.epoch:04d}.png")
            self.loggers.images("generated", samples, self.step)
        improved = False
        if self.evaluation is not None and (last or self.epoch % self.config.eval.every == 0):
            improved = self._evaluate()
        state = gather_checkpoint_state(self)
        assert state is not None
        if train.checkpoint_every and self.epoch % train.checkpoint_every == 0:
            self.folder.save_checkpoint(state, self.folder.checkpoint_path(self.epoch))
        if improved:
            self.folder.save_checkpoint(state, self.folder.best_checkpoint_path)
        self.folder.save_checkpoint(state, self.folder.checkpoint_path())
        self._saved()

    def _prepare_evaluation(self, run: ResolvedRun) -> Evaluation:
        """Domain classifier and reference features, before the run folder exists: failures come first."""
        settings = run.config.eval
        check_best_is_scored(run.metrics, settings.best, conditional=self.num_classes is not None)
        evaluation = prepare_evaluation(
            run.data,
            run.metrics,
            samples=settings.samples,
            device=self.device,
            data_root=default_data_root(),
            cache_dir=default_cache_dir(),
            log=self.reporter.note,
        )
        self.eval_noise, self.eval_labels = evaluation_inputs(
            settings.samples, self.latent_dim, self.num_classes, run.config.seed
        )
        return evaluation

    def _evaluate(self) -> bool:
        """Score the generator on the run's fixed evaluation noise; True when it is the best so far."""
        assert self.evaluation is not None
        started = time.perf_counter()
        which = "EMA generator" if self.gan_step.ema_generator is not None else "generator"
        described = (
            f"{len(self.eval_noise)} samples of the {which} at epoch {self.epoch} (noise seed {self.config.seed})"
        ) + classes_described(self.num_classes)
        samples = self.sample(self.eval_noise, self.eval_labels)
        values = self.evaluation.score(generated_images(samples, described, self.eval_labels))
        record: dict[str, Any] = {"event": "eval", "epoch": self.epoch, "step": self.step, **values}
        record["floor"] = self.evaluation.floor()
        record["seconds"] = round(time.perf_counter() - started, 3)
        record["protocol"] = self.evaluation.protocol(described)
        self._log(record)
        key = self.config.eval.best
        if key is None:
            return False
        goal = self.evaluation.goals()[key]
        if self.best is not None and not goal.improves(values[key], self.best["value"]):
            return False
        self.best = {"metric": key, "value": values[key], "epoch": self.epoch, "step": self.step}
        return True

    @torch.no_grad()
    def sample(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        generator = self.gan_step.ema_generator or self.gan_step.generator
        return generate(generator, noise, self.device, self.spec.shape, labels)

    # -- logging, divergence, pauses ---------------------------------------------------------

    def _log_line(self, event: str, row: int, seconds: float) -> None:
        """Collective: every process logs the same lines, for their statistics are summed over all of them."""
        record, finite = self.statistics.all_reduce_record(event, row, self.epoch_in_progress, self.step, seconds)
        record.update(self.gan_step.augmentation_record())
        self._log(record)
        if not finite:
            losses = "every step was skipped for non-finite losses" if self.skip_nonfinite else "non-finite losses"
            what = f"{losses} in the steps up to step {self.step} (epoch {self.epoch_in_progress})"
            raise divergence_error(what, self._last_good, self.skip_nonfinite)

    def _log(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        self.loggers.log(record)  # metrics.jsonl first: a record the run could not keep stops it here
        self.reporter.log(record)

    def _check_weights_finite(self) -> None:
        """Before a checkpoint: never save non-finite weights over a good checkpoint."""
        if not weights_finite(self.gan_step.generator, self.gan_step.discriminator):
            what = f"non-finite weights at step {self.step} (epoch {self.epoch_in_progress})"
            raise divergence_error(what, self._last_good, self.skip_nonfinite)

    def _pause_if_asked(self, at_logged_line: bool) -> None:
        """Between steps: save last.pt on a stop signal or when train.checkpoint_minutes have passed; then stop."""
        minutes = self.config.train.checkpoint_minutes
        signal_number = self.stop.signal_number or 0
        due = minutes is not None and time.monotonic() - self._last_saved >= minutes * 60
        if self.processes.distributed:
            if not at_logged_line:  # the processes must save and stop at the same step: they agree here
                return
            signal_number, due = self.processes.largest(signal_number, due)
        if (signal_number or due) and self.epoch_step:  # at an epoch's end, last.pt is already saved
            self._save_last()
        if signal_number:
            raise RunInterrupted(int(signal_number), self._position(), self.folder.checkpoint_path())

    def _save_last(self) -> None:
        self._check_weights_finite()
        state = gather_checkpoint_state(self)
        if state is not None:
            self.folder.save_checkpoint(state, self.folder.checkpoint_path())
        self._saved()

    def _saved(self) -> None:
        self._last_saved = time.monotonic()
        self._last_good = f"{self.folder.checkpoint_path()} ({self._position()})"

    def _position(self) -> str:
        if self.epoch_step:
            return f"at epoch {self.epoch_in_progress}, step {self.step}"
        return f"after epoch {self.epoch}"


# -- building ----------------------------------------------------------------------------------


@dataclass
class Components:
    data: LoadedDataset
    models: GANModels  # on the training device
    loss: GANLoss
    augmentations: list[Augmentation]  # in order, on every image D sees


def build_components(run: ResolvedRun, device: torch.device) -> Components:
    check_memory(run, device)  # the dataset, where its params tell its size
    data = run.data.build(default_data_root())
    check_memory(run, device, data)  # the models, estimated on the meta device
    models = run.model.build(data.spec)
    models.generator.to(device)  # Module.to moves the parameters in place
    models.discriminator.to(device)
    augmentations = [chosen.build() for chosen in run.augmentations]
    return Components(data=data, models=models, loss=run.loss.build(), augmentations=augmentations)
