"""The plugin contract: the hooks a ganforge plugin may implement.

A plugin is a module (or any object) named by an entry point in the ``ganforge`` group::

    [project.entry-points.ganforge]
    mygan = "mygan.plugin"

whose functions are marked with ``@ganforge.hookimpl``. ganforge's own components are
registered through these very hooks, from entry points in ganforge's own pyproject.toml.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import typer

    from ganforge.registry import Register

PROJECT_NAME = "ganforge"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_architectures(register: Register) -> None:
    """Register architectures: ``register(name, factory, params=Model, summary=..., aliases=...)``.

    ``factory(params, data: DataSpec) -> GANModels``.
    """


@hookspec
def register_losses(register: Register) -> None:
    """Register losses; ``factory(params) -> GANLoss``."""


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets; ``factory(params, root: Path) -> LoadedDataset``."""


@hookspec
def register_metrics(register: Register) -> None:
    """Register metrics; ``factory(params) -> metric``."""


@hookspec
def register_augmentations(register: Register) -> None:
    """Register augmentations of the images D sees; ``factory(params) -> Augmentation``."""


@hookspec
def register_loggers(register: Register) -> None:
    """Register loggers that follow a run (experiment trackers); ``factory(params) -> RunLogger``."""


@hookspec
def register_schedules(register: Register) -> None:
    """Register schedules of a setting over training; ``factory(params) -> Schedule`` (a value per images shown)."""


@hookspec
def register_commands(app: typer.Typer) -> None:
    """Add commands to the ``ganforge`` command line (a typer app)."""
