"""Augmentation on little data: one config trained on a few images, without and with augmentation, scored alike.

    GANFORGE_DATA=../shared/data python benchmarks/small_data.py examples/mnist_fast.yaml --images 600 --steps 3000

Trains the config three times, one after another, on its dataset cut to ``--images`` images and
for the same ``--steps`` steps: without augmentation; with DiffAugment (``--pipeline``, at
strength 1); and with the same pipeline at ADA's adaptive strength (from 0, ``--ramp-images``
per unit of strength). Each run is evaluated once, at its end, as the config's ``eval`` section
says (the scores of its ``eval.metrics``, against the test split). Prints one row per run and each
score's ratio to the run without augmentation. With ``--out`` the three run folders are kept
there (grids, metrics.jsonl); without, they go to a temporary folder.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from ganforge.config import load_config
from ganforge.plugins import load_plugins
from ganforge.registry import Registry
from ganforge.training.progress import LineReporter
from ganforge.training.run_folder import RunFolder
from ganforge.training.runs import start_run

SCORES = ("fid", "kid", "precision", "recall", "modes_covered")


def variants(pipeline: str, ramp_images: int) -> dict[str, list[str]]:
    augment = f"augment.pipeline=[{pipeline}]"
    return {
        "none": [],
        "diffaugment": [augment, "augment.strength=1.0"],
        "diffaugment + ADA": [
            augment,
            "augment.strength=0.0",
            f"augment.adaptive={{target: 0.6, interval: 4, ramp_images: {ramp_images}}}",
        ],
    }


def epochs_for(config: Path, registry: Registry, overrides: list[str], steps: int) -> int:
    """Whole epochs of at least ``steps`` steps: the same for every run, whose settings change no batch size."""
    probe = load_config(config, registry, overrides, overrides_option="--set")
    batch = probe.config.train.batch_size
    images = int(probe.config.data.params["limit"])
    steps_per_epoch = max(1, images // batch)  # at least: a last short batch adds one more
    return math.ceil(steps / steps_per_epoch)


def train_and_score(
    config: Path, registry: Registry, name: str, overrides: list[str], folder: Path, epochs: int, steps: int
) -> dict[str, Any]:
    run = load_config(
        config,
        registry,
        [
            *overrides,
            f"train.epochs={epochs}",
            f"eval.every={epochs}",
            "train.checkpoint_every=0",
            f"train.sample_every={epochs}",
            f"train.log_every={max(1, steps // 10)}",
            f"output.dir={folder / name.replace(' + ', '_')}",
        ],
        overrides_option="--set",
    )
    began = time.perf_counter()
    trainer = start_run(run, reporter=LineReporter(Console(stderr=True)))
    seconds = time.perf_counter() - began
    [evaluation] = [r for r in RunFolder(run.config.run_dir()).metrics.read() if r["event"] == "eval"]
    # The eval record's own "seconds" is the evaluation's time: the row's is the training's.
    return {**evaluation, "name": name, "steps": trainer.progress.step, "seconds": seconds - evaluation["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", type=Path)
    parser.add_argument("--images", type=int, default=600, help="how many training images (data.params.limit)")
    parser.add_argument("--steps", type=int, default=3000, help="training steps of each run (whole epochs, at least)")
    parser.add_argument("--pipeline", default="translation, cutout", help="the augmentations, as augment.pipeline")
    parser.add_argument("--ramp-images", type=int, default=50_000, help="ADA's images per unit of strength")
    parser.add_argument("--out", type=Path, help="keep the run folders here")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override, as in run")
    args = parser.parse_args()

    registry = load_plugins().registry
    common = [f"data.params.limit={args.images}", *args.overrides]
    epochs = epochs_for(args.config, registry, common, args.steps)
    with tempfile.TemporaryDirectory(prefix="ganforge-small-data-") as scratch:
        folder = args.out or Path(scratch)
        rows = [
            train_and_score(args.config, registry, name, [*common, *settings], folder, epochs, args.steps)
            for name, settings in variants(args.pipeline, args.ramp_images).items()
        ]
    print_table(rows, args.images)


def print_table(rows: list[dict[str, Any]], images: int) -> None:
    shown = [score for score in SCORES if all(score in row for row in rows)]
    print(f"{images} training images; scores of each run's end, against the test split")
    print(f"{'run':<18} {'steps':>6} {'train s':>8} " + " ".join(f"{score:>13}" for score in shown))
    for row in rows:
        print(
            f"{row['name']:<18} {row['steps']:>6} {row['seconds']:>8.1f} "
            + " ".join(f"{row[score]:>13.4g}" for score in shown)
        )
    baseline = rows[0]
    for row in rows[1:]:
        if "fid" in shown and row["fid"] > 0:
            print(f"{row['name']}: FID {baseline['fid'] / row['fid']:.2f}x better than without augmentation")


if __name__ == "__main__":
    main()
