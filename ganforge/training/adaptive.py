"""ADA's augmentation strength (Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data"): raised while the discriminator overfits, lowered while it does not.

The overfitting heuristic is r_t = E[sign(D(x_real) - threshold)] over the real scores of the last
``interval`` steps, where the threshold is the loss's decision threshold (0 for logits, where this is
the paper's E[sign(D(x_real))]): 0 when D cannot tell real images from generated ones, 1 when it
calls every real one real.
Every ``interval`` steps the strength moves by sign(r_t - target) x (images seen since) /
``ramp_images``, so that it can go from 0 to 1 in ``ramp_images`` images, and is kept in [0, 1].
The paper's defaults: target 0.6, every 4 steps, 500k images.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch


class Summing(Protocol):
    def sum(self, values: torch.Tensor) -> torch.Tensor: ...


class AdaptiveStrength:
    def __init__(
        self,
        target: float,
        interval: int,
        ramp_images: int,
        strength: float,
        device: torch.device | str = "cpu",
        threshold: float = 0.0,
    ) -> None:
        self.target, self.interval, self.ramp_images, self.threshold = target, interval, ramp_images, threshold
        self.strength = strength
        self.last_r_t: float | None = None
        # Summed on the device, step by step: one host sync per interval, not per step.
        self.totals = torch.zeros(2, dtype=torch.float64, device=device)  # sum of sign(D(real)), images
        self.steps_since = 0

    def observe(self, real_scores: torch.Tensor) -> None:
        """One step's real scores, this process's share."""
        scores = real_scores.detach()
        self.totals[0] += torch.sign(scores - self.threshold).sum(dtype=torch.float64)
        self.totals[1] += scores.numel()
        self.steps_since += 1

    def adjust(self, processes: Summing) -> bool:
        """Every ``interval`` steps (collective: every process calls it each step): move the strength by
        what every process saw since the last move. Returns whether it moved."""
        if self.steps_since < self.interval:
            return False
        sign_sum, images = processes.sum(self.totals.clone()).tolist()
        r_t = sign_sum / images
        direction = (r_t > self.target) - (r_t < self.target)
        self.strength = min(1.0, max(0.0, self.strength + direction * images / self.ramp_images))
        self.last_r_t = r_t
        self.totals.zero_()
        self.steps_since = 0
        return True

    def state_dict(self) -> dict[str, Any]:
        return {
            "strength": self.strength,
            "last_r_t": self.last_r_t,
            "totals": self.totals.cpu().tolist(),
            "steps_since": self.steps_since,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.strength = float(state["strength"])
        self.last_r_t = None if state["last_r_t"] is None else float(state["last_r_t"])
        self.totals = torch.tensor(state["totals"], dtype=torch.float64, device=self.totals.device)
        self.steps_since = int(state["steps_since"])
