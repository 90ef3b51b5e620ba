"""Forward + backward speed of the built-in architectures, side by side, on this machine's CPU.

    python benchmarks/architectures.py --size 64 --batch 32 --steps 5 --rounds 3

Each architecture is built through the registry, as a run builds it, with its default params (or
``--params NAME=JSON``) for RGB images of ``--size`` px and 10 classes, unconditional. One step:
G(z) for a batch, D on those images and on as many real-shaped ones, and the backward pass of the
sum of D's scores through both networks, as a training step's D and G updates do between them
(without the optimisers). After ``--warmup`` untimed steps, the architectures take turns, ``--steps``
steps each per round, so that a noisy machine slows them alike. Printed: each one's parameter
counts and its median images/s over the rounds (generated images per second of wall time).

At ``--size 32`` the defaults are SNGAN's CIFAR-10 networks (resnet) and R3GAN's paper CIFAR-10
networks (r3gan, whose printed counts are the reference's: tests/components/test_r3gan.py).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from ganforge.contracts import DataSpec, GANModels
from ganforge.plugins import load_plugins
from ganforge.registry import Kind


def parse_params(items: list[str]) -> dict[str, dict]:
    params: dict[str, dict] = {}
    for item in items:
        name, _, text = item.partition("=")
        params[name] = json.loads(text)
    return params


def step(models: GANModels, batch: int, shape: tuple[int, int, int]) -> None:
    fakes = models.generator(torch.randn(batch, models.latent_dim))
    reals = torch.rand(batch, *shape) * 2 - 1
    (models.discriminator(fakes).sum() + models.discriminator(reals).sum()).backward()
    models.generator.zero_grad(set_to_none=True)
    models.discriminator.zero_grad(set_to_none=True)


def images_per_second(models: GANModels, batch: int, shape: tuple[int, int, int], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step(models, batch, shape)
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architectures", nargs="+", default=["resnet", "r3gan", "dcgan"], help="registry names")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=32, help="images per step")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per architecture per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of turns")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per architecture first")
    parser.add_argument("--params", action="append", default=[], help="NAME=JSON params of one architecture")
    args = parser.parse_args()

    registry = load_plugins(strict=True).registry
    overrides = parse_params(args.params)
    shape = (3, args.size, args.size)
    torch.manual_seed(0)
    built = {
        name: registry.get(Kind.ARCHITECTURE, name).build(overrides.get(name, {}), DataSpec(shape, 10))
        for name in args.architectures
    }
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
        f"{args.size} px RGB, batch {args.batch}, forward + backward of G and D on cpu"
    )
    for models in built.values():
        models.generator.train()
        models.discriminator.train()
        for _ in range(args.warmup):
            step(models, args.batch, shape)
    speeds: dict[str, list[float]] = {name: [] for name in built}
    for _ in range(args.rounds):
        for name, models in built.items():
            speeds[name].append(images_per_second(models, args.batch, shape, args.steps))
    print(f"{'architecture':<14}{'G params':>14}{'D params':>14}{'images/s':>12}")
    for name, models in built.items():
        counts = [sum(p.numel() for p in network.parameters()) for network in (models.generator, models.discriminator)]
        print(f"{name:<14}{counts[0]:>14,}{counts[1]:>14,}{statistics.median(speeds[name]):>12,.1f}")


if __name__ == "__main__":
    main()
