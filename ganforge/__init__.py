"""ganforge: a plugin-based framework for training GANs on PyTorch.

What a plugin author needs is importable from here: ``hookimpl`` and the ``Register`` each hook
receives, the contracts a component obeys (ganforge/contracts/ states every convention), the penalties a
loss may add, and the errors a factory raises for bad params. ``ganforge.testing`` holds the
contract-test kit.
"""

# ruff: noqa: E402 (the guard comes first, so that a Ctrl-C while torch imports ends the command cleanly too)
from ganforge.guards.startup import guard_command_line

guard_command_line()

from ganforge.contracts import (
    Augmentation,
    DataSpec,
    FeatureSet,
    GANLoss,
    GANMetric,
    GANModels,
    Goal,
    ImageTensorDataset,
    LoadedDataset,
    MappedImageDataset,
    NoParams,
    Params,
    RunLogger,
    SampleNeeds,
    Schedule,
    check_labels,
    discriminate,
    synthesize,
)
from ganforge.errors import GanforgeError, ParamsError, UsageError
from ganforge.hookspecs import hookimpl
from ganforge.penalties import gradient_penalty, r1_penalty, r2_penalty
from ganforge.registry import Component, Kind, Register, Registry
from ganforge.version import __version__

__all__ = [
    "Augmentation",
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
    "MappedImageDataset",
    "NoParams",
    "Params",
    "ParamsError",
    "Register",
    "Registry",
    "RunLogger",
    "SampleNeeds",
    "Schedule",
    "UsageError",
    "__version__",
    "check_labels",
    "discriminate",
    "gradient_penalty",
    "hookimpl",
    "r1_penalty",
    "r2_penalty",
    "synthesize",
]
