"""One generic GAN training loop for any registered architecture, loss and dataset.

Each batch: a discriminator step on real images and a fresh generated batch; every ``n_critic``
discriminator steps, a generator step that reuses that generated batch (step.py). Datasets held
in memory stay on the device as one uint8 tensor and batches are drawn there by index; noise is
drawn on the device; statistics are summed there and read only when a line is logged, so there
is no host sync per step (statistics.py). Precision, torch.compile and memory format follow
``train`` (see speed.py). What a checkpoint holds is checkpoints/state.py's; starting and resuming, runs.py's.

In a distributed run (see distributed.py) every process runs this loop on its share of each
batch, the step's modules wrapped in DistributedDataParallel; statistics are summed over the
processes, and rank 0 alone samples, evaluates and writes the run folder.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from ganforge.checkpoints.state import RunProgress, compose_checkpoint, load_checkpoint_state, run_description
from ganforge.config import ResolvedRun
from ganforge.config.resolve import check_best_is_scored
from ganforge.contracts import LoggerOutcome
from ganforge.data_root import default_cache_dir, default_data_root
from ganforge.devices import resolve_device
from ganforge.evaluation.protocol import Evaluation, generated_images, prepare_evaluation
from ganforge.generation import classes_described, generate
from ganforge.guards import startup
from ganforge.training.batches import make_batches
from ganforge.training.distributed import Processes, batch_share, rank_seed
from ganforge.training.fixed_inputs import SAMPLE_GRID_SIZE, evaluation_inputs, first_images, sample_grid_inputs
from ganforge.training.interruption import RunInterrupted, StopRequest, stop_signals
from ganforge.training.process_state import ProcessState
from ganforge.training.progress import Reporter, SilentReporter
from ganforge.training.run_components import build_components
from ganforge.training.run_folder import RunFolder
from ganforge.training.run_loggers import RunLoggers
from ganforge.training.scheduling import ScheduledSettings
from ganforge.training.statistics import EPOCH, WINDOW, TrainingStatistics, divergence_error, weights_finite
from ganforge.training.step import GANStep


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
        self.order = self.batches.order
        self.own_state = ProcessState(self.processes, self.statistics, config.seed, self.reporter.note)
        self.fixed_noise, self.fixed_labels = sample_grid_inputs(self.latent_dim, self.num_classes, config.seed)
        self.evaluation = self._prepare_evaluation(run) if config.eval.every and self.is_main else None
        self.real_grid, self.real_grid_labels = first_images(parts.data.dataset, SAMPLE_GRID_SIZE, self.num_classes)
        self.progress = RunProgress()
        self.schedules = ScheduledSettings(run, self.gan_step, lambda: self.order.images_shown(self.progress.epoch))
        self.description = run_description(self.resolved_config, self.spec, self.latent_dim)
        self.stop = StopRequest()  # fit() installs the signal handlers that fill it
        self._last_saved = time.monotonic()
        self.last_good: str | None = None  # the last checkpoint saved, and where it stood: for messages
        self.loggers = RunLoggers(run if self.is_main else None, self.reporter.note)
        if self.processes.distributed:  # each process draws its own noise and dropout
            torch.manual_seed(rank_seed(config.seed, self.processes.rank))

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint saved by any number of processes (or mid-epoch)."""
        load_checkpoint_state([self.gan_step, self.order, self.progress, self.own_state, self.schedules], state)
        self._saved()  # what was loaded is the last good checkpoint

    def checkpoint_state(self) -> dict[str, Any] | None:
        """Everything a checkpoint holds, on rank 0, None in the others: collective (rank 0 gathers each one's part)."""
        every_process = self.own_state.gather()
        if every_process is None:
            return None
        parts = [self.progress, self.gan_step, self.schedules, self.order, self.folder.metrics]  # rng: noise, data
        return compose_checkpoint(self.description, parts, every_process)

    # -- the loop ----------------------------------------------------------------------------

    def fit(self) -> None:
        train = self.config.train
        self.loggers.start(self.resolved_config, self.folder.path, resumed=self.progress.step > 0)
        if self.progress.epoch == 0 and self.is_main:
            self.folder.save_samples(self.real_grid, "real.png")
            self.loggers.images("real", self.real_grid, 0)
        # A Ctrl-C during set-up that some code caught and dropped: stop before training, not after it.
        startup.stop_if_interrupted()
        self.reporter.start(self.progress.epoch, train.epochs, len(self.batches), self.order.steps_taken)
        outcome: LoggerOutcome = "failed"
        try:
            # In a launch, Ctrl-C comes from the terminal and again from torchrun: one request.
            with stop_signals(
                repeat_grace=startup.REPEAT_GRACE_SECONDS if self.processes.distributed else 0.0
            ) as self.stop:
                while self.progress.epoch < train.epochs:
                    self.run_epoch()
                    self.progress.epoch += 1
                    self._end_of_epoch()
                    self._pause_if_asked(at_logged_line=True)  # last.pt was just saved: a stop only
            outcome = "finished"
        except (RunInterrupted, KeyboardInterrupt):  # saved on a signal, or stopped at once by a second one
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
        if self.order.start_epoch():  # a fresh epoch; one resumed mid-way goes on with its saved statistics
            for row in (WINDOW, EPOCH):
                self.statistics.reset(row)
        epoch_start = window_start = time.perf_counter()
        for real, labels in self.batches:
            self.schedules.apply()
            self.gan_step.train_on(real, labels, self.progress.step)
            self.progress.step += 1
            self.order.step_taken()
            self.reporter.advance()
            logged = self.progress.step % log_every == 0
            if logged:
                now = time.perf_counter()
                self._log_line("step", WINDOW, now - window_start)
                self.statistics.reset(WINDOW)
                window_start = now
            self._pause_if_asked(at_logged_line=logged)
        self.order.finish_epoch()
        self._log_line("epoch", EPOCH, time.perf_counter() - epoch_start)

    def _end_of_epoch(self) -> None:
        train = self.config.train
        last = self.progress.epoch == train.epochs
        self._check_weights_finite()
        if not self.is_main:
            self.checkpoint_state()  # rank 0 gathers every process's noise generators and statistics
            self._saved()
            return
        if last or (train.sample_every and self.progress.epoch % train.sample_every == 0):
            samples = self.sample(self.fixed_noise, self.fixed_labels)
            self.folder.save_samples(samples, f"epoch_{self.progress.epoch:04d}.png")
            self.loggers.images("generated", samples, self.progress.step)
        improved = False
        if self.evaluation is not None and (last or self.progress.epoch % self.config.eval.every == 0):
            improved = self._evaluate()
        state = self.checkpoint_state()
        assert state is not None
        if train.checkpoint_every and self.progress.epoch % train.checkpoint_every == 0:
            self.folder.save_checkpoint(state, self.folder.checkpoint_path(self.progress.epoch))
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
            f"{len(self.eval_noise)} samples of the {which} at epoch {self.progress.epoch} "
            f"(noise seed {self.config.seed})"
        ) + classes_described(self.num_classes)
        samples = self.sample(self.eval_noise, self.eval_labels)
        values = self.evaluation.score(generated_images(samples, described, self.eval_labels))
        progress = self.progress
        record: dict[str, Any] = {"event": "eval", "epoch": progress.epoch, "step": progress.step, **values}
        record["floor"] = self.evaluation.floor()
        record["seconds"] = round(time.perf_counter() - started, 3)
        record["protocol"] = self.evaluation.protocol(described)
        self._log(record)
        key = self.config.eval.best
        if key is None:
            return False
        goal = self.evaluation.goals()[key]
        kept = progress.best if progress.best is not None and progress.best["metric"] == key else None  # eval.best
        if kept is not None and not goal.improves(values[key], kept["value"]):  # may change on a resume
            return False
        progress.best = {"metric": key, "value": values[key], "epoch": progress.epoch, "step": progress.step}
        return True

    @torch.no_grad()
    def sample(self, noise: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        generator = self.gan_step.ema_generator or self.gan_step.generator
        return generate(generator, noise, self.device, self.spec.shape, labels)

    # -- logging, divergence, pauses ---------------------------------------------------------

    def _log_line(self, event: str, row: int, seconds: float) -> None:
        """Collective: every process logs the same lines, for their statistics are summed over all of them."""
        step = self.progress.step
        record, finite = self.statistics.all_reduce_record(event, row, self.progress.epoch_in_progress, step, seconds)
        record |= self.gan_step.augmentation_record() | self.schedules.record()
        self._log(record)
        if not finite:
            losses = "every step was skipped for non-finite losses" if self.skip_nonfinite else "non-finite losses"
            what = f"{losses} in the steps up to step {step} (epoch {self.progress.epoch_in_progress})"
            raise divergence_error(what, self.last_good, self.skip_nonfinite)

    def _log(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        self.folder.metrics.append(record)  # first: a record the run could not keep stops it before any logger
        self.loggers.log(record)
        self.reporter.log(record)

    def _check_weights_finite(self) -> None:
        """Before a checkpoint: never save non-finite weights over a good checkpoint."""
        if not weights_finite(self.gan_step.generator, self.gan_step.discriminator):
            what = f"non-finite weights at step {self.progress.step} (epoch {self.progress.epoch_in_progress})"
            raise divergence_error(what, self.last_good, self.skip_nonfinite)

    def _pause_if_asked(self, at_logged_line: bool) -> None:
        """Between steps: save last.pt on a stop signal or when train.checkpoint_minutes have passed; then stop."""
        minutes = self.config.train.checkpoint_minutes
        signal_number = self.stop.signal_number or 0
        due = minutes is not None and time.monotonic() - self._last_saved >= minutes * 60
        if self.processes.distributed:
            if not at_logged_line:  # the processes must save and stop at the same step: they agree here
                return
            signal_number, due = self.processes.largest(signal_number, due)
        if (signal_number or due) and self.order.steps_taken:  # at an epoch's end, last.pt is already saved
            self._save_last()
        if signal_number:
            raise RunInterrupted(int(signal_number), self._position(), self.folder.checkpoint_path())

    def _save_last(self) -> None:
        self._check_weights_finite()
        state = self.checkpoint_state()
        if state is not None:
            self.folder.save_checkpoint(state, self.folder.checkpoint_path())
        self._saved()

    def _saved(self) -> None:
        self._last_saved = time.monotonic()
        self.last_good = f"{self.folder.checkpoint_path()} ({self._position()})"

    def _position(self) -> str:
        if self.order.steps_taken:
            return f"at epoch {self.progress.epoch_in_progress}, step {self.progress.step}"
        return f"after epoch {self.progress.epoch}"
