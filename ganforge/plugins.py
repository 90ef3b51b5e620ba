"""Loading plugins from entry points, one at a time, so one broken plugin cannot stop the rest.

pluggy's own ``load_setuptools_entrypoints`` stops at the first plugin that fails to import;
here each entry point is loaded, validated and asked to register on its own, and a failure is
recorded as a :class:`PluginStatus` (and reported through ``on_failure``) instead of raised,
unless strict mode is on.

A failure is anything the plugin's code raises, SystemExit and KeyboardInterrupt included: a
plugin that calls ``sys.exit()`` on import must not end every ganforge command. Its code runs
through :func:`ganforge.guards.third_party.third_party_code`, which tells the user's own Ctrl-C
apart: when one arrived while a plugin's code ran, loading stops, whatever that code raised or swallowed.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from ganforge import hookspecs
from ganforge.environment import flag_setting, text_setting
from ganforge.errors import PluginError, RegistrationError
from ganforge.guards.third_party import PluginExit, third_party_code
from ganforge.registry import ComponentCollector, Kind, Provider, Registry

ENTRY_POINT_GROUP = "ganforge"
STRICT_ENV = "GANFORGE_STRICT_PLUGINS"
DISABLE_ENV = "GANFORGE_DISABLE_PLUGINS"
# Every ganforge command imports every plugin first: one slower than this is named in a warning.
SLOW_IMPORT_SECONDS = 3.0
MAX_ERROR_CHARS = 1000  # of a failure's message, as recorded and printed

REGISTERING_HOOKS: dict[str, Kind] = {
    "register_architectures": Kind.ARCHITECTURE,
    "register_losses": Kind.LOSS,
    "register_datasets": Kind.DATASET,
    "register_metrics": Kind.METRIC,
    "register_augmentations": Kind.AUGMENTATION,
    "register_loggers": Kind.LOGGER,
    "register_schedules": Kind.SCHEDULE,
}


class PluginState(StrEnum):
    LOADED = "loaded"
    FAILED = "failed"
    DISABLED = "disabled"


class Phase(StrEnum):
    IMPORT = "import"
    VALIDATE = "validate"
    REGISTER = "register"
    COMMANDS = "commands"


@dataclass(frozen=True)
class PluginSource:
    """Something to load as a plugin: an entry point, or an object a test hands in."""

    name: str
    distribution: str
    version: str
    load: Callable[[], Any]

    @property
    def plugin_id(self) -> str:
        return f"{self.distribution}:{self.name}"

    @classmethod
    def from_entry_point(cls, entry_point: EntryPoint) -> PluginSource:
        dist = entry_point.dist
        return cls(
            name=entry_point.name,
            distribution=dist.name if dist is not None else "unknown",
            version=dist.version if dist is not None else "unknown",
            load=entry_point.load,
        )

    @classmethod
    def from_object(cls, plugin: Any, name: str, distribution: str = "local", version: str = "0") -> PluginSource:
        return cls(name=name, distribution=distribution, version=version, load=lambda: plugin)


@dataclass
class PluginStatus:
    name: str
    distribution: str
    version: str
    state: PluginState
    hooks: tuple[str, ...] = ()
    phase: Phase | None = None
    error: str | None = None
    import_seconds: float | None = None
    refusals: tuple[str, ...] = ()  # what ganforge refused the loaded plugin, e.g. a command name already taken

    @property
    def plugin_id(self) -> str:
        return f"{self.distribution}:{self.name}"

    def describe_failure(self) -> str:
        return f"plugin {self.name!r} from {self.distribution}=={self.version} failed at {self.phase}: {self.error}"

    def describe_slow_import(self) -> str:
        return (
            f"plugin {self.name!r} from {self.distribution}=={self.version} took {self.import_seconds:.1f} s to import "
            f"(over {SLOW_IMPORT_SECONDS:g} s), and every ganforge command waits for it; if you do not use it, "
            f"leave it out with {DISABLE_ENV}={self.distribution}"
        )


@dataclass
class Plugins:
    """The loaded plugins, what became of each, and the registry they filled."""

    manager: pluggy.PluginManager
    statuses: list[PluginStatus]
    registry: Registry
    # Strict mode (a plugin's failure raises) and why it is on, said in the error: the environment
    # variable or the caller's argument. Empty: not strict.
    strict_reason: str = ""
    on_failure: Callable[[PluginStatus], None] | None = None
    on_slow_import: Callable[[PluginStatus], None] | None = None

    @property
    def strict(self) -> bool:
        return bool(self.strict_reason)

    def failed(self) -> list[PluginStatus]:
        return [status for status in self.statuses if status.state is PluginState.FAILED]

    def call_hook(self, status: PluginStatus, hook_name: str, phase: Phase, **kwargs: Any) -> bool:
        """Call one loaded plugin's hook as third-party code; False when it failed (recorded, raised if strict)."""
        plugin = self.manager.get_plugin(status.plugin_id)
        try:
            with third_party_code():
                _call_for_plugin(self.manager, hook_name, plugin, **kwargs)
        except Exception as error:  # a plugin's bug, sys.exit() included, must not take the CLI down
            _record_failure(status, phase, error, self.strict_reason, self.on_failure)
            return False
        return True

    def refuse(self, status: PluginStatus, what: str) -> None:
        """A plugin asked for something ganforge does not allow (``what`` says what, and what stays instead).

        The plugin stays loaded; the refusal is one warning on stderr, or a PluginError in strict mode.
        """
        message = f"plugin {status.name!r} from {status.distribution}=={status.version} {what}"
        status.refusals = (*status.refusals, what)
        if self.strict_reason:
            raise PluginError(f"{message} ({self.strict_reason})")
        print(f"ganforge: warning: {message}", file=sys.stderr)


def load_plugins(
    sources: Iterable[PluginSource] | None = None,
    *,
    disabled: Iterable[str] | None = None,
    strict: bool | None = None,
    on_failure: Callable[[PluginStatus], None] | None = None,
    on_slow_import: Callable[[PluginStatus], None] | None = None,
) -> Plugins:
    """Load plugins and fill a fresh registry.

    ``sources`` defaults to the entry points of the ``ganforge`` group; ``disabled`` (names,
    distributions or ``distribution:name``) to $GANFORGE_DISABLE_PLUGINS; ``strict`` to
    $GANFORGE_STRICT_PLUGINS. A failure calls ``on_failure`` (default: a warning on stderr) or, in
    strict mode, raises PluginError. An import slower than ``SLOW_IMPORT_SECONDS`` calls
    ``on_slow_import`` (default: a warning on stderr). A Ctrl-C while plugins load stops loading.
    """
    if sources is None:
        sources = [PluginSource.from_entry_point(ep) for ep in entry_points(group=ENTRY_POINT_GROUP)]
    if disabled is None:
        disabled = [token.strip() for token in text_setting(DISABLE_ENV).split(",") if token.strip()]
    if strict is None:
        strict = flag_setting(STRICT_ENV)
        strict_reason = f"{STRICT_ENV} is set" if strict else ""
    else:
        strict_reason = "strict mode: load_plugins(strict=True)" if strict else ""
    if on_failure is None:
        on_failure = _warn_on_stderr
    if on_slow_import is None:
        on_slow_import = _warn_slow_import_on_stderr
    blocked = set(disabled)

    manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    plugins = Plugins(
        manager,
        [],
        Registry(),
        strict_reason=strict_reason,
        on_failure=on_failure,
        on_slow_import=on_slow_import,
    )
    for source in sorted(sources, key=lambda s: (s.distribution != "ganforge", s.distribution, s.name)):
        status = PluginStatus(source.name, source.distribution, source.version, PluginState.LOADED)
        plugins.statuses.append(status)
        if blocked & {source.name, source.distribution, source.plugin_id}:
            status.state = PluginState.DISABLED
            continue
        _load_one(plugins, source, status)
    return plugins


def _load_one(plugins: Plugins, source: PluginSource, status: PluginStatus) -> None:
    """Import, validate and register one plugin; whatever its code raises is recorded as its failure."""
    manager = plugins.manager
    started = time.perf_counter()
    try:
        with third_party_code():
            plugin = source.load()
    except Exception as error:  # any import-time failure of third-party code, sys.exit() included
        _record_failure(status, Phase.IMPORT, error, plugins.strict_reason, plugins.on_failure)
        return
    status.import_seconds = time.perf_counter() - started
    if status.import_seconds > SLOW_IMPORT_SECONDS and plugins.on_slow_import is not None:
        plugins.on_slow_import(status)

    try:
        with third_party_code():
            manager.register(plugin, name=source.plugin_id)
            unknown = [caller.name for caller in manager.get_hookcallers(plugin) or [] if not caller.has_spec()]
        if unknown:
            known = ", ".join(sorted(name for name in vars(hookspecs) if name.startswith("register_")))
            raise RegistrationError(f"implements unknown hook(s) {', '.join(unknown)}; ganforge's hooks are: {known}")
    except Exception as error:  # pluggy's PluginValidationError, a duplicate name, unknown hooks
        if manager.is_registered(plugin):
            manager.unregister(plugin)
        _record_failure(status, Phase.VALIDATE, error, plugins.strict_reason, plugins.on_failure)
        return
    status.hooks = tuple(sorted(caller.name for caller in manager.get_hookcallers(plugin) or []))

    provider = Provider(source.distribution, source.version, source.plugin_id)
    collector = ComponentCollector(provider)
    try:
        with third_party_code():
            for hook_name, kind in REGISTERING_HOOKS.items():
                if hook_name in status.hooks:
                    _call_for_plugin(manager, hook_name, plugin, register=collector.register_function(kind))
        _check_same_distribution_duplicates(plugins.registry, collector, provider)
    except Exception as error:  # a plugin's bug inside its own hook
        manager.unregister(plugin)
        _record_failure(status, Phase.REGISTER, error, plugins.strict_reason, plugins.on_failure)
        return
    for component in collector.components:
        plugins.registry.add(component)


def _call_for_plugin(manager: pluggy.PluginManager, hook_name: str, plugin: Any, **kwargs: Any) -> None:
    """Call one plugin's implementation of a hook, so failures and registrations are its own."""
    others = [other for other in manager.get_plugins() if other is not plugin]
    manager.subset_hook_caller(hook_name, remove_plugins=others)(**kwargs)


def _check_same_distribution_duplicates(registry: Registry, collector: ComponentCollector, provider: Provider) -> None:
    """Two plugins of one distribution must not share a name: `dist:name` could not tell them apart."""
    for component in collector.components:
        for other in registry.components(component.kind):
            if other.provider.distribution == provider.distribution and (
                {component.name, *component.aliases} & {other.name, *other.aliases}
            ):
                raise RegistrationError(
                    f"{component.kind.value} {component.name!r} is already registered by plugin "
                    f"{other.provider.plugin!r} of the same distribution"
                )


def _describe_error(error: BaseException) -> str:
    if isinstance(error, SystemExit):
        return f"SystemExit({error.code!r}): the plugin's code called sys.exit()"
    if isinstance(error, KeyboardInterrupt):
        return "KeyboardInterrupt raised by the plugin's own code (no Ctrl-C was pressed)"
    text = f"{type(error).__name__}: {error}".strip()
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def _record_failure(
    status: PluginStatus,
    phase: Phase,
    error: BaseException,
    strict_reason: str,
    on_failure: Callable[[PluginStatus], None] | None,
) -> None:
    """Raise in strict mode (``strict_reason`` says why it is on), else tell ``on_failure``."""
    if isinstance(error, PluginExit):
        error = error.raised
    status.state = PluginState.FAILED
    status.phase = phase
    status.error = _describe_error(error)
    if strict_reason:
        raise PluginError(f"{status.describe_failure()} ({strict_reason})") from error
    if on_failure is not None:
        on_failure(status)


def _warn_on_stderr(status: PluginStatus) -> None:
    print(f"ganforge: warning: {status.describe_failure()}; skipped", file=sys.stderr)


def _warn_slow_import_on_stderr(status: PluginStatus) -> None:
    print(f"ganforge: warning: {status.describe_slow_import()}", file=sys.stderr)


@functools.cache
def default_plugins() -> Plugins:
    """The plugins installed in this environment, loaded once per process."""
    return load_plugins()
