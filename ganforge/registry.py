"""Registries of components, one per kind, filled by plugins through their hooks.

A name registered by two distributions is a conflict: both are kept, neither is renamed, and
looking the bare name up fails with a message that names both providers and shows how to pick
one with ``distribution:name``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from ganforge.contracts import (
    NoParams,
    contract_problem,
)
from ganforge.errors import (
    AmbiguousComponentError,
    ComponentNotFoundError,
    FactoryError,
    ParamsError,
    RegistrationError,
    describe_validation_error,
    first_line,
)
from ganforge.guards.third_party import PluginExit, third_party_code

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class Kind(StrEnum):
    ARCHITECTURE = "architecture"
    LOSS = "loss"
    DATASET = "dataset"
    METRIC = "metric"
    AUGMENTATION = "augmentation"
    LOGGER = "logger"
    SCHEDULE = "schedule"

    @property
    def plural(self) -> str:
        return "losses" if self is Kind.LOSS else f"{self.value}s"

    @classmethod
    def parse(cls, text: str) -> Kind:
        """Accept a kind in singular or plural: ``architecture``, ``losses``, ..."""
        for kind in cls:
            if text.lower() in (kind.value, kind.plural):
                return kind
        accepted = ", ".join(kind.value for kind in cls)
        raise ComponentNotFoundError(f"unknown component kind {text!r}; accepted: {accepted}")


@dataclass(frozen=True)
class Provider:
    """Who registered a component: the distribution, its version and the plugin inside it."""

    distribution: str
    version: str
    plugin: str

    def __str__(self) -> str:
        return f"{self.distribution}=={self.version}"


@dataclass(frozen=True)
class Component:
    kind: Kind
    name: str
    factory: Callable[..., Any]
    params_model: type[BaseModel]
    summary: str
    provider: Provider
    aliases: tuple[str, ...] = ()
    # Contract checks the plugin knows its component fails, each with the reason: `ganforge check` and
    # `ganforge.testing.parametrize_with_checks` report them as known failures, and a fixed one as a failure.
    known_failures: Mapping[str, str] = field(default_factory=dict, hash=False)
    # Params besides the defaults that the contract checks build the component with too: options that
    # change what it is (a conditional variant of an architecture) are then checked like its defaults.
    check_params: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)

    @property
    def qualified_name(self) -> str:
        return f"{self.provider.distribution}:{self.name}"

    def parse_params(
        self, params: Mapping[str, Any] | BaseModel | None = None, *, location: Sequence[str | int] = ("params",)
    ) -> BaseModel:
        """Validate raw params with the component's own params model; defaults fill the rest.

        ``location`` is where the params sit in the user's input (``model.params`` in a config),
        so that an error names the field as the user wrote it.
        """
        if isinstance(params, self.params_model):
            return params
        if isinstance(params, BaseModel):
            params = params.model_dump()
        try:
            return self.params_model.model_validate(dict(params or {}))
        except ValidationError as error:
            raise ParamsError(
                f"invalid params for {self.kind.value} {self.name!r} ({self.provider}):\n"
                + describe_validation_error(error, location, self.params_model)
            ) from None

    def build(self, params: Mapping[str, Any] | BaseModel | None = None, *args: Any, **kwargs: Any) -> Any:
        """Validate params, call the factory with them and the kind's other arguments, check what it returned.

        Every build of every kind, a built-in's too, passes here: a factory that returns anything but
        its kind's contract type (see :func:`contract_problem`), or that exits, is named with its
        plugin before anything uses what it made.
        """
        parsed = self.parse_params(params)
        try:
            with third_party_code():
                built = self.factory(parsed, *args, **kwargs)
        except PluginExit as exited:
            if not isinstance(exited.raised, SystemExit | KeyboardInterrupt):
                raise exited.raised from None
            exit_described = _exit_described(exited.raised)
            raise FactoryError(f"{self.describe()}: its factory {exit_described} while building") from None
        problem = contract_problem(self.kind, built)
        if problem is not None:
            raise FactoryError(f"{self.describe()}: its factory returned {problem}")
        return built

    def describe(self) -> str:
        """The component and who provides it, for a message: ``architecture 'x' of plugin 'dist:name' (dist==1.0)``."""
        return f"{self.kind.value} {self.name!r} of plugin {self.provider.plugin!r} ({self.provider})"


def _exit_described(error: SystemExit | KeyboardInterrupt) -> str:
    return f"called sys.exit({error.code!r})" if isinstance(error, SystemExit) else "raised KeyboardInterrupt"


@dataclass(frozen=True)
class Chosen:
    """A component picked by a config, with its params validated by the component's own model."""

    component: Component
    params: BaseModel

    def build(self, *args: Any) -> Any:
        return self.component.build(self.params, *args)


@dataclass(frozen=True)
class Conflict:
    kind: Kind
    name: str
    components: tuple[Component, ...]


class Register(Protocol):
    """The ``register`` callable a plugin's ``register_*`` hook receives."""

    def __call__(
        self,
        name: str,
        factory: Callable[..., Any],
        *,
        params: type[BaseModel] | None = None,
        summary: str | None = None,
        aliases: Sequence[str] = (),
        known_failures: Mapping[str, str] | None = None,
        check_params: Sequence[Mapping[str, Any]] = (),
    ) -> None: ...


@dataclass
class Registry:
    """All registered components, indexed by kind and by every name and alias."""

    _components: list[Component] = field(default_factory=list)
    _index: dict[tuple[Kind, str], list[Component]] = field(default_factory=dict)

    def add(self, component: Component) -> None:
        self._components.append(component)
        for key in (component.name, *component.aliases):
            self._index.setdefault((component.kind, key), []).append(component)

    def components(self, kind: Kind | None = None) -> list[Component]:
        chosen = [c for c in self._components if kind is None or c.kind is kind]
        return sorted(chosen, key=lambda c: (list(Kind).index(c.kind), c.name, c.provider.distribution))

    def conflicts(self, kind: Kind | None = None) -> list[Conflict]:
        found = [
            Conflict(key_kind, name, tuple(candidates))
            for (key_kind, name), candidates in sorted(self._index.items())
            if len(candidates) > 1 and (kind is None or key_kind is kind)
        ]
        return found

    def get(self, kind: Kind, name: str) -> Component:
        """Find a component by name, alias or ``distribution:name``."""
        distribution, _, bare_name = name.rpartition(":")
        candidates = self._index.get((kind, bare_name), [])
        if distribution:
            candidates = [c for c in candidates if same_distribution(c.provider.distribution, distribution)]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates:
            raise ComponentNotFoundError(self._not_found_message(kind, name))
        providers = ", ".join(f"{c.qualified_name} ({c.provider})" for c in candidates)
        raise AmbiguousComponentError(
            f"{kind.value} {bare_name!r} is registered by more than one plugin: {providers}. "
            f"Name one of them as distribution:name, e.g. {candidates[0].qualified_name!r}."
        )

    def build(self, kind: Kind, name: str, params: Mapping[str, Any] | BaseModel | None = None, *args: Any) -> Any:
        return self.get(kind, name).build(params, *args)

    def _not_found_message(self, kind: Kind, name: str) -> str:
        known = sorted({key for (key_kind, key) in self._index if key_kind is kind})
        message = f"unknown {kind.value} {name!r}"
        suggestions = difflib.get_close_matches(name.rpartition(":")[2], known, n=3)
        if suggestions:
            message += f"; did you mean {' or '.join(repr(s) for s in suggestions)}?"
        listing = ", ".join(known) if known else "none are installed"
        return f"{message}\nknown {kind.plural}: {listing} (see `ganforge list {kind.plural}`)"


def normalize_distribution(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def same_distribution(a: str, b: str) -> bool:
    return normalize_distribution(a) == normalize_distribution(b)


class ComponentCollector:
    """Collects one plugin's registrations; nothing reaches the registry unless all succeed."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.components: list[Component] = []
        self._taken: dict[tuple[Kind, str], str] = {}

    def register_function(self, kind: Kind) -> Register:
        def register(
            name: str,
            factory: Callable[..., Any],
            *,
            params: type[BaseModel] | None = None,
            summary: str | None = None,
            aliases: Sequence[str] = (),
            known_failures: Mapping[str, str] | None = None,
            check_params: Sequence[Mapping[str, Any]] = (),
        ) -> None:
            self._add(kind, name, factory, params, summary, tuple(aliases), known_failures or {}, check_params)

        return register

    def _add(
        self,
        kind: Kind,
        name: str,
        factory: Callable[..., Any],
        params: type[BaseModel] | None,
        summary: str | None,
        aliases: tuple[str, ...],
        known_failures: Mapping[str, str],
        check_params: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        for key in (name, *aliases):
            if not isinstance(key, str) or not NAME_PATTERN.match(key):
                raise RegistrationError(
                    f"{kind.value} name {key!r} is not valid: use lower-case letters, digits, '_', '-', '.'"
                )
            if (kind, key) in self._taken:
                raise RegistrationError(
                    f"{kind.value} {key!r} registered twice by plugin {self.provider.plugin!r} "
                    f"(first as {self._taken[(kind, key)]!r})"
                )
        if not callable(factory):
            raise RegistrationError(f"{kind.value} {name!r}: factory {factory!r} is not callable")
        if params is None:
            params = NoParams
        if not (isinstance(params, type) and issubclass(params, BaseModel)):
            raise RegistrationError(f"{kind.value} {name!r}: params must be a pydantic model class, got {params!r}")
        _check_known_failures(kind, name, known_failures)
        variants = _checked_check_params(kind, name, params, check_params)
        for key in (name, *aliases):
            self._taken[(kind, key)] = name
        self.components.append(
            Component(
                kind=kind,
                name=name,
                factory=factory,
                params_model=params,
                summary=summary if summary is not None else first_line(factory.__doc__),
                provider=self.provider,
                aliases=aliases,
                known_failures=dict(known_failures),
                check_params=variants,
            )
        )


def _checked_check_params(
    kind: Kind, name: str, params: type[BaseModel], check_params: Any
) -> tuple[Mapping[str, Any], ...]:
    """Each variant valid for the params model now, so that a typo fails at registration, not in a check."""
    if isinstance(check_params, Mapping | str) or not isinstance(check_params, Sequence):
        raise RegistrationError(
            f"{kind.value} {name!r}: check_params must be a list of params mappings, got {check_params!r}"
        )
    variants = []
    for variant in check_params:
        if not isinstance(variant, Mapping):
            raise RegistrationError(f"{kind.value} {name!r}: check_params entry {variant!r} is not a mapping")
        try:
            params.model_validate(dict(variant))
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise RegistrationError(
                f"{kind.value} {name!r}: check_params entry {dict(variant)!r} is not valid for "
                f"{params.__name__}: {where}: {problem['msg']}"
            ) from None
        variants.append(dict(variant))
    return tuple(variants)


def _check_known_failures(kind: Kind, name: str, known_failures: Any) -> None:
    """Check names and reasons as text; whether each check exists is the contract kit's to say."""
    if not isinstance(known_failures, Mapping) or not all(
        isinstance(check, str) and check.startswith("check_") and isinstance(reason, str) and reason.strip()
        for check, reason in known_failures.items()
    ):
        raise RegistrationError(
            f"{kind.value} {name!r}: known_failures must map check names (check_...) to the reason each fails, "
            f"got {known_failures!r}"
        )
