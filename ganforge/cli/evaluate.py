"""The ``eval`` command: a checkpoint, a file of images or real data scored offline, beside the real floor.

The evaluation code is imported inside the functions that use it: by this command alone, not by every command
that builds the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ganforge.cli.render import console, print_json, print_note
from ganforge.config.overrides import apply_overrides, parse_overrides
from ganforge.config.schema import DEFAULT_EVAL_SAMPLES
from ganforge.contracts import MAX_SEED
from ganforge.data_root import default_cache_dir, default_data_root
from ganforge.devices import resolve_device
from ganforge.errors import UsageError
from ganforge.exports import is_export
from ganforge.guards.memory import naming_allocation_failures
from ganforge.plugins import Plugins
from ganforge.training.run_folder import RunFolder

if TYPE_CHECKING:
    import torch

    from ganforge.evaluation.offline import OfflineScores, Scoring
    from ganforge.registry import Chosen, Registry


def evaluate(
    ctx: typer.Context,
    target: Annotated[
        Path | None,
        typer.Argument(help="A run folder (its checkpoints/last.pt), a checkpoint file, or a ganforge export folder."),
    ] = None,
    samples: Annotated[
        Path | None,
        typer.Option("--samples", help="Score images made elsewhere: a .pt or .npy tensor [N, C, H, W]."),
    ] = None,
    data: Annotated[str | None, typer.Option("--data", help="The dataset --samples is compared with.")] = None,
    real: Annotated[
        str | None, typer.Option("--real", help="Score a dataset's train split against its test split: the floor.")
    ] = None,
    data_param: Annotated[
        list[str] | None, typer.Option("--data-param", help="A param of --data/--real as key=value; repeatable.")
    ] = None,
    n: Annotated[
        int,
        typer.Option("--n", min=1, help="Generated (and reference) images to score; of --samples, the first N."),
    ] = DEFAULT_EVAL_SAMPLES,
    metrics: Annotated[
        str | None, typer.Option("--metrics", help="Comma-separated metric names; default: every installed one.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed of the generator's noise.")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    ema: Annotated[bool, typer.Option("--ema/--no-ema", help="Use the EMA generator when the run kept one.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable scores, floor and protocol.")] = False,
    per_class: Annotated[
        bool,
        typer.Option(
            "--per-class",
            help="A conditional generator's checkpoint: also class_accuracy and intra_fid for each class alone.",
        ),
    ] = False,
) -> None:
    """Score a checkpoint, a file of images, or real data with FID, KID, classifier score, ... offline."""
    check_one_source(target, samples, data, real)
    if per_class and target is None:
        raise UsageError("--per-class scores a conditional generator's checkpoint: give TARGET, a run folder or one")
    plugins: Plugins = ctx.obj
    chosen_metrics = metrics_to_score(plugins.registry, metrics, n)
    params = apply_overrides({}, parse_overrides(data_param or [], option="--data-param"), option="--data-param")
    scoring = offline_scoring(chosen_metrics, n, resolve_device(device, option="--device"))
    with naming_allocation_failures(f"scoring {n:,} images (--n) on {scoring.device}", "score fewer with --n"):
        result = score_source(
            plugins.registry,
            scoring,
            params,
            target=target,
            samples=samples,
            data=data,
            real=real,
            seed=seed,
            use_ema=ema,
            per_class=per_class,
        )
    report(result, as_json=as_json, floor_only=real is not None)


def metrics_to_score(registry: Registry, metrics: str | None, n: int) -> list[Chosen]:
    """The metrics --metrics names (every installed one without it), each checked to be computable from --n images."""
    from ganforge.evaluation.protocol import check_sample_needs, choose_metrics

    names = [name.strip() for name in metrics.split(",") if name.strip()] if metrics else None
    chosen_metrics = choose_metrics(registry, names)
    check_sample_needs(chosen_metrics, generated=n, real=n, counted=f"--n {n}")
    return chosen_metrics


def offline_scoring(chosen_metrics: list[Chosen], n: int, device: torch.device) -> Scoring:
    """These metrics on n images (and n reference ones), on this device, with this machine's data and cache folders."""
    from ganforge.evaluation.offline import Scoring

    return Scoring(
        metrics=chosen_metrics,
        count=n,
        device=device,
        data_root=default_data_root(),
        cache_dir=default_cache_dir(),
        log=print_note,
    )


def score_source(
    registry: Registry,
    scoring: Scoring,
    data_params: dict[str, Any],
    *,
    target: Path | None,
    samples: Path | None,
    data: str | None,
    real: str | None,
    seed: int,
    use_ema: bool,
    per_class: bool,
) -> OfflineScores:
    """The scores of the one source given (see ``check_one_source``): a checkpoint (of a run folder, its last; or
    an export folder), a file of images against the dataset --data names, or the floor alone of --real's dataset."""
    from ganforge.evaluation.offline import score_checkpoint, score_real_data, score_samples_file

    if target is not None:
        checkpoint = RunFolder(target).checkpoint_path() if target.is_dir() and not is_export(target) else target
        return score_checkpoint(
            checkpoint,
            registry,
            scoring,
            seed=seed,
            use_ema=use_ema,
            data_params=data_params,
            memory_advice="score fewer with --n",
            per_class=per_class,
        )
    if samples is not None:
        advice = "read fewer with --n"
        return score_samples_file(samples, data, registry, scoring, data_params=data_params, memory_advice=advice)
    return score_real_data(real, registry, scoring, data_params=data_params)


def report(result: OfflineScores, *, as_json: bool, floor_only: bool) -> None:
    """The scores beside the floor (and a conditional generator's per class) as tables, or as JSON."""
    names = result.evaluation.spec.class_names
    if as_json:
        goals = {key: goal.better for key, goal in result.goals().items()}
        scores = {"scores": result.scores, "floor": result.floor, "goals": goals, "protocol": result.protocol}
        if result.by_class is not None:
            scores["by_class"] = [
                {"class": k, "name": names[k] if names else str(k), **values} for k, values in result.by_class.items()
            ]
        print_json(scores)
        return
    print_scores(result, floor_only=floor_only)
    if result.by_class is not None:
        print_class_scores(result.by_class, names)


def check_one_source(target: Path | None, samples: Path | None, data: str | None, real: str | None) -> None:
    """Exactly one thing to score: a checkpoint, a file of images with the dataset it is compared with, or a dataset."""
    given = [option for option, value in (("TARGET", target), ("--samples", samples), ("--real", real)) if value]
    if len(given) != 1:
        raise UsageError(
            "give one of: TARGET (a run folder or checkpoint), --samples FILE --data DATASET, or --real DATASET"
        )
    if samples is not None and data is None:
        raise UsageError("--samples needs --data DATASET: the real images they are compared with")
    if data is not None and samples is None:
        raise UsageError("--data goes with --samples; a checkpoint brings its own dataset, --real names one")


def print_scores(result: OfflineScores, floor_only: bool) -> None:
    """A table of each value, generated beside the real floor (the floor alone for --real), then the protocol."""
    arrows = {"lower": "lower", "higher": "higher", None: ""}
    table = Table(title="Scores", title_justify="left")
    table.add_column("value", no_wrap=True)
    if not floor_only:
        table.add_column("generated", justify="right")
    table.add_column("real floor", justify="right")
    table.add_column("better", no_wrap=True)
    goals, floor = result.goals(), result.floor
    for key, value in result.scores.items():
        cells = [f"{floor[key]:.4g}"] if floor_only else [f"{value:.4g}", f"{floor[key]:.4g}"]
        table.add_row(key, *cells, arrows[goals[key].better])
    console.print(table)
    from ganforge.evaluation.protocol import describe_feature_networks

    protocol = result.protocol
    for line in (
        *describe_feature_networks(protocol),
        f"generated: {protocol['generated']}",
        f"reference: {protocol['reference']}",
        f"real floor: {protocol['floor']}",
    ):
        console.print(line, highlight=False, soft_wrap=True)


def print_class_scores(by_class: dict[int, dict[str, float]], names: tuple[str, ...] | None) -> None:
    """A row per class of the class-by-class values, each class's images scored alone.

    A column equal to an earlier one in every row is left out: for one class alone, the worst class
    is that class (class_accuracy_min is class_accuracy).
    """
    rows = list(by_class.values())
    keys: list[str] = []
    for key in rows[0]:
        if not any(all(row[key] == row[kept] for row in rows) for kept in keys):
            keys.append(key)
    table = Table(title="Per class", title_justify="left")
    table.add_column("class", no_wrap=True)
    for key in keys:
        table.add_column(key, justify="right")
    for k, values in by_class.items():
        label = f"{k} {names[k]}" if names and names[k] != str(k) else str(k)
        table.add_row(label, *(f"{values[key]:.4g}" for key in keys))
    console.print(table)
