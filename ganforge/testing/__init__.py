"""The contract-test kit for plugin authors; importable without pytest.

    from ganforge.testing import check_component, isolated_registry
    registry = isolated_registry(my_plugin_module, distribution="mygan")
    results = check_component(registry.get(Kind.ARCHITECTURE, "tiny"))

or, for a package already installed, ``installed_registry()``: every plugin found through its
entry point, as ``ganforge list`` sees them, failing loudly where one does not load.

With pytest, ``parametrize_with_checks(components)`` gives one test per (component, check).
"""

from __future__ import annotations

from typing import Any

from ganforge.contracts import ContractViolation
from ganforge.plugins import PluginSource, load_plugins
from ganforge.registry import Registry
from ganforge.testing.checks.common import CheckSkipped
from ganforge.testing.checks.runner import (
    CHECKS,
    CheckResult,
    assert_check,
    check_component,
    checks_for,
    parametrize_with_checks,
    run_check,
)

# A broken contract as a plugin's tests see it (an AssertionError): the one error of ganforge.contracts.
ContractError = ContractViolation


def isolated_registry(*plugins: Any, distribution: str = "local", version: str = "0") -> Registry:
    """A registry filled by these plugin objects alone, through the real loading path; strict."""
    sources = [
        PluginSource.from_object(plugin, getattr(plugin, "__name__", f"plugin{index}"), distribution, version)
        for index, plugin in enumerate(plugins)
    ]
    return load_plugins(sources, disabled=[], strict=True).registry


def installed_registry() -> Registry:
    """The registry of every installed plugin (built-ins included); strict: a plugin that fails raises."""
    return load_plugins(strict=True).registry


__all__ = [
    "CHECKS",
    "CheckResult",
    "CheckSkipped",
    "ContractError",
    "assert_check",
    "check_component",
    "checks_for",
    "installed_registry",
    "isolated_registry",
    "parametrize_with_checks",
    "run_check",
]
