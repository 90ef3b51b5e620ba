"""Seed 000 against its program: ganforge's examples/mnist_dcgan.yaml and the Keras program, step by step.

    GANFORGE_DATA=../shared/data python benchmarks/seed000_parity.py --steps 468 --out /tmp/parity \\
        --program-log keras.log
    ganforge eval --samples /tmp/parity/ganforge.npy --data mnist      # and the program's samples likewise

Trains the config for ``--steps`` steps (its dataset cut to steps x batch_size images, so the run is
those steps exactly) and prints, every 10 steps as the program does, D's loss and the mean pixel
of the generated batch D judged. D's loss is printed on the program's scale: Keras' binary
cross-entropy over the 128 real and 128 generated images together, half of ganforge's sum of the
real and the generated mean. With ``--program-log`` (the program's output: ``step N: d=.. g=..
G mean pixel ..``) the two columns stand side by side. Saves 10,000 samples in [0, 1] to
OUT/ganforge.npy, as the program saves its own, and a 10x10 grid to OUT/ganforge.png.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console

from ganforge.config import load_config
from ganforge.generation import generate
from ganforge.grids import save_grid
from ganforge.plugins import load_plugins
from ganforge.training.progress import LineReporter
from ganforge.training.run_folder import RunFolder
from ganforge.training.trainer import Trainer

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "mnist_dcgan.yaml"
PROGRAM_LINE = re.compile(r"step (\d+): d=([\d.]+) g=([\d.]+) G mean pixel ([\d.]+)")
EVERY = 10
SAMPLES = 10_000


class StepWatch:
    """What the program prints, read off the networks' training-mode calls: D's real and generated scores,
    and the mean pixel of the generated batch D judged (the first generator call of each step)."""

    def __init__(self, generator: torch.nn.Module, discriminator: torch.nn.Module) -> None:
        self.generated_means: list[float] = []
        self.scores: list[torch.Tensor] = []
        self.discriminator_calls = 0
        generator.register_forward_hook(self._generated)
        discriminator.register_forward_hook(self._scored)

    def _generated(self, module, inputs, output) -> None:
        # Two calls a step with a fresh batch for G's step: D's batch comes first.
        if module.training and len(self.generated_means) == self.discriminator_calls // 3:
            self.generated_means.append(float((output.detach().float().mean() + 1) / 2))

    def _scored(self, module, inputs, output) -> None:
        if module.training:
            self.discriminator_calls += 1
            self.scores.append(output.detach().float())

    def discriminator_losses(self) -> list[float]:
        """Per step, Keras' BCE over D's real and generated images together."""
        real, fake = self.scores[0::3], self.scores[1::3]
        return [
            float((F.softplus(-r).sum() + F.softplus(f).sum()) / (len(r) + len(f)))
            for r, f in zip(real, fake, strict=True)
        ]


def program_trajectory(log: Path | None) -> dict[int, tuple[float, float]]:
    if log is None:
        return {}
    found = (PROGRAM_LINE.search(line) for line in log.read_text().splitlines())
    return {int(m[1]): (float(m[2]), float(m[4])) for m in found if m}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--steps", type=int, default=468)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--program-log", type=Path, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()

    registry = load_plugins().registry
    probe = load_config(args.config, registry, args.overrides)
    images = args.steps * probe.config.train.batch_size
    overrides = [
        *args.overrides,
        f"data.params.limit={images}",
        "train.epochs=1",
        "eval.every=0",
        "train.sample_every=0",
        f"output.dir={args.out / 'run'}",
    ]
    run = load_config(args.config, registry, overrides)
    console = Console()
    trainer = Trainer(run, RunFolder(run.config.run_dir()), LineReporter(console))
    watch = StepWatch(trainer.gan_step.generator, trainer.gan_step.discriminator)
    trainer.folder.create(overwrite=True)
    try:
        trainer.folder.write_config(trainer.resolved_config)
        trainer.fit()
    finally:
        trainer.folder.release()

    program = program_trajectory(args.program_log)
    losses = watch.discriminator_losses()
    console.print(f"step  {'program d':>9} {'ganforge d':>10}  {'program mean':>12} {'ganforge mean':>13}")
    for index, (loss, mean) in enumerate(zip(losses, watch.generated_means, strict=True)):
        step = index + 1
        if index % EVERY and step != len(losses):
            continue
        theirs = program.get(step)
        their_loss, their_mean = (f"{theirs[0]:.3f}", f"{theirs[1]:.4f}") if theirs else ("-", "-")
        console.print(f"{step:>4}  {their_loss:>9} {loss:>10.3f}  {their_mean:>12} {mean:>13.4f}")

    torch.manual_seed(0)
    noise = torch.randn(SAMPLES, trainer.latent_dim)
    samples = generate(trainer.gan_step.generator, noise, trainer.device, trainer.spec.shape)
    np.save(args.out / "ganforge.npy", ((samples[:, 0] + 1) / 2).clamp(0, 1).numpy())
    save_grid(samples[:100], args.out / "ganforge.png")
    console.print(f"saved {args.out / 'ganforge.npy'} and {args.out / 'ganforge.png'}")


if __name__ == "__main__":
    main()
