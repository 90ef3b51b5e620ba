"""One generic GAN training loop for any registered architecture, loss and dataset.

Each batch: a discriminator step on real images and a fresh generated batch; every ``n_critic``
discriminator steps, a generator step that reuses that generated batch. Statistics are summed on
the device and read only when a line is logged, so there is no host sync per step.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader

from ganforge import __version__
from ganforge.config import ResolvedRun
from ganforge.contracts import DataSpec, GANLoss, ImageTensorDataset, LoadedDataset, to_signed_unit
from ganforge.data_root import default_cache_dir, default_data_root
from ganforge.errors import UsageError
from ganforge.evaluation.protocol import Evaluation, generated_images, prepare_evaluation
from ganforge.training.run_folder import RunFolder, load_checkpoint, save_checkpoint, save_grid
from ganforge.training.tensorboard import TensorBoardLog, wants_tensorboard

SAMPLE_GRID_SIZE = 100
WINDOW, EPOCH = 0, 1
STAT_KEYS = ("d_loss", "D(x)", "D(G(z))", "d_acc_real", "d_acc_fake")


def resolve_device(name: str) -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must exist here."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"train.device: {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"train.device: {name!r} asked for, but this machine has no usable CUDA GPU")
        if device.index is not None and device.index >= count:
            raise UsageError(f"train.device: {name!r} asked for, but this machine has {count} CUDA GPU(s)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"train.device: {name!r} asked for, but MPS is not available here")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"train.device: {name!r} is not supported; use auto, cpu, cuda, cuda:N or mps")
    return device


class Reporter(Protocol):
    """Where progress goes: a live display, plain log lines, or nowhere."""

    def start(self, first_epoch: int, epochs: int, steps_per_epoch: int) -> None: ...

    def note(self, message: str) -> None: ...

    def advance(self) -> None: ...

    def log(self, record: dict[str, Any]) -> None: ...

    def finish(self) -> None: ...


class SilentReporter:
    def start(self, first_epoch: int, epochs: int, steps_per_epoch: int) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def advance(self) -> None:
        pass

    def log(self, record: dict[str, Any]) -> None:
        pass

    def finish(self) -> None:
        pass


class InMemoryBatches:
    """The whole dataset as one uint8 tensor on the device; batches drawn there by index."""

    def __init__(self, dataset: ImageTensorDataset, batch_size: int, device: torch.device, generator: torch.Generator):
        self.images = dataset.images.to(device)
        self.batch_size = batch_size
        self.generator = generator

    def __len__(self) -> int:
        return batches_per_epoch(self.images.shape[0], self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        count = self.images.shape[0]
        order = torch.randperm(count, generator=self.generator).to(self.images.device)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            yield to_signed_unit(self.images[order[start : start + self.batch_size]])


class LoaderBatches:
    """Any other dataset, through a DataLoader with its own seeded shuffle."""

    def __init__(
        self, loaded: LoadedDataset, batch_size: int, device: torch.device, generator: torch.Generator, num_workers: int
    ):
        count = len(loaded.dataset)
        self.device = device
        self.steps = batches_per_epoch(count, batch_size)
        self.loader = DataLoader(
            loaded.dataset,
            batch_size=batch_size,
            shuffle=True,
            generator=generator,
            num_workers=num_workers,
            drop_last=self.steps * batch_size < count,
            pin_memory=device.type == "cuda",
        )

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[torch.Tensor]:
        for images, _labels in self.loader:
            yield images.to(self.device, non_blocking=True)


def batches_per_epoch(count: int, batch_size: int) -> int:
    # A last batch of a single image is dropped: batch norm cannot train on one sample.
    full, remainder = divmod(count, batch_size)
    return full + (1 if remainder > 1 else 0)


@dataclass
class Counts:
    d_steps: int = 0
    g_steps: int = 0
    images: int = 0


@dataclass
class Components:
    data: LoadedDataset
    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int
    loss: GANLoss


def build_components(run: ResolvedRun, device: torch.device) -> Components:
    data = run.data.build(default_data_root())
    models = run.model.build(data.spec)
    return Components(
        data=data,
        generator=models.generator.to(device),
        discriminator=models.discriminator.to(device),
        latent_dim=models.latent_dim,
        loss=run.loss.build(),
    )


class Trainer:
    def __init__(self, run: ResolvedRun, run_folder: RunFolder, reporter: Reporter | None = None) -> None:
        config = run.config
        self.config = config
        self.resolved_config = run.as_dict()
        self.folder = run_folder
        self.reporter = reporter or SilentReporter()
        self.device = resolve_device(config.train.device)
        train = config.train

        torch.manual_seed(config.seed)
        parts = build_components(run, self.device)
        self.spec: DataSpec = parts.data.spec
        self.generator, self.discriminator, self.loss = parts.generator, parts.discriminator, parts.loss
        self.latent_dim = parts.latent_dim
        self.ema_generator = copy.deepcopy(self.generator).eval() if train.ema_decay is not None else None
        if self.ema_generator is not None:
            self.ema_generator.requires_grad_(False)
        self.optimizer_g = make_adam(self.generator, config.optim.generator, self.device)
        self.optimizer_d = make_adam(self.discriminator, config.optim.discriminator, self.device)

        dataset_size = len(parts.data.dataset)
        if train.batch_size > dataset_size:
            raise UsageError(f"train.batch_size: {train.batch_size} is larger than the dataset ({dataset_size} images)")
        self.data_generator = torch.Generator().manual_seed(config.seed)
        if isinstance(parts.data.dataset, ImageTensorDataset):
            self.batches: InMemoryBatches | LoaderBatches = InMemoryBatches(
                parts.data.dataset, train.batch_size, self.device, self.data_generator
            )
        else:
            self.batches = LoaderBatches(
                parts.data, train.batch_size, self.device, self.data_generator, train.num_workers
            )
        noise_generator = torch.Generator().manual_seed(config.seed)
        self.fixed_noise = torch.randn(SAMPLE_GRID_SIZE, self.latent_dim, generator=noise_generator)
        self.evaluation = self._prepare_evaluation(run) if config.eval.every else None
        self.best: dict[str, Any] | None = None
        self.real_grid = torch.stack([parts.data.dataset[i][0] for i in range(min(SAMPLE_GRID_SIZE, dataset_size))])
        self.epoch = 0
        self.step = 0
        self.use_tensorboard = wants_tensorboard(config.output.tensorboard)
        self.tensorboard: TensorBoardLog | None = None
        # Row WINDOW sums since the last logged line, row EPOCH since the epoch began; both stay on the device.
        self._sums = torch.zeros(2, len(STAT_KEYS), device=self.device)
        self._g_loss_sums = torch.zeros(2, device=self.device)
        self._counts = [Counts(), Counts()]

    # -- state -------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "ganforge_version": __version__,
            "config": self.resolved_config,
            "data_spec": {"shape": list(self.spec.shape), "num_classes": self.spec.num_classes},
            "latent_dim": self.latent_dim,
            "epoch": self.epoch,
            "step": self.step,
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "ema_generator": self.ema_generator.state_dict() if self.ema_generator is not None else None,
            "best": self.best,
            "optimizer_generator": self.optimizer_g.state_dict(),
            "optimizer_discriminator": self.optimizer_d.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "data": self.data_generator.get_state(),
            },
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        if self.ema_generator is not None:
            self.ema_generator.load_state_dict(state["ema_generator"] or state["generator"])
        self.optimizer_g.load_state_dict(state["optimizer_generator"])
        self.optimizer_d.load_state_dict(state["optimizer_discriminator"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"]["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.data_generator.set_state(state["rng"]["data"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.best = state.get("best")

    # -- the loop ----------------------------------------------------------------------------

    def fit(self) -> None:
        train = self.config.train
        if self.use_tensorboard:
            self.tensorboard = TensorBoardLog(self.folder.path / "tensorboard")
        if self.epoch == 0:
            save_grid(self.real_grid, self.folder.samples / "real.png", columns=10)
            if self.tensorboard is not None:
                self.tensorboard.grid("samples/real", self.real_grid, 0)
        self.reporter.start(self.epoch, train.epochs, len(self.batches))
        try:
            while self.epoch < train.epochs:
                self._run_epoch()
                self.epoch += 1
                self._end_of_epoch()
        finally:
            self.reporter.finish()
            if self.tensorboard is not None:
                self.tensorboard.close()
        self.folder.plot()

    def _run_epoch(self) -> None:
        self.generator.train()
        self.discriminator.train()
        log_every = self.config.train.log_every
        for row in (WINDOW, EPOCH):
            self._reset(row)
        epoch_start = window_start = time.perf_counter()
        for real in self.batches:
            self._train_step(real)
            self.step += 1
            self.reporter.advance()
            if self.step % log_every == 0:
                now = time.perf_counter()
                self._log(self._record("step", WINDOW, now - window_start))
                self._reset(WINDOW)
                window_start = now
        self._log(self._record("epoch", EPOCH, time.perf_counter() - epoch_start))

    def _log(self, record: dict[str, Any]) -> None:
        self.folder.append_metrics(record)
        self.reporter.log(record)
        if self.tensorboard is not None:
            self.tensorboard.scalars(record)

    def _train_step(self, real: torch.Tensor) -> None:
        batch_size = real.shape[0]
        z = torch.randn(batch_size, self.latent_dim, device=self.device)
        fake = self.generator(z)

        real_scores = self.discriminator(real)
        fake_scores = self.discriminator(fake.detach())
        d_loss = self.loss.discriminator_loss(real_scores, fake_scores)
        penalty = self.loss.penalty(self.discriminator, real, fake)
        self.optimizer_d.zero_grad(set_to_none=True)
        (d_loss if penalty is None else d_loss + penalty).backward()
        self.optimizer_d.step()
        self._accumulate(d_loss.detach(), real_scores.detach(), fake_scores.detach(), batch_size)

        if (self.step + 1) % self.config.train.n_critic == 0:
            self.discriminator.requires_grad_(False)  # G's step needs no gradients for D's weights
            g_loss = self.loss.generator_loss(self.discriminator(fake))
            self.optimizer_g.zero_grad(set_to_none=True)
            g_loss.backward()
            self.optimizer_g.step()
            self.discriminator.requires_grad_(True)
            self._g_loss_sums += g_loss.detach()
            for counts in self._counts:
                counts.g_steps += 1
            if self.ema_generator is not None:
                update_ema(self.ema_generator, self.generator, self.config.train.ema_decay)

    def _accumulate(self, d_loss: torch.Tensor, real_scores: torch.Tensor, fake_scores: torch.Tensor, count: int):
        real_p, fake_p = self.loss.probability(real_scores), self.loss.probability(fake_scores)
        real_p = real_scores if real_p is None else real_p
        fake_p = fake_scores if fake_p is None else fake_p
        threshold = self.loss.decision_threshold
        if threshold is None:
            accuracy_real = accuracy_fake = torch.full((), float("nan"), device=self.device)
        else:
            accuracy_real = (real_scores > threshold).float().mean()
            accuracy_fake = (fake_scores <= threshold).float().mean()
        self._sums += torch.stack([d_loss, real_p.mean(), fake_p.mean(), accuracy_real, accuracy_fake])
        for counts in self._counts:
            counts.d_steps += 1
            counts.images += count

    def _reset(self, row: int) -> None:
        self._sums[row].zero_()
        self._g_loss_sums[row].zero_()
        self._counts[row] = Counts()

    def _record(self, event: str, row: int, seconds: float) -> dict[str, Any]:
        counts = self._counts[row]
        stats = (self._sums[row] / max(1, counts.d_steps)).tolist()  # the one host sync per logged line
        g_loss = self._g_loss_sums[row].item() / counts.g_steps if counts.g_steps else float("nan")
        record: dict[str, Any] = {"event": event, "epoch": self.epoch + 1, "step": self.step}
        record.update({key: none_if_nan(value) for key, value in zip(STAT_KEYS, stats, strict=True)})
        record["g_loss"] = none_if_nan(g_loss)
        record["images/s"] = round(counts.images / seconds, 1) if seconds > 0 else None
        record["seconds"] = round(seconds, 3)
        return record

    def _end_of_epoch(self) -> None:
        train = self.config.train
        last = self.epoch == train.epochs
        if last or (train.sample_every and self.epoch % train.sample_every == 0):
            samples = self.sample(self.fixed_noise)
            save_grid(samples, self.folder.samples / f"epoch_{self.epoch:04d}.png", columns=10)
            if self.tensorboard is not None:
                self.tensorboard.grid("samples/generated", samples, self.step)
        evaluations = self.config.eval.every
        improved = False
        if self.evaluation is not None and (last or self.epoch % evaluations == 0):
            improved = self._evaluate()
        state = self.state()
        if train.checkpoint_every and self.epoch % train.checkpoint_every == 0:
            save_checkpoint(state, self.folder.checkpoint_path(self.epoch))
        if improved:
            save_checkpoint(state, self.folder.best_checkpoint_path)
        save_checkpoint(state, self.folder.checkpoint_path())

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
        return generate(self.ema_generator or self.generator, noise, self.device)


def generate(generator: nn.Module, noise: torch.Tensor, device: torch.device, batch_size: int = 500) -> torch.Tensor:
    """Images for the given noise, in eval mode, returned on the CPU."""
    was_training = generator.training
    generator.eval()
    with torch.no_grad():
        images = torch.cat([generator(chunk.to(device)).cpu() for chunk in noise.split(batch_size)])
    generator.train(was_training)
    return images


def make_adam(module: nn.Module, settings: Any, device: torch.device) -> torch.optim.Adam:
    return torch.optim.Adam(
        module.parameters(),
        lr=settings.lr,
        betas=tuple(settings.betas),
        weight_decay=settings.weight_decay,
        fused=device.type == "cuda" or None,
    )


@torch.no_grad()
def update_ema(average: nn.Module, model: nn.Module, decay: float) -> None:
    for average_param, param in zip(average.parameters(), model.parameters(), strict=True):
        average_param.lerp_(param, 1.0 - decay)
    for average_buffer, buffer in zip(average.buffers(), model.buffers(), strict=True):
        average_buffer.copy_(buffer)


def none_if_nan(value: float) -> float | None:
    return None if math.isnan(value) else value


def start_run(run: ResolvedRun, *, overwrite: bool = False, reporter: Reporter | None = None) -> Trainer:
    """Everything that can fail on bad input (data, device, shapes) fails before the folder exists."""
    folder = RunFolder(run.config.run_dir())
    trainer = Trainer(run, folder, reporter)
    folder.create(overwrite)
    folder.write_config(trainer.resolved_config)
    trainer.fit()
    return trainer


def resume_run(run_dir: Path, run: ResolvedRun, *, reporter: Reporter | None = None) -> Trainer:
    """Continue from ``run_dir/checkpoints/last.pt`` with the run's config (plus any overrides)."""
    folder = RunFolder(run_dir)
    state = load_checkpoint(folder.checkpoint_path())
    trainer = Trainer(run, folder, reporter)
    try:
        trainer.load_state(state)
    except (KeyError, RuntimeError, ValueError) as error:  # shapes or optimiser groups that do not fit
        raise UsageError(
            f"{folder.checkpoint_path()} does not fit the config being resumed (was model, data or optim "
            f"changed with --set?): {str(error).splitlines()[0]}"
        ) from None
    folder.drop_metrics_after(trainer.step)
    folder.write_config(trainer.resolved_config)
    trainer.fit()
    return trainer
