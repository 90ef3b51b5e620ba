"""ganforge: a plugin-based framework for training GANs on PyTorch."""

# ruff: noqa: E402 (the guard comes first, so that a Ctrl-C while torch imports ends the command cleanly too)
from ganforge.startup import guard_command_line

guard_command_line()

from importlib.metadata import PackageNotFoundError, version

from ganforge.contracts import (
    DataSpec,
    FeatureSet,
    GANLoss,
    GANMetric,
    GANModels,
    Goal,
    ImageTensorDataset,
    LoadedDataset,
    NoParams,
    Params,
    SampleNeeds,
)
from ganforge.errors import GanforgeError
from ganforge.hookspecs import hookimpl
from ganforge.registry import Component, Kind, Registry

try:
    __version__ = version("ganforge")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "Component",
    "DataSpec",
    "FeatureSet",
    "GANLoss",
    "GANMetric",
    "GANModels",
    "GanforgeError",
    "Goal",
    "ImageTensorDataset",
    "Kind",
    "LoadedDataset",
    "NoParams",
    "Params",
    "Registry",
    "SampleNeeds",
    "__version__",
    "hookimpl",
]
