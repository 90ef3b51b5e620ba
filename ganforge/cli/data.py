"""The ``data`` commands: a dataset described (show), and your own images examined (check) or prepared (prepare).

``ganforge data NAME`` is short for ``ganforge data show NAME``, as it was before ``data`` became a group.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal

import click
import typer
from PIL import ImageColor
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from ganforge.cli.render import console, err_console, print_json
from ganforge.config.overrides import apply_overrides, parse_overrides
from ganforge.data_root import default_data_root
from ganforge.errors import DataError, UsageError
from ganforge.guards import startup
from ganforge.guards.memory import readable_bytes
from ganforge.imagesets.decode import Colour, DecodeOptions, ResizePolicy
from ganforge.imagesets.doctor import DoctorReport
from ganforge.imagesets.prepare import IMAGE_EXTENSIONS, examine_source, prepare_dataset
from ganforge.imagesets.prepare import Progress as ProgressCallback
from ganforge.imagesets.prepared import MANIFEST_FILE, MAX_SIZE, Manifest
from ganforge.parsing import parse_count
from ganforge.plugins import Plugins
from ganforge.registry import Kind

HELP = "Describe a dataset (show), examine your own images (check) or prepare them for training (prepare)."
CLASSES_SHOWN = 10


class DataGroup(TyperGroup):
    """A first argument that names no subcommand is a dataset to show: ``data mnist`` is ``data show mnist``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["show", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(cls=DataGroup, help=HELP, no_args_is_help=True)


# -- show ------------------------------------------------------------------------------------------


@app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name (see `ganforge list datasets`).")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A dataset param as key=value; repeatable.")
    ] = None,
) -> None:
    """Load a dataset and describe it: size, image shape, classes, value range."""
    plugins: Plugins = ctx.obj
    component = plugins.registry.get(Kind.DATASET, name)
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


# -- prepare and check: the options they share -----------------------------------------------------

Source = Annotated[Path, typer.Argument(help="A folder of images (class subfolders optional), a .zip or a .tar(.gz).")]
Channels = Annotated[Literal[1, 3], typer.Option("--channels", help="1 (greyscale) or 3 (RGB).")]
ResizeOption = Annotated[
    ResizePolicy,
    typer.Option(
        "--resize",
        help="How an image becomes square: crop (centre), pad (with --background) or stretch.",
    ),
]
Background = Annotated[
    str,
    typer.Option(
        "--background",
        help="Colour for padding and transparent pixels: R,G,B (0-255), #rrggbb or a name (white, black, ...).",
    ),
]
Workers = Annotated[int | None, typer.Option("--workers", min=1, help="Decoding processes (default: every core).")]
NoClasses = Annotated[
    bool, typer.Option("--no-classes", help="Ignore subfolders: every image unlabelled, even in class folders.")
]
Extensions = Annotated[str, typer.Option("--extensions", help="The file extensions that are images, comma-separated.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
DEFAULT_EXTENSIONS = ",".join(IMAGE_EXTENSIONS)


def parse_background(value: str) -> Colour:
    """``R,G,B``, ``#rrggbb`` or a colour name as an RGB triple; a UsageError naming --background otherwise."""
    accepted = "give R,G,B (each 0-255 in the digits 0-9), #rrggbb or a colour name such as white or black"
    text = value.strip()
    try:
        if "," in text:
            parts = tuple(parse_count(part.strip()) for part in text.split(","))
            if len(parts) != 3 or not all(part is not None and part <= 255 for part in parts):
                raise ValueError(text)
            return parts  # type: ignore[return-value]
        colour = ImageColor.getrgb(text)
    except ValueError:
        raise UsageError(f"--background {value!r} is not a colour: {accepted}") from None
    if len(colour) != 3:
        raise UsageError(f"--background {value!r} has an alpha channel: {accepted}")
    return colour  # type: ignore[return-value]


def parse_extensions(value: str) -> tuple[str, ...]:
    extensions = tuple(dict.fromkeys(part.strip().lower().lstrip(".") for part in value.split(",") if part.strip()))
    if not extensions or not all(extension.isalnum() for extension in extensions):
        raise UsageError(f"--extensions {value!r}: give file extensions separated by commas, such as png,jpg")
    return extensions


class ImagesPerSecondColumn(ProgressColumn):
    """The decoding speed: rich's estimate over the last seconds, or the mean so far before it has one."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.elapsed:
            speed = task.completed / task.elapsed
        return Text("" if not speed else f"{speed:,.0f} images/s")


@contextmanager
def images_progress(what: str, quiet: bool) -> Iterator[ProgressCallback | None]:
    """A progress bar of files decoded on stderr, and the library's callback that moves it; none with ``quiet``
    or where stderr is no terminal (a log has no use for a bar drawn once, at its end)."""
    if quiet or not err_console.is_terminal:
        yield None
        return
    bar = Progress(
        TextColumn(escape(what)),
        BarColumn(),
        MofNCompleteColumn(),
        ImagesPerSecondColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
    task = bar.add_task(what, total=None)

    def advance(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield advance


@contextmanager
def interruption_reported(advice: str) -> Iterator[None]:
    """A Ctrl-C inside the block: one line ending with ``advice``, exit code 130 (the guard's Interrupted, or a
    plain KeyboardInterrupt where ganforge runs without the guard). One after it gets the guard's own line."""
    try:
        yield
    except (KeyboardInterrupt, startup.Interrupted):
        startup.report(f"{startup.COMMAND}: interrupted (Ctrl-C); {advice}")
        raise typer.Exit(startup.EXIT_CODE) from None


# -- prepare -----------------------------------------------------------------------------------------


@app.command("prepare")
def prepare(
    source: Source,
    size: Annotated[int, typer.Option("--size", min=1, max=MAX_SIZE, help="Side of the square images, in pixels.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="A new (or empty) folder for the prepared dataset.")],
    channels: Channels = 3,
    resize: ResizeOption = "crop",
    background: Background = "white",
    workers: Workers = None,
    no_classes: NoClasses = False,
    extensions: Extensions = DEFAULT_EXTENSIONS,
    quiet: Quiet = False,
) -> None:
    """Decode a folder or archive of images once, on every core, into a dataset to train on; report what the
    doctor found. An OUT prepared before from the same files with the same options is kept as it is."""
    options = DecodeOptions(size, channels, resize, parse_background(background))
    chosen = parse_extensions(extensions)
    # prepare_dataset never replaces a prepared dataset: one there before the call that it returns is that one.
    prepared_before = (out / MANIFEST_FILE).is_file() and not out.is_symlink()
    with interruption_reported(f"nothing was written to {out}"), images_progress("decoding", quiet) as progress:
        manifest = prepare_dataset(
            source,
            out,
            options,
            extensions=chosen,
            labels_from_subfolders=not no_classes,
            workers=workers,
            progress=progress,
        )
    print_report(manifest.doctor)
    print_summary(manifest, out, prepared_before)


def print_report(report: DoctorReport) -> None:
    console.print("[bold]doctor[/]:", highlight=False)
    for line in report.lines():
        console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)


def print_summary(manifest: Manifest, out: Path, prepared_before: bool) -> None:
    shape = " x ".join(str(side) for side in manifest.shape[1:])
    speed = f"{manifest.doctor.files / manifest.seconds:,.0f} images/s" if manifest.seconds > 0 else "at once"
    if prepared_before:
        console.print(
            f"{escape(str(out))} already holds this dataset, prepared from the same files with the same options "
            f"(in {manifest.seconds:.1f} s): nothing to do",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print(
            f"prepared {manifest.count:,} images of {shape} into {escape(str(out))} in {manifest.seconds:.1f} s "
            f"({speed})",
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"  images: {manifest.count:,} of {shape}", highlight=False)
    console.print(f"  classes: {escape(describe_classes(manifest.class_names))}", highlight=False, soft_wrap=True)
    console.print(f"  on disk: {readable_bytes(size_on_disk(out))}", highlight=False)
    console.print("use it in a config:", highlight=False)
    snippet = f"data: {{name: prepared, params: {{path: {json.dumps(str(out.absolute()))}}}}}"
    console.print(f"  {escape(snippet)}", highlight=False, soft_wrap=True)


def describe_classes(class_names: tuple[str, ...] | None) -> str:
    if class_names is None:
        return "none (no class folders): unlabelled"
    shown = ", ".join(class_names[:CLASSES_SHOWN])
    more = f", ... ({len(class_names) - CLASSES_SHOWN} more)" if len(class_names) > CLASSES_SHOWN else ""
    return f"{len(class_names)} ({shown}{more})"


def size_on_disk(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.iterdir() if path.is_file() and not path.is_symlink())


# -- check -------------------------------------------------------------------------------------------


@app.command("check")
def check(
    source: Source,
    size: Annotated[
        int, typer.Option("--size", min=1, max=MAX_SIZE, help="Side of the square images the check decodes to.")
    ] = 64,
    channels: Channels = 3,
    resize: ResizeOption = "crop",
    background: Background = "white",
    workers: Workers = None,
    no_classes: NoClasses = False,
    extensions: Extensions = DEFAULT_EXTENSIONS,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON on stdout (see docs/cli.md).")] = False,
    quiet: Quiet = False,
) -> None:
    """Examine a folder or archive of images as `data prepare` would, writing nothing: the doctor's report. Exit
    code 0 whatever it finds, unless no image at all is usable (1)."""
    options = DecodeOptions(size, channels, resize, parse_background(background))
    chosen = parse_extensions(extensions)
    with interruption_reported("nothing was written"), images_progress("examining", quiet) as progress:
        report = examine_source(
            source,
            options,
            extensions=chosen,
            labels_from_subfolders=not no_classes,
            workers=workers,
            progress=progress,
        )
    if as_json:
        print_json(report.model_dump(mode="json"))
    else:
        print_report(report)
    if report.usable == 0:
        raise DataError(f"no usable image in {source}: nothing could be prepared from it")
