"""Which of a run's components an exception was raised inside, said in a note on the exception.

A run calls third parties' code: an architecture's networks, a loss, a dataset, metrics, and their
factories. An exception raised there is that plugin's bug: its traceback shows where, and the note
added here (the last line Python prints of it) says whose, and where the run stood. A frame of the
traceback runs a component's code when its ``self`` is one of the run's objects (either network or
any module inside it, the EMA copy, the loss, a Component whose factory is building), or else when
its module belongs to a component's code: a plugin's top-level package, or for ganforge's own
components the module of the factory. The innermost frame whose ``self`` is known names the
component; failing that, the innermost frame of a component's code names its plugin.

GanforgeErrors are messages already, and running out of memory is nobody's bug: neither gets a note.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

import torch
from torch import nn

from ganforge.config import ResolvedRun
from ganforge.contracts import GANLoss
from ganforge.errors import GanforgeError
from ganforge.registry import Component
from ganforge.training.step import GANStep

GANFORGE = "ganforge"
NOTE_START = "ganforge: the error above was raised inside"
NOT_BLAMED = (GanforgeError, MemoryError, torch.cuda.OutOfMemoryError)


@dataclass(frozen=True)
class Culprit:
    """The component (or the plugin's code) an exception came from."""

    what: str
    builtin: bool

    def note(self, where: str) -> str:
        advice = "a bug in ganforge: please report it" if self.builtin else "report it to that plugin's authors"
        return f"{NOTE_START} {self.what}, {where}: {advice}"


class Blame:
    """The run's components and the objects they made, to name the one an exception was raised inside.

    ``stage`` says where the run stands while it is set up; once ``training`` is given (an object
    with ``epoch`` and ``step``, the Trainer), the step is said instead.
    """

    def __init__(self, run: ResolvedRun) -> None:
        self.components = [chosen.component for chosen in (run.model, run.loss, run.data, *run.metrics)]
        self._objects: dict[int, tuple[Any, Culprit]] = {}
        for component in self.components:
            self._watch(component, Culprit(f"the factory of {component.describe()}", is_builtin(component)))
        self._roots = [(code_root(component), component) for component in self.components]
        self.stage = "while the run was set up"
        self.training: Any = None

    def watch(self, generators: list[nn.Module], discriminators: list[nn.Module], losses: list[GANLoss]) -> set[int]:
        """The run's networks (every module inside them, the EMA copy's too) and losses; returns what was new."""
        architecture, loss = self.components[0], self.components[1]
        added: set[int] = set()
        for role, networks in (("generator", generators), ("discriminator", discriminators)):
            culprit = Culprit(f"the {role} of {architecture.describe()}", is_builtin(architecture))
            for network in networks:
                for module in network.modules():
                    added |= self._watch(module, culprit)
        for built in losses:
            added |= self._watch(built, Culprit(loss.describe(), is_builtin(loss)))
        return added

    @contextmanager
    def watching(
        self, generators: list[nn.Module], discriminators: list[nn.Module], losses: list[GANLoss]
    ) -> Iterator[None]:
        """Objects watched for the block alone (the pre-flight check's copies), and not kept alive after it."""
        added = self.watch(generators, discriminators, losses)
        try:
            with self.naming_the_component():
                yield
        finally:
            for key in added:
                del self._objects[key]

    def _watch(self, thing: Any, culprit: Culprit) -> set[int]:
        if id(thing) in self._objects:
            return set()
        self._objects[id(thing)] = (thing, culprit)  # the object is kept: its id cannot be reused meanwhile
        return {id(thing)}

    @contextmanager
    def naming_the_component(self) -> Iterator[None]:
        """An exception leaving the block gets a note naming the component it was raised inside, where one is."""
        try:
            yield
        except NOT_BLAMED:
            raise
        except Exception as error:
            frames = innermost_first(error.__traceback__)
            culprit = None if already_noted(error) else self.culprit(frames)
            if culprit is not None:
                error.add_note(culprit.note(self.position(frames)))
            raise

    def culprit(self, frames: list[FrameType]) -> Culprit | None:
        for frame in frames:
            known = self._objects.get(id(frame.f_locals.get("self")))
            if known is not None and known[0] is frame.f_locals.get("self"):
                return known[1]
        for frame in frames:
            module = frame.f_globals.get("__name__", "")
            owners = [component for root, component in self._roots if belongs_to(module, root)]
            if owners:
                return plugin_code(owners)
        return None

    def position(self, frames: list[FrameType]) -> str:
        if self.training is None:
            return self.stage
        epoch, step = self.training.epoch, self.training.step
        if any(frame.f_code is GANStep.train_on.__code__ for frame in frames):
            return f"at epoch {epoch + 1}, step {step + 1}"
        return f"after step {step}"


def already_noted(error: BaseException) -> bool:
    return any(str(note).startswith(NOTE_START) for note in getattr(error, "__notes__", ()))


def innermost_first(traceback: TracebackType | None) -> list[FrameType]:
    frames = []
    while traceback is not None:
        frames.append(traceback.tb_frame)
        traceback = traceback.tb_next
    return frames[::-1]


def is_builtin(component: Component) -> bool:
    return component.provider.distribution == GANFORGE


def code_root(component: Component) -> str:
    """The modules holding a component's code: its plugin's top-level package; ganforge's own: the factory's module."""
    module = getattr(component.factory, "__module__", None) or ""
    top = module.partition(".")[0]
    return module if is_builtin(component) or top == GANFORGE else top


def belongs_to(module: str, root: str) -> bool:
    return bool(root) and (module == root or module.startswith(root + "."))


def plugin_code(owners: list[Component]) -> Culprit:
    provider = owners[0].provider
    provided = " and ".join(f"{component.kind.value} {component.name!r}" for component in owners)
    return Culprit(
        f"the code of plugin {provider.plugin!r} ({provider}), which provides this run's {provided}",
        is_builtin(owners[0]),
    )
