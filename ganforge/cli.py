"""The ``ganforge`` command line: typer commands, rich output, errors on stderr with an exit code."""

import dataclasses
import json
import sys
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import torch
import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from ganforge import __version__, startup
from ganforge.checkpoint import CheckpointError
from ganforge.config import apply_overrides, json_schema, load_config, parse_overrides
from ganforge.contracts import MAX_SEED
from ganforge.data_root import default_cache_dir, default_data_root
from ganforge.devices import resolve_device
from ganforge.errors import ConfigError, GanforgeError, UsageError
from ganforge.evaluation.domain import load_domain
from ganforge.evaluation.protocol import (
    DEFAULT_SAMPLES,
    Evaluation,
    check_sample_needs,
    choose_metrics,
    evaluate_domain,
    generated_images,
    read_samples,
    scoring_bytes,
)
from ganforge.files import write_atomically
from ganforge.generation import load_generator
from ganforge.grids import grid_bytes, save_grid
from ganforge.memory import check_memory
from ganforge.outputs import check_output_file, reported_write_failure
from ganforge.plugins import Plugins, PluginState, default_plugins
from ganforge.registry import Component, Kind, Registry, same_distribution
from ganforge.startup import Interrupted
from ganforge.testing import CHECKS, CheckResult, check_component
from ganforge.training.distributed import (
    LaunchStopped,
    check_launch,
    join_processes,
    launch_on_this_machine,
    launched_rank,
    rank_label,
)
from ganforge.training.interruption import RunInterrupted
from ganforge.training.preflight import machine_warnings
from ganforge.training.progress import LineReporter, RichReporter
from ganforge.training.trainer import resume_run, start_run

console = Console()
err_console = Console(stderr=True)


def report_error(error: GanforgeError) -> None:
    message = f"{rank_label()}{error}"
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


class _ReportingGroup(TyperGroup):
    """Turns a GanforgeError from any command, a plugin's too, into a message and its exit code."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except GanforgeError as error:
            report_error(error)
            raise typer.Exit(error.exit_code) from None


def create_app(plugins: Plugins) -> typer.Typer:
    """The CLI over a set of loaded plugins (tests pass an isolated set)."""
    app = typer.Typer(
        cls=_ReportingGroup,
        name="ganforge",
        help="Train GANs from a YAML config; every architecture, loss, dataset and metric is a plugin.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    registry = plugins.registry

    def print_version(value: bool) -> None:
        if value:
            console.print(f"ganforge {__version__}", highlight=False)
            raise typer.Exit()

    @app.callback()
    def root(
        version: Annotated[
            bool, typer.Option("--version", help="Print the version and exit.", callback=print_version, is_eager=True)
        ] = False,
    ) -> None:
        """Train GANs from a YAML config; every architecture, loss, dataset and metric is a plugin."""

    @app.command("list")
    def list_components(
        kind: Annotated[
            str | None, typer.Argument(help="architecture, loss, dataset or metric (plural works too).")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (see docs/cli.md).")] = False,
    ) -> None:
        """List registered components with their providers, then conflicts and failed plugins."""
        chosen = Kind.parse(kind) if kind else None
        components = registry.components(chosen)
        conflicts = registry.conflicts(chosen)
        failed = plugins.failed()
        if as_json:
            print_json(
                {
                    "ganforge_version": __version__,
                    "components": [component_json(c) for c in components],
                    "conflicts": [
                        {"kind": c.kind.value, "name": c.name, "providers": [x.qualified_name for x in c.components]}
                        for c in conflicts
                    ],
                    "failed_plugins": [status_json(s) for s in failed],
                }
            )
            return
        ambiguous = {(c.kind, name) for c in conflicts for name in (c.name,)}
        for list_kind in [chosen] if chosen else list(Kind):
            table = Table(title=list_kind.plural.capitalize(), title_justify="left")
            table.add_column("name", no_wrap=True)
            table.add_column("aliases")
            table.add_column("provider", no_wrap=True)
            table.add_column("summary", ratio=1)
            rows = [c for c in components if c.kind is list_kind]
            for component in rows:
                name = component.name
                if any((component.kind, key) in ambiguous for key in (component.name, *component.aliases)):
                    name = f"[yellow]{component.qualified_name}[/] (conflict)"
                table.add_row(name, ", ".join(component.aliases), str(component.provider), escape(component.summary))
            if rows:
                console.print(table)
            else:
                console.print(f"[bold]{list_kind.plural.capitalize()}[/]: none registered")
        for conflict in conflicts:
            providers = " and ".join(f"{c.qualified_name} ({c.provider})" for c in conflict.components)
            console.print(
                f"[yellow]conflict:[/] {conflict.kind.value} {conflict.name!r} comes from {providers}; "
                f"a config must name one as distribution:name",
                highlight=False,
            )
        for status in failed:
            console.print(f"[red]failed plugin:[/] {escape(status.describe_failure())}", highlight=False)

    @app.command("plugins")
    def list_plugins(
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (see docs/cli.md).")] = False,
    ) -> None:
        """List plugins: distribution, version, hooks and whether each loaded."""
        if as_json:
            print_json({"plugins": [status_json(s) for s in plugins.statuses]})
            return
        table = Table(title="Plugins", title_justify="left")
        for column in ("plugin", "distribution", "hooks", "status"):
            table.add_column(column)
        for status in plugins.statuses:
            state = {PluginState.LOADED: "[green]loaded[/]", PluginState.DISABLED: "[dim]disabled[/]"}.get(
                status.state, f"[red]failed at {status.phase}[/]: {escape(status.error or '')}"
            )
            table.add_row(status.name, f"{status.distribution}=={status.version}", ", ".join(status.hooks), state)
        console.print(table)

    @app.command("show")
    def show_component(
        kind: Annotated[str, typer.Argument(help="architecture, loss, dataset or metric.")],
        name: Annotated[str, typer.Argument(help="Component name, alias or distribution:name.")],
        as_json: Annotated[bool, typer.Option("--json", help="Print the params' JSON schema.")] = False,
    ) -> None:
        """Show a component's params: type, default and description of each."""
        component = registry.get(Kind.parse(kind), name)
        if as_json:
            print_json({**component_json(component), "params_schema": component.params_model.model_json_schema()})
            return
        console.print(
            f"[bold]{component.kind.value} {component.name}[/] from {component.provider} "
            f"(plugin {component.provider.plugin})",
            highlight=False,
        )
        if component.summary:
            console.print(escape(component.summary), highlight=False)
        if component.aliases:
            console.print(f"aliases: {', '.join(component.aliases)}", highlight=False)
        fields = component.params_model.model_fields
        if not fields:
            console.print("params: none")
            return
        table = Table(title="params", title_justify="left")
        table.add_column("param", no_wrap=True)
        table.add_column("type")
        table.add_column("default")
        table.add_column("description", ratio=1)
        for field_name, field in fields.items():
            bounds = constraints_text(field)
            kind_text = type_name(field.annotation) + (f" ({bounds})" if bounds else "")
            table.add_row(field_name, escape(kind_text), default_text(field), escape(field.description or ""))
        console.print(table)

    @app.command("data")
    def inspect_data(
        name: Annotated[str, typer.Argument(help="Dataset name (see `ganforge list datasets`).")],
        param: Annotated[
            list[str] | None, typer.Option("--param", "-p", help="A dataset param as key=value; repeatable.")
        ] = None,
    ) -> None:
        """Load a dataset and describe it: size, image shape, classes, value range."""
        component = registry.get(Kind.DATASET, name)
        params = apply_overrides({}, parse_overrides(param or [], option="--param"), option="--param")
        root = default_data_root()
        loaded = component.build(params, root)
        dataset, spec = loaded.dataset, loaded.spec
        count = len(dataset)
        probe = [dataset[i] for i in range(0, count, max(1, count // 256))]
        low = min(float(image.min()) for image, _ in probe)
        high = max(float(image.max()) for image, _ in probe)
        table = Table(show_header=False)
        table.add_row("dataset", f"{component.name} ({component.provider})")
        table.add_row("params", escape(json.dumps(component.parse_params(params).model_dump(mode="json"))))
        table.add_row("default data root", str(root))
        table.add_row("images", f"{count:,}")
        table.add_row("shape", " x ".join(str(d) for d in spec.shape))
        table.add_row("classes", str(spec.num_classes) if spec.num_classes else "unlabelled")
        table.add_row(f"value range ({len(probe)} images)", f"[{low:.3f}, {high:.3f}]")
        console.print(table)

    @app.command("run")
    def run(
        config: Annotated[Path | None, typer.Argument(help="The run's YAML config.")] = None,
        overrides: Annotated[
            list[str] | None, typer.Option("--set", help="Override a config value: train.epochs=5; repeatable.")
        ] = None,
        resume: Annotated[
            Path | None, typer.Option("--resume", help="Continue the run in this folder from its last.pt.")
        ] = None,
        overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing run folder.")] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live display: one line per epoch.")] = False,
        nproc: Annotated[
            int,
            typer.Option(
                "--nproc",
                min=1,
                help="Train in N processes on this machine (one per GPU, or CPU processes), started with torchrun's "
                "launcher; for several machines run torchrun yourself (see docs/distributed.md).",
            ),
        ] = 1,
    ) -> None:
        """Train a GAN from a config; the run folder gets samples, metrics, checkpoints and a plot."""
        if (config is None) == (resume is None):
            raise UsageError("give a CONFIG to start a run, or --resume RUN_DIR to continue one (not both)")
        if resume is not None:
            resolved = load_config(resume / "config.yaml", registry, overrides or [])
            folder = resume
        else:
            resolved = load_config(config, registry, overrides or [])
            folder = resolved.config.run_dir()
        run_config = resolved.config
        launch = launched_rank()
        if nproc > 1:
            if launch is not None:
                raise UsageError("--nproc starts the processes itself; leave it out inside a torchrun launch")
            command = ["run", str(config) if config is not None else "--resume", *([str(resume)] if resume else [])]
            for override in overrides or []:
                command += ["--set", override]
            command += ["--overwrite"] * overwrite + ["--quiet"] * quiet
            check_launch(nproc, run_config.train.batch_size, run_config.train.device)
            starting = f"starting {nproc} processes with torchrun: ganforge {' '.join(command)}"
            console.print(starting, highlight=False, soft_wrap=True)
            try:
                launch_on_this_machine(nproc, command)
            except LaunchStopped as stop:
                err_console.print(
                    f"{stop}; {folder / 'checkpoints' / 'last.pt'} holds the last state saved. "
                    f"Continue with: ganforge run --resume {folder} --nproc {nproc}",
                    highlight=False,
                    soft_wrap=True,
                )
                raise typer.Exit(stop.exit_code) from None
            return
        reporter = LineReporter(console) if quiet else RichReporter(console)
        last = folder / "checkpoints" / "last.pt"
        folder_before, checkpoint_before = folder.exists(), file_stamp(last)
        with join_processes(run_config.train.device) as processes:
            if processes.is_main:
                console.print(
                    f"[bold]{run_config.name}[/]: {run_config.model.name} on {run_config.data.name}, "
                    f"loss {run_config.loss.name}, {run_config.train.epochs} epochs -> {folder}",
                    highlight=False,
                )
            try:
                if resume is not None:
                    trainer = resume_run(resume, resolved, reporter=reporter, processes=processes)
                else:
                    trainer = start_run(resolved, overwrite=overwrite, reporter=reporter, processes=processes)
            except RunInterrupted as stop:
                if processes.is_main:
                    err_console.print(
                        f"{stop}. Continue with: ganforge run --resume {folder}", highlight=False, soft_wrap=True
                    )
                raise typer.Exit(stop.exit_code) from None
            except (KeyboardInterrupt, Interrupted):  # a second signal in training, or Ctrl-C before it began
                if processes.is_main:
                    now = file_stamp(last)
                    saved = now not in (None, checkpoint_before) or (resume is not None and now is not None)
                    fresh = folder.exists() and now is None and (overwrite or not folder_before)
                    advice = interrupted_run_advice(folder, saved, fresh, folder_before)
                    startup.report(f"ganforge: interrupted (Ctrl-C); {advice}")  # instead of the guard's line
                raise typer.Exit(130) from None
        if processes.is_main:
            console.print(
                f"done: {trainer.epoch} epochs, {trainer.step} steps on {trainer.device}"
                f"{f' x {processes.world_size} processes' if processes.distributed else ''}; see {folder}",
                highlight=False,
            )

    @app.command("validate")
    def validate(
        config: Annotated[Path, typer.Argument(help="The YAML config to check.")],
        overrides: Annotated[list[str] | None, typer.Option("--set", help="Override a config value.")] = None,
    ) -> None:
        """Check a config without training: structure, component names and their params.

        What this machine lacks for it (the device, the memory) is a warning, not an error: a config
        is often written on one machine and run on another.
        """
        resolved = load_config(config, registry, overrides or [])
        try:
            warnings = machine_warnings(resolved)
        except GanforgeError as error:  # the architecture cannot take the dataset's images, and the like
            raise ConfigError(f"{config} is invalid: {error}") from None
        chosen = [*resolved.chosen().values(), *resolved.metrics]
        names = ", ".join(f"{c.component.kind.value} {c.component.name} ({c.component.provider})" for c in chosen)
        console.print(f"{config}: valid; {names}", highlight=False)
        for warning in warnings:
            err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)

    @app.command("schema")
    def schema() -> None:
        """Print the JSON schema of a run config."""
        print_json(json_schema())

    @app.command("sample")
    def sample(
        checkpoint: Annotated[Path, typer.Argument(help="A checkpoint, e.g. runs/NAME/checkpoints/last.pt.")],
        out: Annotated[
            Path,
            typer.Option(
                "--out", "-o", help="grid.png for a grid; samples.pt for a tensor. Never an input or a checkpoint."
            ),
        ],
        n: Annotated[int, typer.Option("--n", min=1, help="How many images.")] = 100,
        seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed of the noise.")] = 0,
        device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
        ema: Annotated[
            bool, typer.Option("--ema/--no-ema", help="Use the EMA generator when the run kept one.")
        ] = True,
    ) -> None:
        """Generate images from a checkpoint alone: no dataset needed."""
        as_grid = out.suffix.lower() == ".png"
        if not as_grid and out.suffix.lower() != ".pt":
            raise UsageError(f"--out {out}: use a .png (a grid) or a .pt (a tensor [N, C, H, W] in [-1, 1])")
        check_output_file(out, "--out", inputs=[checkpoint])
        torch_device = resolve_device(device, option="--device")
        generator = load_generator(checkpoint, registry, use_ema=ema)
        check_memory(
            f"--n {n}: {n:,} images{' in one grid' if as_grid else ''}",
            generator.host_bytes(n) + (grid_bytes(n, generator.spec) if as_grid else 0),
            advice="ask for fewer with --n",
            device=torch_device,
            device_bytes=generator.device_bytes(),
        )
        images = generator.sample(n, seed, torch_device)
        with reported_write_failure(out, "--out"):
            if as_grid:
                save_grid(images, out)
            else:
                write_atomically(out, lambda stream: torch.save(images, stream))
        console.print(f"{n} images {tuple(images.shape[1:])} -> {out}", highlight=False)

    @app.command("check")
    def check(
        target: Annotated[
            str | None,
            typer.Argument(help="A distribution (all its components), KIND:NAME, or nothing for everything."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable results.")] = False,
    ) -> None:
        """Run the contract checks on installed components; exit 1 if any fails."""
        components = select_components(registry, target)
        results = [result for component in components for result in check_component(component)]
        failed = [result for result in results if result.status == "failed"]
        if as_json:
            print_json({"passed": not failed, "results": [dataclasses.asdict(r) for r in results]})
        else:
            print_check_tables(components, results)
            counts = {status: sum(r.status == status for r in results) for status in ("passed", "failed", "skipped")}
            console.print(
                f"{len(components)} components: {counts['passed']} passed, {counts['failed']} failed, "
                f"{counts['skipped']} skipped",
                highlight=False,
            )
        if failed:
            raise typer.Exit(1)

    @app.command("eval")
    def evaluate(
        target: Annotated[
            Path | None, typer.Argument(help="A run folder (its checkpoints/last.pt) or a checkpoint file.")
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
        ] = DEFAULT_SAMPLES,
        metrics: Annotated[
            str | None, typer.Option("--metrics", help="Comma-separated metric names; default: every installed one.")
        ] = None,
        seed: Annotated[int, typer.Option("--seed", min=0, max=MAX_SEED, help="Seed of the generator's noise.")] = 0,
        device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
        ema: Annotated[
            bool, typer.Option("--ema/--no-ema", help="Use the EMA generator when the run kept one.")
        ] = True,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable scores, floor and protocol.")] = False,
    ) -> None:
        """Score a checkpoint, a file of images, or real data with FID, KID, classifier score, ... offline."""
        given = [option for option, value in (("TARGET", target), ("--samples", samples), ("--real", real)) if value]
        if len(given) != 1:
            raise UsageError(
                "give one of: TARGET (a run folder or checkpoint), --samples FILE --data DATASET, or --real DATASET"
            )
        if samples is not None and data is None:
            raise UsageError("--samples needs --data DATASET: the real images they are compared with")
        if data is not None and samples is None:
            raise UsageError("--data goes with --samples; a checkpoint brings its own dataset, --real names one")
        names = [name.strip() for name in metrics.split(",") if name.strip()] if metrics else None
        chosen_metrics = choose_metrics(registry, names)
        check_sample_needs(chosen_metrics, generated=n, real=n, counted=f"--n {n}")
        params = apply_overrides({}, parse_overrides(data_param or [], option="--data-param"), option="--data-param")
        torch_device = resolve_device(device, option="--device")
        checkpoint = None
        if target is not None:
            path = target / "checkpoints" / "last.pt" if target.is_dir() else target
            checkpoint = load_generator(path, registry, use_ema=ema)
            check_memory(
                f"--n {n}: generating and scoring {n:,} images",
                checkpoint.host_bytes(n) + scoring_bytes(n, checkpoint.spec),
                advice="score fewer with --n",
                device=torch_device,
                device_bytes=checkpoint.device_bytes(),
            )
            data_config = checkpoint.state["config"]["data"]
            dataset, params = data_config["name"], {**data_config["params"], **params}
        else:
            dataset = data if samples is not None else real
        try:
            data_component = registry.get(Kind.DATASET, dataset)
        except UsageError as error:
            if checkpoint is None:
                raise
            raise CheckpointError(f"{checkpoint.path} was trained on dataset {dataset!r}: {error}") from None
        domain = load_domain(data_component, data_component.parse_params(params), default_data_root())
        # The images to score come before the classifier: a file or a generator that cannot give them fails first.
        image_set = None
        if checkpoint is not None:
            described = f"{n} samples (noise seed {seed}) from {checkpoint.describe()}"
            image_set = generated_images(checkpoint.sample(n, seed, torch_device), described)
        elif samples is not None:
            image_set, value_range = read_samples(samples, domain.spec, limit=n)
            described = f"{image_set.description}, read as {value_range}"
            reference = min(n, len(domain.held_out))
            check_sample_needs(chosen_metrics, generated=len(image_set), real=reference, counted=f"--samples {samples}")
        evaluation = evaluate_domain(
            domain,
            chosen_metrics,
            samples=n,
            device=torch_device,
            cache_dir=default_cache_dir(),
            log=lambda message: err_console.print(message, highlight=False, soft_wrap=True),
        )
        floor = evaluation.floor()
        if image_set is not None:
            scores = evaluation.score(image_set)
        else:
            described = f"{min(n, len(evaluation.domain.train))} training images of {evaluation.domain.dataset}"
            scores = floor
        protocol = evaluation.protocol(described)
        if as_json:
            goals = {key: goal.better for key, goal in evaluation.goals().items()}
            print_json({"scores": scores, "floor": floor, "goals": goals, "protocol": protocol})
        else:
            print_scores(evaluation, scores, floor, protocol, floor_only=real is not None)

    plugins.register_commands(app)
    return app


def print_scores(
    evaluation: Evaluation,
    scores: dict[str, float],
    floor: dict[str, float],
    protocol: dict[str, Any],
    floor_only: bool,
) -> None:
    arrows = {"lower": "lower", "higher": "higher", None: ""}
    table = Table(title="Scores", title_justify="left")
    table.add_column("value", no_wrap=True)
    if not floor_only:
        table.add_column("generated", justify="right")
    table.add_column("real floor", justify="right")
    table.add_column("better", no_wrap=True)
    goals = evaluation.goals()
    for key, value in scores.items():
        cells = [f"{floor[key]:.4g}"] if floor_only else [f"{value:.4g}", f"{floor[key]:.4g}"]
        table.add_row(key, *cells, arrows[goals[key].better])
    console.print(table)
    network = protocol["feature_network"]
    console.print(
        f"feature network: {network['architecture']} trained on {network['trained_on']}, test accuracy "
        f"{network['test_accuracy']:.2%} ({network['file']})",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"generated: {protocol['generated']}", highlight=False, soft_wrap=True)
    console.print(f"reference: {protocol['reference']}", highlight=False, soft_wrap=True)
    console.print(f"real floor: {protocol['floor']}", highlight=False, soft_wrap=True)


def select_components(registry: Registry, target: str | None) -> list[Component]:
    """Everything, one distribution's components, or one ``kind:name``."""
    if not target:
        return registry.components()
    kind_text, separator, name = target.partition(":")
    if separator and kind_text.lower() in {text for kind in Kind for text in (kind.value, kind.plural)}:
        return [registry.get(Kind.parse(kind_text), name)]
    chosen = [c for c in registry.components() if same_distribution(c.provider.distribution, target)]
    if not chosen:
        distributions = sorted({c.provider.distribution for c in registry.components()})
        raise UsageError(
            f"no installed distribution {target!r} provides components; give one of {', '.join(distributions)}, "
            "or KIND:NAME such as architecture:mlp"
        )
    return chosen


def print_check_tables(components: list[Component], results: list[CheckResult]) -> None:
    marks = {"passed": "[green]pass[/]", "failed": "[bold red]FAIL[/]", "skipped": "[dim]skip[/]"}
    by_key = {(r.component, r.check): r for r in results}
    for kind in Kind:
        members = [c for c in components if c.kind is kind]
        if not members:
            continue
        table = Table(title=f"{kind.plural.capitalize()}: contract checks", title_justify="left")
        table.add_column("check", no_wrap=True)
        for component in members:
            table.add_column(component.qualified_name, justify="center")
        for check_function in CHECKS[kind]:
            name = check_function.__name__
            table.add_row(
                name.removeprefix("check_"), *(marks[by_key[(c.qualified_name, name)].status] for c in members)
            )
        console.print(table)
    for result in results:
        if result.status != "passed":
            colour = "red" if result.status == "failed" else "dim"
            console.print(
                f"[{colour}]{result.status}[/] {result.component} {result.check}: {escape(result.message)}",
                highlight=False,
                soft_wrap=True,
            )


def component_json(component: Component) -> dict[str, Any]:
    return {
        "kind": component.kind.value,
        "name": component.name,
        "aliases": list(component.aliases),
        "qualified_name": component.qualified_name,
        "provider": {
            "distribution": component.provider.distribution,
            "version": component.provider.version,
            "plugin": component.provider.plugin,
        },
        "summary": component.summary,
        "params": component.params_model.__name__,
    }


def status_json(status: Any) -> dict[str, Any]:
    return {
        "name": status.name,
        "distribution": status.distribution,
        "version": status.version,
        "state": status.state.value,
        "hooks": list(status.hooks),
        "phase": status.phase.value if status.phase else None,
        "error": status.error,
    }


def type_name(annotation: Any) -> str:
    """A readable type: ``list[int] | None``, ``'batch' | 'none'``, without pydantic's metadata."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_name(args[0])
    if origin is Literal:
        return " | ".join(repr(arg) for arg in args)
    if origin in (Union, UnionType):
        return " | ".join(type_name(arg) for arg in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(type_name(arg) for arg in args)}]"
    if annotation is type(None):
        return "None"
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def constraints_text(field: FieldInfo) -> str:
    """Bounds such as ``> 0`` from the field's annotated-types metadata."""
    symbols = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    parts = [
        f"{symbol} {getattr(item, attribute)}"
        for item in field.metadata
        for attribute, symbol in symbols.items()
        if getattr(item, attribute, None) is not None
    ]
    return ", ".join(parts)


def default_text(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "(required)"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return escape(json.dumps(value, default=str))


def print_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def interrupted_run_advice(folder: Path, checkpoint_saved: bool, without_checkpoint: bool, existed: bool) -> str:
    """What to do after a Ctrl-C in ``run``; it must hold for what is on disk now."""
    if checkpoint_saved:
        last = folder / "checkpoints" / "last.pt"
        return f"{last} holds the last state saved whole. Continue with: ganforge run --resume {folder}"
    if without_checkpoint:
        return f"{folder} holds no checkpoint yet; to start over, run the same command with --overwrite"
    if existed:
        return f"{folder} was left as it was; nothing was written"
    return "the run folder was not made; nothing was written"


def file_stamp(path: Path) -> tuple[int, int] | None:
    """What tells a file replaced since: its inode and modification time; None when there is none."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_ino, status.st_mtime_ns


def main() -> None:
    """The ``ganforge`` command (the console script and ``python -m ganforge``)."""
    # ganforge/__init__.py installed the Ctrl-C guard already when it saw this command; main() may be called otherwise.
    startup.begin_command()
    startup.stop_if_interrupted()  # a Ctrl-C that an import caught and dropped
    try:
        plugins = default_plugins()
        startup.stop_if_interrupted()
        app = create_app(plugins)
    except GanforgeError as error:  # strict mode and a plugin failed, at loading or adding its commands
        report_error(error)
        sys.exit(error.exit_code)
    try:
        app(prog_name="ganforge")
    finally:
        startup.end_command()
