"""Each process's own part of a checkpoint: its noise generators and its running statistics.

These differ between the processes of a distributed run, so rank 0 gathers every process's part
into the checkpoint's ``processes`` list. A resume with as many processes gives each its own back
and goes on exactly where the run stopped; one with another number goes on with the same recipe:
the mean of the saved statistics and, distributed, new noise streams.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ganforge.training.distributed import Processes, rank_seed
from ganforge.training.statistics import TrainingStatistics
from ganforge.training.step import noise_rng_state, set_noise_rng_state


class ProcessState:
    """This process's noise generators and running statistics, as a checkpoint saves and a resume sets them."""

    def __init__(
        self, processes: Processes, statistics: TrainingStatistics, seed: int, note: Callable[[str], None]
    ) -> None:
        self.processes = processes
        self.statistics = statistics
        self.seed = seed
        self.note = note

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": noise_rng_state(self.processes.device),
            "running_statistics": self.statistics.state_dict(),
        }

    def gather(self) -> list[dict[str, Any]] | None:
        """Every process's part, on rank 0; None in the others. Collective: every process calls it at the same point."""
        return self.processes.gather_on_main(self.state_dict())

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """This process's own part, where the checkpoint had as many processes (after the step's, which it reseeds)."""
        saved: list[dict[str, Any]] = state.get("processes") or []
        processes = self.processes
        if len(saved) == processes.world_size:
            own = saved[processes.rank]
            set_noise_rng_state(own["rng"], processes.device)
            self.statistics.load_mean([own["running_statistics"]])
            return
        if saved:  # the same number of images per step, split another way: the mean of their sums
            self.statistics.load_mean([process["running_statistics"] for process in saved])
        if processes.distributed:  # the same recipe, with fresh noise streams
            torch.manual_seed(rank_seed(self.seed, processes.rank, state["step"]))
            self.note(
                f"note: the checkpoint was saved by {max(1, len(saved))} process(es), this run has "
                f"{processes.world_size}: training goes on with new noise streams"
            )
