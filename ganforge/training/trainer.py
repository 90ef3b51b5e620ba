"""One generic GAN training loop for any registered architecture, loss and dataset.

Each batch: a discriminator step on real images and a fresh generated batch; every ``n_critic``
discriminator steps, a generator step that reuses that generated batch. Datasets held in memory
stay on the device as one uint8 tensor and batches are drawn there by index; noise is drawn on
the device; statistics are summed there and read only when a line is logged, so there is no
host sync per step. Precision, torch.compile and memory format follow ``train`` (see speed.py).

In a distributed run (see distributed.py) every process runs this loop on its share of each
batch, the step's modules wrapped in DistributedDataParallel; statistics are summed over the
processes, and rank 0 alone samples, evaluates and writes the run folder.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ganforge import __version__, startup
from ganforge.checkpoint import checkpoint_metrics_records
from ganforge.config import ResolvedRun
from ganforge.contracts import DataSpec, GANLoss, ImageTensorDataset, LoadedDataset
from ganforge.data_root import default_cache_dir, default_data_root
from ganforge.devices import resolve_device
from ganforge.errors import GanforgeError, UsageError, first_line
from ganforge.evaluation.protocol import Evaluation, generated_images, prepare_evaluation
from ganforge.generation import generate
from ganforge.training.batches import InMemoryBatches, LoaderBatches, ShardedOrder
from ganforge.training.checkpoint_fields import load_optimizer_state
from ganforge.training.distributed import Processes, batch_share, rank_seed
from ganforge.training.interruption import RunInterrupted, StopRequest, stop_signals
from ganforge.training.preflight import check_memory
from ganforge.training.run_folder import RunFolder
from ganforge.training.speed import SpeedPlan, plan_speed
from ganforge.training.tensorboard import TensorBoardLog, wants_tensorboard

SAMPLE_GRID_SIZE = 100
WINDOW, EPOCH = 0, 1
SIGNAL_REPEAT_GRACE = 1.0  # seconds
STAT_KEYS = ("d_loss", "D(x)", "D(G(z))", "d_acc_real", "d_acc_fake")


class Reporter(Protocol):
    """Where progress goes: a live display, plain log lines, or nowhere."""

    def start(self, first_epoch: int, epochs: int, steps_per_epoch: int, done_steps: int = 0) -> None: ...

    def note(self, message: str) -> None: ...

    def advance(self) -> None: ...

    def log(self, record: dict[str, Any]) -> None: ...

    def finish(self) -> None: ...


class SilentReporter:
    def start(self, first_epoch: int, epochs: int, steps_per_epoch: int, done_steps: int = 0) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def advance(self) -> None:
        pass

    def log(self, record: dict[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class Counts:
    d_steps: int = 0
    g_steps: int = 0
    images: int = 0
    skipped: int = 0  # steps left out for a non-finite loss (train.on_nonfinite: skip)


class TrainingDiverged(GanforgeError):
    """Non-finite losses or weights: the run stops rather than save or train on them."""


@dataclass
class Components:
    data: LoadedDataset
    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int
    loss: GANLoss


def build_components(run: ResolvedRun, device: torch.device) -> Components:
    check_memory(run, device)  # the dataset, where its params tell its size
    data = run.data.build(default_data_root())
    check_memory(run, device, data)  # the models, estimated on the meta device
    models = run.model.build(data.spec)
    return Components(
        data=data,
        generator=models.generator.to(device),
        discriminator=models.discriminator.to(device),
        latent_dim=models.latent_dim,
        loss=run.loss.build(),
    )


class Trainer:
    def __init__(
        self,
        run: ResolvedRun,
        run_folder: RunFolder,
        reporter: Reporter | None = None,
        processes: Processes | None = None,
    ) -> None:
        config = run.config
        self.config = config
        self.resolved_config = run.as_dict()
        self.folder = run_folder
        train = config.train
        self.processes = processes or Processes(resolve_device(train.device))
        self.device = self.processes.device
        self.is_main = self.processes.is_main
        self.reporter = (reporter or SilentReporter()) if self.is_main else SilentReporter()
        images_per_process = batch_share(train.batch_size, self.processes.world_size)

        torch.manual_seed(config.seed)  # the same initial weights in every process
        parts = build_components(run, self.device)
        self.spec: DataSpec = parts.data.spec
        self.generator, self.discriminator, self.loss = parts.generator, parts.discriminator, parts.loss
        self.latent_dim = parts.latent_dim
        if self.processes.distributed:
            self.reporter.note(
                f"distributed: {self.processes.describe()}; train.batch_size {train.batch_size} is the global "
                f"batch, {images_per_process} images per process per step"
            )
            self._share_batch_norm(train.sync_batchnorm)
        self.speed: SpeedPlan = plan_speed(
            train.precision, train.compile, train.channels_last, self.device, [self.generator, self.discriminator]
        )
        self.reporter.note(self.speed.describe())
        for warning in self.speed.warnings:
            self.reporter.note(f"warning: {warning}")
        if self.speed.channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        # The training step calls these; state, samples and the gradient penalty use the plain modules.
        self.step_generator: nn.Module = self.generator
        self.step_discriminator: nn.Module = self.discriminator
        if self.processes.distributed:
            device_ids = [self.device] if self.device.type == "cuda" else None
            self.step_generator = DistributedDataParallel(self.generator, device_ids=device_ids)
            self.step_discriminator = DistributedDataParallel(self.discriminator, device_ids=device_ids)
        if self.speed.compile:
            self.step_generator = torch.compile(self.step_generator)
            self.step_discriminator = torch.compile(self.step_discriminator)
        self._compiled_batch_sizes: set[int] = set()
        self.ema_generator = copy.deepcopy(self.generator).eval() if train.ema_decay is not None else None
        if self.ema_generator is not None:
            self.ema_generator.requires_grad_(False)
        self.optimizer_g = make_adam(self.generator, config.optim.generator, self.device)
        self.optimizer_d = make_adam(self.discriminator, config.optim.discriminator, self.device)
        self.scaler_g = self.speed.grad_scaler()
        self.scaler_d = self.speed.grad_scaler()

        dataset_size = len(parts.data.dataset)
        if train.batch_size > dataset_size:
            raise UsageError(f"train.batch_size: {train.batch_size} is larger than the dataset ({dataset_size} images)")
        # The same permutation in every process: each takes its own share of every step's batch.
        self.data_generator = torch.Generator().manual_seed(config.seed)
        in_memory = isinstance(parts.data.dataset, ImageTensorDataset)
        order = ShardedOrder(
            dataset_size,
            train.batch_size,
            self.data_generator,
            self.processes.rank,
            self.processes.world_size,
            device=self.device if in_memory else torch.device("cpu"),
        )
        if in_memory:
            self.batches: InMemoryBatches | LoaderBatches = InMemoryBatches(parts.data.dataset, order, self.device)
        else:
            self.batches = LoaderBatches(parts.data, order, self.device, train.num_workers)
        noise_generator = torch.Generator().manual_seed(config.seed)
        self.fixed_noise = torch.randn(SAMPLE_GRID_SIZE, self.latent_dim, generator=noise_generator)
        self.evaluation = self._prepare_evaluation(run) if config.eval.every and self.is_main else None
        self.best: dict[str, Any] | None = None
        self.real_grid = torch.stack([parts.data.dataset[i][0] for i in range(min(SAMPLE_GRID_SIZE, dataset_size))])
        self.epoch = 0
        self.step = 0
        self.epoch_step = 0  # steps taken in the current epoch; a checkpoint may be saved mid-epoch
        self._epoch_data_state = self.data_generator.get_state()
        self.stop = StopRequest()  # fit() installs the signal handlers that fill it
        self._last_saved = time.monotonic()
        self._last_good: str | None = None  # where the last checkpoint saved stands, for a divergence message
        self.skip_nonfinite = train.on_nonfinite == "skip"
        self.use_tensorboard = wants_tensorboard(config.output.tensorboard)
        self.tensorboard: TensorBoardLog | None = None
        # Row WINDOW sums since the last logged line, row EPOCH since the epoch began; both stay on the device.
        self._sums = torch.zeros(2, len(STAT_KEYS), device=self.device)
        self._real_row = torch.tensor([[True], [False]], device=self.device)
        self._g_loss_sums = torch.zeros(2, device=self.device)
        self._counts = [Counts(), Counts()]
        if self.processes.distributed:  # each process draws its own noise and dropout
            torch.manual_seed(rank_seed(config.seed, self.processes.rank))

    def _share_batch_norm(self, sync: bool) -> None:
        """With ``train.sync_batchnorm``, batch norm reads the statistics of the whole global batch."""
        if not sync:
            return
        if self.device.type != "cuda":
            self.reporter.note(
                "warning: train.sync_batchnorm: PyTorch's SyncBatchNorm runs on CUDA only; batch norm keeps each "
                "process's own statistics"
            )
            return
        self.generator = nn.SyncBatchNorm.convert_sync_batchnorm(self.generator)
        self.discriminator = nn.SyncBatchNorm.convert_sync_batchnorm(self.discriminator)

    # -- state -------------------------------------------------------------------------------

    def checkpoint_state(self) -> dict[str, Any] | None:
        """Everything a checkpoint holds, on rank 0; None in the other processes.

        The training state, where the run stands (mid-epoch included), and every process's own part.
        """
        every_process = self.processes.gather_on_main(self._process_state())
        if every_process is None:
            return None
        # Mid-epoch, the data generator's state from before this epoch's permutation: a resume draws
        # the same permutation again and skips the steps already taken.
        data_state = self._epoch_data_state if self.epoch_step else self.data_generator.get_state()
        training = self._training_state()
        return {
            "ganforge_version": __version__,
            "config": self.resolved_config,
            "data_spec": {"shape": list(self.spec.shape), "num_classes": self.spec.num_classes},
            "latent_dim": self.latent_dim,
            "epoch": self.epoch,
            "step": self.step,
            "epoch_step": self.epoch_step,
            **training,
            "best": self.best,
            "rng": {**training["rng"], "data": data_state},
            "processes": every_process,
        }

    def _process_state(self) -> dict[str, Any]:
        """What differs between the processes of a distributed run: noise generators, partial statistics."""
        return {
            "rng": self._noise_rng_state(),
            "running_statistics": {
                "sums": self._sums.cpu(),
                "g_loss_sums": self._g_loss_sums.cpu(),
                "counts": [asdict(counts) for counts in self._counts],
            },
        }

    def checkpoint_bytes(self) -> int:
        """About what a checkpoint takes: both networks, Adam's two moments of each, and the EMA copy."""

        def size(module: nn.Module) -> int:
            return sum(tensor.numel() * tensor.element_size() for tensor in module.state_dict().values())

        generator, discriminator = size(self.generator), size(self.discriminator)
        return 3 * (generator + discriminator) + (generator if self.ema_generator is not None else 0)

    def _training_state(self) -> dict[str, Any]:
        """What one training step changes: weights, EMA, optimisers, gradient scalers, noise generators."""
        return {
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "ema_generator": self.ema_generator.state_dict() if self.ema_generator is not None else None,
            "optimizer_generator": self.optimizer_g.state_dict(),
            "optimizer_discriminator": self.optimizer_d.state_dict(),
            "grad_scalers": {
                "generator": self.scaler_g.state_dict() if self.scaler_g is not None else None,
                "discriminator": self.scaler_d.state_dict() if self.scaler_d is not None else None,
            },
            "rng": self._noise_rng_state(),
        }

    def _noise_rng_state(self) -> dict[str, Any]:
        """This process's generators of noise and dropout: the CPU's, and its GPU's when it trains on one."""
        cuda = [torch.cuda.get_rng_state(self.device)] if self.device.type == "cuda" else []
        return {"torch": torch.get_rng_state(), "cuda": cuda}

    def _set_noise_rng_state(self, saved: dict[str, Any]) -> None:
        torch.set_rng_state(saved["torch"])
        if saved["cuda"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(saved["cuda"][0], self.device)

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint saved by any number of processes (or mid-epoch)."""
        self._load_training_state(state)
        self.data_generator.set_state(state["rng"]["data"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.best = state.get("best")
        self.epoch_step = state.get("epoch_step", 0)
        self._saved()  # what was loaded is the last good checkpoint
        self.batches.order.skip_steps = self.epoch_step
        self._epoch_data_state = state["rng"]["data"]
        saved = state.get("processes") or []
        if len(saved) == self.processes.world_size:
            own = saved[self.processes.rank]
            self._set_noise_rng_state(own["rng"])
            self._load_running_statistics([own["running_statistics"]])
            return
        if saved:  # the same number of images per step, split another way: the mean of their sums
            self._load_running_statistics([process["running_statistics"] for process in saved])
        if self.processes.distributed:  # the same recipe, with fresh noise streams
            torch.manual_seed(rank_seed(self.config.seed, self.processes.rank, self.step))
            self.reporter.note(
                f"note: the checkpoint was saved by {max(1, len(saved))} process(es), this run has "
                f"{self.processes.world_size}: training goes on with new noise streams"
            )

    def _load_running_statistics(self, saved: list[dict[str, Any]]) -> None:
        self._sums.copy_(torch.stack([running["sums"] for running in saved]).mean(dim=0))
        self._g_loss_sums.copy_(torch.stack([running["g_loss_sums"] for running in saved]).mean(dim=0))
        self._counts = [Counts(**counts) for counts in saved[0]["counts"]]

    def _load_training_state(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        if self.ema_generator is not None:
            self.ema_generator.load_state_dict(state["ema_generator"] or state["generator"])
        load_optimizer_state(self.optimizer_g, state["optimizer_generator"], "generator")
        load_optimizer_state(self.optimizer_d, state["optimizer_discriminator"], "discriminator")
        scalers = state.get("grad_scalers") or {}
        for scaler, saved in ((self.scaler_g, scalers.get("generator")), (self.scaler_d, scalers.get("discriminator"))):
            if scaler is not None and saved:  # a checkpoint from an fp32 run starts fp16's scale afresh
                scaler.load_state_dict(saved)
        self._set_noise_rng_state(state["rng"])

    # -- the loop ----------------------------------------------------------------------------

    def fit(self) -> None:
        train = self.config.train
        if self.use_tensorboard and self.is_main:
            self.tensorboard = TensorBoardLog(self.folder.path / "tensorboard")
        if self.epoch == 0 and self.is_main:
            self.folder.save_samples(self.real_grid, "real.png")
            if self.tensorboard is not None:
                self.tensorboard.grid("samples/real", self.real_grid, 0)
        # A Ctrl-C during set-up that some code caught and dropped: stop before training, not after it.
        startup.stop_if_interrupted()
        self.reporter.start(self.epoch, train.epochs, len(self.batches), self.epoch_step)
        try:
            # In a launch, Ctrl-C comes from the terminal and again from torchrun: one request.
            with stop_signals(repeat_grace=SIGNAL_REPEAT_GRACE if self.processes.distributed else 0.0) as self.stop:
                while self.epoch < train.epochs:
                    self.run_epoch()
                    self.epoch += 1
                    self._end_of_epoch()
                    self._pause_if_asked(at_logged_line=True)  # last.pt was just saved: a stop only
        finally:
            self.reporter.finish()
            if self.tensorboard is not None:
                self.tensorboard.close()
        if self.is_main:
            self.folder.plot()

    def run_epoch(self) -> None:
        """One pass over the data, logging its step and epoch lines; ``fit`` adds samples, evaluation, checkpoints."""
        self.generator.train()
        self.discriminator.train()
        log_every = self.config.train.log_every
        if self.epoch_step == 0:  # a fresh epoch; one resumed mid-way goes on with its saved statistics
            self._epoch_data_state = self.data_generator.get_state()
            for row in (WINDOW, EPOCH):
                self._reset(row)
        epoch_start = window_start = time.perf_counter()
        for real in self.batches:
            self._train_step(real)
            self.step += 1
            self.epoch_step += 1
            self.reporter.advance()
            logged = self.step % log_every == 0
            if logged:
                now = time.perf_counter()
                self._log_line("step", WINDOW, now - window_start)
                self._reset(WINDOW)
                window_start = now
            self._pause_if_asked(at_logged_line=logged)
        self.epoch_step = 0
        self._log_line("epoch", EPOCH, time.perf_counter() - epoch_start)

    def _log_line(self, event: str, row: int, seconds: float) -> None:
        record, finite = self._record(event, row, seconds)
        self._log(record)
        if not finite:
            what = "every step was skipped for non-finite losses" if self.skip_nonfinite else "non-finite losses"
            raise self._diverged(f"{what} in the steps up to step {self.step} (epoch {self.epoch + 1})")

    def _diverged(self, what: str) -> TrainingDiverged:
        if self._last_good is None:
            saved = "no checkpoint was saved before it"
        else:
            saved = f"the last good checkpoint is {self.folder.checkpoint_path()} ({self._last_good})"
        advice = "try lower learning rates or another loss (hinge; wasserstein with its gradient penalty)"
        if not self.skip_nonfinite:
            advice += ", or train.on_nonfinite: skip"
        return TrainingDiverged(f"training diverged: {what}; {saved}. To go on, {advice}")

    def _check_weights_finite(self) -> None:
        """Before a checkpoint: never save non-finite weights over a good checkpoint."""
        parameters = [*self.generator.parameters(), *self.discriminator.parameters()]
        if not bool(torch.stack([parameter.isfinite().all() for parameter in parameters]).all()):
            raise self._diverged(f"non-finite weights at step {self.step} (epoch {self.epoch + 1})")

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
        state = self.checkpoint_state()
        if state is not None:
            self.folder.save_checkpoint(state, self.folder.checkpoint_path())
        self._saved()

    def _saved(self) -> None:
        self._last_saved = time.monotonic()
        self._last_good = self._position()

    def _position(self) -> str:
        return f"at epoch {self.epoch + 1}, step {self.step}" if self.epoch_step else f"after epoch {self.epoch}"

    def _log(self, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        self.folder.append_metrics(record)
        self.reporter.log(record)
        if self.tensorboard is not None:
            self.tensorboard.scalars(record)

    def _train_step(self, real: torch.Tensor) -> None:
        real = self.speed.prepare_batch(real)
        if self.speed.compile and real.shape[0] not in self._compiled_batch_sizes:
            self._first_compiled_step(real)
        else:
            self._step(real)

    def _first_compiled_step(self, real: torch.Tensor) -> None:
        """torch.compile builds its graphs in a batch size's first step; where it cannot, redo that step eagerly."""
        before = copy.deepcopy((self._training_state(), self._sums, self._g_loss_sums, self._counts))
        try:
            self._step(real)
        except Exception as error:  # an error of the model itself recurs in the eager retry and propagates
            state, self._sums, self._g_loss_sums, self._counts = before
            self._load_training_state(state)
            self.step_generator, self.step_discriminator = self.generator, self.discriminator
            self.speed = replace(self.speed, compile=False)
            self.reporter.note(
                f"warning: train.compile: torch.compile failed ({type(error).__name__}: {first_line(str(error))}); "
                "training eagerly"
            )
            self._step(real)
        else:
            self._compiled_batch_sizes.add(real.shape[0])

    def _step(self, real: torch.Tensor) -> None:
        batch_size = real.shape[0]
        z = torch.randn(batch_size, self.latent_dim, device=self.device)
        with self.speed.autocast():
            fake = self.step_generator(z)
            real_scores = self.step_discriminator(real)
            fake_scores = self.step_discriminator(fake.detach())
        # Losses and statistics in fp32, whatever the precision of the forward passes.
        real_scores, fake_scores = real_scores.float(), fake_scores.float()
        d_loss = self.loss.discriminator_loss(real_scores, fake_scores)
        # Penalties differentiate twice, which torch.compile does not: the plain module, in fp32.
        penalty = self.loss.penalty(self.discriminator, real, fake.float())
        d_total = d_loss if penalty is None else d_loss + penalty
        if self.skip_nonfinite and not self._finite_everywhere(d_total):
            self._skip_step()
            return
        apply_gradients(d_total, self.optimizer_d, self.scaler_d)
        self._accumulate(d_loss.detach(), real_scores.detach(), fake_scores.detach(), batch_size)

        if (self.step + 1) % self.config.train.n_critic == 0:
            self.discriminator.requires_grad_(False)  # G's step needs no gradients for D's weights
            with self.speed.autocast():
                scores = self.step_discriminator(fake)
            g_loss = self.loss.generator_loss(scores.float())
            self.discriminator.requires_grad_(True)
            if self.skip_nonfinite and not self._finite_everywhere(g_loss):
                self._skip_step()
                return
            apply_gradients(g_loss, self.optimizer_g, self.scaler_g)
            self._g_loss_sums += g_loss.detach()
            for counts in self._counts:
                counts.g_steps += 1
            if self.ema_generator is not None:
                update_ema(self.ema_generator, self.generator, self.config.train.ema_decay)

    def _finite_everywhere(self, loss: torch.Tensor) -> bool:
        """train.on_nonfinite: skip: whether the loss is finite in every process (a host sync per step)."""
        infinite = 0.0 if bool(torch.isfinite(loss.detach()).all()) else 1.0
        return self.processes.largest(infinite)[0] == 0.0

    def _skip_step(self) -> None:
        for counts in self._counts:
            counts.skipped += 1

    def _accumulate(self, d_loss: torch.Tensor, real_scores: torch.Tensor, fake_scores: torch.Tensor, count: int):
        # Few, batched tensor ops: on a CPU each op costs microseconds whatever its size.
        scores = torch.stack([real_scores, fake_scores])
        probabilities = self.loss.probability(scores)
        means = (scores if probabilities is None else probabilities).mean(dim=1)
        threshold = self.loss.decision_threshold
        if threshold is None:
            accuracies = torch.full((2,), float("nan"), device=self.device)
        else:  # real scores above the threshold and fake ones at or below it are right
            accuracies = ((scores > threshold) == self._real_row).float().mean(dim=1)
        self._sums += torch.cat([d_loss.reshape(1), means, accuracies])
        for counts in self._counts:
            counts.d_steps += 1
            counts.images += count

    def _reset(self, row: int) -> None:
        self._sums[row].zero_()
        self._g_loss_sums[row].zero_()
        self._counts[row] = Counts()

    def _record(self, event: str, row: int, seconds: float) -> tuple[dict[str, Any], bool]:
        """The statistics of a row, averaged over its steps and over the processes; and whether all were finite."""
        counts = self._counts[row]
        local = torch.cat([self._sums[row], self._g_loss_sums[row : row + 1]])
        totals = (self.processes.sum(local) / self.processes.world_size).tolist()  # the one host sync per line
        stats, g_loss_total = [total / max(1, counts.d_steps) for total in totals[:-1]], totals[-1]
        g_loss = g_loss_total / counts.g_steps if counts.g_steps else float("nan")
        images = counts.images * self.processes.world_size  # every process takes an equal share
        record: dict[str, Any] = {"event": event, "epoch": self.epoch + 1, "step": self.step}
        record.update({key: none_if_not_finite(value) for key, value in zip(STAT_KEYS, stats, strict=True)})
        record["g_loss"] = none_if_not_finite(g_loss)
        record["images/s"] = round(images / seconds, 1) if seconds > 0 else None
        record["seconds"] = round(seconds, 3)
        if self.skip_nonfinite:
            record["skipped"] = counts.skipped
        losses = [totals[0], *([g_loss_total] if counts.g_steps else [])]
        finite = all(math.isfinite(loss) for loss in losses) and (counts.d_steps > 0 or counts.skipped == 0)
        return record, finite

    def _end_of_epoch(self) -> None:
        train = self.config.train
        last = self.epoch == train.epochs
        self._check_weights_finite()
        if not self.is_main:
            self.checkpoint_state()  # rank 0 gathers every process's noise generators and statistics
            self._saved()
            return
        if last or (train.sample_every and self.epoch % train.sample_every == 0):
            samples = self.sample(self.fixed_noise)
            self.folder.save_samples(samples, f"epoch_{self.epoch:04d}.png")
            if self.tensorboard is not None:
                self.tensorboard.grid("samples/generated", samples, self.step)
        evaluations = self.config.eval.every
        improved = False
        if self.evaluation is not None and (last or self.epoch % evaluations == 0):
            improved = self._evaluate()
        state = self.checkpoint_state()
        assert state is not None
        if train.checkpoint_every and self.epoch % train.checkpoint_every == 0:
            self.folder.save_checkpoint(state, self.folder.checkpoint_path(self.epoch))
        if improved:
            self.folder.save_checkpoint(state, self.folder.best_checkpoint_path)
        self.folder.save_checkpoint(state, self.folder.checkpoint_path())
        self._saved()

    # -- evaluation --------------------------------------------------------------------------

    def _prepare_evaluation(self, run: ResolvedRun) -> Evaluation:
        """Domain classifier and reference features, before the run folder exists: failures come first."""
        settings = run.config.eval
        evaluation = prepare_evaluation(
            run.data,
            run.metrics,
            samples=settings.samples,
            device=self.device,
            data_root=default_data_root(),
            cache_dir=default_cache_dir(),
            log=self.reporter.note,
        )
        noise_generator = torch.Generator().manual_seed(run.config.seed)
        self.eval_noise = torch.randn(settings.samples, self.latent_dim, generator=noise_generator)
        return evaluation

    def _evaluate(self) -> bool:
        """Score the generator on the run's fixed evaluation noise; True when it is the best so far."""
        assert self.evaluation is not None
        started = time.perf_counter()
        which = "EMA generator" if self.ema_generator is not None else "generator"
        described = (
            f"{len(self.eval_noise)} samples of the {which} at epoch {self.epoch} (noise seed {self.config.seed})"
        )
        values = self.evaluation.score(generated_images(self.sample(self.eval_noise), described))
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
    def sample(self, noise: torch.Tensor) -> torch.Tensor:
        return generate(self.ema_generator or self.generator, noise, self.device, self.spec.shape)


def apply_gradients(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)  # skipped when the scaled gradients overflowed
        scaler.update()


FUSED_ADAM_DEVICES = ("cpu", "cuda")


def make_adam(module: nn.Module, settings: Any, device: torch.device) -> torch.optim.Adam:
    # The fused kernel updates every parameter in one pass: on this project's CPU it took a third
    # of the time of the default (foreach) Adam for the MLP recipe's networks.
    return torch.optim.Adam(
        module.parameters(),
        lr=settings.lr,
        betas=tuple(settings.betas),
        weight_decay=settings.weight_decay,
        fused=device.type in FUSED_ADAM_DEVICES or None,
    )


@torch.no_grad()
def update_ema(average: nn.Module, model: nn.Module, decay: float) -> None:
    for average_param, param in zip(average.parameters(), model.parameters(), strict=True):
        average_param.lerp_(param, 1.0 - decay)
    for average_buffer, buffer in zip(average.buffers(), model.buffers(), strict=True):
        average_buffer.copy_(buffer)


def none_if_not_finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def start_run(
    run: ResolvedRun,
    *,
    overwrite: bool = False,
    reporter: Reporter | None = None,
    processes: Processes | None = None,
) -> Trainer:
    """Everything that can fail on bad input (data, device, shapes) fails before the folder exists.

    Rank 0 alone makes and writes the folder, and holds its lock until the run ends.
    """
    folder = RunFolder(run.config.run_dir())
    trainer = Trainer(run, folder, reporter, processes)
    try:
        if trainer.is_main:
            folder.check_room(trainer.checkpoint_bytes())
            with startup.interrupts_deferred():  # a Ctrl-C waits: a folder half replaced could not be overwritten
                folder.create(overwrite)
                folder.write_config(trainer.resolved_config)
        trainer.fit()
    finally:
        folder.release()
    return trainer


def resume_run(
    run_dir: Path, run: ResolvedRun, *, reporter: Reporter | None = None, processes: Processes | None = None
) -> Trainer:
    """Continue from ``run_dir/checkpoints/last.pt`` with the run's config (plus any overrides).

    Rank 0 locks the folder before it reads or clears anything in it, reads the checkpoint and
    hands it to the other processes, which need no run folder.
    """
    folder = RunFolder(run_dir)
    main = processes is None or processes.is_main
    try:
        if main:
            folder.open_for_resume()
        state, path, problems = folder.load_newest_good_checkpoint() if main else (None, None, [])
        metrics_records = checkpoint_metrics_records(state, path) if state is not None else None
        trainer = Trainer(run, folder, reporter, processes)
        for problem in problems:
            trainer.reporter.note(f"warning: {problem}")
        if problems:
            trainer.reporter.note(f"warning: resuming from {path}, the newest checkpoint that loads")
        state = trainer.processes.from_main(state)
        try:
            trainer.load_state(state)
        except (KeyError, RuntimeError, ValueError) as error:  # shapes or optimiser groups that do not fit
            raise UsageError(
                f"{path or 'the checkpoint'} does not fit the config being resumed (was model, data or optim "
                f"changed with --set?): {first_line(str(error))}"
            ) from None
        if trainer.is_main:
            folder.clear_unfinished_writes()
            folder.check_room(trainer.checkpoint_bytes())
            with startup.interrupts_deferred():  # a Ctrl-C waits until metrics and config agree with the checkpoint
                folder.drop_metrics_after(trainer.step, records=metrics_records)
                folder.write_config(trainer.resolved_config)
        trainer.fit()
    finally:
        folder.release()
    return trainer
