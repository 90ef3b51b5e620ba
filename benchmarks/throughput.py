"""Images/s of ganforge's trainer against two plain PyTorch loops doing the same maths.

    GANFORGE_DATA=../shared/data python benchmarks/throughput.py --recipe seed001

Contenders, each training its own copy of the recipe's networks from the same initial weights:

  ganforge      the Trainer that `ganforge run` uses, one epoch per round over a subset of
                exactly --steps batches (data.params.limit), with its live progress display.
  seeds_loader  (a) the seeds' data path: torchvision's MNIST with per-item ToTensor and
                Normalize(0.5, 0.5), through a shuffling DataLoader, as both seed scripts feed
                their loops.
  plain_tensor  (b) the best plain loop: the subset as one float tensor on the device, batches
                taken by index from a per-epoch permutation.

Both plain loops do what ganforge's step does: a fresh noise batch drawn on the device, BCE on
logits (the non-saturating loss), the generator step on the generated batch (or a fresh one, as
the recipe's train.generator_batch says) with the discriminator's weights frozen, Adam with the
recipe's settings, zero_grad(set_to_none=True), and the seeds' printed statistics (d_loss,
g_loss, D(x), D(G(z))) summed on the device and read once a round. They use the precision,
torch.compile and memory format that ganforge resolved for the device, so only the loop differs.
The contenders take turns, a round each, in one process, starting with a different one each
round; the first --warmup rounds are not counted.
"""

from __future__ import annotations

import argparse
import gzip
import io
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from rich.console import Console
from torch.utils.data import DataLoader, Subset
from torchvision import transforms

import ganforge
from ganforge.config import ResolvedRun, load_config
from ganforge.contracts import to_signed_unit
from ganforge.data_root import default_data_root
from ganforge.plugins import load_plugins
from ganforge.registry import Registry
from ganforge.training.progress import RichReporter
from ganforge.training.run_folder import RunFolder
from ganforge.training.speed import SpeedPlan
from ganforge.training.step import make_adam
from ganforge.training.trainer import Trainer

REPOSITORY = Path(__file__).resolve().parent.parent
RECIPES = {
    "seed001": REPOSITORY / "examples" / "mnist_mlp.yaml",
    "seed000": REPOSITORY / "examples" / "mnist_dcgan.yaml",
}
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="seed001", help="an MNIST recipe of examples/")
    parser.add_argument("--steps", type=int, default=200, help="training steps per contender per round")
    parser.add_argument("--rounds", type=int, default=5, help="counted rounds")
    parser.add_argument("--warmup", type=int, default=1, help="rounds run first and not counted")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override, as in run")
    args = parser.parse_args()

    registry = load_plugins().registry
    with tempfile.TemporaryDirectory(prefix="ganforge-throughput-") as scratch:
        scratch_dir = Path(scratch)
        run = load_config(RECIPES[args.recipe], registry, overrides=benchmark_overrides(args, registry, scratch_dir))
        check_plain_loops_match(run)
        reporter = RichReporter(Console(file=io.StringIO(), force_terminal=True))
        trainer = make_trainer(run, reporter)
        speed = trainer.gan_step.speed
        contenders: dict[str, Callable[[], int]] = {
            "ganforge": ganforge_round(trainer),
            "seeds_loader": PlainLoop(run, trainer, seeds_loader_batches(run, speed, scratch_dir)).round,
            "plain_tensor": PlainLoop(run, trainer, tensor_batches(run, speed)).round,
        }
        print_setup(args, run, speed)
        # ganforge's live display runs as in `ganforge run`, drawing into a string.
        reporter.start(0, 1, len(trainer.batches))
        try:
            rates = race(contenders, args.rounds, args.warmup, speed.device)
        finally:
            reporter.finish()
    print_results(rates)


def benchmark_overrides(args: argparse.Namespace, registry: Registry, scratch_dir: Path) -> list[str]:
    run = load_config(RECIPES[args.recipe], registry, args.overrides, overrides_option="--set")
    batch_size = run.config.train.batch_size
    return [
        f"data.params.limit={args.steps * batch_size}",
        "eval.every=0",
        f"output.dir={scratch_dir / 'run'}",
        "train.log_every=100000",
        *args.overrides,
    ]


def check_plain_loops_match(run: ResolvedRun) -> None:
    """The plain loops hard-code one recipe's maths; refuse anything else rather than compare unlike loops."""
    config = run.config
    problems = []
    if run.loss.component.name != "non_saturating" or run.loss.params.model_dump() != {
        "label_smoothing": 0.0,
        "r1_gamma": 0.0,
        "r2_gamma": 0.0,
    }:
        problems.append("loss must be plain non_saturating")
    if config.train.n_critic != 1 or config.train.ema_decay is not None:
        problems.append("train.n_critic must be 1 and train.ema_decay null")
    if run.data.component.name != "mnist":
        problems.append("data must be mnist")
    if run.augmentations:
        problems.append("augment.pipeline must be empty")
    if problems:
        sys.exit("the plain loops cannot do the same maths: " + "; ".join(problems))


def make_trainer(run: ResolvedRun, reporter: RichReporter) -> Trainer:
    folder = RunFolder(run.config.run_dir())
    trainer = Trainer(run, folder, reporter)
    folder.create(overwrite=False)
    return trainer


def ganforge_round(trainer: Trainer) -> Callable[[], int]:
    def one_round() -> int:
        trainer.run_epoch()
        return trainer.config.train.batch_size * len(trainer.batches)

    return one_round


# -- the plain loops -------------------------------------------------------------------------------


class PlainLoop:
    """A GAN step written out by hand, fed by any iterator of real batches."""

    def __init__(self, run: ResolvedRun, trainer: Trainer, epoch_batches: Callable[[], Iterator[torch.Tensor]]):
        config, speed = run.config, trainer.gan_step.speed
        torch.manual_seed(config.seed)  # the same initial weights as ganforge's networks
        models = run.model.build(trainer.spec)
        self.generator = models.generator.to(speed.device)
        self.discriminator = models.discriminator.to(speed.device)
        if speed.channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.discriminator.to(memory_format=torch.channels_last)
        self.step_generator = torch.compile(self.generator) if speed.compile else self.generator
        self.step_discriminator = torch.compile(self.discriminator) if speed.compile else self.discriminator
        self.optimizer_g = make_adam(self.generator, config.optim.generator, speed.device)
        self.optimizer_d = make_adam(self.discriminator, config.optim.discriminator, speed.device)
        self.latent_dim = models.latent_dim
        self.generator_batch = config.train.fresh_generator_batch()  # None: G's step reuses D's batch
        self.speed = speed
        self.epoch_batches = epoch_batches

    def round(self) -> int:
        device = self.speed.device
        sums = torch.zeros(4, device=device)  # d_loss, g_loss, D(x), D(G(z))
        images = 0
        for real in self.epoch_batches():
            batch_size = real.shape[0]
            z = torch.randn(batch_size, self.latent_dim, device=device)
            with self.speed.autocast():
                fake = self.step_generator(z)
                real_scores = self.step_discriminator(real)
                fake_scores = self.step_discriminator(fake.detach())
            real_scores, fake_scores = real_scores.float(), fake_scores.float()
            d_loss = F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
            self.optimizer_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.optimizer_d.step()

            self.discriminator.requires_grad_(False)
            with self.speed.autocast():
                if self.generator_batch is not None:
                    fake = self.step_generator(torch.randn(self.generator_batch, self.latent_dim, device=device))
                scores = self.step_discriminator(fake)
            g_loss = F.softplus(-scores.float()).mean()
            self.optimizer_g.zero_grad(set_to_none=True)
            g_loss.backward()
            self.optimizer_g.step()
            self.discriminator.requires_grad_(True)

            sums += torch.stack(
                [d_loss.detach(), g_loss.detach(), real_scores.detach().sigmoid().mean(), fake_scores.sigmoid().mean()]
            )
            images += batch_size
        sums.tolist()  # the statistics a seed prints, read once
        return images


def seeds_loader_batches(run: ResolvedRun, speed: SpeedPlan, scratch_dir: Path) -> Callable[[], Iterator[torch.Tensor]]:
    root = unpacked_mnist(scratch_dir)
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    dataset = torchvision.datasets.MNIST(str(root), train=True, download=False, transform=transform)
    subset = Subset(dataset, range(run.data.params.limit))
    loader = DataLoader(subset, batch_size=run.config.train.batch_size, shuffle=True)

    def epoch() -> Iterator[torch.Tensor]:
        for images, _labels in loader:
            yield speed.prepare_batch(images.to(speed.device))

    return epoch


def tensor_batches(run: ResolvedRun, speed: SpeedPlan) -> Callable[[], Iterator[torch.Tensor]]:
    dataset = run.data.build(default_data_root()).dataset
    images = speed.prepare_batch(to_signed_unit(dataset.images.to(speed.device)))
    batch_size = run.config.train.batch_size

    def epoch() -> Iterator[torch.Tensor]:
        order = torch.randperm(images.shape[0], device=speed.device)
        for start in range(0, images.shape[0], batch_size):
            yield torch.index_select(images, 0, order[start : start + batch_size])

    return epoch


def unpacked_mnist(scratch_dir: Path) -> Path:
    """torchvision's MNIST reads unpacked IDX files from <root>/MNIST/raw/: unpack ganforge's copy there."""
    source = default_data_root() / "mnist"
    raw = scratch_dir / "torchvision" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:  # torchvision wants both splits present
        packed, plain = source / f"{name}.gz", source / name
        if plain.exists():
            shutil.copyfile(plain, raw / name)
        else:
            with gzip.open(packed) as stream, (raw / name).open("wb") as out:
                shutil.copyfileobj(stream, out)
    return scratch_dir / "torchvision"


# -- timing and report -------------------------------------------------------------------------------


def race(
    contenders: dict[str, Callable[[], int]], rounds: int, warmup: int, device: torch.device
) -> dict[str, list[float]]:
    names = list(contenders)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for index in range(warmup + rounds):
        counted = index >= warmup
        order = names[index % len(names) :] + names[: index % len(names)]
        line = []
        for name in order:
            synchronize(device)
            started = time.perf_counter()
            images = contenders[name]()
            synchronize(device)
            rate = images / (time.perf_counter() - started)
            if counted:
                rates[name].append(rate)
            line.append(f"{name} {rate:,.0f}")
        # The live display captures sys.stdout while it runs.
        report = f"round {index + 1}{'' if counted else ' (warm-up)'}: " + ", ".join(line) + " images/s"
        print(report, file=sys.__stdout__, flush=True)
    return rates


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def print_setup(args: argparse.Namespace, run: ResolvedRun, speed: SpeedPlan) -> None:
    config = run.config
    if speed.device.type == "cuda":
        machine = torch.cuda.get_device_name(speed.device)
    else:
        machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"
    print(f"machine: {platform.node()}: {machine}; {speed.describe()}")
    print(
        f"versions: python {platform.python_version()}, torch {torch.__version__}, "
        f"torchvision {torchvision.__version__}, ganforge {ganforge.__version__}"
    )
    print(
        f"recipe {args.recipe} ({config.name}: {run.model.component.name}, batch {config.train.batch_size}); "
        f"{args.steps} steps per contender per round, {args.warmup} warm-up + {args.rounds} counted rounds"
    )


def print_results(rates: dict[str, list[float]]) -> None:
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(f"{'contender':<14} {'median images/s':>16} {'min':>10} {'max':>10}")
    for name, values in rates.items():
        print(f"{name:<14} {medians[name]:>16,.0f} {min(values):>10,.0f} {max(values):>10,.0f}")
    # Each round's ratio compares neighbours in time, so drift in the machine's speed cancels.
    for name, label in (("plain_tensor", "b"), ("seeds_loader", "a")):
        ratios = [ours / theirs for ours, theirs in zip(rates["ganforge"], rates[name], strict=True)]
        print(
            f"ganforge / {name} ({label}): {statistics.median(ratios):.3f}x median of rounds "
            f"(range {min(ratios):.3f}-{max(ratios):.3f}); ratio of medians {medians['ganforge'] / medians[name]:.3f}x"
        )


if __name__ == "__main__":
    main()
