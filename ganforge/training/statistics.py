"""What the log says about training: sums of each step's statistics, the logged record, the divergence test.

Statistics are summed on the device, with a few batched tensor ops per step, and read only when
a line is logged, so there is no host sync per step. Row WINDOW sums since the last logged line,
row EPOCH since the epoch began. In a distributed run each process sums its own share; a logged
line averages them over the processes.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict
from typing import Any

import torch
from torch import nn
from torch.nn.functional import cross_entropy

from ganforge.checkpoints.fields import CLASS_KEYS, STAT_KEYS, Counts
from ganforge.contracts import GANLoss
from ganforge.errors import GanforgeError
from ganforge.training.distributed import Processes

WINDOW, EPOCH = 0, 1


class TrainingDiverged(GanforgeError):
    """Non-finite losses or weights: the run stops rather than save or train on them."""


class TrainingStatistics:
    """The WINDOW and EPOCH sums of this process's steps; both stay on the device."""

    def __init__(self, loss: GANLoss, processes: Processes, skip_nonfinite: bool, classifies: bool = False) -> None:
        self.loss = loss
        self.processes = processes
        self.device = processes.device
        self.skip_nonfinite = skip_nonfinite
        self.sums = torch.zeros(2, len(STAT_KEYS), device=self.device)
        self.class_sums = torch.zeros(2, len(CLASS_KEYS), device=self.device) if classifies else None
        self.real_row = torch.tensor([[True], [False]], device=self.device)
        self.g_loss_sums = torch.zeros(2, device=self.device)
        self.counts = [Counts(), Counts()]

    def add_discriminator_step(
        self, d_loss: torch.Tensor, real_scores: torch.Tensor, fake_scores: torch.Tensor, images: int
    ) -> None:
        # Few, batched tensor ops: on a CPU each op costs microseconds whatever its size.
        scores = torch.stack([real_scores, fake_scores])
        probabilities = self.loss.probability(scores)
        means = (scores if probabilities is None else probabilities).mean(dim=1)
        threshold = self.loss.decision_threshold
        if threshold is None:
            accuracies = torch.full((2,), float("nan"), device=self.device)
        else:  # real scores above the threshold and fake ones at or below it are right
            accuracies = ((scores > threshold) == self.real_row).float().mean(dim=1)
        self.sums += torch.cat([d_loss.reshape(1), means, accuracies])
        for counts in self.counts:
            counts.d_steps += 1
            counts.images += images

    def add_class_step(
        self, real: tuple[torch.Tensor, torch.Tensor], generated: tuple[torch.Tensor, torch.Tensor]
    ) -> None:
        """D's class logits and the true classes, of the real batch and the generated one, in a step D took."""
        if self.class_sums is None:
            return
        (real_logits, real_labels), (fake_logits, fake_labels) = real, generated
        losses = torch.stack(
            [cross_entropy(real_logits.float(), real_labels), cross_entropy(fake_logits.float(), fake_labels)]
        )
        accuracies = torch.stack(
            [
                (real_logits.argmax(dim=1) == real_labels).float().mean(),
                (fake_logits.argmax(dim=1) == fake_labels).float().mean(),
            ]
        )
        self.class_sums += torch.cat([losses.mean().reshape(1), accuracies])

    def add_generator_step(self, g_loss: torch.Tensor) -> None:
        self.g_loss_sums += g_loss
        for counts in self.counts:
            counts.g_steps += 1

    def add_skipped_step(self) -> None:
        for counts in self.counts:
            counts.skipped += 1

    def reset(self, row: int) -> None:
        self.sums[row].zero_()
        if self.class_sums is not None:
            self.class_sums[row].zero_()
        self.g_loss_sums[row].zero_()
        self.counts[row] = Counts()

    def all_reduce_record(
        self, event: str, row: int, epoch: int, step: int, seconds: float
    ) -> tuple[dict[str, Any], bool]:
        """A row's statistics, averaged over its steps and over the processes; and whether all were finite.

        Collective: every process calls it at the same logged line, for the sums are added up over
        the processes.
        """
        counts = self.counts[row]
        keys, rows = STAT_KEYS, [self.sums[row]]
        if self.class_sums is not None:
            keys, rows = keys + CLASS_KEYS, [*rows, self.class_sums[row]]
        local = torch.cat([*rows, self.g_loss_sums[row : row + 1]])
        totals = (self.processes.sum(local) / self.processes.world_size).tolist()  # the one host sync per line
        stats, g_loss_total = [total / max(1, counts.d_steps) for total in totals[:-1]], totals[-1]
        g_loss = g_loss_total / counts.g_steps if counts.g_steps else float("nan")
        images = counts.images * self.processes.world_size  # every process takes an equal share
        record: dict[str, Any] = {"event": event, "epoch": epoch, "step": step}
        record.update({key: none_if_not_finite(value) for key, value in zip(keys, stats, strict=True)})
        record["g_loss"] = none_if_not_finite(g_loss)
        record["images/s"] = round(images / seconds, 1) if seconds > 0 else None
        record["seconds"] = round(seconds, 3)
        if self.skip_nonfinite:
            record["skipped"] = counts.skipped
        class_loss = [totals[len(STAT_KEYS)]] if self.class_sums is not None else []
        losses = [totals[0], *class_loss, *([g_loss_total] if counts.g_steps else [])]
        return record, losses_finite(losses, counts)

    # -- in checkpoints, and around the compile fallback's retried step ---------------------

    def state_dict(self) -> dict[str, Any]:
        state = {
            "sums": self.sums.cpu(),
            "g_loss_sums": self.g_loss_sums.cpu(),
            "counts": [asdict(counts) for counts in self.counts],
        }
        if self.class_sums is not None:
            state["class_sums"] = self.class_sums.cpu()
        return state

    def load_mean(self, saved: list[dict[str, Any]]) -> None:
        """The mean of saved processes' sums: one process's own, or those of a run split another way.

        Class sums from a checkpoint saved before they were kept start at zero: that epoch's class
        statistics then cover only the steps taken since the resume, averaged over all of its steps."""
        self.sums.copy_(torch.stack([running["sums"] for running in saved]).mean(dim=0))
        self.g_loss_sums.copy_(torch.stack([running["g_loss_sums"] for running in saved]).mean(dim=0))
        if self.class_sums is not None and all("class_sums" in running for running in saved):
            self.class_sums.copy_(torch.stack([running["class_sums"] for running in saved]).mean(dim=0))
        self.counts = [Counts(**counts) for counts in saved[0]["counts"]]

    def snapshot(self) -> Any:
        return copy.deepcopy((self.sums, self.class_sums, self.g_loss_sums, self.counts))

    def restore(self, snapshot: Any) -> None:
        self.sums, self.class_sums, self.g_loss_sums, self.counts = snapshot


def losses_finite(losses: list[float], counts: Counts) -> bool:
    """The divergence test of a logged line: finite losses, and not every step of it skipped."""
    return all(math.isfinite(loss) for loss in losses) and (counts.d_steps > 0 or counts.skipped == 0)


def weights_finite(*modules: nn.Module) -> bool:
    """The divergence test before a checkpoint: never save non-finite weights over a good checkpoint."""
    parameters = [parameter for module in modules for parameter in module.parameters()]
    return bool(torch.stack([parameter.isfinite().all() for parameter in parameters]).all())


def divergence_error(what: str, last_good: str | None, skip_nonfinite: bool) -> TrainingDiverged:
    """``last_good``: the last good checkpoint and where the run stood when it was saved; None when none was."""
    saved = "no checkpoint was saved before it" if last_good is None else f"the last good checkpoint is {last_good}"
    advice = "try lower learning rates or another loss (hinge; wasserstein with its gradient penalty)"
    if not skip_nonfinite:
        advice += ", or train.on_nonfinite: skip"
    return TrainingDiverged(f"training diverged: {what}; {saved}. To go on, {advice}")


def none_if_not_finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
