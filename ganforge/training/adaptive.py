"""ADA's augmentation strength (Karras et al. 2020, "Training Generative Adversarial Networks with
Limited Data"): raised while the discriminator overfits, lowered while it does not.

The overfitting heuristic is r_t = E[sign(D(x_real))] over the real scores of the last ``interval``
steps: 0 when D cannot tell real images from generated ones, 1 when it is sure of every real one.
Every ``interval`` steps the strength moves by sign(r_t - target) x (images seen since) /
``ramp_images``, so that it can go from 0 to 1 in ``ramp_images`` images, and is kept in [0, 1].
The paper's defaults: target 0.6, every 4 steps, 500k images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AdaptiveStrength:
    target: float = 0.6
    interval: int = 4
    ramp_images: int = 500_000
    strength: float = 0.0
    sign_sum: float = 0.0
    score_count: int = 0
    steps_since: int = 0
    images_since: int = 0
    last_r_t: float | None = None

    def observe(self, real_scores: torch.Tensor) -> None:
        """One step's real scores (this process's share; summed over processes by ``totals``)."""
        self.sign_sum += float(torch.sign(real_scores.detach()).sum())
        self.score_count += real_scores.numel()
        self.images_since += real_scores.numel()
        self.steps_since += 1

    def due(self) -> bool:
        return self.steps_since >= self.interval

    def adjust(self, sign_sum: float, score_count: int, images: int) -> float:
        """Move the strength by what the interval saw (totals over every process); returns r_t."""
        r_t = sign_sum / score_count
        direction = (r_t > self.target) - (r_t < self.target)
        self.strength = min(1.0, max(0.0, self.strength + direction * images / self.ramp_images))
        self.sign_sum, self.score_count, self.steps_since, self.images_since = 0.0, 0, 0, 0
        self.last_r_t = r_t
        return r_t

    def state_dict(self) -> dict[str, float | int | None]:
        return {
            "strength": self.strength,
            "sign_sum": self.sign_sum,
            "score_count": self.score_count,
            "steps_since": self.steps_since,
            "images_since": self.images_since,
            "last_r_t": self.last_r_t,
        }

    def load_state_dict(self, state: dict[str, float | int | None]) -> None:
        self.strength = float(state["strength"])  # type: ignore[arg-type]
        self.sign_sum = float(state["sign_sum"])  # type: ignore[arg-type]
        self.score_count = int(state["score_count"])  # type: ignore[arg-type]
        self.steps_since = int(state["steps_since"])  # type: ignore[arg-type]
        self.images_since = int(state["images_since"])  # type: ignore[arg-type]
        last = state["last_r_t"]
        self.last_r_t = None if last is None else float(last)
