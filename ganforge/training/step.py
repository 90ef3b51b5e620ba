"""The training step: the discriminator's update and, every ``train.n_critic`` steps, the generator's.

Each step: a discriminator update on real images and a fresh generated batch; every ``n_critic``
steps, a generator update on that generated batch or, as ``train.generator_batch`` says, a new one.
Conditional models see the real batch's labels and labels drawn for the generated images
(``train.generated_labels``); a discriminator with class logits adds ACGAN's cross-entropy to both
updates.
The step calls its own modules (in a distributed run wrapped in DistributedDataParallel, compiled
where ``train.compile`` says so); state, samples and the gradient penalty use the plain ones. Noise
is drawn on the device from torch's global generator, which is this process's own in a distributed
run.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ganforge.checkpoints.fields import load_optimizer_state
from ganforge.config import OptimizerConfig, RunConfig, TrainConfig
from ganforge.config.resolve import check_the_loss_fits, require_a_threshold
from ganforge.contracts import (
    Augmentation,
    GANLoss,
    GANModels,
    LabelledDiscriminator,
    discriminate,
    generator_loss_of,
    synthesize,
)
from ganforge.errors import first_line
from ganforge.training.adaptive import AdaptiveStrength
from ganforge.training.distributed import Processes, generator_batch_share
from ganforge.training.progress import Reporter
from ganforge.training.speed import SpeedPlan, plan_speed
from ganforge.training.statistics import TrainingStatistics

FUSED_ADAM_DEVICES = ("cpu", "cuda")


class GeneratedBatch(NamedTuple):
    """The images D's update generated and their classes (None unconditional): G's update reuses them."""

    images: torch.Tensor
    labels: torch.Tensor | None


class GANStep:
    """The networks, what updates them (optimisers, gradient scalers, the EMA copy), and the step itself."""

    def __init__(
        self,
        models: GANModels,
        loss: GANLoss,
        config: RunConfig,
        processes: Processes,
        statistics: TrainingStatistics,
        reporter: Reporter,
        augmentations: list[Augmentation] | None = None,
    ) -> None:
        train = config.train
        generator, discriminator, self.latent_dim = models.generator, models.discriminator, models.latent_dim
        self.num_classes, self.class_logits = models.num_classes, models.class_logits
        self.generated_labels = train.generated_labels
        self.class_loss_weight = train.class_loss_weight if models.class_logits else 0.0
        self.loss, self.statistics, self.reporter = loss, statistics, reporter
        self.processes, self.device = processes, processes.device
        self.n_critic, self.ema_decay = train.n_critic, train.ema_decay_per_update()
        self.penalty_every = train.penalty_every
        check_the_loss_fits(config, loss)
        self.fresh_generator_batch = generator_batch_share(train.fresh_generator_batch(), processes.world_size)
        self.skip_nonfinite = train.on_nonfinite == "skip"
        if processes.distributed and train.sync_batchnorm:
            generator, discriminator = share_batch_norm(generator, discriminator, self.device, reporter)
        self.generator, self.discriminator = generator, discriminator
        self.speed = self._plan_speed(train)
        # The training step calls these; state, samples and the gradient penalty use the plain modules.
        # The eager ones are kept for a compile that fails: in a distributed run they are the DDP
        # wrappers, which keep the gradients averaged over the processes (the plain networks would not).
        # An ACGAN head that no class loss trains gets no gradient, which DDP must be told to expect.
        untrained_head = models.class_logits and self.class_loss_weight == 0
        self.eager_generator, self.eager_discriminator = data_parallel(
            generator, discriminator, processes, discriminator_has_unused_parameters=untrained_head
        )
        self.step_generator, self.step_discriminator = self.eager_generator, self.eager_discriminator
        if self.speed.compile:
            self.step_generator = torch.compile(self.eager_generator)
            self.step_discriminator = torch.compile(self.eager_discriminator)
        self._compiled_batch_sizes: set[int] = set()
        self.ema_generator = ema_copy(generator) if config.keeps_ema() else None
        self.optimizer_g = make_adam(generator, config.optim.generator, self.device)
        self.optimizer_d = make_adam(discriminator, config.optim.discriminator, self.device)
        self.scaler_g = self.speed.grad_scaler()
        self.scaler_d = self.speed.grad_scaler()
        self.augmentations = augmentations or []
        self.strength = config.augment.strength
        self.adaptive = adaptive_strength(config, loss, self.device) if self.augmentations else None

    def _plan_speed(self, train: TrainConfig) -> SpeedPlan:
        networks = [self.generator, self.discriminator]
        speed = plan_speed(train.precision, train.compile, train.channels_last, self.device, networks)
        self.reporter.note(speed.describe())
        for warning in speed.warnings:
            self.reporter.note(f"warning: {warning}")
        if speed.channels_last:
            for network in networks:
                network.to(memory_format=torch.channels_last)
        return speed

    @property
    def conditional(self) -> bool:
        return self.num_classes is not None

    def train_on(self, real: torch.Tensor, labels: torch.Tensor, step: int) -> None:
        """Step number ``step`` (counted from 0 over the run) on this process's share of a batch and its labels."""
        real = self.speed.prepare_batch(real)
        real_labels = labels if self.conditional else None
        if self.speed.compile and real.shape[0] not in self._compiled_batch_sizes:
            self._first_compiled_step(real, real_labels, step)
        else:
            self._step(real, real_labels, step)

    def _first_compiled_step(self, real: torch.Tensor, real_labels: torch.Tensor | None, step: int) -> None:
        """torch.compile builds its graphs in a batch size's first step; where it cannot, redo that step eagerly."""
        before = copy.deepcopy(self.state_dict()), self.statistics.snapshot()
        try:
            self._step(real, real_labels, step)
        except Exception as error:  # an error of the model itself recurs in the eager retry and propagates
            state, statistics = before
            self.statistics.restore(statistics)
            self.load_state_dict(state)
            self.step_generator, self.step_discriminator = self.eager_generator, self.eager_discriminator
            self.speed = replace(self.speed, compile=False)
            self.reporter.note(
                f"warning: train.compile: torch.compile failed ({type(error).__name__}: {first_line(str(error))}); "
                "training eagerly"
            )
            self._step(real, real_labels, step)
        else:
            self._compiled_batch_sizes.add(real.shape[0])

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """What D sees of ``images``: each augmentation in turn, at the current strength (random draws from
        torch's generator on the device, saved with the run like the noise)."""
        strength = self.adaptive.strength if self.adaptive is not None else self.strength
        for augmentation in self.augmentations:
            images = augmentation(images, strength)
        return images

    def augmentation_record(self) -> dict[str, float | None]:
        """For each logged line where D's images are augmented: the strength now, and ADA's last r_t."""
        if not self.augmentations:
            return {}
        if self.adaptive is None:
            return {"augment_strength": self.strength}
        return {"augment_strength": round(self.adaptive.strength, 6), "ada_r_t": self.adaptive.last_r_t}

    def _generated_labels_for(self, count: int, real_labels: torch.Tensor | None) -> torch.Tensor | None:
        """Classes for ``count`` generated images: uniform, or the real batch's own (the data's frequencies).

        Drawn from torch's generator on the device, like the noise, so a resumed run draws the same.
        """
        if self.num_classes is None or real_labels is None:
            return None
        if self.generated_labels == "data":
            if count == real_labels.shape[0]:
                return real_labels
            return real_labels[torch.randint(real_labels.shape[0], (count,), device=real_labels.device)]
        return torch.randint(self.num_classes, (count,), device=self.device)

    def _class_loss(self, class_logits: torch.Tensor | None, labels: torch.Tensor | None) -> torch.Tensor | None:
        """ACGAN's auxiliary classifier term, weighted; None where D returns no class logits."""
        if class_logits is None or labels is None or self.class_loss_weight == 0:
            return None
        return self.class_loss_weight * nn.functional.cross_entropy(class_logits.float(), labels)

    def _step(self, real: torch.Tensor, real_labels: torch.Tensor | None, step: int) -> None:
        generated = self.update_discriminator(real, real_labels, step)
        if generated is not None and (step + 1) % self.n_critic == 0:
            self.update_generator(real, real_labels, generated)

    def update_discriminator(
        self, real: torch.Tensor, real_labels: torch.Tensor | None, step: int
    ) -> GeneratedBatch | None:
        """D's update on the real batch and a freshly generated one, which it returns for G's update to reuse.

        None where the update was skipped for a non-finite loss (``train.on_nonfinite: skip``): G's
        update is skipped with it.
        """
        batch_size = real.shape[0]
        z = torch.randn(batch_size, self.latent_dim, device=self.device)
        fake_labels = self._generated_labels_for(batch_size, real_labels)
        with self.speed.autocast():
            fake = synthesize(self.step_generator, z, fake_labels)
            real_seen, fake_seen = self.augment(real), self.augment(fake.detach())
            real_scores, real_logits = discriminate(self.step_discriminator, real_seen, real_labels)
            fake_scores, fake_logits = discriminate(self.step_discriminator, fake_seen, fake_labels)
        # Losses and statistics in fp32, whatever the precision of the forward passes.
        real_scores, fake_scores = real_scores.float(), fake_scores.float()
        d_loss = self.loss.discriminator_loss(real_scores, fake_scores)
        d_total = d_loss
        for class_loss in (self._class_loss(real_logits, real_labels), self._class_loss(fake_logits, fake_labels)):
            if class_loss is not None:
                d_total = d_total + class_loss
        penalty = self._penalty(step, real_seen, real_labels, fake_seen, fake_labels)
        if penalty is not None:
            d_total = d_total + penalty
        if self.skip_nonfinite and not self._finite_in_every_process(d_total):
            self.statistics.add_skipped_step()
            return None
        apply_gradients(d_total, self.optimizer_d, self.scaler_d)
        self.statistics.add_discriminator_step(d_loss.detach(), real_scores.detach(), fake_scores.detach(), batch_size)
        classified = [real_logits, real_labels, fake_logits, fake_labels]
        if self.class_loss_weight and all(part is not None for part in classified):
            self.statistics.add_class_step((real_logits.detach(), real_labels), (fake_logits.detach(), fake_labels))
        if self.adaptive is not None:
            self.adaptive.observe(real_scores)
            self.adaptive.adjust(self.processes)
        return GeneratedBatch(fake, fake_labels)

    def _penalty(
        self,
        step: int,
        real_seen: torch.Tensor,
        real_labels: torch.Tensor | None,
        fake_seen: torch.Tensor,
        fake_labels: torch.Tensor | None,
    ) -> torch.Tensor | None:
        """The loss's penalty on what D saw, weighted for the steps it skips (``train.penalty_every``); else None.

        Penalties differentiate twice, which torch.compile does not: the plain module, in fp32. On what
        D saw, as ADA regularises (R1 on augmented real images).
        """
        if step % self.penalty_every != 0:
            return None
        fake_seen = fake_seen.float()
        penalised = self._penalised_discriminator(real_labels, fake_seen, fake_labels)
        penalty = self.loss.penalty(penalised, real_seen, fake_seen)
        return self.penalty_every * penalty if penalty is not None else None

    def update_generator(self, real: torch.Tensor, real_labels: torch.Tensor | None, generated: GeneratedBatch) -> None:
        """G's update, on the batch D's update generated or, as ``train.generator_batch`` says, a fresh one."""
        fake, fake_labels = generated
        self.discriminator.requires_grad_(False)  # G's step needs no gradients for D's weights
        with self.speed.autocast():
            if self.fresh_generator_batch is not None:
                z = torch.randn(self.fresh_generator_batch, self.latent_dim, device=self.device)
                fake_labels = self._generated_labels_for(self.fresh_generator_batch, real_labels)
                fake = synthesize(self.step_generator, z, fake_labels)
            # Augmentations drawn afresh, as in D's step.
            scores, class_logits = discriminate(self.step_discriminator, self.augment(fake), fake_labels)
            real_now = self._real_scores_for_generator(real, real_labels)
        g_loss = generator_loss_of(self.loss, scores.float(), real_now)
        class_loss = self._class_loss(class_logits, fake_labels)
        if class_loss is not None:
            g_loss = g_loss + class_loss
        self.discriminator.requires_grad_(True)
        if self.skip_nonfinite and not self._finite_in_every_process(g_loss):
            self.statistics.add_skipped_step()
            return
        apply_gradients(g_loss, self.optimizer_g, self.scaler_g)
        self.statistics.add_generator_step(g_loss.detach())
        if self.ema_generator is not None:
            update_ema(self.ema_generator, self.generator, self.ema_decay)

    @torch.no_grad()
    def _real_scores_for_generator(self, real: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        """D's scores of the real batch at its weights now, for a loss that judges G against them; else None.

        No gradient: G's gradient flows through its own images' scores alone."""
        if not self.loss.generator_reads_real_scores:
            return None
        return discriminate(self.step_discriminator, self.augment(real), labels)[0].float()

    def _penalised_discriminator(
        self, real_labels: torch.Tensor | None, fake: torch.Tensor, fake_labels: torch.Tensor | None
    ) -> nn.Module:
        """What a penalty differentiates: the plain D, with a conditional D's labels bound to the images."""
        if real_labels is None or fake_labels is None:
            return self.discriminator
        return LabelledDiscriminator(self.discriminator, real_labels, generated=(fake, fake_labels))

    def _finite_in_every_process(self, loss: torch.Tensor) -> bool:
        """train.on_nonfinite: skip: whether the loss is finite in every process (a host sync per step).

        Collective: every process takes each step, and all of them skip it or none does.
        """
        infinite = 0.0 if bool(torch.isfinite(loss.detach()).all()) else 1.0
        return self.processes.largest(infinite)[0] == 0.0

    # -- state ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
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
            "rng": noise_rng_state(self.device),
            "adaptive_augmentation": self.adaptive.state_dict() if self.adaptive is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
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
        set_noise_rng_state(state["rng"], self.device)
        saved_adaptive = state.get("adaptive_augmentation")
        if self.adaptive is not None and saved_adaptive is not None:
            self.adaptive.load_state_dict(saved_adaptive)

    def checkpoint_bytes(self) -> int:
        """About what a checkpoint takes: both networks, Adam's two moments of each, and the EMA copy."""

        def size(module: nn.Module) -> int:
            return sum(tensor.numel() * tensor.element_size() for tensor in module.state_dict().values())

        generator, discriminator = size(self.generator), size(self.discriminator)
        return 3 * (generator + discriminator) + (generator if self.ema_generator is not None else 0)


def adaptive_strength(config: RunConfig, loss: GANLoss, device: torch.device) -> AdaptiveStrength | None:
    """ADA's controller where ``augment.adaptive`` asks for it, reading D's real scores against the loss's threshold."""
    adaptive = config.augment.adaptive
    if adaptive is None:
        return None
    threshold = require_a_threshold(config.loss.name, loss.decision_threshold)
    return AdaptiveStrength(
        adaptive.target, adaptive.interval, adaptive.ramp_images, config.augment.strength, device, threshold
    )


def share_batch_norm(
    generator: nn.Module, discriminator: nn.Module, device: torch.device, reporter: Reporter
) -> tuple[nn.Module, nn.Module]:
    """With ``train.sync_batchnorm``, batch norm reads the statistics of the whole global batch."""
    if device.type != "cuda":
        reporter.note(
            "warning: train.sync_batchnorm: PyTorch's SyncBatchNorm runs on CUDA only; batch norm keeps each "
            "process's own statistics"
        )
        return generator, discriminator
    return nn.SyncBatchNorm.convert_sync_batchnorm(generator), nn.SyncBatchNorm.convert_sync_batchnorm(discriminator)


def data_parallel(
    generator: nn.Module,
    discriminator: nn.Module,
    processes: Processes,
    *,
    discriminator_has_unused_parameters: bool = False,
) -> tuple[nn.Module, nn.Module]:
    """The networks wrapped in DistributedDataParallel in a distributed run (a collective); as they are otherwise."""
    if not processes.distributed:
        return generator, discriminator
    device_ids = [processes.device] if processes.device.type == "cuda" else None
    return (
        DistributedDataParallel(generator, device_ids=device_ids),
        DistributedDataParallel(
            discriminator, device_ids=device_ids, find_unused_parameters=discriminator_has_unused_parameters
        ),
    )


def ema_copy(generator: nn.Module) -> nn.Module:
    average = copy.deepcopy(generator).eval()
    average.requires_grad_(False)
    return average


def apply_gradients(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)  # skipped when the scaled gradients overflowed
        scaler.update()


def make_adam(module: nn.Module, settings: OptimizerConfig, device: torch.device) -> torch.optim.Adam:
    # The fused kernel updates every parameter in one pass: on this project's CPU it took a third
    # of the time of the default (foreach) Adam for the MLP recipe's networks.
    return torch.optim.Adam(
        module.parameters(),
        lr=settings.lr,
        betas=tuple(settings.betas),
        weight_decay=settings.weight_decay,
        eps=settings.eps,
        fused=device.type in FUSED_ADAM_DEVICES or None,
    )


@torch.no_grad()
def update_ema(average: nn.Module, model: nn.Module, decay: float) -> None:
    for average_param, param in zip(average.parameters(), model.parameters(), strict=True):
        average_param.lerp_(param, 1.0 - decay)
    for average_buffer, buffer in zip(average.buffers(), model.buffers(), strict=True):
        average_buffer.copy_(buffer)


def noise_rng_state(device: torch.device) -> dict[str, Any]:
    """This process's generators of noise and dropout: the CPU's, and its GPU's when it trains on one."""
    cuda = [torch.cuda.get_rng_state(device)] if device.type == "cuda" else []
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def set_noise_rng_state(saved: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(saved["torch"])
    if saved["cuda"] and device.type == "cuda":
        torch.cuda.set_rng_state(saved["cuda"][0], device)
