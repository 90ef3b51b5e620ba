"""The run config: what a YAML file may say, how it is read, overridden and resolved, and what is wrong with it.

One module per concern: ``schema`` (the pydantic models and their bounds), ``yaml_reader`` (the
bounded YAML reader), ``overrides`` (``--set``), ``resolve`` (names found in the registry, and every
rule that weighs one part of a config against another) and ``problems`` (the report of what is
wrong). This front door re-exports the names most callers want: a config read and resolved, its
models, and why one is refused; the rest is imported from the submodule that holds it.
"""

from ganforge.config.problems import InvalidConfigError, LeftoverParams
from ganforge.config.resolve import ResolvedRun, load_config, validate_config
from ganforge.config.schema import OptimizerConfig, RunConfig, TrainConfig
from ganforge.yaml_reader import MAX_CONFIG_BYTES, MAX_CONFIG_VALUES

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_VALUES",
    "InvalidConfigError",
    "LeftoverParams",
    "OptimizerConfig",
    "ResolvedRun",
    "RunConfig",
    "TrainConfig",
    "load_config",
    "validate_config",
]
