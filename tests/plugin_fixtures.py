"""Plugins for tests: as objects for an isolated plugin manager, or installed as real distributions."""

from __future__ import annotations

import textwrap
import types
from pathlib import Path

from pydantic import Field
from torch import nn

from ganforge import GANModels, Params, hookimpl
from ganforge.plugins import PluginSource, load_plugins


class WidthParams(Params):
    width: int = Field(8, gt=0, description="Hidden width.")


def make_architecture(params, data):
    """A stand-in architecture factory."""
    return GANModels(nn.Linear(params.width, data.channels), nn.Linear(data.channels, 1), latent_dim=params.width)


def plugin_module(name: str, **hooks) -> types.ModuleType:
    module = types.ModuleType(name)
    for hook_name, function in hooks.items():
        setattr(module, hook_name, hookimpl(function))
    return module


def architecture_plugin(name: str, *architecture_names: str) -> types.ModuleType:
    def register_architectures(register):
        for architecture in architecture_names:
            register(architecture, make_architecture, params=WidthParams)

    return plugin_module(name, register_architectures=register_architectures)


def install_distribution(site: Path, distribution: str, version: str, entry_points: dict[str, str], code: str) -> None:
    """Write a module and a .dist-info into ``site`` so importlib.metadata sees an installed distribution."""
    module = distribution.replace("-", "_")
    (site / f"{module}.py").write_text(textwrap.dedent(code))
    info = site / f"{module}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[ganforge]\n{lines}\n")


def source(plugin, name, distribution="bad-gans", version="0.1"):
    return PluginSource.from_object(plugin, name, distribution, version)


def quiet_load(sources, **options):
    failures = []
    plugins = load_plugins(
        sources, disabled=options.pop("disabled", []), strict=options.pop("strict", False), on_failure=failures.append
    )
    return plugins, failures


def status_of(plugins, name):
    return next(status for status in plugins.statuses if status.name == name)


def loader(action):
    """A plugin source whose import runs ``action`` (as a module's top level would)."""

    def load():
        action()
        return plugin_module("never_returned")

    return load


def raise_keyboard_interrupt():
    raise KeyboardInterrupt
